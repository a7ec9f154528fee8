/**
 * The fan-out generator: N subscriber connections on `/sub` and one
 * publisher on `/pub`, counting deliveries per second.
 *
 * The publisher keeps `window` broadcasts outstanding: each carries a
 * sequence number, and when all N subscribers hold broadcast k the next one
 * goes out. Every subscriber checks that it gets every broadcast, in order,
 * whole: a gap or a wrong payload is counted as corrupt, never accepted.
 *
 * Before the run it asks the server (text `?` on `/pub`) how many
 * subscribers it has, until all N are registered, so that no broadcast goes
 * to a partial audience (bench/fanout/servers/ all answer it, except the raw
 * ceiling, which needs no asking: `--masked-echo`).
 *
 * Each side is one process and the machine allows 20 000 open files per
 * process: keep N under ~19 000.
 *
 * ```sh
 * deno run --allow-net bench/fanout/client.ts --port 8080 --subscribers 5000 \
 *   --window 64 --size 64 --warmup 1000 --duration 3000
 * ```
 *
 * Prints JSON lines: phase markers, then the result.
 *
 * @module
 */
import { type DecoderEvent, FrameDecoder } from "../../protocol/frame_decoder.ts";
import { FrameWriter } from "../../protocol/frame_encoder.ts";
import { intFlag, parseFlags } from "../load/_flags.ts";
import { writeAll } from "../../server/_http_io.ts";
import { clientHandshake } from "../load/_handshake.ts";
import { countWindow, sleep, type WindowOptions } from "../load/_window.ts";

/**
 * What {@linkcode runFanout} does. Only `port` is required.
 *
 * @example
 * ```ts
 * import type { FanoutOptions } from "./client.ts";
 * const options: FanoutOptions = { port: 8080, subscribers: 1_000 };
 * ```
 */
export interface FanoutOptions extends WindowOptions {
  /** The fan-out server's port. */
  port: number;
  /** Default "127.0.0.1". */
  hostname?: string;
  /** Subscriber connections. Default 5 000. */
  subscribers?: number;
  /**
   * Broadcasts outstanding at once. Default 64: a deep window lets each
   * subscriber read carry many frames, which keeps the generator's cost per
   * delivery (mostly per read) below any server's.
   */
  window?: number;
  /** Payload bytes per message (ASCII text, ≥ 10). Default 64. */
  size?: number;
  /** Handshakes in progress at once, so no accept backlog overflows. Default 200. */
  connectConcurrency?: number;
  /** Broadcasts come back byte for byte, masked (the raw ceiling); no `?` count. Default false. */
  maskedEchoes?: boolean;
}

/**
 * What {@linkcode runFanout} measured.
 *
 * @example
 * ```ts
 * import type { FanoutResult } from "./client.ts";
 * const ok = (result: FanoutResult) => result.corrupt === 0 && result.errors.length === 0;
 * ```
 */
export interface FanoutResult {
  subscribers: number;
  window: number;
  size: number;
  /** The counted window as measured (ms). */
  durationMs: number;
  /** Messages received by subscribers within the counted window. */
  deliveries: number;
  /** `deliveries` per second: the figure the report uses. */
  rate: number;
  /** Broadcasts every subscriber completed within the counted window, per second. */
  broadcastsPerSec: number;
  /** Deliveries per subscriber read in the counted window: how much each read batched. */
  deliveriesPerRead: number;
  /** Deliveries out of order or with a wrong payload. */
  corrupt: number;
  /** Connection failures and unexpected closes (first few). */
  errors: string[];
}

const SEQ_DIGITS = 10;
const MAX_REPORTED_ERRORS = 5;

/** Payload of broadcast `seq`: its number, zero-padded, then filler up to `size`. */
function payload(seq: number, size: number): string {
  return String(seq).padStart(SEQ_DIGITS, "0") + "x".repeat(size - SEQ_DIGITS);
}

/** The sequence number a payload starts with (no substring: this runs per delivery). */
function seqOf(text: string): number {
  if (text.length < SEQ_DIGITS) return -1;
  let seq = 0;
  for (let i = 0; i < SEQ_DIGITS; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return -1;
    seq = seq * 10 + digit;
  }
  return seq;
}

class Run {
  deliveries = 0;
  reads = 0;
  completed = 0;
  corrupt = 0;
  stopping = false;
  errors: string[] = [];
  errorCount = 0;
  /** Subscribers still owed each outstanding broadcast. */
  readonly owed = new Map<number, number>();

  constructor(readonly subscribers: number, readonly onComplete: () => void) {}

