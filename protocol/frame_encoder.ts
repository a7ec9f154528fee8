/**
 * Writing WebSocket frames (RFC 6455 §5.2).
 *
 * ```text
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-------+-+-------------+-------------------------------+
 * |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
 * |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
 * |N|V|V|V|       |S|             |   (if payload len==126/127)   |
 * | |1|2|3|       |K|             |                               |
 * +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
 * |     Extended payload length continued, if payload len == 127  |
 * + - - - - - - - - - - - - - - - +-------------------------------+
 * |                               |Masking-key, if MASK set to 1  |
 * +-------------------------------+-------------------------------+
 * | Masking-key (continued)       |          Payload Data         |
 * +-------------------------------- - - - - - - - - - - - - - - - +
 * ```
 *
 * Two levels:
 * - {@linkcode encodeFrame} and {@linkcode encodeFrameHeader} build one frame
 *   (or its header). They are deliberately permissive — any 4-bit opcode, any
 *   payload size, FIN off on a control frame — so tests can build broken
 *   frames on purpose.
 * - {@linkcode FrameWriter} is what a connection uses: it enforces the rules
 *   for control frames, masks client frames, and packs a whole batch of
 *   frames into as few writes as it can — small frames share one buffer, a
 *   large payload goes out as it is, without being copied.
 *
 * @module
 */

import { concat } from "./_concat.ts";
import { applyMask } from "./_mask.ts";
import { encodeClosePayload } from "./close.ts";
import { Opcode } from "./opcodes.ts";

/**
 * Options for {@linkcode encodeFrame} and {@linkcode encodeFrameHeader}.
 *
 * @example
 * ```ts
 * import { encodeFrame, type EncodeFrameOptions } from "@heartwire/heartwire/protocol";
 * const options: EncodeFrameOptions = { fin: false, mask: true };
 * encodeFrame(0x1, new TextEncoder().encode("Hel"), options);
 * ```
 */
export interface EncodeFrameOptions {
  /** Whether this is the final frame of its message (§5.4). Default true. */
  fin?: boolean;
  /**
   * Mask the payload (§5.3). `true` draws a fresh random 4-byte key; a
   * `Uint8Array` of 4 bytes uses that key (for byte-exact tests). Default false.
   */
  mask?: boolean | Uint8Array;
  /**
   * Set RSV1, which permessage-deflate defines as "this message is
   * compressed" (RFC 7692 §6): on the first frame of a message only. Default false.
   */
  rsv1?: boolean;
}

/** Payloads up to this length fit in the 7-bit length field (§5.2). */
const MAX_7BIT = 125;
/** Payloads up to this length use the 16-bit extended length (§5.2). */
const MAX_16BIT = 0xffff;
/** Control frames carry at most 125 bytes (§5.5). */
const MAX_CONTROL_PAYLOAD = 125;
const TWO_TO_32 = 0x1_0000_0000;

// ---------------------------------------------------------------------------
// Masking keys
// ---------------------------------------------------------------------------

/**
 * Masking keys must be unpredictable (§5.3, §10.3): they come from
 * crypto.getRandomValues. One call per frame would cost a system call each,
 * so keys are cut from a pool refilled 4 KiB (1024 keys) at a time.
 */
const keyPool = new Uint8Array(4096);
let keyPoolOffset = keyPool.length;

/** Copies a fresh random 4-byte key into `target` at `offset`. */
function writeRandomKey(target: Uint8Array, offset: number): void {
  if (keyPoolOffset === keyPool.length) {
    crypto.getRandomValues(keyPool);
    keyPoolOffset = 0;
  }
  target[offset] = keyPool[keyPoolOffset];
  target[offset + 1] = keyPool[keyPoolOffset + 1];
  target[offset + 2] = keyPool[keyPoolOffset + 2];
  target[offset + 3] = keyPool[keyPoolOffset + 3];
  keyPoolOffset += 4;
}

// ---------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------

/** The header size for a payload of `length` bytes, without the masking key. */
function headerSize(length: number): number {
  return length <= MAX_7BIT ? 2 : length <= MAX_16BIT ? 4 : 10;
}

