/**
 * `deno task bundle`: builds the client for browsers with esbuild.
 *
 * - `dist/heartwire-client.js`: ES module (`import { ReconnectingSocket } from ...`)
 * - `dist/heartwire-client.iife.js`: a classic script defining the global `Heartwire`
 *
 * Both minified, with source maps; the sizes (min and min+gzip) are printed.
 *
 * @module
 */
import * as esbuild from "esbuild";

/** Where the bundles go, relative to the repository root. */
const DIST = new URL("../dist/", import.meta.url);
const ENTRY = new URL("./mod.ts", import.meta.url);

/** Size of `bytes` after gzip, the way a server would send it. */
async function gzipSize(bytes: Uint8Array): Promise<number> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return (await new Response(stream).arrayBuffer()).byteLength;
}

/** Builds both bundles; returns their sizes. */
export async function bundle(): Promise<{ file: string; min: number; gzip: number }[]> {
  await Deno.mkdir(DIST, { recursive: true });
  const sizes = [];
  try {
    for (
      const [file, format] of [
        ["heartwire-client.js", "esm"],
        ["heartwire-client.iife.js", "iife"],
      ] as const
    ) {
      const outfile = new URL(file, DIST).pathname;
      await esbuild.build({
        entryPoints: [ENTRY.pathname],
        outfile,
        bundle: true,
        format,
        globalName: format === "iife" ? "Heartwire" : undefined,
        minify: true,
        sourcemap: true,
        // Private fields (#x) and `??=` are native here; lowering them would cost bytes.
        target: ["es2022"],
        platform: "browser",
        legalComments: "none",
        logLevel: "warning",
      });
      const code = await Deno.readFile(outfile);
      sizes.push({ file, min: code.byteLength, gzip: await gzipSize(code) });
    }
  } finally {
    // esbuild keeps a child process; stop it or Deno waits for it forever.
    await esbuild.stop();
  }
  return sizes;
}

/** Newest modification time (ms) of the sources the bundle is built from. */
async function newestSource(): Promise<number> {
  let newest = 0;
  for (const folder of ["./", "../protocol/"]) {
    const dir = new URL(folder, import.meta.url);
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !entry.name.endsWith(".ts")) continue;
      const { mtime } = await Deno.stat(new URL(entry.name, dir));
      newest = Math.max(newest, mtime?.getTime() ?? Infinity);
    }
  }
  return newest;
}

/** True when both bundles exist and are newer than every source file. */
async function upToDate(): Promise<boolean> {
  const newest = await newestSource();
  for (const file of ["heartwire-client.js", "heartwire-client.iife.js"]) {
    try {
      const { mtime } = await Deno.stat(new URL(file, DIST));
      if ((mtime?.getTime() ?? 0) < newest) return false;
    } catch {
      return false;
    }
  }
  return true;
}

if (import.meta.main) {
  // `deno task start` runs this with --if-stale: build only when the sources
  // changed, and never keep the server from starting (e.g. npm unreachable).
  const ifStale = Deno.args.includes("--if-stale");
  if (ifStale && await upToDate()) Deno.exit(0);
  try {
    for (const { file, min, gzip } of await bundle()) {
      console.log(
        `dist/${file}: ${(min / 1024).toFixed(1)} KiB min, ${
          (gzip / 1024).toFixed(2)
        } KiB min+gzip`,
      );
    }
  } catch (error) {
    console.error(`bundle failed: ${(error as Error).message}`);
    if (!ifStale) Deno.exit(1);
    console.error("starting without it: the demo page at / will say so");
  }
}