  error(message: string): void {
    this.errorCount++;
    if (this.errors.length < MAX_REPORTED_ERRORS) this.errors.push(message);
  }

  delivered(seq: number): void {
    this.deliveries++;
    const owed = this.owed.get(seq);
    if (owed === undefined) return;
    if (owed > 1) {
      this.owed.set(seq, owed - 1);
      return;
    }
    this.owed.delete(seq);
    this.completed++;
    this.onComplete();
  }
}

/** A connection after its opening handshake, with a decoder for what the server sends. */
async function connect(
  hostname: string,
  port: number,
  path: string,
  masked: boolean,
): Promise<{ conn: Deno.Conn; decoder: FrameDecoder; leftover: Uint8Array }> {
  const conn = await Deno.connect({ hostname, port });
  try {
    conn.setNoDelay(true);
    const leftover = await clientHandshake(conn, `${hostname}:${port}`, path);
    // Masked echoes are what a server-role decoder expects (§5.1).
    return { conn, decoder: new FrameDecoder({ role: masked ? "server" : "client" }), leftover };
  } catch (error) {
    conn.close();
    throw error;
  }
}

/** Reads a subscriber until the run stops or the server ends it. */
async function subscribe(
  run: Run,
  link: { conn: Deno.Conn; decoder: FrameDecoder; leftover: Uint8Array },
  size: number,
  first: number,
): Promise<void> {
  const { conn, decoder } = link;
  // Small while idle (N of them), doubling up to 16 KiB when a read fills one.
  let buffer = new Uint8Array(4096);
  let next = first;
  let chunk = link.leftover;
  try {
    for (;;) {
      const events: DecoderEvent[] = decoder.push(chunk);
      for (let i = 0; i < events.length; i++) {
        const event = events[i];
        if (event.type === "text") {
          const seq = seqOf(event.data);
          if (seq !== next || event.data.length !== size) run.corrupt++;
          next = seq + 1;
          run.delivered(seq);
        } else if (event.type === "close" || event.type === "error") {
          if (!run.stopping) {
            run.error(`subscriber got ${event.type} ${event.code} ${event.reason}`);
          }
          return;
        } else if (event.type === "binary") {
          run.corrupt++;
        }
      }
      const n = await conn.read(buffer);
      run.reads++;
      if (n === null) {
        if (!run.stopping) run.error("server closed a subscriber's TCP");
        return;
      }
      chunk = buffer.subarray(0, n);
      if (n === buffer.length && n < 16_384) buffer = new Uint8Array(n * 2);
    }
  } catch (error) {
    if (!run.stopping) run.error(`subscriber failed: ${error}`);
  }
}

/** Reads one text message from the publisher connection (the `?` answer). */
async function readText(
  link: { conn: Deno.Conn; decoder: FrameDecoder; leftover: Uint8Array },
): Promise<string> {
  const buffer = new Uint8Array(1024);
  let chunk = link.leftover;
  link.leftover = new Uint8Array(0);
  for (;;) {
    for (const event of link.decoder.push(chunk)) {
      if (event.type === "text") return event.data;
      if (event.type === "close" || event.type === "error") {
        throw new Error(`publisher got ${event.type} ${event.code} ${event.reason}`);
      }
    }
    const n = await link.conn.read(buffer);
    if (n === null) throw new Error("server closed the publisher");
    chunk = buffer.subarray(0, n);
  }
}

