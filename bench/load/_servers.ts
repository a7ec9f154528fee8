/**
 * The servers the load harness compares, and how to start and stop one as a
 * subprocess. Shared by run.ts (echo throughput) and idle.ts (memory per idle
 * connection).
 *
 * Every server prints `listening <port>` once ready and stops on SIGTERM.
 *
 * @module
 */

const here = new URL(".", import.meta.url);
const deno = Deno.execPath();
const file = (path: string) => new URL(path, here).pathname;

/**
 * What a server program does: `echo` sends every message back (the echo,
 * churn and idle runs); `fanout` sends each message from `/pub` to every
 * connection on `/sub` (bench/fanout/).
 *
 * @example
 * ```ts
 * import type { ServerRole } from "./_servers.ts";
 * const role: ServerRole = "fanout";
 * ```
 */
export type ServerRole = "echo" | "fanout";

/**
 * One server of the comparison.
 *
 * @example
 * ```ts
 * import { SERVERS, type ServerSpec } from "./_servers.ts";
 * const heartwire: ServerSpec | undefined = SERVERS.find((spec) => spec.name === "heartwire");
 * ```
 */
export interface ServerSpec {
  /** Short name, as given to `--servers`. */
  name: string;
  /** What the report calls it. */
  label: string;
  /** The command for `role` (default `echo`), or why this server cannot run here. */
  command(role?: ServerRole): Promise<string[] | { skip: string }>;
  /** Echoes our bytes untouched, masks included (client --masked-echo). */
  maskedEcho?: boolean;
  /** Runs only when named in `--servers`. */
  optIn?: boolean;
}

const denoScript = (script: string) => [deno, "run", "--allow-net", file(script)];

/**
 * Servers: echo programs in bench/load/servers/, fan-out programs in
 * bench/fanout/servers/:
 * - `raw`: Deno.listen read→write loop, no WebSocket parsing (the ceiling);
 * - `floor`: the raw loop plus only the string round trip a WebSocket echo
 *   cannot skip (unmask, TextDecoder, encode); echo only, when named;
 * - `deno`: Deno.serve + Deno.upgradeWebSocket;
 * - `heartwire`: serve() with default options;
 * - `heartwire-metrics`: heartwire's echo counting into a `HeartwireMetrics` (only when named);
 * - `node`: ws 8 on Node (skipped if `node` or ws is missing);
 * - `bun`: Bun.serve WebSocket (`bun` on PATH, `$BUN`, or npm's `bun` package, see findBun).
 *
 * @example
 * ```ts
 * import { SERVERS } from "./_servers.ts";
 * console.log(SERVERS.map((spec) => spec.name).join(",")); // raw,deno,heartwire,node,bun
 * ```
 */
export const SERVERS: ServerSpec[] = [
  {
    name: "raw",
    label: "raw TCP echo (Deno.listen, no WS parsing)",
    command: (role = "echo") =>
      Promise.resolve(
        denoScript(role === "echo" ? "servers/raw_echo.ts" : "../fanout/servers/raw_fanout.ts"),
      ),
    maskedEcho: true,
  },
  {
    name: "floor",
    label: "floor: raw loop + decode/encode strings (no WS rules)",
    optIn: true,
    command: (role = "echo") =>
      Promise.resolve(
        role === "echo" ? denoScript("servers/floor_echo.ts") : { skip: "echo only" },
      ),
  },
  {
    name: "deno",
    label: "Deno.upgradeWebSocket (native)",
    command: (role = "echo") =>
      Promise.resolve(
        denoScript(
          role === "echo"
            ? "servers/deno_native_echo.ts"
            : "../fanout/servers/deno_native_fanout.ts",
        ),
      ),
  },
  {
    name: "heartwire",
    label: "heartwire serve()",
    command: (role = "echo") =>
      Promise.resolve(
        denoScript(
          role === "echo" ? "servers/heartwire_echo.ts" : "../fanout/servers/heartwire_fanout.ts",
        ),
      ),
  },
  {
    name: "heartwire-metrics",
    label: "heartwire serve() /echo, metrics on",
    optIn: true,
    command: () => Promise.resolve([...denoScript("servers/heartwire_echo.ts"), "0", "--metrics"]),
  },
  {
    name: "node",
    label: "ws 8 on Node",
    command: async (role = "echo") => {
      const version = await output("node", ["--version"]);
      if (version === null) return { skip: "node is not on PATH" };
      const ws = await findWsPackage();
      if (ws === null) return { skip: "ws@8 is not in Deno's npm cache (deno cache npm:ws@8)" };
      const script = role === "echo"
        ? "servers/node_ws_echo.cjs"
        : "../fanout/servers/node_ws_fanout.cjs";
      return ["node", file(script), ws];
    },
  },
  {
    name: "bun",
    label: "Bun.serve WebSocket (native uWS)",
    command: async (role = "echo") => {
      const bun = await findBun();
      if (typeof bun !== "string") return bun;
      const script = role === "echo" ? "servers/bun_echo.js" : "../fanout/servers/bun_fanout.js";
      return [bun, file(script)];
    },
  },
];

