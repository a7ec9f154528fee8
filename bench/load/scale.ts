/**
 * `deno task bench:scale`: can a server hold thousands of idle WebSockets
 * under a fast keepalive without dropping live ones, and what does its
 * heartbeat cost? heartwire against ws's isAlive recipe on Node and Deno's
 * native `idleTimeout`, in the same run.
 *
 * For each server, the runner starts it as a subprocess on its own loopback
 * address (127.x.y.z, so one server's TIME_WAIT sockets never use up the
 * next one's source ports), reads its RSS, then starts `--clients` load
 * processes (bench/load/_scale_client.ts), each holding its share of
 * `--connections` idle connections that answer every ping at once. Once all
 * are open it lets `--settle` ms pass, then measures over `--hold` ms:
 * - held / dropped: connections the server ended although the client
 *   answered every ping (every drop here is a false one);
 * - RSS per held connection: (RSS at the end − RSS before any connection)
 *   / held, with pings flowing;
 * - heartbeat CPU: the server's user + system CPU time during the hold,
 *   per 1 000 pings the clients received in that time (an idle server does
 *   nothing else).
 *
 * ```sh
 * deno task bench:scale [--connections 9000,18000] [--interval 1000] [--timeout 1000]
 *   [--hold 15000] [--settle 2000] [--clients N] [--busy 0] [--servers heartwire,node,deno] [--json]
 *   (also `heartwire-small`: heartwire under `--v8-flags=--memory-saver-mode`; `raw`: a bare
 *   `Deno.listen` loop with the isAlive recipe and no WebSocket work, the floor on Deno)
 * ```
 *
 * `--busy N` runs N busy-loop processes beside each server and its load, as
 * other work on a shared machine would: the server then has less CPU than its
 * heartbeat needs at full rate, and must not blame its peers for the wait.
 *
 * The ws recipe pings every `--interval` and terminates a client that has not
 * answered by the next pass (so its timeout is the interval); Deno native gets
 * `idleTimeout` = (interval + timeout) / 1000 s (ping after half, close after
 * the other half). The limit here is 20 000 open files per process, so each
 * client process holds at most 9 000 and `--connections` stays ≤ 19 000.
 *
 * @module
 */
import { type Flags, intFlag, intListFlag, parseFlags } from "./_flags.ts";
import { clockTicks, cpuSeconds, readMemory } from "./_proc.ts";
import { sleep } from "./_window.ts";
import { findWsPackage, lines, output, startServer, tail } from "./_servers.ts";
import type { ScaleMark } from "./_scale_client.ts";

const deno = Deno.execPath();
const file = (path: string) => new URL(path, import.meta.url).pathname;

/** Options of one {@linkcode runScale} measurement (detect.ts starts its servers with them too). */
export interface ScaleOptions {
  connections: number;
  interval: number;
  timeout: number;
  hold: number;
  settle: number;
  clients: number;
  /** Busy-loop processes run beside the server and load (`--busy`): other work on the machine. Default 0. */
  busy?: number;
}

/** A server of the scale comparison and how to start it. */
export interface ScaleServer {
  name: string;
  label: string;
  command(hostname: string, options: ScaleOptions): Promise<string[] | { skip: string }>;
}

/** `deno run --allow-net [flags] script args…`, a server of this comparison. */
function denoServer(script: string, args: string[], flags: string[] = []): Promise<string[]> {
  return Promise.resolve([deno, "run", "--allow-net", ...flags, file(script), ...args]);
}

/** heartwire_scale.ts's arguments: where, the keepalive under test, a cap above the load. */
const heartwireArgs = (hostname: string, o: ScaleOptions) => [
  hostname,
  "0",
  String(o.interval),
  String(o.timeout),
  String(o.connections + 100),
];

