/**
 * `deno task bench:idle`: what one idle WebSocket connection costs a server
 * in memory, heartwire against its peers.
 *
 * For every server, the runner starts it as a subprocess (as run.ts does),
 * and this process, the client, then:
 * 1. warms it up: opens `--warmup` connections (kept open), so that code
 *    compiled and pools sized by the first handshakes are not counted;
 * 2. waits `--settle` ms and reads the server's RSS (VmRSS in
 *    /proc/<pid>/status): the baseline;
 * 3. opens `--connections` more, `--batch` at a time so the server's accept
 *    backlog is never overrun, completes the opening handshake on each
 *    (RFC 6455 §4.1) and sends nothing more;
 * 4. waits `--settle` ms and reads the RSS again: (after − baseline) divided
 *    by the connections still open is the report's bytes per idle connection;
 * 5. closes them all (TCP only, no close frame) and stops the server.
 *
 * A connection that fails to open, or that the server closes before the
 * second reading, is counted and reported, not retried. Keep warm-up +
 * connections under ~18 000: each side is one process and the machine allows
 * 20 000 open files per process. heartwire's default `maxConnections` is
 * 10 000; past it, its connections fail with 503, as they would in production.
 *
 * With `--ping-interval MS`, the servers ping (heartwire: `pingInterval`;
 * Deno: `idleTimeout` of 2 × MS, which pings after MS of silence) and every
 * client connection answers each ping with a pong: memory per connection as
 * an operator sees it with keepalive on. Only heartwire and deno have this mode.
 *
 * ```sh
 * deno task bench:idle [--connections 5000] [--batch 200] [--warmup 200] [--settle 2000]
 *   [--ping-interval 0] [--servers raw,deno,heartwire,node,bun] [--json]
 * ```
 *
 * @module
 */
import { FrameDecoder } from "../../protocol/frame_decoder.ts";
import { encodeFrame } from "../../protocol/frame_encoder.ts";
import { intFlag, parseFlags } from "./_flags.ts";
import { selectServers, SERVERS, type ServerSpec, startServer } from "./_servers.ts";
import { clientHandshake } from "./_handshake.ts";
import { readMemory } from "./_proc.ts";
import { sleep } from "./_window.ts";

/**
 * What {@linkcode runIdle} does. Only `port` and `pid` are required.
 *
 * @example
 * ```ts
 * import type { IdleOptions } from "./idle.ts";
 * const options: IdleOptions = { port: 8080, pid: 1234, connections: 1_000 };
 * ```
 */
export interface IdleOptions {
  /** The server's port. */
  port: number;
  /** The server's process id, whose RSS is read (Linux /proc). */
  pid: number;
  /** Default "127.0.0.1". */
  hostname?: string;
  /** The WebSocket route. Default "/echo". */
  path?: string;
  /** Idle connections measured. Default 5 000. */
  connections?: number;
  /** Connections opened at once. Default 200. */
  batch?: number;
  /** Connections opened (and kept) before the baseline is read. Default 200. */
  warmup?: number;
  /** Time (ms) the server gets to settle before each RSS reading. Default 2 000. */
  settle?: number;
  /** Time (ms) one connection may take to connect and finish its handshake. Default 10 000. */
  handshakeTimeout?: number;
}

/**
 * What {@linkcode runIdle} measured. Sizes are in bytes.
 *
 * @example
 * ```ts
 * import type { IdleResult } from "./idle.ts";
 * const kib = (result: IdleResult) => (result.bytesPerConnection / 1024).toFixed(1);
 * ```
 */