/**
 * Writes a header into `target` at `offset` and returns where the payload
 * starts. `mask` is false (no key), true (a random key) or the key itself;
 * the key takes the 4 bytes after the length (§5.2).
 */
function writeHeader(
  target: Uint8Array,
  offset: number,
  firstByte: number,
  length: number,
  mask: boolean | Uint8Array,
): number {
  const maskBit = mask === false ? 0 : 0x80;
  target[offset] = firstByte;
  let p = offset + 2;
  // §5.2: "the minimal number of bytes MUST be used to encode the length".
  if (length <= MAX_7BIT) {
    target[offset + 1] = maskBit | length;
  } else if (length <= MAX_16BIT) {
    target[offset + 1] = maskBit | 126;
    target[offset + 2] = length >>> 8;
    target[offset + 3] = length & 0xff;
    p = offset + 4;
  } else {
    // 64-bit big-endian length; the most significant bit must be 0, which any
    // safe integer (< 2^53) guarantees.
    target[offset + 1] = maskBit | 127;
    const high = Math.floor(length / TWO_TO_32);
    const low = length >>> 0;
    target[offset + 2] = high >>> 24;
    target[offset + 3] = (high >>> 16) & 0xff;
    target[offset + 4] = (high >>> 8) & 0xff;
    target[offset + 5] = high & 0xff;
    target[offset + 6] = low >>> 24;
    target[offset + 7] = (low >>> 16) & 0xff;
    target[offset + 8] = (low >>> 8) & 0xff;
    target[offset + 9] = low & 0xff;
    p = offset + 10;
  }
  if (mask === true) {
    writeRandomKey(target, p);
    p += 4;
  } else if (mask !== false) {
    target[p] = mask[0];
    target[p + 1] = mask[1];
    target[p + 2] = mask[2];
    target[p + 3] = mask[3];
    p += 4;
  }
  return p;
}

// A new ArrayBuffer costs far more than writing a header into it (about a
// microsecond in Deno, against a few nanoseconds), so encodeFrameHeader() cuts
// its headers out of a shared slab instead. Pieces are never reused: a full
// slab is simply replaced, and the old one lives as long as its headers do.
const HEADER_SLAB_SIZE = 4096;
let headerSlab = new Uint8Array(HEADER_SLAB_SIZE);
let headerSlabUsed = 0;

/** Fresh memory for a header of `size` (at most 14) bytes. */
function allocateHeader(size: number): Uint8Array {
  if (headerSlabUsed + size > HEADER_SLAB_SIZE) {
    headerSlab = new Uint8Array(HEADER_SLAB_SIZE);
    headerSlabUsed = 0;
  }
  headerSlabUsed += size;
  return headerSlab.subarray(headerSlabUsed - size, headerSlabUsed);
}

function checkOpcode(opcode: number): void {
  if (!Number.isInteger(opcode) || opcode < 0 || opcode > 0xf) {
    throw new RangeError(`opcode must be an integer from 0 to 15, got ${opcode}`);
  }
}

function checkLength(length: number): void {
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`payload length must be a non-negative safe integer, got ${length}`);
  }
}

/** Normalizes the `mask` option: false, true (random key) or a checked 4-byte key. */
function maskOption(mask: boolean | Uint8Array | undefined): boolean | Uint8Array {
  if (mask instanceof Uint8Array) {
    if (mask.length !== 4) throw new RangeError(`a masking key has 4 bytes, got ${mask.length}`);
    return mask;
  }
  return mask === true;
}

/**
 * Encodes one complete frame — header, then the payload (masked if asked) —
 * into a new buffer.
 *
 * Low-level and permissive: it checks only that the opcode fits in 4 bits. It
 * does not stop a fragmented or oversized control frame or a reserved opcode,
 * so tests can send such frames on purpose; {@linkcode FrameWriter} enforces
 * the rules.
 *
 * @example
 * ```ts
 * import { encodeFrame } from "@heartwire/heartwire/protocol";
 * // RFC 6455 §5.7: a single-frame unmasked text message "Hello".
 * encodeFrame(0x1, new TextEncoder().encode("Hello"));
 * // Uint8Array [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
 * ```
 */