/** Runs `task` over `items` with at most `limit` at once; returns every outcome. */
async function limited<T, R>(
  items: T[],
  limit: number,
  task: (item: T) => Promise<R>,
): Promise<PromiseSettledResult<R>[]> {
  const results: PromiseSettledResult<R>[] = new Array(items.length);
  let index = 0;
  const worker = async () => {
    while (index < items.length) {
      const i = index++;
      try {
        results[i] = { status: "fulfilled", value: await task(items[i]) };
      } catch (reason) {
        results[i] = { status: "rejected", reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * Connects the subscribers and the publisher, broadcasts for warm-up +
 * duration, and reports deliveries per second within the counted window.
 *
 * @example
 * ```ts ignore
 * import { runFanout } from "./client.ts";
 * const result = await runFanout({ port: 8080, subscribers: 100, duration: 500 });
 * console.log(result.rate);
 * ```
 */
export async function runFanout(options: FanoutOptions): Promise<FanoutResult> {
  const hostname = options.hostname ?? "127.0.0.1";
  const subscribers = options.subscribers ?? 5_000;
  const window = options.window ?? 64;
  const size = options.size ?? 64;
  const masked = options.maskedEchoes ?? false;
  if (subscribers < 1 || window < 1) throw new RangeError("subscribers and window must be ≥ 1");
  if (size < SEQ_DIGITS) throw new RangeError(`size must be ≥ ${SEQ_DIGITS}`);

  const opened = await limited(
    Array.from({ length: subscribers }, (_, i) => i),
    options.connectConcurrency ?? 200,
    () => connect(hostname, options.port, "/sub", masked),
  );
  const links = opened.flatMap((result) => result.status === "fulfilled" ? [result.value] : []);
  const failed = opened.find((result) => result.status === "rejected");
  const closeAll = () => {
    for (const link of links) {
      try {
        link.conn.close();
      } catch {
        // already closed
      }
    }
  };
  if (failed !== undefined) {
    closeAll();
    throw new Error(`${subscribers - links.length} subscribers failed: ${failed.reason}`);
  }
  const publisher = await connect(hostname, options.port, "/pub", masked);
  links.push(publisher);

  try {
    if (!masked) {
      // Wait until the server has registered every subscriber.
      const ask = new FrameWriter({ role: "client" });
      const deadline = performance.now() + 15_000;
      for (;;) {
        ask.text("?");
        await writeAll(publisher.conn, ask.take().slice());
        const count = Number(await readText(publisher));
        if (count >= subscribers) break;
        if (performance.now() > deadline) {
          throw new Error(`server registered ${count} of ${subscribers} subscribers`);
        }
        await sleep(20);
      }
    }

    const writer = new FrameWriter({ role: "client" });
    let nextSeq = 0;
    let writing = Promise.resolve();
    const run = new Run(subscribers, () => {
      if (!run.stopping) publish(1);
    });
    // Writes are chained so frames go out whole and in order.
    const publish = (count: number) => {
      for (let i = 0; i < count; i++) {
        const seq = nextSeq++;
        run.owed.set(seq, subscribers);
        writer.text(payload(seq, size));
      }
      const frames = writer.take().slice();
      writing = writing.then(() => writeAll(publisher.conn, frames)).catch((error) => {
        if (!run.stopping) run.error(`publisher failed: ${error}`);
      });
    };

    const reading = links.slice(0, subscribers).map((link) => subscribe(run, link, size, 0));
    publish(window);
    const { before, after, durationMs } = await countWindow(
      options,
      () => ({ deliveries: run.deliveries, completed: run.completed, reads: run.reads }),
    );
    const deliveries = after.deliveries - before.deliveries;
    const completed = after.completed - before.completed;
    const reads = after.reads - before.reads;

    // Let the outstanding broadcasts land (checked for order), then hang up:
    // allow twice the time they should take at the rate just measured.
    run.stopping = true;
    const perSecond = Math.max(deliveries / (durationMs / 1000), 1);
    const drainMs = Math.min(1_000 + (2_000 * window * subscribers) / perSecond, 30_000);
    const drainBy = performance.now() + drainMs;
    while (run.owed.size > 0 && performance.now() < drainBy) await sleep(10);
    if (run.owed.size > 0) run.error(`${run.owed.size} broadcasts never reached everyone`);
    closeAll();
    await Promise.all(reading);
    await writing;
    if (run.errorCount > run.errors.length) {
      run.errors.push(`... ${run.errorCount - run.errors.length} more`);
    }
    return {
      subscribers,
      window,
      size,
      durationMs: Math.round(durationMs),
      deliveries,
      rate: Math.round(deliveries / (durationMs / 1000)),
      broadcastsPerSec: Math.round(completed / (durationMs / 1000)),
      deliveriesPerRead: reads === 0 ? 0 : Math.round((deliveries / reads) * 10) / 10,
      corrupt: run.corrupt,
      errors: run.errors,
    };
  } finally {
    closeAll();
  }
}

if (import.meta.main) {
  const flags = parseFlags(Deno.args, [
    "hostname",
    "port",
    "subscribers",
    "window",
    "size",
    "warmup",
    "duration",
    "masked-echo",
  ]);
  if (!flags.has("port")) {
    console.error("usage: client.ts --port N [--subscribers 5000] [--window 64] [--size 64]");
    Deno.exit(2);
  }
  const result = await runFanout({
    hostname: flags.get("hostname"),
    port: intFlag(flags, "port", 0),
    subscribers: intFlag(flags, "subscribers", 5_000),
    window: intFlag(flags, "window", 64),
    size: intFlag(flags, "size", 64),
    warmup: intFlag(flags, "warmup", 1_000),
    duration: intFlag(flags, "duration", 3_000),
    maskedEchoes: flags.get("masked-echo") === "true",
    onPhase: (phase) => console.log(JSON.stringify({ phase })),
  });
  console.log(JSON.stringify(result));
}