export interface IdleResult {
  /** Connections asked for (not counting the warm-up). */
  connections: number;
  /** Connections whose handshake completed (not counting the warm-up). */
  opened: number;
  /** Connections that could not connect or whose handshake failed (warm-up included). */
  failed: number;
  /** Opened connections the server closed before the second RSS reading (warm-up included). */
  dropped: number;
  /** Server RSS after the warm-up and settling. */
  rssBefore: number;
  /** Server RSS with every connection open, after settling. */
  rssAfter: number;
  /** The server's peak RSS so far (VmHWM), read with `rssAfter`. */
  peakRss: number;
  /** (rssAfter − rssBefore) / connections still open of those measured; NaN if none. */
  bytesPerConnection: number;
  /** Time (ms) opening the measured connections took. */
  openMs: number;
  /** The first few distinct failures, with how often each happened. */
  errors: string[];
  /** Pings the measured connections received (and answered) in all. */
  pings: number;
}

const MAX_REPORTED_ERRORS = 5;

/** Failure messages, counted by kind. */
class Failures {
  #counts = new Map<string, number>();
  total = 0;

  add(message: string): void {
    this.total++;
    // Counting by message merges the same failure on different ports.
    const kind = message.replace(/\d+\.\d+\.\d+\.\d+:\d+/g, "<addr>");
    this.#counts.set(kind, (this.#counts.get(kind) ?? 0) + 1);
  }

  list(): string[] {
    return [...this.#counts].slice(0, MAX_REPORTED_ERRORS).map(([kind, count]) =>
      count > 1 ? `${kind} (×${count})` : kind
    );
  }
}

/** One client connection past its handshake, watched for an early close. */
class IdleConnection {
  readonly #conn: Deno.Conn;
  #closing = false;
  /** Set when the server closed (or reset) before we did. */
  dropped = false;
  /** Pings received, each answered with a pong (RFC 6455 §5.5.3). */
  pings = 0;
  /** Ends when the connection does. */
  readonly watched: Promise<void>;

  /** `early`: bytes that came in the same read as the 101 response. */
  constructor(conn: Deno.Conn, early: Uint8Array) {
    this.#conn = conn;
    this.watched = this.#watch(early);
  }

  /**
   * A pending read per connection notices a server that closes an idle peer:
   * by closing TCP, or by starting the closing handshake (§7.1.2), which
   * counts as dropped at once. Pings are answered with a masked pong.
   */
  async #watch(early: Uint8Array): Promise<void> {
    const buffer = new Uint8Array(256);
    // Made on the first byte received: a connection left idle never needs one.
    let decoder: FrameDecoder | undefined;
    const closing = (bytes: Uint8Array) => {
      decoder ??= new FrameDecoder({ role: "client" });
      let closed = false;
      for (const event of decoder.push(bytes)) {
        if (event.type === "close" || event.type === "error") closed = true;
        if (event.type === "ping") {
          this.pings++;
          this.#conn.write(encodeFrame(0xa, event.data, { mask: true })).catch(() => {});
        }
      }
      return closed;
    };
    try {
      if (early.length === 0 || !closing(early)) {
        for (;;) {
          const n = await this.#conn.read(buffer);
          if (n === null || closing(buffer.subarray(0, n))) break;
        }
      }
    } catch {
      // reset, or closed by close() below
    }
    if (!this.#closing) this.dropped = true;
  }

  /** Closes TCP (idempotent); the pending read then ends. */
  close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      try {
        this.#conn.close();
      } catch {
        // the server closed it first
      }
    }
    return this.watched;
  }
}