export function encodeFrame(
  opcode: number,
  payload: Uint8Array,
  options: EncodeFrameOptions = {},
): Uint8Array {
  checkOpcode(opcode);
  const mask = maskOption(options.mask);
  const masked = mask !== false;
  const length = payload.length;
  const frame = new Uint8Array(headerSize(length) + (masked ? 4 : 0) + length);
  const firstByte = (options.fin === false ? 0 : 0x80) | (options.rsv1 ? 0x40 : 0) | opcode;
  const start = writeHeader(frame, 0, firstByte, length, mask);
  frame.set(payload, start);
  if (masked) applyMask(frame, start, frame.length, frame, start - 4);
  return frame;
}

/**
 * Encodes only the header (2 to 14 bytes) of a frame whose payload is
 * `length` bytes long, so a large payload can be written right after it
 * without being copied. Meant for unmasked (server) frames: with `mask` the
 * key is the header's last 4 bytes and masking the payload is up to the caller.
 *
 * Headers are cut from a shared pool (as Node's `Buffer` pool does), so mind
 * `byteOffset` when reaching for `header.buffer`. Each header is written once
 * and then belongs to the caller.
 *
 * @example
 * ```ts
 * import { encodeFrameHeader } from "@heartwire/heartwire/protocol";
 * encodeFrameHeader(0x2, 70_000); // Uint8Array [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]
 * ```
 */
export function encodeFrameHeader(
  opcode: number,
  length: number,
  options: EncodeFrameOptions = {},
): Uint8Array {
  checkOpcode(opcode);
  checkLength(length);
  const mask = maskOption(options.mask);
  const masked = mask !== false;
  const header = allocateHeader(headerSize(length) + (masked ? 4 : 0));
  const firstByte = (options.fin === false ? 0 : 0x80) | (options.rsv1 ? 0x40 : 0) | opcode;
  writeHeader(header, 0, firstByte, length, mask);
  return header;
}

// ---------------------------------------------------------------------------
// Prepared messages: one frame for many connections
// ---------------------------------------------------------------------------

/**
 * A server's message encoded once, as the bytes of one complete unmasked
 * frame, to be sent as it is to any number of connections (uWebSockets'
 * `prepareMessage`/`sendPrepared`). A broadcast to a thousand members then
 * costs one encoding and one buffer, not a thousand: each connection queues
 * a reference to {@linkcode PreparedMessage.frame}, never a copy.
 *
 * Server frames only: a client must mask every frame with a fresh key
 * (§5.3), so a client's frame cannot be shared. The frame must not be
 * modified once prepared; connections may still be writing it.
 *
 * @example
 * ```ts
 * import { Connection, PreparedMessage } from "@heartwire/heartwire/protocol";
 * const news = new PreparedMessage("the server restarts at noon");
 * const a = new Connection({ role: "server" });
 * const b = new Connection({ role: "server" });
 * a.sendPrepared(news);
 * b.sendPrepared(news); // the same bytes, queued by reference
 * ```
 */
export class PreparedMessage {
  /** The whole frame: header and payload, unmasked (§5.2). */
  readonly frame: Uint8Array;
  /** The message's opcode: text or binary (§5.2). */
  readonly opcode: number;

  /**
   * Encodes `data`, a text (string) or binary (Uint8Array) message, into one
   * frame. A binary `data` is copied, so it may be reused at once.
   */
  constructor(data: string | Uint8Array) {
    this.opcode = typeof data === "string" ? Opcode.Text : Opcode.Binary;
    const payload = typeof data === "string" ? textEncoder.encode(data) : data;
    this.frame = encodeFrame(this.opcode, payload);
  }
}

// ---------------------------------------------------------------------------
// FrameWriter
// ---------------------------------------------------------------------------

/**
 * Options for {@linkcode FrameWriter}.
 *
 * @example
 * ```ts
 * import { FrameWriter, type FrameWriterOptions } from "@heartwire/heartwire/protocol";
 * const options: FrameWriterOptions = { role: "client", fragmentSize: 4096 };
 * const writer = new FrameWriter(options);
 * ```
 */
