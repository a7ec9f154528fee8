/**
 * What counting costs on the hot path: a server {@linkcode WebSocketConnection}
 * echoing over an in-memory socket, with and without a `HeartwireMetrics`.
 *
 * The load harness (`bench:load` with `heartwire-metrics`) measures the same
 * over loopback, but on a shared 2-core machine its run-to-run spread is far
 * wider than the few additions per message being measured. Here the kernel,
 * the network and the other process are out of the picture: each iteration
 * hands the connection one read holding `BATCH` masked 64-byte text frames
 * (16, as `bench:load`'s 16 in flight, and 1) and waits until every echo has
 * been written, so only the read → decode → handler → send → flush path runs,
 * the one the metrics hooks are on. Compare `min` and `p75` more than `avg`,
 * which one preemption by another process can move.
 *
 * Run: `deno bench --allow-all bench/metrics_bench.ts`
 *
 * @module
 */
import { encodeFrame } from "../protocol/frame_encoder.ts";
import { Opcode } from "../protocol/opcodes.ts";
import type { HttpRequestHead } from "../protocol/http1.ts";
import { type ConnectionOptions, WebSocketConnection } from "../server/connection.ts";
import { HeartwireMetrics } from "../server/metrics.ts";
import { echoHandler } from "../server/server.ts";
import { systemClock, TimerHeap } from "../server/timer_heap.ts";

/** Bytes of one echoed frame: a 64-byte text payload behind a 2-byte header. */
const ECHO_BYTES = 66;

/** A socket in memory: reads are handed in, writes are counted and dropped. */
class MemoryConn {
  readonly remoteAddr: Deno.NetAddr = { transport: "tcp", hostname: "127.0.0.1", port: 1 };
  readonly localAddr: Deno.NetAddr = { transport: "tcp", hostname: "127.0.0.1", port: 2 };
  written = 0;
  #input: Uint8Array | undefined;
  #reader: ((n: number | null) => void) | undefined;
  #buffer: Uint8Array | undefined;
  #target = 0;
  #done: (() => void) | undefined;

  read(buffer: Uint8Array): Promise<number | null> {
    return new Promise((resolve) => {
      this.#buffer = buffer;
      this.#reader = resolve;
      this.#deliver();
    });
  }

  write(chunk: Uint8Array): Promise<number> {
    this.written += chunk.length;
    if (this.#done && this.written >= this.#target) {
      const done = this.#done;
      this.#done = undefined;
      done();
    }
    return Promise.resolve(chunk.length);
  }

  /** Hands `bytes` to the next read; resolves once `expect` more bytes were written. */
  feed(bytes: Uint8Array, expect: number): Promise<void> {
    this.#target = this.written + expect;
    const written = new Promise<void>((resolve) => this.#done = resolve);
    this.#input = bytes;
    this.#deliver();
    return written;
  }

  #deliver(): void {
    if (!this.#input || !this.#reader || !this.#buffer) return;
    // Frames fit the read buffer whole (it grows to 2 KiB after a full read).
    const n = Math.min(this.#input.length, this.#buffer.length);
    this.#buffer.set(this.#input.subarray(0, n));
    this.#input = n < this.#input.length ? this.#input.subarray(n) : undefined;
    const reader = this.#reader;
    this.#reader = undefined;
    reader(n);
  }

  close(): void {
    this.#reader?.(null);
  }
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
}

const options: ConnectionOptions = {
  keepalive: { interval: 3_600_000, timeout: 3_600_000 },
  pingJitter: 0,
  maxPayload: 1024 * 1024,
  closeTimeout: 5_000,
  maxBufferedBytes: 16 * 1024 * 1024,
  maxBufferedAge: 10_000,
  writeTimeout: 30_000,
};
const request: HttpRequestHead = {
  method: "GET",
  target: "/echo",
  version: "1.1",
  headers: new Headers(),
};

function connect(metrics: HeartwireMetrics | undefined): MemoryConn {
  const conn = new MemoryConn();
  new WebSocketConnection({
    conn: conn as unknown as Deno.Conn,
    request,
    path: "/echo",
    protocol: "",
    handler: echoHandler,
    clock: systemClock,
    heap: new TimerHeap({ clock: systemClock }),
    options,
    initial: new Uint8Array(0),
    onEnded: () => {},
    metrics,
  });
  return conn;
}

function batch(frames: number): Uint8Array {
  const one = encodeFrame(Opcode.Text, new Uint8Array(64).fill(0x61), { mask: true });
  const out = new Uint8Array(one.length * frames);
  for (let i = 0; i < frames; i++) out.set(one, i * one.length);
  return out;
}

/** Reads per bench iteration: enough that one iteration outlasts a timer tick. */
const READS = 64;

for (const frames of [16, 1]) {
  const input = batch(frames);
  const expect = frames * ECHO_BYTES;
  const off = connect(undefined);
  const on = connect(new HeartwireMetrics());
  const run = async (conn: MemoryConn) => {
    for (let i = 0; i < READS; i++) await conn.feed(input, expect);
  };
  // Let the read buffers grow to their working size before measuring.
  for (let i = 0; i < 20; i++) await Promise.all([run(off), run(on)]);
  const group = `echo ${READS} reads of ${frames} frame${frames === 1 ? "" : "s"}`;
  // Async functions: deno bench awaits only those, not any function returning a promise.
  Deno.bench({
    name: "metrics off",
    group,
    baseline: true,
    async fn() {
      await run(off);
    },
  });
  Deno.bench({
    name: "metrics on",
    group,
    async fn() {
      await run(on);
    },
  });
}