/** Connects and completes the opening handshake within `timeout` ms. */
async function openIdle(
  hostname: string,
  port: number,
  path: string,
  timeout: number,
): Promise<IdleConnection> {
  let timedOut = false;
  let conn: Deno.Conn | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      try {
        conn?.close(); // ends a pending handshake read
      } catch {
        // already closed
      }
      reject(new Error(`no handshake within ${timeout} ms`));
    }, timeout);
  });
  expired.catch(() => {}); // raced with the connect below, which may win
  const connecting = Deno.connect({ hostname, port });
  // A connect still pending at the deadline is closed whenever it completes.
  connecting.then((late) => timedOut && late.close(), () => {});
  try {
    conn = await Promise.race([connecting, expired]);
    // The deadline closes conn, which ends a pending handshake read.
    const early = await clientHandshake(conn, `${hostname}:${port}`, path);
    return new IdleConnection(conn, early);
  } catch (error) {
    try {
      conn?.close();
    } catch {
      // already closed
    }
    throw timedOut ? new Error(`no handshake within ${timeout} ms`) : error;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Opens `count` connections, `batch` at a time (one batch completes before
 * the next starts), into `open`; failures go to `failures`.
 */
async function openAll(
  count: number,
  batch: number,
  open: IdleConnection[],
  failures: Failures,
  connect: () => Promise<IdleConnection>,
): Promise<void> {
  for (let started = 0; started < count; started += batch) {
    const size = Math.min(batch, count - started);
    const results = await Promise.allSettled(Array.from({ length: size }, connect));
    for (const result of results) {
      if (result.status === "fulfilled") {
        open.push(result.value);
      } else {
        const { reason } = result;
        failures.add(reason instanceof Error ? reason.message : String(reason));
      }
    }
  }
}

/**
 * Measures a server's memory per idle WebSocket connection: warm-up, RSS,
 * `connections` handshakes and nothing more, RSS again, then closes every
 * connection it opened (and waits until each has ended).
 *
 * @example
 * ```ts
 * import { runIdle } from "./idle.ts";
 * import { echoHandler, serve } from "../../server/mod.ts";
 * const server = serve({ port: 0, hostname: "127.0.0.1", routes: { "/echo": echoHandler } });
 * const result = await runIdle({ port: server.addr.port, pid: Deno.pid, connections: 10 });
 * console.log(result.opened, result.bytesPerConnection);
 * await server.shutdown();
 * ```
 */
export async function runIdle(options: IdleOptions): Promise<IdleResult> {
  const hostname = options.hostname ?? "127.0.0.1";
  const path = options.path ?? "/echo";
  const connections = options.connections ?? 5_000;
  const batch = options.batch ?? 200;
  const settle = options.settle ?? 2_000;
  if (connections < 1 || batch < 1) throw new RangeError("connections and batch must be ≥ 1");
  const connect = () => openIdle(hostname, options.port, path, options.handshakeTimeout ?? 10_000);

  const failures = new Failures();
  const warm: IdleConnection[] = [];
  const measured: IdleConnection[] = [];
  try {
    await openAll(options.warmup ?? 200, batch, warm, failures, connect);
    await sleep(settle);
    const before = readMemory(options.pid);

    const started = performance.now();
    await openAll(connections, batch, measured, failures, connect);
    const openMs = performance.now() - started;
    await sleep(settle);
    const after = readMemory(options.pid);

    const failed = failures.total;
    const dropped = [...warm, ...measured].filter((connection) => connection.dropped).length;
    const alive = measured.filter((connection) => !connection.dropped).length;
    for (let i = 0; i < dropped; i++) failures.add("closed by the server while idle");
    return {
      connections,
      opened: measured.length,
      failed,
      dropped,
      rssBefore: before.rss,
      rssAfter: after.rss,
      peakRss: after.peak,
      bytesPerConnection: alive > 0 ? Math.round((after.rss - before.rss) / alive) : NaN,
      openMs: Math.round(openMs),
      errors: failures.list(),
      pings: measured.reduce((sum, connection) => sum + connection.pings, 0),
    };
  } finally {
    await Promise.all([...warm, ...measured].map((connection) => connection.close()));
  }
}

interface Measurement {
  server: string;
  result?: IdleResult;
  error?: string;
}

type RunOptions =
  & Required<Pick<IdleOptions, "connections" | "batch" | "warmup" | "settle">>
  & { pingInterval: number };

/** Servers whose bench script takes a ping interval (ms) as its second argument. */
const PING_SERVERS = ["heartwire", "deno"];

async function measure(
  spec: ServerSpec,
  command: string[],
  options: RunOptions,
): Promise<Measurement> {
  const measurement: Measurement = { server: spec.name };
  try {
    const server = await startServer(command);
    try {
      const { pingInterval: _, ...idle } = options;
      measurement.result = await runIdle({ port: server.port, pid: server.pid, ...idle });
    } catch (error) {
      measurement.error = `${error}${server.stderr() ? `\nserver: ${server.stderr()}` : ""}`;
    } finally {
      await server.stop();
    }
  } catch (error) {
    measurement.error = String(error);
  }
  return measurement;
}

const thousands = (value: number) => value.toLocaleString("en-US");
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/**
 * Where an idle heartwire connection's memory goes, read off the source
 * (server/server.ts, server/connection.ts, protocol/frame_encoder.ts,
 * protocol/frame_decoder.ts). Keep it in step with them.
 */
const HEARTWIRE_NOTES = [
  "Where an idle heartwire connection's memory goes (serve() defaults):",
  "- its read buffer: one 256 B Uint8Array (connection.ts READ_BUFFER_MIN), held by the " +
  "pending read for the life of the connection; it doubles (to 256 KiB at most) when a " +
  "read fills it, and goes back to 256 B with the first read after a keepalive ping;",
  "- its FrameWriter: nothing until the first send — both batch buffers start as one " +
  "shared empty array; the first batch allocates one 64 B buffer and the next batch the " +
  "other, each doubling only when a batch needs it (frame_encoder.ts), so keepalive pings " +
  "cost 128 B, and an /echo connection what its largest batches took;",
  "- its FrameDecoder: a 4 B mask key; a 14 B header scratch, a UTF-8 validator and a " +
  "payload buffer only once a header or payload is cut across reads or a text message is " +
  "fragmented;",
  "- the WebSocketConnection object itself (keepalive and write-queue state) and its " +
  "sans-I/O Connection (ready state, close handshake), one entry in the server's timer " +
  "heap (the keepalive; no OS timer of its own), its request head as one compact string " +
  "(ws.request parses it again when read), its place in server.connections, and, as for " +
  "any Deno.listen server, the Deno.Conn with its Rust-side TCP resource and pending read " +
  "(~2.7 KB of JavaScript heap in Deno's own read machinery alone);",
  "- not per connection for long: the handshake's read buffer and the request " +
  "parser's head buffer (protocol/http1.ts RequestParser, up to 16 KiB for long heads) " +
  "are garbage once the 101 is sent; they count in RSS until V8 " +
  "collects it and the allocator returns the pages.",
  "Kernel socket buffers are not in any process's RSS. V8's young generation grows to " +
  "~32 MiB under the handshake bursts whatever the server (a fixed cost, large per " +
  "connection at a few thousand); --v8-flags=--optimize-for-size keeps it small.",
];

function report(
  measurements: Measurement[],
  skipped: string[],
  options: RunOptions,
): string {
  const out: string[] = [];
  out.push(
    `heartwire idle-connection memory: ${thousands(options.connections)} idle WebSocket ` +
      `connections after ${thousands(options.warmup)} warm-up ones, opened ` +
      `${options.batch} at a time; server RSS (VmRSS) read ${options.settle} ms after each ` +
      `step; 127.0.0.1, ${navigator.hardwareConcurrency} cores` +
      (options.pingInterval > 0
        ? `; pings every ${options.pingInterval} ms of silence, each answered with a pong`
        : ""),
    "",
    "| server | opened | failed | dropped | RSS before | RSS after | peak RSS | " +
      "bytes / idle connection | open time |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  );
  for (const m of measurements) {
    const label = SERVERS.find((spec) => spec.name === m.server)!.label;
    const r = m.result;
    if (r === undefined) {
      out.push(`| ${label} | failed | | | | | | | ${m.error?.split("\n")[0]} |`);
      continue;
    }
    out.push(
      `| ${label} | ${thousands(r.opened)} / ${thousands(r.connections)} | ${r.failed} | ` +
        `${r.dropped} | ${mib(r.rssBefore)} | ${mib(r.rssAfter)} | ${mib(r.peakRss)} | ` +
        `${Number.isNaN(r.bytesPerConnection) ? "?" : thousands(r.bytesPerConnection)} | ` +
        `${thousands(r.openMs)} ms |`,
    );
  }
  for (const reason of skipped) out.push(`| ${reason} | skipped | | | | | | | |`);

  const errors = measurements.flatMap((m) =>
    (m.result?.errors ?? []).map((error) => `- ${m.server}: ${error}`)
  );
  if (errors.length > 0) out.push("", "Connection failures:", ...errors);

  const perConnection = (name: string) => {
    const r = measurements.find((m) => m.server === name)?.result;
    return r === undefined || r.opened < r.connections || r.dropped > 0
      ? undefined
      : r.bytesPerConnection;
  };
  const heartwire = perConnection("heartwire"), native = perConnection("deno");
  const raw = perConnection("raw");
  const ratio = heartwire !== undefined && native !== undefined && native > 0
    ? `${(heartwire / native).toFixed(2)}×`
    : "? (a run is missing or not every connection stayed open)";
  out.push(
    "",
    `heartwire / Deno native, bytes per idle connection (lower is better): ${ratio}`,
  );
  if (heartwire !== undefined && raw !== undefined) {
    // The raw server holds one 16 KiB read buffer (heartwire's starts at
    // 1 KiB) and one Deno TCP resource with a read pending per connection.
    out.push(
      `heartwire − raw TCP echo (raw: 16 KiB read buffer; both: one Deno socket): ` +
        `${thousands(heartwire - raw)} B per idle connection`,
    );
  }
  out.push(
    "",
    ...HEARTWIRE_NOTES,
    "",
    "RSS is what the allocator has touched, not what is live: a reading can include garbage " +
      "not yet collected and pages freed but kept. Peak RSS shows the handshake bursts.",
  );
  return out.join("\n");
}

async function main(): Promise<void> {
  const flags = parseFlags(Deno.args, [
    "connections",
    "batch",
    "warmup",
    "settle",
    "ping-interval",
    "servers",
    "json",
  ]);
  const options: RunOptions = {
    connections: intFlag(flags, "connections", 5_000),
    batch: intFlag(flags, "batch", 200),
    warmup: intFlag(flags, "warmup", 200),
    settle: intFlag(flags, "settle", 2_000),
    pingInterval: intFlag(flags, "ping-interval", 0),
  };
  if (options.connections + options.warmup > 18_000) {
    throw new Error("keep --connections + --warmup ≤ 18 000 (20 000 open files per process)");
  }
  const specs = selectServers(flags.get("servers"));

  const skipped: string[] = [];
  const measurements: Measurement[] = [];
  for (const spec of specs) {
    let command = await spec.command();
    if (options.pingInterval > 0 && Array.isArray(command)) {
      command = PING_SERVERS.includes(spec.name)
        ? [...command, "0", String(options.pingInterval)]
        : { skip: "no ping mode" };
    }
    if (!Array.isArray(command)) {
      skipped.push(`${spec.label}: ${command.skip}`);
      continue;
    }
    const m = await measure(spec, command, options);
    const summary = m.result
      ? `${thousands(m.result.bytesPerConnection)} B per idle connection, ` +
        `${m.result.opened}/${m.result.connections} opened, ${m.result.pings} pings answered`
      : `failed: ${m.error}`;
    console.error(`${spec.name}: ${summary}`);
    measurements.push(m);
  }
  console.log(report(measurements, skipped, options));
  if (flags.get("json") === "true") console.log(JSON.stringify({ options, measurements }, null, 2));
}

if (import.meta.main) await main();