export interface FrameWriterOptions {
  /**
   * Which end writes. Client frames are masked with a fresh random key per
   * frame; server frames never are (§5.1, §5.3).
   */
  role: "server" | "client";
  /**
   * Size in bytes of each of the two batch buffers when first used; they
   * double as batches need. Default 64 B: a connection that only exchanges
   * pings and pongs (10 to 14 B frames) then holds two small buffers, not
   * two large ones, while a busy one soon grows to the size of its batches.
   */
  initialCapacity?: number;
  /**
   * Split data messages into frames of at most this many payload bytes
   * (§5.4). Default: never split.
   */
  fragmentSize?: number;
  /**
   * A server's binary payload of at least this many bytes is not copied: it
   * becomes a chunk of its own in {@linkcode FrameWriter.takeChunks}, referenced
   * as it is. Payloads that must be copied anyway (text to encode, a client's
   * payload to mask) of at least this size get an array of their own only when
   * the batch buffer would otherwise outgrow the size it may keep (1 MiB).
   * Default 16 KiB; `Infinity` copies everything into the batch buffer.
   */
  copyThreshold?: number;
}

const EMPTY = new Uint8Array(0);
const DEFAULT_INITIAL_CAPACITY = 64;
/** RSV1 in the first byte of a frame: "compressed" under permessage-deflate (RFC 7692 §6). */
const RSV1 = 0x40;
/** A buffer that grew past this is dropped after its batch, not kept forever. */
const MAX_RETAINED_CAPACITY = 1024 * 1024;
/**
 * Measured over loopback TCP, one message per batch: from 16 to 128 KiB,
 * referencing a payload (one extra `write`) and copying it cost within about
 * 10% of each other; from 256 KiB referencing wins. Copying also makes both
 * batch buffers grow (and stay grown, up to 1 MiB each, per connection), and a
 * batch that passes 1 MiB is 4–10× slower copied, as the buffer is dropped and
 * grown again every time. So payloads from 16 KiB on are referenced.
 */
const DEFAULT_COPY_THRESHOLD = 16 * 1024;
/** The largest header: 64-bit length plus masking key (§5.2). */
const MAX_HEADER_SIZE = 14;
const textEncoder = new TextEncoder();
/**
 * Up to this many UTF-16 units, text() first tries a plain ASCII copy loop
 * (at most 125, so the 7-bit length form always fits: §5.2).
 */
const SHORT_TEXT = 64;

/**
 * Turns messages into the bytes of their frames, batched so that a
 * connection sends everything queued in one turn of the event loop with as
 * few writes as possible.
 *
 * A batch is an ordered list of chunks. Small frames are copied back to back
 * into a batch buffer, so a run of them is one chunk and goes out in one
 * write. A server's binary payload of at least `copyThreshold` bytes is not
 * copied: its header ends the current run, and the payload itself is the next
 * chunk (what ws's `Sender.frame()` does for a vectored write). Small frames
 * around a large binary message therefore make three chunks:
 *
 * ```text
 *  batch buffer                          caller's array
 * [ frame | frame | frame | big header ] [ big payload ] [ frame | ... ]
 *  \______________ chunk 1 ____________/  \__ chunk 2 __/  \_ chunk 3 ..
 * ```
 *
 * Text must be encoded and a client's payload masked, so those are copied
 * whatever their size: into the batch buffer, which is fastest while it
 * fits, or, when a large one would make the buffer outgrow the 1 MiB it may
 * keep, into an array of its own that becomes a chunk like a server's
 * binary payload.
 *
 * Two batch buffers alternate (double buffering): taking a batch hands out
 * views of the current buffer and switches to the other, so while one batch
 * is being written the next is being filled, and no memory is allocated per
 * batch. Buffers are allocated on first use, and one that grew past 1 MiB
 * (a burst of small frames) is dropped after its batch rather than kept for
 * the life of the connection.
 *
 * @example
 * ```ts
 * import { FrameWriter } from "@heartwire/heartwire/protocol";
 * const writer = new FrameWriter({ role: "server" });
 * writer.text("hello");
 * writer.ping();
 * writer.binary(new Uint8Array(64 * 1024)); // referenced, not copied
 * const chunks = writer.takeChunks(); // [text + ping + binary header, binary payload]
 * // ... write each chunk, in order, before the next take ...
 * ```
 */
