/**
 * The load generator: N raw-TCP WebSocket connections, each keeping K
 * messages in flight against an echo route, counting echoes per second.
 *
 * It is built to cost the server's peer as little CPU as possible, so that
 * what gets measured is the server:
 * - the masked frames are encoded once, up front, and re-sent as is;
 * - every read is decoded in one pass, and the frames that replace the echoes
 *   it held go out together in ONE write;
 * - no events, timers or promises per message, only per read.
 *
 * Every echo is checked against the payload that was sent: a corrupt echo is
 * counted (and reported), never silently accepted.
 *
 * Run on its own (prints JSON lines: phase markers, then the result):
 *
 * ```sh
 * deno run --allow-net bench/load/client.ts --port 8080 --path /echo \
 *   --connections 100 --inflight 16 --size 64 --warmup 1000 --duration 3000
 * ```
 *
 * `--masked-echo` is for the raw TCP baseline (servers/raw_echo.ts), which
 * sends our bytes back untouched, masks included: the echoes are then decoded
 * as a server would decode client frames.
 *
 * @module
 */
import { FrameDecoder } from "../../protocol/frame_decoder.ts";
import { FrameWriter } from "../../protocol/frame_encoder.ts";
import { intFlag, parseFlags } from "./_flags.ts";
import { writeAll } from "../../server/_http_io.ts";
import { clientHandshake } from "./_handshake.ts";
import { countWindow, type WindowOptions } from "./_window.ts";

/**
 * What {@linkcode runLoad} does. Only `port` is required.
 *
 * @example
 * ```ts
 * import type { LoadOptions } from "./client.ts";
 * const options: LoadOptions = { port: 8080, connections: 100, inflight: 16 };
 * ```
 */
export interface LoadOptions extends WindowOptions {
  /** The echo server's port. */
  port: number;
  /** Default "127.0.0.1". */
  hostname?: string;
  /** The echo route. Default "/echo". */
  path?: string;
  /** Connections opened. Default 100. */
  connections?: number;
  /** Messages kept in flight on each connection. Default 16. */
  inflight?: number;
  /** Payload bytes per message (ASCII text). Default 64. */
  size?: number;
  /**
   * The server echoes our frames byte for byte, masks included (the raw TCP
   * baseline). Default false: echoes are unmasked server frames (§5.1).
   */
  maskedEchoes?: boolean;
  /** Time (ms) the connections get, once the count ends, to drain and close. Default 2 000. */
  drainTimeout?: number;
}

/**
 * What {@linkcode runLoad} measured.
 *
 * @example
 * ```ts
 * import type { LoadResult } from "./client.ts";
 * const ok = (result: LoadResult) => result.corrupt === 0 && result.errors.length === 0;
 * ```
 */
export interface LoadResult {
  connections: number;
  inflight: number;
  size: number;
  /** The counted window as actually measured (ms). */
  durationMs: number;
  /** Correct echoes received within the counted window. */
  messages: number;
  /** `messages` per second. */
  msgPerSec: number;
  /** Correct echoes over the whole run, warm-up and drain included. */
  total: number;
  /** Echoes that did not match what was sent (wrong type or payload). */
  corrupt: number;
  /** Connection failures, unexpected closes, protocol errors (first few). */
  errors: string[];
}

const READ_BUFFER_SIZE = 16 * 1024;
/** Reads grow (doubling when one fills the buffer) up to this, as heartwire's do. */
const READ_BUFFER_MAX = 256 * 1024;
const MAX_REPORTED_ERRORS = 5;

/** The state every connection of one run shares. */
class RunState {
  received = 0;
  corrupt = 0;
  stopping = false;
  errorCount = 0;
  errors: string[] = [];

  error(message: string): void {
    this.errorCount++;
    if (this.errors.length < MAX_REPORTED_ERRORS) this.errors.push(message);
  }
}

/** Everything one connection re-sends, computed once per run. */
interface Script {
  /** `inflight` masked text frames back to back; a prefix of it is one refill. */
  batch: Uint8Array;
  frameSize: number;
  /** The text every echo must carry. */
  expected: string;
  /** A masked close frame (1000) to end the connection politely. */
  closeFrame: Uint8Array;
}