let bunPath: Promise<string | { skip: string }> | undefined;

/**
 * The Bun binary, found once per process, in this order: `$BUN`; `bun` on
 * PATH; npm's `bun` package (whose postinstall puts the platform's binary in
 * bin/bun.exe) installed into a cache directory,
 * `$XDG_CACHE_HOME/heartwire-bench/bun` (default ~/.cache/...), on first use
 * with `npm install --prefix`. If none works, the reason to skip Bun.
 *
 * @example
 * ```ts ignore
 * import { findBun } from "./_servers.ts";
 * const bun = await findBun();
 * console.log(typeof bun === "string" ? bun : bun.skip);
 * ```
 */
export function findBun(): Promise<string | { skip: string }> {
  return bunPath ??= locateBun();
}

async function locateBun(): Promise<string | { skip: string }> {
  const works = async (path: string) => (await output(path, ["--version"])) !== null;
  const env = Deno.env.get("BUN");
  if (env && await works(env)) return env;
  if (await works("bun")) return "bun";
  const home = Deno.env.get("HOME") ?? "/tmp";
  const prefix = `${Deno.env.get("XDG_CACHE_HOME") ?? `${home}/.cache`}/heartwire-bench/bun`;
  // The package's postinstall copies the platform binary over bin/bun.exe; if
  // install scripts did not run, the binary is still in the optional dependency.
  const candidates = [
    `${prefix}/node_modules/bun/bin/bun.exe`,
    `${prefix}/node_modules/@oven/bun-linux-x64/bin/bun`,
    `${prefix}/node_modules/@oven/bun-linux-x64-baseline/bin/bun`,
    `${prefix}/node_modules/@oven/bun-linux-aarch64/bin/bun`,
  ];
  for (const candidate of candidates) if (await works(candidate)) return candidate;
  console.error(`installing Bun with npm into ${prefix} (once) ...`);
  const installed = await output("npm", [
    "install",
    "--prefix",
    prefix,
    "--no-audit",
    "--no-fund",
    "--loglevel=error",
    "bun@1",
  ]);
  if (installed === null) return { skip: "bun is not on PATH and `npm install bun` failed" };
  for (const candidate of candidates) if (await works(candidate)) return candidate;
  return { skip: `npm installed bun into ${prefix} but no working binary was found` };
}

/**
 * The specs named in a `--servers a,b,c` list (all of them when absent).
 *
 * @example
 * ```ts
 * import { selectServers } from "./_servers.ts";
 * selectServers("deno,heartwire").map((spec) => spec.label);
 * ```
 */
export function selectServers(list: string | undefined, fallback?: string[]): ServerSpec[] {
  const names = list?.split(",") ?? fallback ??
    SERVERS.filter((spec) => !spec.optIn).map((spec) => spec.name);
  return names.map((name) => {
    const spec = SERVERS.find((candidate) => candidate.name === name.trim());
    if (spec === undefined) {
      throw new Error(`unknown server ${name}; known: ${SERVERS.map((s) => s.name)}`);
    }
    return spec;
  });
}

/**
 * Runs a command and returns its stdout, or null if it is missing or fails.
 *
 * @example
 * ```ts
 * import { output } from "./_servers.ts";
 * const ticks = Number(await output("getconf", ["CLK_TCK"])) || 100;
 * ```
 */