/** heartwire, ws's isAlive recipe on Node, Deno's `idleTimeout` (shared with detect.ts). */
export const SCALE_SERVERS: ScaleServer[] = [
  {
    name: "heartwire",
    label: "heartwire serve() /echo",
    command: (hostname, o) => denoServer("servers/heartwire_scale.ts", heartwireArgs(hostname, o)),
  },
  {
    // Opt-in (name it in --servers): the same server started the way an
    // operator would to trade heartbeat CPU for memory (README, memory with
    // pings flowing).
    name: "heartwire-small",
    label: "heartwire, --v8-flags=--memory-saver-mode",
    command: (hostname, o) =>
      denoServer("servers/heartwire_scale.ts", heartwireArgs(hostname, o), [
        "--v8-flags=--memory-saver-mode",
      ]),
  },
  {
    // Opt-in: the floor on Deno (raw_isalive.ts), what any Deno server pays.
    name: "raw",
    label: "bare Deno.listen loop, isAlive recipe",
    command: (hostname, o) =>
      denoServer("servers/raw_isalive.ts", [hostname, "0", String(o.interval)]),
  },
  {
    name: "node",
    label: "ws 8 on Node, isAlive recipe",
    command: async (hostname, o) => {
      const version = await output("node", ["--version"]);
      if (version === null) return { skip: "node is not on PATH" };
      const ws = await findWsPackage();
      if (ws === null) return { skip: "ws@8 is not in Deno's npm cache (deno cache npm:ws@8)" };
      return ["node", file("servers/node_ws_isalive.cjs"), ws, hostname, "0", String(o.interval)];
    },
  },
  {
    name: "deno",
    label: "Deno.upgradeWebSocket, idleTimeout",
    command: (hostname, o) =>
      denoServer("servers/deno_native_idle.ts", [
        hostname,
        "0",
        String((o.interval + o.timeout) / 1000),
      ]),
  },
];

/** The server in {@linkcode SCALE_SERVERS} called `name`; throws for an unknown one. */
export function scaleServer(name: string): (typeof SCALE_SERVERS)[number] {
  const spec = SCALE_SERVERS.find((candidate) => candidate.name === name.trim());
  if (spec === undefined) throw new Error(`unknown server ${name}`);
  return spec;
}

/**
 * How many load processes hold `connections` (`--clients`, else one per
 * 6 000); each may hold at most 9 000, its share of the 20 000 fd limit.
 */
export function loadProcesses(flags: Flags, connections: number): number {
  const clients = flags.has("clients")
    ? intFlag(flags, "clients", 1)
    : Math.max(1, Math.ceil(connections / 6_000));
  if (Math.ceil(connections / clients) > 9_000) {
    throw new RangeError("at most 9 000 connections per load process");
  }
  return clients;
}

/** What one server measured. */
interface ScaleResult {
  server: string;
  connections: number;
  opened: number;
  failed: number;
  dropped: number;
  /** Server RSS per held connection (bytes), pings flowing. */
  bytesPerConnection: number;
  /** Server CPU ms per 1 000 pings received by the clients during the hold. */
  cpuPerThousandPings: number;
  /** Server CPU use during the hold, % of one core. */
  cpuPercent: number;
  /** Pings per second received by the clients during the hold. */
  pingsPerSecond: number;
  /** The largest event-loop lag of any client process (ms). */
  clientLagMs: number;
  /** For drops: ms from the client's last pong to the drop, sorted. */
  sincePong: number[];
  errors: string[];
  /** What heartwire's stats said about the ends, if it said. */
  serverNote: string;
}

/** A load process and its line-by-line stdout. */
export class LoadProcess {
  readonly #child: Deno.ChildProcess;
  readonly #lines: AsyncGenerator<string>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #stderr: { text: () => string; done: Promise<void> };

  constructor(hostname: string, port: number, connections: number, node: boolean) {
    const [command, args] = node
      ? ["node", [file("_scale_client.cjs"), hostname, String(port), "/echo", String(connections)]]
      : [deno, [
        "run",
        "--allow-net",
        file("_scale_client.ts"),
        "--hostname",
        hostname,
        "--port",
        String(port),
        "--connections",
        String(connections),
      ]];
    this.#child = new Deno.Command(command, {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#lines = lines(this.#child.stdout);
    this.#writer = this.#child.stdin.getWriter();
    this.#stderr = tail(this.#child.stderr);
  }

