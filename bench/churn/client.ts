/**
 * The churn generator: `concurrency` workers, each in a loop of open TCP →
 * opening handshake (RFC 6455 §4.1) → send a close frame → wait for the
 * server's close frame (§7.1.2) → close TCP, counting completed cycles
 * (upgrades + closes) per second.
 *
 * Any echo server of bench/load/servers/ serves: every one answers a close
 * frame with its own. The raw TCP ceiling sends our masked close frame back
 * unchanged, which `--masked-echo` decodes as a server would.
 *
 * ```sh
 * deno run --allow-net bench/churn/client.ts --port 8080 --concurrency 32 \
 *   --warmup 1000 --duration 3000
 * ```
 *
 * Prints JSON lines: phase markers, then the result.
 *
 * @module
 */
import { FrameDecoder } from "../../protocol/frame_decoder.ts";
import { FrameWriter } from "../../protocol/frame_encoder.ts";
import { intFlag, parseFlags } from "../load/_flags.ts";
import { writeAll } from "../../server/_http_io.ts";
import { clientHandshake } from "../load/_handshake.ts";
import { countWindow, sleep, type WindowOptions } from "../load/_window.ts";

/**
 * What {@linkcode runChurn} does. Only `port` is required.
 *
 * @example
 * ```ts
 * import type { ChurnOptions } from "./client.ts";
 * const options: ChurnOptions = { port: 8080, concurrency: 16 };
 * ```
 */
export interface ChurnOptions extends WindowOptions {
  /** The server's port. */
  port: number;
  /** Default "127.0.0.1". */
  hostname?: string;
  /** The WebSocket route. Default "/echo". */
  path?: string;
  /** Connections cycling at once. Default 32. */
  concurrency?: number;
  /** The server sends our own masked close frame back (the raw ceiling). Default false. */
  maskedEchoes?: boolean;
}

/**
 * What {@linkcode runChurn} measured.
 *
 * @example
 * ```ts
 * import type { ChurnResult } from "./client.ts";
 * const ok = (result: ChurnResult) => result.failures === 0;
 * ```
 */
export interface ChurnResult {
  concurrency: number;
  /** The counted window as measured (ms). */
  durationMs: number;
  /** Cycles (upgrade + close handshake) completed within the counted window. */
  cycles: number;
  /** `cycles` per second: the figure the report uses. */
  rate: number;
  /** Cycles that failed (refused, reset, no close frame), whole run. */
  failures: number;
  /** The first few failures. */
  errors: string[];
}

const MAX_REPORTED_ERRORS = 5;

/** One cycle; throws if the server does not complete both handshakes. */
async function cycle(
  hostname: string,
  port: number,
  path: string,
  closeFrame: Uint8Array,
  masked: boolean,
  buffer: Uint8Array,
): Promise<void> {
  const conn = await Deno.connect({ hostname, port });
  try {
    conn.setNoDelay(true);
    let chunk = await clientHandshake(conn, `${hostname}:${port}`, path);
    await writeAll(conn, closeFrame);
    const decoder = new FrameDecoder({ role: masked ? "server" : "client" });
    for (;;) {
      for (const event of decoder.push(chunk)) {
        if (event.type === "close") {
          if (event.code !== 1000) throw new Error(`server closed with ${event.code}`);
          return;
        }
        if (event.type === "error") throw new Error(`protocol error: ${event.reason}`);
      }
      const n = await conn.read(buffer);
      if (n === null) throw new Error("TCP closed before the server's close frame");
      chunk = buffer.subarray(0, n);
    }
  } finally {
    // The close handshake is complete on our side (§7.1.1: we may close TCP now).
    conn.close();
  }
}

/**
 * Cycles connections for warm-up + duration and reports cycles per second
 * within the counted window.
 *
 * @example
 * ```ts ignore
 * import { runChurn } from "./client.ts";
 * const result = await runChurn({ port: 8080, concurrency: 8, duration: 500 });
 * console.log(result.rate);
 * ```
 */
export async function runChurn(options: ChurnOptions): Promise<ChurnResult> {
  const hostname = options.hostname ?? "127.0.0.1";
  const path = options.path ?? "/echo";
  const concurrency = options.concurrency ?? 32;
  const masked = options.maskedEchoes ?? false;
  if (concurrency < 1) throw new RangeError("concurrency must be ≥ 1");
  const writer = new FrameWriter({ role: "client" });
  writer.close(1000);
  const closeFrame = writer.take().slice();

  let cycles = 0;
  let failures = 0;
  let stopping = false;
  const errors: string[] = [];
  const worker = async () => {
    const buffer = new Uint8Array(1024);
    while (!stopping) {
      try {
        await cycle(hostname, options.port, path, closeFrame, masked, buffer);
        cycles++;
      } catch (error) {
        failures++;
        if (errors.length < MAX_REPORTED_ERRORS) errors.push(String(error));
        await sleep(5); // a refusing server should not be spun against
      }
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  const { before, after, durationMs } = await countWindow(options, () => cycles);
  const counted = after - before;
  stopping = true;
  await Promise.all(workers);
  if (failures > errors.length) errors.push(`... ${failures - errors.length} more`);
  return {
    concurrency,
    durationMs: Math.round(durationMs),
    cycles: counted,
    rate: Math.round(counted / (durationMs / 1000)),
    failures,
    errors,
  };
}

if (import.meta.main) {
  const flags = parseFlags(Deno.args, [
    "hostname",
    "port",
    "path",
    "concurrency",
    "warmup",
    "duration",
    "masked-echo",
  ]);
  if (!flags.has("port")) {
    console.error("usage: client.ts --port N [--path /echo] [--concurrency 32]");
    Deno.exit(2);
  }
  const result = await runChurn({
    hostname: flags.get("hostname"),
    port: intFlag(flags, "port", 0),
    path: flags.get("path"),
    concurrency: intFlag(flags, "concurrency", 32),
    warmup: intFlag(flags, "warmup", 1_000),
    duration: intFlag(flags, "duration", 3_000),
    maskedEchoes: flags.get("masked-echo") === "true",
    onPhase: (phase) => console.log(JSON.stringify({ phase })),
  });
  console.log(JSON.stringify(result));
}
