/**
 * The layering rules of DESIGN.md, read from the source itself:
 *
 * - `protocol/` imports nothing outside itself and touches no `Deno.*`, timer
 *   or socket: it is the sans-I/O core.
 * - `server/` imports `protocol/` only; it never imports `hub/`, except the
 *   program (`server/main.ts`), which composes the two.
 * - `hub/` imports `protocol/` and the server's public API (`server/mod.ts`).
 * - `client/` imports `protocol/` only.
 * - The library's static import graph has no npm or remote package (an
 *   optional backend loads its client with a dynamic `import()`), and no cycle.
 *   `server/` may use the runtime's own `node:` built-ins (`node:zlib` for
 *   permessage-deflate): they ship with Deno, they are not packages.
 */
import { assert, assertEquals } from "@std/assert";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const LAYERS = ["protocol", "server", "hub", "client"] as const;
type Layer = typeof LAYERS[number];

/** Build scripts that run at development time, not part of the library. */
const TOOLS = new Set(["client/_bundle.ts"]);

interface SourceFile {
  path: string; // relative to the repo root, with forward slashes
  layer: Layer;
  text: string;
}

async function sources(): Promise<SourceFile[]> {
  const files: SourceFile[] = [];
  async function walk(dir: string, layer: Layer): Promise<void> {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(join(ROOT, dir))];
    } catch {
      return; // a layer that does not exist yet
    }
    for (const entry of entries) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path, layer);
      else if (entry.name.endsWith(".ts") && !TOOLS.has(path)) {
        files.push({ path, layer, text: await Deno.readTextFile(join(ROOT, path)) });
      }
    }
  }
  for (const layer of LAYERS) await walk(layer, layer);
  return files;
}

/** Static `import`/`export … from` specifiers (dynamic `import()` calls are separate). */
function staticImports(text: string): string[] {
  const found: string[] = [];
  const pattern =
    /^\s*(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']/gm;
  for (const match of text.matchAll(pattern)) found.push(match[1] ?? match[2]);
  return found;
}

function resolve(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith(".")) return undefined;
  return relative(ROOT, join(ROOT, from, "..", specifier)).replaceAll("\\", "/");
}

function allowed(file: SourceFile, target: string): boolean {
  const layer = target.split("/", 1)[0];
  if (layer === file.layer || layer === "protocol") return true;
  switch (file.layer) {
    case "server":
      return file.path === "server/main.ts" && layer === "hub";
    case "hub":
      return target === "server/mod.ts";
    default:
      return false;
  }
}

const files = await sources();

Deno.test("layers: every import goes the way DESIGN.md says", () => {
  const wrong: string[] = [];
  for (const file of files) {
    for (const specifier of staticImports(file.text)) {
      const target = resolve(file.path, specifier);
      if (target === undefined) {
        if (file.layer === "server" && specifier.startsWith("node:")) continue;
        // The library's static graph carries no package: core depends on nothing.
        wrong.push(`${file.path} imports the package ${specifier}`);
      } else if (!allowed(file, target)) {
        wrong.push(`${file.path} imports ${target}`);
      }
    }
  }
  assertEquals(wrong, []);
});

Deno.test("layers: protocol/ is sans-I/O (no Deno.*, timers or sockets)", () => {
  const wrong: string[] = [];
  for (const file of files.filter((f) => f.layer === "protocol")) {
    // Code only: comments may mention what the layer does not do.
    const code = file.text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
    for (const name of ["Deno.", "setTimeout(", "setInterval(", "fetch(", "WebSocket("]) {
      // The Clock interface declares setTimeout as a method signature: that is
      // time injected from outside, not a timer started here.
      const uses = code.split("\n").filter((line) =>
        line.includes(name) && !/^\s*setTimeout\(callback/.test(line)
      );
      if (uses.length > 0) wrong.push(`${file.path} uses ${name}`);
    }
  }
  assertEquals(wrong, []);
});

Deno.test("layers: the import graph has no cycle", () => {
  const graph = new Map<string, string[]>();
  for (const file of files) {
    graph.set(
      file.path,
      staticImports(file.text).map((s) => resolve(file.path, s)).filter((t): t is string =>
        t !== undefined
      ),
    );
  }
  const state = new Map<string, "visiting" | "done">();
  const cycles: string[] = [];
  const visit = (node: string, stack: string[]): void => {
    if (state.get(node) === "done") return;
    if (state.get(node) === "visiting") {
      cycles.push([...stack.slice(stack.indexOf(node)), node].join(" → "));
      return;
    }
    state.set(node, "visiting");
    for (const next of graph.get(node) ?? []) visit(next, [...stack, node]);
    state.set(node, "done");
  };
  for (const node of graph.keys()) visit(node, []);
  assertEquals(cycles, []);
});

Deno.test("layers: the checker sees the files and can fail", () => {
  // Guards against a walker that finds nothing and so passes vacuously.
  assert(files.some((f) => f.path === "protocol/frame_decoder.ts"));
  assert(files.some((f) => f.path === "server/server.ts"));
  const bad: SourceFile = { path: "protocol/x.ts", layer: "protocol", text: "" };
  assert(!allowed(bad, "server/server.ts"));
  assert(!allowed({ ...bad, path: "server/x.ts", layer: "server" }, "hub/mod.ts"));
  assert(allowed({ ...bad, path: "server/main.ts", layer: "server" }, "hub/mod.ts"));
  assert(!allowed({ ...bad, path: "hub/x.ts", layer: "hub" }, "server/connection.ts"));
  assert(allowed({ ...bad, path: "hub/x.ts", layer: "hub" }, "server/mod.ts"));
  assertEquals(staticImports(`import { a } from "./a.ts";\nexport * from "../b.ts";`), [
    "./a.ts",
    "../b.ts",
  ]);
});