export class FrameWriter {
  readonly #masked: boolean;
  readonly #initialCapacity: number;
  readonly #fragmentSize: number;
  readonly #copyThreshold: number;
  /** The buffer being filled, and how much of it is. */
  #buffer: Uint8Array = EMPTY;
  #length = 0;
  /**
   * Where the run of frames not yet cut into a chunk starts in the buffer.
   * Everything before it belongs to chunks already in the list.
   */
  #runStart = 0;
  /** The batch so far, in order; the run `#buffer[#runStart..#length)` follows. */
  #chunks: Uint8Array[] = [];
  /** Total bytes in `#chunks`. */
  #chunkBytes = 0;
  /** The other buffer: the one the last take handed out views of. */
  #spare: Uint8Array = EMPTY;

  /** Creates a writer for one end of one connection. */
  constructor(options: FrameWriterOptions) {
    this.#masked = options.role === "client";
    const capacity = options.initialCapacity ?? DEFAULT_INITIAL_CAPACITY;
    if (!Number.isSafeInteger(capacity) || capacity < 16) {
      throw new RangeError(`initialCapacity must be an integer of at least 16, got ${capacity}`);
    }
    this.#initialCapacity = capacity;
    const fragmentSize = options.fragmentSize ?? Infinity;
    if (fragmentSize !== Infinity && (!Number.isSafeInteger(fragmentSize) || fragmentSize < 1)) {
      throw new RangeError(`fragmentSize must be a positive integer, got ${fragmentSize}`);
    }
    this.#fragmentSize = fragmentSize;
    const threshold = options.copyThreshold ?? DEFAULT_COPY_THRESHOLD;
    if (threshold !== Infinity && (!Number.isSafeInteger(threshold) || threshold < 1)) {
      throw new RangeError(`copyThreshold must be a positive integer, got ${threshold}`);
    }
    this.#copyThreshold = threshold;
  }

  /** Bytes queued and not yet taken, in all chunks. */
  get length(): number {
    return this.#chunkBytes + this.#length - this.#runStart;
  }