export async function output(command: string, args: string[]): Promise<string | null> {
  try {
    const result = await new Deno.Command(command, { args, stdout: "piped", stderr: "null" })
      .output();
    return result.success ? new TextDecoder().decode(result.stdout).trim() : null;
  } catch {
    return null;
  }
}

/**
 * The ws package Deno fetched for deno.json's `npm:ws@8` (its index.js),
 * usable by Node as is; null if it is not in the cache.
 *
 * @example
 * ```ts ignore
 * import { findWsPackage } from "./_servers.ts";
 * console.log(await findWsPackage()); // .../registry.npmjs.org/ws/8.18.0/index.js
 * ```
 */
export async function findWsPackage(): Promise<string | null> {
  const info = await output(deno, ["info", "--json"]);
  if (info === null) return null;
  const root = `${JSON.parse(info).npmCache}/registry.npmjs.org/ws`;
  const versions: string[] = [];
  try {
    for await (const entry of Deno.readDir(root)) {
      if (entry.isDirectory && entry.name.startsWith("8.")) versions.push(entry.name);
    }
  } catch {
    return null;
  }
  if (versions.length === 0) return null;
  versions.sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  return `${root}/${versions[versions.length - 1]}/index.js`;
}

/**
 * Splits a byte stream into lines.
 *
 * @example
 * ```ts
 * import { lines } from "./_servers.ts";
 * const child = new Deno.Command("echo", { args: ["a"], stdout: "piped" }).spawn();
 * for await (const line of lines(child.stdout)) console.log(line);
 * await child.status;
 * ```
 */
export async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    rest += text;
    let newline;
    while ((newline = rest.indexOf("\n")) !== -1) {
      yield rest.slice(0, newline);
      rest = rest.slice(newline + 1);
    }
  }
  if (rest !== "") yield rest;
}

/**
 * Collects the tail of a stream (for error messages) until it ends.
 *
 * @example
 * ```ts
 * import { tail } from "./_servers.ts";
 * const child = new Deno.Command("ls", { args: ["/nowhere"], stderr: "piped" }).spawn();
 * const errors = tail(child.stderr);
 * await child.status;
 * await errors.done;
 * console.log(errors.text());
 * ```
 */
export function tail(
  stream: ReadableStream<Uint8Array>,
): { text: () => string; done: Promise<void> } {
  let text = "";
  const done = (async () => {
    for await (const line of lines(stream)) text = (text + line + "\n").slice(-2_000);
  })();
  return { text: () => text, done };
}

/**
 * A server subprocess started by {@linkcode startServer}.
 *
 * @example
 * ```ts
 * import type { RunningServer } from "./_servers.ts";
 * const describe = (server: RunningServer) => `pid ${server.pid} on port ${server.port}`;
 * ```
 */
export interface RunningServer {
  /** The server process itself (the runtime, not a wrapper): its /proc entry is the server's. */
  pid: number;
  /** The port it printed. */
  port: number;
  /** SIGTERM, then waits for the process and its output to end. */
  stop(): Promise<void>;
  /** The last 2 000 characters of its stderr. */
  stderr(): string;
}

/**
 * Starts a server and waits (15 s at most) for its `listening <port>` line.
 *
 * @example
 * ```ts ignore
 * import { SERVERS, startServer } from "./_servers.ts";
 * const command = await SERVERS[0].command();
 * if (Array.isArray(command)) {
 *   const server = await startServer(command);
 *   await server.stop();
 * }
 * ```
 */
export async function startServer(command: string[]): Promise<RunningServer> {
  const child = new Deno.Command(command[0], {
    args: command.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const errors = tail(child.stderr);
  const stdout = lines(child.stdout);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const port = await Promise.race([
    (async () => {
      for await (const line of stdout) {
        const match = /^listening (\d+)/.exec(line);
        if (match) return Number(match[1]);
      }
      return null;
    })(),
    new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), 15_000)),
  ]);
  clearTimeout(timer);
  // Keep draining stdout so the server never blocks on a full pipe.
  const drained = (async () => {
    for await (const _ of stdout);
  })();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
    await child.status;
    await Promise.all([drained, errors.done]);
  };
  if (port === null) {
    await stop();
    throw new Error(`${command.join(" ")} did not start:\n${errors.text()}`);
  }
  return { pid: child.pid, port, stop, stderr: errors.text };
}