  async #line(): Promise<string> {
    const next = await this.#lines.next();
    if (next.done) throw new Error(`load process ended: ${this.#stderr.text()}`);
    return next.value;
  }

  /** Waits for the `opened <opened> <failed>` line, and returns it. */
  async opened(): Promise<string> {
    const line = await this.#line();
    if (!line.startsWith("opened ")) throw new Error(`unexpected: ${line}`);
    return line;
  }

  async mark(command = "mark"): Promise<ScaleMark> {
    await this.#writer.write(new TextEncoder().encode(`${command}\n`));
    return JSON.parse(await this.#line());
  }

  async finish(): Promise<ScaleMark> {
    const mark = await this.mark("finish");
    await this.#writer.close().catch(() => {});
    await this.#child.status;
    for await (const _ of this.#lines);
    await this.#stderr.done;
    return mark;
  }

  kill(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
}

function sum(marks: ScaleMark[], key: "opened" | "failed" | "dropped" | "pings"): number {
  return marks.reduce((total, mark) => total + mark[key], 0);
}

async function runScale(
  spec: ScaleServer,
  command: string[],
  hostname: string,
  options: ScaleOptions,
  ticks: number,
  node: boolean,
): Promise<ScaleResult> {
  const server = await startServer(command);
  const loads: LoadProcess[] = [];
  // Other work taking cores: a server must not blame its peers for the wait.
  const busy = Array.from(
    { length: options.busy ?? 0 },
    () =>
      new Deno.Command(deno, { args: ["eval", "for (;;);"], stdout: "null", stderr: "null" })
        .spawn(),
  );
  try {
    await sleep(500);
    const rssBefore = readMemory(server.pid).rss;
    const share = Math.ceil(options.connections / options.clients);
    for (let left = options.connections; left > 0; left -= share) {
      loads.push(new LoadProcess(hostname, server.port, Math.min(share, left), node));
    }
    await Promise.all(loads.map((load) => load.opened()));
    await sleep(options.settle);
    const first = await Promise.all(loads.map((load) => load.mark()));
    const cpu0 = cpuSeconds(server.pid, ticks) * 1000, t0 = performance.now();
    await sleep(options.hold);
    const cpu1 = cpuSeconds(server.pid, ticks) * 1000, t1 = performance.now();
    const rss = readMemory(server.pid).rss;
    const last = await Promise.all(loads.map((load) => load.finish()));
    const held = sum(last, "opened") - sum(last, "dropped");
    const pings = sum(last, "pings") - sum(first, "pings");
    await server.stop();
    return {
      server: spec.name,
      connections: options.connections,
      opened: sum(last, "opened"),
      failed: sum(last, "failed"),
      dropped: sum(last, "dropped"),
      bytesPerConnection: held > 0 ? Math.round((rss - rssBefore) / held) : NaN,
      cpuPerThousandPings: pings > 0 ? (cpu1 - cpu0) / (pings / 1000) : NaN,
      cpuPercent: (cpu1 - cpu0) / (t1 - t0) * 100,
      pingsPerSecond: pings / ((t1 - t0) / 1000),
      clientLagMs: Math.max(...last.map((mark) => mark.maxLagMs)),
      sincePong: last.flatMap((mark) => mark.sincePong).sort((a, b) => a - b),
      errors: [...new Set(last.flatMap((mark) => mark.errors))],
      serverNote: /closed (\{.*\})/.exec(server.stderr())?.[1] ?? "",
    };
  } finally {
    for (const load of loads) load.kill();
    for (const hog of busy) hog.kill("SIGKILL");
    await Promise.all(busy.map((hog) => hog.status));
    await server.stop();
  }
}

/** A loopback address of its own for each server started in this run. */
export function freshLoopback(): string {
  const byte = () => 1 + Math.floor(Math.random() * 254);
  return `127.${byte()}.${byte()}.${byte()}`;
}

const thousands = (value: number) => Math.round(value).toLocaleString("en-US");

/** The `p` quantile (0–1) of ascending `sorted`. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

function report(
  results: ScaleResult[],
  skipped: string[],
  options: Omit<ScaleOptions, "connections" | "clients">,
): string {
  const out: string[] = [
    `heartwire at scale: idle WebSockets answering every ping; interval ${options.interval} ms, ` +
    `timeout ${options.timeout} ms; measured over ${options.hold / 1000} s after ` +
    `${options.settle / 1000} s settling; load in separate processes; 127.x.y.z loopback; ` +
    `${navigator.hardwareConcurrency} cores shared by server and load (and whatever else runs)` +
    (options.busy ? `; ${options.busy} busy-loop process(es) beside them (--busy)` : ""),
    "",
    "| server | connections | held | dropped | failed to open | RSS / held conn | " +
    "heartbeat CPU per 1 000 pings | server CPU | pings/s | max client lag |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of results) {
    const label = scaleServer(r.server).label;
    out.push(
      `| ${label} | ${thousands(r.connections)} | ${thousands(r.opened - r.dropped)} | ` +
        `${thousands(r.dropped)} | ${r.failed} | ${
          (r.bytesPerConnection / 1000).toFixed(1)
        } KB | ` +
        `${r.cpuPerThousandPings.toFixed(1)} ms | ${r.cpuPercent.toFixed(0)} % | ` +
        `${thousands(r.pingsPerSecond)} | ${r.clientLagMs} ms |`,
    );
  }
  for (const reason of skipped) out.push(`| ${reason} | skipped | | | | | | | | |`);
  for (const connections of new Set(results.map((r) => r.connections))) {
    const of = (name: string) =>
      results.find((r) => r.server === name && r.connections === connections);
    const hw = of("heartwire");
    if (hw === undefined) continue;
    for (const peer of ["node", "deno", "raw"]) {
      const p = of(peer);
      if (p === undefined) continue;
      out.push(
        `${thousands(connections)}: heartwire / ${peer}: RSS per connection ` +
          `${(hw.bytesPerConnection / p.bytesPerConnection).toFixed(2)}×, heartbeat CPU per ping ` +
          `${(hw.cpuPerThousandPings / p.cpuPerThousandPings).toFixed(2)}× (lower is better)`,
      );
    }
  }
  for (const r of results) {
    if (r.dropped > 0) {
      const s = r.sincePong;
      out.push(
        `${r.server} @ ${r.connections}: ${r.dropped} dropped; client's last pong before the ` +
          `drop: median ${percentile(s, 0.5)} ms, p10 ${percentile(s, 0.1)} ms ` +
          `(-1: never pinged)`,
      );
    }
    if (r.serverNote) out.push(`${r.server} @ ${r.connections}: server ends ${r.serverNote}`);
    for (const error of r.errors) out.push(`${r.server} @ ${r.connections}: open failed: ${error}`);
  }
  return out.join("\n");
}

async function main(): Promise<void> {
  const flags = parseFlags(Deno.args, [
    "connections",
    "interval",
    "timeout",
    "hold",
    "settle",
    "clients",
    "servers",
    "busy",
    "json",
  ]);
  const counts = intListFlag(flags, "connections", [9_000, 18_000]);
  if (counts.some((n) => !(n >= 1 && n <= 19_000))) {
    throw new RangeError("--connections: each count between 1 and 19 000 (20 000 files/process)");
  }
  const base = {
    interval: intFlag(flags, "interval", 1_000),
    timeout: intFlag(flags, "timeout", 1_000),
    hold: intFlag(flags, "hold", 15_000),
    settle: intFlag(flags, "settle", 2_000),
    busy: intFlag(flags, "busy", 0),
  };
  const names = (flags.get("servers") ?? "heartwire,node,deno").split(",");
  const ticks = await clockTicks();
  // The load runs on Node when it can (_scale_client.cjs says why).
  const node = (await output("node", ["--version"])) !== null;
  const results: ScaleResult[] = [];
  const skipped: string[] = [];
  for (const connections of counts) {
    const clients = loadProcesses(flags, connections);
    for (const name of names) {
      const spec = scaleServer(name);
      const hostname = freshLoopback();
      const options = { ...base, connections, clients };
      const command = await spec.command(hostname, options);
      if (!Array.isArray(command)) {
        if (connections === counts[0]) skipped.push(`${spec.label}: ${command.skip}`);
        continue;
      }
      const result = await runScale(spec, command, hostname, options, ticks, node);
      console.error(
        `${name} @ ${connections}: held ${result.opened - result.dropped}, dropped ` +
          `${result.dropped}, ${(result.bytesPerConnection / 1000).toFixed(1)} KB/conn, ` +
          `${result.cpuPerThousandPings.toFixed(1)} ms CPU / 1000 pings`,
      );
      results.push(result);
    }
  }
  console.log(report(results, skipped, base));
  if (flags.get("json") === "true") console.log(JSON.stringify(results, null, 2));
}

if (import.meta.main) await main();