  /**
   * Queues a text message, UTF-8 encoded straight into the batch buffer
   * (lone surrogates become U+FFFD, as TextEncoder does). Text that would make
   * the buffer outgrow what it may keep is encoded into an array of its own
   * instead, which goes out as a chunk of its own.
   */
  text(data: string): void {
    const maxBytes = data.length * 3; // UTF-16 unit → at most 3 UTF-8 bytes
    if (maxBytes > this.#fragmentSize || this.#wouldOutgrow(maxBytes)) {
      // Fragmenting needs the encoded length first, and a buffer that grew
      // past 1 MiB would be thrown away after this batch anyway: a
      // right-sized array of its own is cheaper. It is ours, so a client may
      // mask it in place. (Measured: encode() beats encodeInto() into a
      // fresh array, for ASCII and for multibyte text.)
      this.#message(Opcode.Text, textEncoder.encode(data), true);
      return;
    }
    const keySize = this.#masked ? 4 : 0;
    this.#reserve(10 + keySize + maxBytes);
    const buffer = this.#buffer;
    const start = this.#length;
    if (data.length <= SHORT_TEXT) {
      // Short strings: copying ASCII characters one by one beats the fixed cost
      // of encodeInto (measured: ~3× for 16 characters, even at 64), and
      // allocates nothing where encodeInto makes a view and a result. The
      // first non-ASCII character sends us to the general path below, which
      // overwrites whatever this loop wrote.
      const payloadStart = start + 2 + keySize;
      let i = 0;
      for (; i < data.length; i++) {
        const code = data.charCodeAt(i);
        if (code >= 0x80) break;
        buffer[payloadStart + i] = code;
      }
      if (i === data.length) {
        writeHeader(buffer, start, 0x80 | Opcode.Text, i, this.#masked);
        if (this.#masked) {
          applyMask(buffer, payloadStart, payloadStart + i, buffer, payloadStart - 4);
        }
        this.#length = payloadStart + i;
        return;
      }
    }
    // The UTF-8 length lies between data.length and 3 × data.length, and the
    // header size depends on it. Guess from the lower bound — exact for ASCII,
    // the common case — encode behind that header, and only if the guess was
    // too small (multibyte text right at the 125 or 65535 boundary) move the
    // payload along to make room. No temporary array either way.
    const guess = headerSize(data.length) + keySize;
    const written = textEncoder.encodeInto(data, buffer.subarray(start + guess)).written;
    const needed = headerSize(written) + keySize;
    if (needed !== guess) {
      buffer.copyWithin(start + needed, start + guess, start + guess + written);
    }
    const payloadStart = writeHeader(buffer, start, 0x80 | Opcode.Text, written, this.#masked);
    const end = payloadStart + written;
    if (this.#masked) applyMask(buffer, payloadStart, end, buffer, payloadStart - 4);
    this.#length = end;
  }

  /**
   * Queues a binary message.
   *
   * A payload shorter than `copyThreshold` is copied into the batch buffer at
   * once. A larger one is, for a server writer, **referenced, not copied**: it
   * goes out as it is when the batch is written, so the caller must not
   * modify `data` until then (the contract of Node's `socket.write` and of
   * ws's `readOnly` option). A client writer always masks a copy, never `data`.
   *
   * @example
   * ```ts
   * import { FrameWriter } from "@heartwire/heartwire/protocol";
   * const writer = new FrameWriter({ role: "server" });
   * const image = new Uint8Array(100_000);
   * writer.binary(image); // queued by reference
   * const chunks = writer.takeChunks(); // [header, image]
   * // ... write the chunks; only then may `image` be reused ...
   * ```
   */
  binary(data: Uint8Array): void {
    this.#message(Opcode.Binary, data, false);
  }

  /**
   * Queues a message whose payload an extension compressed
   * (permessage-deflate, RFC 7692 §6): RSV1 is set on its first frame, and
   * only there. `payload` becomes the writer's: a client masks it in place.
   *
   * @example
   * ```ts
   * import { FrameWriter, Opcode } from "@heartwire/heartwire/protocol";
   * const writer = new FrameWriter({ role: "server" });
   * // "Hello" compressed (RFC 7692 §7.2.3.1).
   * writer.compressed(Opcode.Text, new Uint8Array([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]));
   * writer.take(); // [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
   * ```
   */
  compressed(opcode: typeof Opcode.Text | typeof Opcode.Binary, payload: Uint8Array): void {
    this.#message(opcode, payload, true, RSV1);
  }

  /**
   * Queues a {@linkcode PreparedMessage}'s frame by reference: it becomes a
   * chunk of its own in {@linkcode FrameWriter.takeChunks}, shared with every
   * other writer that queued it. An I/O layer may gather small chunks into
   * one write.
   *
   * @throws {TypeError} for a client writer, whose frames must be masked (§5.3).
   *
   * @example
   * ```ts
   * import { FrameWriter, PreparedMessage } from "@heartwire/heartwire/protocol";
   * const hello = new PreparedMessage("hello");
   * const writer = new FrameWriter({ role: "server" });
   * writer.prepared(hello);
   * writer.takeChunks()[0] === hello.frame; // true
   * ```
   */
  prepared(message: PreparedMessage): void {
    if (this.#masked) throw new TypeError("a client's frames are masked: they cannot be shared");
    if (this.#length > this.#runStart) {
      this.#chunks.push(this.#buffer.subarray(this.#runStart, this.#length));
      this.#chunkBytes += this.#length - this.#runStart;
      this.#runStart = this.#length;
    }
    this.#chunks.push(message.frame);
    this.#chunkBytes += message.frame.length;
  }

  /**
   * Queues a ping (§5.5.2).
   *
   * @throws {RangeError} if `data` is over 125 bytes (§5.5).
   */
  ping(data: Uint8Array = EMPTY): void {
    this.#control(Opcode.Ping, data);
  }

  /**
   * Queues a pong (§5.5.3); to answer a ping, echo its payload.
   *
   * @throws {RangeError} if `data` is over 125 bytes (§5.5).
   */
  pong(data: Uint8Array = EMPTY): void {
    this.#control(Opcode.Pong, data);
  }

  /**
   * Queues a close frame (§5.5.1). With no code the payload is empty.
   *
   * @throws {RangeError} for a code that may not be sent or a reason over 123 bytes.
   */
  close(code?: number, reason?: string): void {
    this.#control(Opcode.Close, encodeClosePayload(code, reason));
  }

  /**
   * Returns the queued bytes as an ordered list of chunks and starts an empty
   * batch. Write every chunk, in order; the frames are their concatenation.
   * Runs of small frames are one chunk each, a large payload is a chunk of
   * its own (see the class notes), and no chunk is empty. The views stay
   * valid until the next take: the writer fills the other buffer meanwhile.
   *
   * @example
   * ```ts
   * import { FrameWriter } from "@heartwire/heartwire/protocol";
   * const writer = new FrameWriter({ role: "server", copyThreshold: 1024 });
   * const big = new Uint8Array(2048);
   * writer.text("a");
   * writer.binary(big);
   * const [frames, payload] = writer.takeChunks();
   * // frames: the text frame and big's 4-byte header; payload === big
   * ```
   */
  takeChunks(): Uint8Array[] {
    let chunks = this.#chunks;
    const run = this.#length > this.#runStart
      ? this.#buffer.subarray(this.#runStart, this.#length)
      : undefined;
    if (chunks.length === 0) {
      // The common batch, one run of small frames: a one-slot list, and the
      // empty list stays for the next batch.
      chunks = run === undefined ? [] : [run];
    } else {
      if (run !== undefined) chunks.push(run);
      this.#chunks = [];
    }
    this.#chunkBytes = 0;
    this.#switchBuffers();
    return chunks;
  }

  /**
   * Returns the queued bytes as one array and starts an empty batch, valid
   * until the next take. When the batch is a single run of small frames this
   * is a view of the batch buffer, with no copy; when it holds a large
   * payload, everything is copied into a new array of the batch's size,
   * giving up what {@linkcode FrameWriter.takeChunks} saves. Meant for tests
   * and for writers that only ever send small frames.
   *
   * @example
   * ```ts
   * import { FrameWriter } from "@heartwire/heartwire/protocol";
   * const writer = new FrameWriter({ role: "client" });
   * writer.text("hello");
   * writer.close(1000);
   * const bytes = writer.take(); // both frames, masked, in one array
   * ```
   */
  take(): Uint8Array {
    const chunks = this.takeChunks();
    return chunks.length === 0 ? EMPTY : concat(chunks);
  }

  /** Ends a batch: the buffer just handed out becomes the spare, and vice versa. */
  #switchBuffers(): void {
    // The spare buffer's views were handed out one take ago and are now
    // released by contract, so it can be filled again.
    let next = this.#spare;
    // A one-off burst should not pin a huge buffer for the life of the
    // connection: let it go and start small again when next needed.
    if (next.length > MAX_RETAINED_CAPACITY) next = EMPTY;
    this.#spare = this.#buffer;
    this.#buffer = next;
    this.#length = 0;
    this.#runStart = 0;
  }

  /**
   * Makes room for `extra` more bytes after the current run. A full buffer is
   * replaced, never reused: chunks already cut from it must stay intact. Only
   * the current run moves to the new buffer, which is at least twice the old
   * one: even when the run is short (the buffer filled up with the headers of
   * referenced payloads), so a batch that outgrew it needs a bigger one.
   */
  #reserve(extra: number): void {
    if (this.#length + extra <= this.#buffer.length) return;
    const run = this.#length - this.#runStart;
    let capacity = Math.max(this.#initialCapacity, this.#buffer.length * 2);
    while (capacity < run + extra) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.#buffer.subarray(this.#runStart, this.#length));
    this.#buffer = grown;
    this.#length = run;
    this.#runStart = 0;
  }

  /** Appends one frame with `payload` copied in (and masked for a client). */
  #frame(firstByte: number, payload: Uint8Array): void {
    const length = payload.length;
    this.#reserve(MAX_HEADER_SIZE + length);
    const buffer = this.#buffer;
    const payloadStart = writeHeader(buffer, this.#length, firstByte, length, this.#masked);
    buffer.set(payload, payloadStart);
    const end = payloadStart + length;
    if (this.#masked) applyMask(buffer, payloadStart, end, buffer, payloadStart - 4);
    this.#length = end;
  }

  /**
   * Appends one frame whose payload becomes a chunk of its own: the header
   * ends the current run, the payload follows it as the next chunk. A client
   * masks the payload in place (§5.3), so it must be the writer's own array.
   */
  #chunkFrame(firstByte: number, payload: Uint8Array): void {
    this.#reserve(MAX_HEADER_SIZE);
    const buffer = this.#buffer;
    const payloadStart = writeHeader(buffer, this.#length, firstByte, payload.length, this.#masked);
    if (this.#masked) applyMask(payload, 0, payload.length, buffer, payloadStart - 4);
    this.#chunks.push(buffer.subarray(this.#runStart, payloadStart), payload);
    this.#chunkBytes += payloadStart - this.#runStart + payload.length;
    this.#length = this.#runStart = payloadStart;
  }

  /**
   * Whether copying a payload of up to `size` bytes into the batch buffer
   * would take it past the size it may keep; only payloads of at least
   * `copyThreshold` bytes are worth an array of their own.
   */
  #wouldOutgrow(size: number): boolean {
    return size >= this.#copyThreshold &&
      this.#length + MAX_HEADER_SIZE + size > MAX_RETAINED_CAPACITY;
  }

  /**
   * One data frame. `owned` says `payload` is the writer's own array (encoded
   * text), which may be masked in place; the caller's arrays never are.
   */
  #dataFrame(firstByte: number, payload: Uint8Array, owned: boolean): void {
    if (payload.length < this.#copyThreshold) {
      this.#frame(firstByte, payload); // small: one copy, no write of its own
    } else if (!this.#masked || owned) {
      this.#chunkFrame(firstByte, payload); // sent as it is (masked first, if ours)
    } else if (this.#wouldOutgrow(payload.length)) {
      this.#chunkFrame(firstByte, payload.slice()); // a client's private copy to mask
    } else {
      this.#frame(firstByte, payload); // a client's copy, while the buffer has room
    }
  }

  /**
   * A data message, split into fragments if it is larger than fragmentSize
   * (§5.4). `owned` says `data` is the writer's own array (encoded text).
   */
  #message(opcode: number, data: Uint8Array, owned: boolean, rsv = 0): void {
    const size = this.#fragmentSize;
    if (data.length <= size) {
      this.#dataFrame(0x80 | rsv | opcode, data, owned);
      return;
    }
    // Fragments that will be copied: make room for all of them at once.
    if (size < this.#copyThreshold) {
      this.#reserve(data.length + Math.ceil(data.length / size) * MAX_HEADER_SIZE);
    }
    // First frame: the message's opcode (and RSV bits), FIN clear. Then
    // continuation frames; the last one sets FIN (§5.4).
    for (let offset = 0; offset < data.length; offset += size) {
      const end = Math.min(offset + size, data.length);
      const fin = end === data.length ? 0x80 : 0;
      const first = offset === 0 ? rsv | opcode : Opcode.Continuation;
      this.#dataFrame(fin | first, data.subarray(offset, end), owned);
    }
  }

  #control(opcode: number, payload: Uint8Array): void {
    // §5.5: control frames are never fragmented and carry at most 125 bytes.
    if (payload.length > MAX_CONTROL_PAYLOAD) {
      throw new RangeError(
        `a control frame carries at most ${MAX_CONTROL_PAYLOAD} bytes, got ${payload.length}`,
      );
    }
    this.#frame(0x80 | opcode, payload);
  }
}