function makeScript(size: number, inflight: number): Script {
  // Varied characters, so an echo shifted or unmasked with the wrong key
  // cannot look right by accident.
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  let expected = "";
  for (let i = 0; i < size; i++) expected += alphabet[i % alphabet.length];
  // Benchmark shortcut: each frame slot keeps the masking key FrameWriter drew
  // for it once, and the same bytes are re-sent for the whole run. A real
  // client must draw a fresh key per frame (RFC 6455 §5.3, §10.3: it protects
  // proxies from cache poisoning); on loopback that does not matter, and not
  // masking per send keeps the generator's CPU for reading and writing.
  const writer = new FrameWriter({ role: "client" });
  writer.text(expected);
  const frameSize = writer.length;
  for (let i = 1; i < inflight; i++) writer.text(expected);
  const batch = writer.take().slice();
  writer.close(1000);
  const closeFrame = writer.take().slice();
  return { batch, frameSize, expected, closeFrame };
}

/** One client connection: the opening handshake, then the echo pump. */
class LoadConnection {
  readonly #conn: Deno.Conn;
  readonly #decoder: FrameDecoder;
  #buffer = new Uint8Array(READ_BUFFER_SIZE);
  /** Bytes after the 101 response head, read with it. */
  #leftover: Uint8Array = new Uint8Array(0);
  #aborted = false;

  private constructor(conn: Deno.Conn, maskedEchoes: boolean) {
    this.#conn = conn;
    // An echo of our own masked frames is what a server role decoder expects;
    // a real server's unmasked frames are what a client role decoder expects.
    this.#decoder = new FrameDecoder({ role: maskedEchoes ? "server" : "client" });
  }

  static async open(
    hostname: string,
    port: number,
    path: string,
    maskedEchoes: boolean,
  ): Promise<LoadConnection> {
    const conn = await Deno.connect({ hostname, port });
    const connection = new LoadConnection(conn, maskedEchoes);
    try {
      // Deno leaves Nagle on: without this, a small refill may wait for an ACK.
      conn.setNoDelay(true);
      connection.#leftover = await clientHandshake(conn, `${hostname}:${port}`, path);
    } catch (error) {
      conn.close();
      throw error;
    }
    return connection;
  }

