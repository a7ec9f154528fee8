/**
 * The {@linkcode DeflateEngine} behind permessage-deflate (RFC 7692), on
 * `node:zlib`.
 *
 * The codec in protocol/deflate.ts is synchronous, so this engine must be too.
 * `node:zlib` offers two synchronous paths and only one of them fits:
 *
 * - `deflateRawSync()` / `inflateRawSync()` start a new stream on every call.
 *   Context takeover (§7.1.1) needs the stream to live on between messages,
 *   and the usual workaround, a preset dictionary holding the last window of
 *   plaintext, is ignored by Deno's node:zlib (measured on Deno 2.9: the
 *   output with and without `dictionary` is byte-identical).
 * - A stream object's `_processChunk()` closes its handle after one
 *   synchronous call.
 *
 * So each {@linkcode Deflater} / {@linkcode Inflater} drives the zlib handle
 * of a stream object directly: `handle.writeSync(flush, in, inOffset, inLength,
 * out, outOffset, outLength)`, which leaves the space left in both buffers in
 * the stream's `_writeState`. This is the binding Node's own zlib module is
 * written on, and Deno mirrors it; the constructor checks that it is there.
 *
 * @module
 */

import zlib from "node:zlib";
import { concat } from "../protocol/_concat.ts";
import type { DeflateEngine, Deflater, DeflaterOptions, Inflater } from "../protocol/deflate.ts";

const SYNC_FLUSH = zlib.constants.Z_SYNC_FLUSH;
/** Output is produced into this much scratch memory per call, then copied out at its size. */
const SCRATCH_SIZE = 64 * 1024;
let scratch: Uint8Array | null = null;

/** The zlib binding under a `node:zlib` stream object. */
interface ZlibHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOffset: number,
    inLength: number,
    output: Uint8Array,
    outOffset: number,
    outLength: number,
  ): void;
  reset(): void;
  close(): void;
  onerror: (message: string, errno: number) => void;
}

/** A zlib handle and the `[availOut, availIn]` pair it reports into after each write. */
class Stream {
  readonly #handle: ZlibHandle;
  readonly #state: Uint32Array;
  #error: string | null = null;

  constructor(stream: unknown) {
    const { _handle: handle, _writeState: state } = stream as {
      _handle?: ZlibHandle;
      _writeState?: Uint32Array;
    };
    if (typeof handle?.writeSync !== "function" || !(state instanceof Uint32Array)) {
      throw new Error("node:zlib does not expose the synchronous zlib handle this engine needs");
    }
    this.#handle = handle;
    this.#state = state;
    // zlib reports errors through this callback, synchronously inside writeSync().
    handle.onerror = (message) => {
      this.#error = message;
    };
  }

  /**
   * Feeds `inputs` with a sync flush and returns what came out, stopping once
   * more than `limit` bytes came out (the result is then longer than `limit`).
   * If the DEFLATE stream ends (a block with BFINAL set, RFC 7692 §7.2.3.4),
   * the rest of the input is ignored, as zlib's inflate ignores what follows a
   * stream, and the stream is reset: the next call starts a new one.
   */
  run(inputs: readonly Uint8Array[], limit: number): Uint8Array[] {
    const out = scratch ??= new Uint8Array(SCRATCH_SIZE);
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (const input of inputs) {
      let offset = 0;
      let left = input.length;
      for (;;) {
        const room = Math.min(out.length, limit + 1 - total);
        this.#handle.writeSync(SYNC_FLUSH, input, offset, left, out, 0, room);
        if (this.#error !== null) {
          const error = this.#error;
          this.#error = null;
          this.#handle.reset();
          throw new Error(error);
        }
        const produced = room - this.#state[0];
        const consumed = left - this.#state[1];
        if (produced > 0) {
          chunks.push(out.slice(0, produced));
          total += produced;
          if (total > limit) return chunks;
        }
        offset += consumed;
        left -= consumed;
        if (this.#state[0] === 0) continue; // the output filled up: there may be more
        if (left === 0) break;
        // Room to spare and input left over: the DEFLATE stream has ended.
        this.#handle.reset();
        return chunks;
      }
    }
    return chunks;
  }

  reset(): void {
    this.#handle.reset();
  }

  close(): void {
    this.#handle.close();
  }
}

class ZlibDeflater implements Deflater {
  readonly #stream: Stream;

  constructor(options: DeflaterOptions) {
    this.#stream = new Stream(
      zlib.createDeflateRaw({
        // zlib cannot deflate raw with an 8-bit window and uses 9 instead; its
        // matches then reach back at most 512 - 262 = 250 bytes, inside 256.
        windowBits: Math.max(9, options.windowBits),
        level: options.level,
        memLevel: options.memLevel,
      }),
    );
  }

  deflate(data: Uint8Array): Uint8Array {
    return concat(this.#stream.run([data], Infinity));
  }

  reset(): void {
    this.#stream.reset();
  }

  close(): void {
    this.#stream.close();
  }
}

class ZlibInflater implements Inflater {
  readonly #stream: Stream;

  constructor(windowBits: number) {
    this.#stream = new Stream(zlib.createInflateRaw({ windowBits }));
  }

  inflate(data: readonly Uint8Array[], maxLength: number): Uint8Array | undefined {
    const chunks = this.#stream.run(data, maxLength);
    const output = concat(chunks);
    return output.length > maxLength ? undefined : output;
  }

  reset(): void {
    this.#stream.reset();
  }

  close(): void {
    this.#stream.close();
  }
}

/**
 * The `node:zlib` engine for {@linkcode PerMessageDeflate}: synchronous raw
 * DEFLATE streams that live as long as the connection needs them.
 */
export const zlibEngine: DeflateEngine = {
  createDeflater: (options) => new ZlibDeflater(options),
  createInflater: (options) => new ZlibInflater(options.windowBits),
};