  /**
   * Keeps `inflight` messages in flight until the run stops, then waits for
   * the echoes still owed and closes (§7.1.2).
   */
  async pump(run: RunState, script: Script, inflight: number): Promise<void> {
    const conn = this.#conn;
    const { batch, frameSize, expected } = script;
    let outstanding = inflight;
    try {
      await writeAll(conn, batch.subarray(0, inflight * frameSize));
      let chunk = this.#leftover;
      for (;;) {
        let echoes = 0; // every data message answers one of ours, matching or not
        let matched = 0;
        const events = this.#decoder.push(chunk);
        for (let i = 0; i < events.length; i++) {
          const event = events[i];
          if (event.type === "text" && event.data === expected) {
            echoes++;
            matched++;
          } else if (event.type === "text" || event.type === "binary") {
            echoes++;
            run.corrupt++;
          } else if (event.type === "close" || event.type === "error") {
            run.error(`${event.type} ${event.code} ${event.reason} with ${outstanding} in flight`);
            return;
          } // A ping (none is due within a run) goes unanswered: not a real client.
        }
        outstanding -= echoes;
        run.received += matched;
        if (run.stopping) {
          if (outstanding <= 0) break;
        } else if (echoes > 0) {
          // Replace every echo of this read in one write: K stays in flight.
          await writeAll(conn, batch.subarray(0, echoes * frameSize));
          outstanding += echoes;
        }
        const n = await conn.read(this.#buffer);
        if (n === null) {
          run.error(`server closed TCP with ${outstanding} in flight`);
          return;
        }
        chunk = this.#buffer.subarray(0, n);
        // The decoder keeps what it needs of a chunk, so the buffer may be replaced now.
        if (n === this.#buffer.length && n < READ_BUFFER_MAX) {
          this.#buffer = new Uint8Array(n * 2);
        }
      }
      await this.#closeHandshake(script.closeFrame);
    } catch (error) {
      if (!this.#aborted) run.error(`connection failed: ${error}`);
    } finally {
      this.abort();
    }
  }

  /** Sends our close frame and reads until the server's answer or EOF. */
  async #closeHandshake(closeFrame: Uint8Array): Promise<void> {
    await writeAll(this.#conn, closeFrame);
    for (;;) {
      const n = await this.#conn.read(this.#buffer);
      if (n === null) return;
      const events = this.#decoder.push(this.#buffer.subarray(0, n));
      if (events.some((event) => event.type === "close" || event.type === "error")) return;
    }
  }

  /** Closes TCP now (idempotent); a pending read then fails, quietly. */
  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

/**
 * Opens the connections, pumps echoes for warm-up + duration, and reports
 * the echoes per second within the counted window.
 *
 * @example
 * ```ts
 * import { runLoad } from "./client.ts";
 * const result = await runLoad({ port: 8080, connections: 4, duration: 500 });
 * console.log(result.msgPerSec);
 * ```
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const hostname = options.hostname ?? "127.0.0.1";
  const path = options.path ?? "/echo";
  const connections = options.connections ?? 100;
  const inflight = options.inflight ?? 16;
  const size = options.size ?? 64;
  const maskedEchoes = options.maskedEchoes ?? false;
  if (connections < 1 || inflight < 1) throw new RangeError("connections and inflight must be ≥ 1");

  const script = makeScript(size, inflight);
  const run = new RunState();

  // All handshakes first, so the warm-up starts with every connection ready.
  const opened = await Promise.allSettled(
    Array.from(
      { length: connections },
      () => LoadConnection.open(hostname, options.port, path, maskedEchoes),
    ),
  );
  const open = opened.flatMap((result) => result.status === "fulfilled" ? [result.value] : []);
  const failed = opened.find((result) => result.status === "rejected");
  if (failed !== undefined) {
    for (const connection of open) connection.abort();
    throw new Error(`${connections - open.length} connections failed: ${failed.reason}`);
  }

  const pumps = open.map((connection) => connection.pump(run, script, inflight));
  const { before, after, durationMs } = await countWindow(options, () => run.received);
  const messages = after - before;

  run.stopping = true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const drained = await Promise.race([
    Promise.all(pumps).then(() => true),
    new Promise<false>((resolve) =>
      timer = setTimeout(() => resolve(false), options.drainTimeout ?? 2_000)
    ),
  ]);
  clearTimeout(timer);
  if (!drained) {
    run.error("connections did not drain and close in time");
    for (const connection of open) connection.abort();
    await Promise.all(pumps);
  }
  if (run.errorCount > run.errors.length) {
    run.errors.push(`... ${run.errorCount - run.errors.length} more`);
  }
  return {
    connections,
    inflight,
    size,
    durationMs: Math.round(durationMs),
    messages,
    msgPerSec: Math.round(messages / (durationMs / 1000)),
    total: run.received,
    corrupt: run.corrupt,
    errors: run.errors,
  };
}

if (import.meta.main) {
  const flags = parseFlags(Deno.args, [
    "hostname",
    "port",
    "path",
    "connections",
    "inflight",
    "size",
    "warmup",
    "duration",
    "masked-echo",
  ]);
  if (!flags.has("port")) {
    console.error("usage: client.ts --port N [--path /echo] [--connections 100] [--inflight 16]");
    Deno.exit(2);
  }
  const result = await runLoad({
    hostname: flags.get("hostname"),
    port: intFlag(flags, "port", 0),
    path: flags.get("path"),
    connections: intFlag(flags, "connections", 100),
    inflight: intFlag(flags, "inflight", 16),
    size: intFlag(flags, "size", 64),
    warmup: intFlag(flags, "warmup", 1_000),
    duration: intFlag(flags, "duration", 3_000),
    maskedEchoes: flags.get("masked-echo") === "true",
    onPhase: (phase) => console.log(JSON.stringify({ phase })),
  });
  console.log(JSON.stringify(result));
}
