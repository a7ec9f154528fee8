/**
 * A streaming decoder for WebSocket frames (RFC 6455 §5), with no I/O.
 *
 * Bytes go in as they come off the socket, split anywhere; complete messages,
 * control frames and protocol violations come out as {@linkcode DecoderEvent}s.
 *
 * The base framing protocol (RFC 6455 §5.2):
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
 * :                     Payload Data continued ...                :
 * +---------------------------------------------------------------+
 * ```
 *
 * A header is therefore 2 to 14 bytes: 2 fixed bytes, then 0, 2 or 8 bytes of
 * extended length, then a 4-byte masking key if the MASK bit is set.
 *
 * How this decoder reads: one pass over each chunk. When a whole frame lies
 * inside the chunk its payload is unmasked straight into fresh memory, with no
 * intermediate buffering. Only the bytes of a frame cut off at the end of a
 * chunk are copied aside: a partial header into a 14-byte buffer, a partial
 * payload into a buffer that grows as its bytes arrive, up to the declared
 * size (already checked against the size limits). Memory follows the bytes
 * received, not the bytes announced: a 14-byte header cannot reserve a
 * megabyte.
 *
 * @module
 */

import { CloseCode, parseClosePayload } from "./close.ts";
import { isControlOpcode, isKnownOpcode, Opcode } from "./opcodes.ts";
import { applyMask } from "./_mask.ts";
import { Utf8Validator } from "./utf8.ts";
import type { InflateFailure } from "./deflate.ts";

/**
 * Options for {@linkcode FrameDecoder}.
 *
 * @example
 * ```ts
 * import { FrameDecoder, type FrameDecoderOptions } from "@heartwire/heartwire/protocol";
 * const options: FrameDecoderOptions = { role: "server", maxMessageSize: 64 * 1024 };
 * const decoder = new FrameDecoder(options);
 * ```
 */
export interface FrameDecoderOptions {
  /**
   * "server" decodes frames sent by clients, which must be masked; "client"
   * decodes frames sent by servers, which must not be (RFC 6455 §5.1).
   */
  role: "server" | "client";
  /** Largest frame payload accepted, in bytes (default: `maxMessageSize`). */
  maxFrameSize?: number;
  /** Largest reassembled message accepted, in bytes (default 1 MiB = 1_048_576). */
  maxMessageSize?: number;
  /**
   * Decompresses a message that arrived with RSV1 set, its fragments joined,
   * into at most `maxLength` bytes (`maxMessageSize`), or says why not. Given
   * when permessage-deflate was negotiated, and only then is RSV1 accepted
   * (RFC 7692 §6); see {@linkcode PerMessageDeflate.decompress}.
   */
  inflate?: (payload: Uint8Array, maxLength: number) => Uint8Array | InflateFailure;
}

/**
 * What {@linkcode FrameDecoder.push} reports.
 *
 * - `text`, `binary`: a complete data message (§5.6), reassembled if it was fragmented.
 * - `ping`, `pong`: a control frame (§5.5.2, §5.5.3), delivered as soon as it arrives,
 *   even between the fragments of a message (§5.4).
 * - `close`: the peer's valid close frame (§5.5.1); an empty payload gives code 1005.
 * - `error`: the peer broke the protocol; the caller must close with `code` (§7.4.1).
 *
 * After `close` or `error` the decoder is {@linkcode FrameDecoder.done}.
 *
 * Every `data` array is fresh memory that the receiver owns: never a view of
 * the pushed chunk, never written again by the decoder. Small payloads share a
 * pooled `ArrayBuffer` (as Node's `Buffer` does), so respect `byteOffset` and
 * `byteLength` when reaching for `data.buffer`, and `slice()` a small payload
 * that is kept for long.
 *
 * @example
 * ```ts
 * import type { DecoderEvent } from "@heartwire/heartwire/protocol";
 * function describe(event: DecoderEvent): string {
 *   switch (event.type) {
 *     case "text":
 *       return `text: ${event.data}`;
 *     case "close":
 *     case "error":
 *       return `${event.type} ${event.code} ${event.reason}`;
 *     default:
 *       return `${event.type}: ${event.data.length} bytes`;
 *   }
 * }
 * ```
 */
export type DecoderEvent =
  | { type: "text"; data: string }
  | { type: "binary"; data: Uint8Array }
  | { type: "ping"; data: Uint8Array }
  | { type: "pong"; data: Uint8Array }
  | { type: "close"; code: number; reason: string }
  | { type: "error"; code: number; reason: string };

const DEFAULT_MAX_MESSAGE_SIZE = 1_048_576;
/** 2 fixed bytes + 8 bytes of 64-bit length + 4 bytes of masking key (§5.2). */
const MAX_HEADER_SIZE = 14;
/** Control frames carry at most 125 bytes, so their length never needs extending (§5.5). */
const MAX_CONTROL_PAYLOAD = 125;
/**
 * Below this size a plain byte loop beats `set()` plus the word-at-a-time
 * unmasking (measured: up to ~200 B), and allocates nothing.
 */
const SMALL_COPY = 256;

// ---------------------------------------------------------------------------
// Memory for payloads
//
// Allocating an ArrayBuffer costs far more than decoding a small frame, so,
// like Node's Buffer pool, small payloads are carved out of a shared 64 KiB
// slab. Each piece is written once, by us, and then belongs to the receiver:
// nothing else ever writes to it. push() is synchronous, so every decoder can
// share the slab (and the scratch buffer below).

/**
 * A payload split across chunks starts with at most this much memory (or what
 * already arrived) and doubles as more arrives, up to its declared length.
 */
const PARTIAL_PAYLOAD_START = 16 * 1024;

/** A fragmented message's buffer starts with this much room (or its first fragment's size). */
const MESSAGE_BUFFER_START = 1024;
const EMPTY = new Uint8Array(0);
const NO_EVENTS: DecoderEvent[] = [];

const SLAB_SIZE = 65_536;
const MAX_SLAB_PIECE = 4_096;
let slab = new Uint8Array(SLAB_SIZE);
let slabUsed = 0;

/** Fresh memory for a payload of `length` bytes, 8-byte aligned. */
function allocate(length: number): Uint8Array {
  if (length > MAX_SLAB_PIECE) return new Uint8Array(length);
  if (slabUsed + length > SLAB_SIZE) {
    slab = new Uint8Array(SLAB_SIZE);
    slabUsed = 0;
  }
  const piece = slab.subarray(slabUsed, slabUsed + length);
  // Keep the next piece aligned so that applyMask() can work a word at a time.
  slabUsed = (slabUsed + length + 7) & ~7;
  return piece;
}

// Masked text is unmasked here, then decoded, so a text frame costs only its
// string. Text frames too big for it get memory of their own.
const MAX_SCRATCH_SIZE = 65_536;
let scratch = new Uint8Array(1024);
/**
 * TextDecoder decodes a whole view, so each text frame needs one of exactly
 * its length: the views of `scratch` up to this length are made once and
 * kept, rather than one allocated per message.
 */
const MAX_CACHED_VIEW = 1024;
let scratchViews: Uint8Array[] = [];

/** `length` bytes of scratch memory, valid until the next call. */
function scratchOf(length: number): Uint8Array {
  if (length > MAX_SCRATCH_SIZE) return new Uint8Array(length);
  if (scratch.length < length) {
    let size = scratch.length;
    while (size < length) size *= 2;
    scratch = new Uint8Array(size);
    scratchViews = [];
  }
  if (length > MAX_CACHED_VIEW) return scratch.subarray(0, length);
  return scratchViews[length] ??= scratch.subarray(0, length);
}

// ---------------------------------------------------------------------------
// Unmasking (§5.3)

/**
 * Copies `source[start..start + target.length)` into `target`, unmasking it on
 * the way if a key is given. `source` is never modified.
 */
function copyPayload(
  source: Uint8Array,
  start: number,
  target: Uint8Array,
  key: Uint8Array | null,
): void {
  const length = target.length;
  if (length >= SMALL_COPY) {
    target.set(source.subarray(start, start + length));
    if (key !== null) applyMask(target, 0, length, key, 0);
  } else if (key === null) {
    for (let i = 0; i < length; i++) target[i] = source[start + i];
  } else {
    // Four bytes per turn, one per key octet: no `i & 3` in the loop.
    const k0 = key[0], k1 = key[1], k2 = key[2], k3 = key[3];
    const whole = length & ~3;
    let i = 0;
    for (; i < whole; i += 4) {
      const at = start + i;
      target[i] = source[at] ^ k0;
      target[i + 1] = source[at + 1] ^ k1;
      target[i + 2] = source[at + 2] ^ k2;
      target[i + 3] = source[at + 3] ^ k3;
    }
    if (i < length) target[i] = source[start + i] ^ k0;
    if (++i < length) target[i] = source[start + i] ^ k1;
    if (++i < length) target[i] = source[start + i] ^ k2;
  }
}

// ---------------------------------------------------------------------------
// Text (§5.6, §8.1)

// `ignoreBOM` keeps a leading U+FEFF: it is part of the message, not a
// byte-order mark to strip.
const lenientDecoder = new TextDecoder("utf-8", { ignoreBOM: true });
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
/** Up to this many bytes, ASCII text is cheaper to turn into a string without TextDecoder. */
const SHORT_TEXT = 32;

/**
 * Decodes UTF-8, or returns undefined if `bytes` is not valid UTF-8.
 *
 * The lenient decoder is several times faster than the strict one and turns
 * every invalid sequence into U+FFFD. So a result without U+FFFD proves the
 * input valid; only when one appears (it may be a genuine U+FFFD) does the
 * strict decoder decide.
 */
function decodeUtf8(bytes: Uint8Array): string | undefined {
  if (bytes.length <= SHORT_TEXT && isAscii(bytes)) {
    // ASCII is valid UTF-8, and each byte is its own UTF-16 code unit.
    return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  const text = lenientDecoder.decode(bytes);
  if (!text.includes("\uFFFD")) return text;
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return undefined;
  }
}

function isAscii(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] >= 0x80) return false;
  }
  return true;
}

/**
 * Turns a stream of bytes into WebSocket messages and control frames
 * (RFC 6455 §5), enforcing every rule of the base framing protocol.
 *
 * RSV bits are errors (§5.2), except RSV1 on the first frame of a data
 * message when permessage-deflate was negotiated (RFC 7692 §6): see
 * {@linkcode FrameDecoderOptions.inflate}.
 *
 * @example
 * ```ts
 * import { FrameDecoder } from "@heartwire/heartwire/protocol";
 * const decoder = new FrameDecoder({ role: "client" });
 * // An unmasked text frame "Hello" (RFC 6455 §5.7), in two pieces.
 * decoder.push(new Uint8Array([0x81, 0x05, 0x48, 0x65])); // []
 * decoder.push(new Uint8Array([0x6c, 0x6c, 0x6f])); // [{ type: "text", data: "Hello" }]
 * ```
 */
export class FrameDecoder {
  readonly #expectMasked: boolean;
  readonly #maxFrameSize: number;
  readonly #maxMessageSize: number;
  readonly #inflate: FrameDecoderOptions["inflate"];

  #done = false;
  /** The events of the push() in progress. */
  #events: DecoderEvent[] = NO_EVENTS;

  // The frame being read (§5.2).
  #fin = false;
  #opcode = 0;
  #masked = false;
  /** RSV1: the frame starts a compressed message (RFC 7692 §6). */
  #compressed = false;
  #payloadLength = 0;
  #maskKey = new Uint8Array(4);

  /** A header cut off at the end of a chunk (made the first time one is: most never are). */
  #header: Uint8Array = EMPTY;
  #headerFilled = 0;
  /** A payload cut off at the end of a chunk; null while reading a header. */
  #payload: Uint8Array | null = null;
  #payloadFilled = 0;

  // The fragmented message in progress (§5.4): its opcode (0 if none), and
  // its unmasked bytes so far in one buffer that doubles as they arrive (never
  // past the message limit). Memory follows the bytes, not the fragment count:
  // a million 1-byte fragments cost a million bytes, not a million arrays.
  #messageOpcode = 0;
  #messageCompressed = false;
  #message: Uint8Array = EMPTY;
  #messageLength = 0;
  /** Made for the first fragmented text message: most connections never send one. */
  #utf8: Utf8Validator | null = null;

  /** Creates a decoder for one connection. */
  constructor(options: FrameDecoderOptions) {
    this.#expectMasked = options.role === "server";
    this.#maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.#maxFrameSize = options.maxFrameSize ?? this.#maxMessageSize;
    this.#inflate = options.inflate;
  }

  /** True after a `close` or `error` event: further input is ignored. */
  get done(): boolean {
    return this.#done;
  }

  /**
   * Bytes of memory held for input in progress: a frame cut off at the end of
   * a chunk and the fragmented message being reassembled (their capacity, not
   * just what is filled). At most about 2 × the message limit plus a frame.
   */
  get bufferedBytes(): number {
    return (this.#payload?.length ?? 0) + this.#message.length;
  }

  /**
   * Feeds the next bytes from the peer, cut at any point (even inside a
   * header). Returns the events these bytes completed, in order.
   *
   * `chunk` is neither modified nor kept: the caller may reuse it at once.
   */
  push(chunk: Uint8Array): DecoderEvent[] {
    if (this.#done) return [];
    const end = chunk.length;
    let pos = 0;
    while (pos < end && !this.#done) {
      if (this.#payload !== null) {
        pos = this.#continuePayload(chunk, pos);
        continue;
      }
      const headerSize = this.#headerFilled === 0
        ? this.#readHeaderFromChunk(chunk, pos)
        : this.#readHeaderFromBuffer(chunk, pos);
      if (headerSize <= 0) break; // an error, or the rest of the chunk is a partial header
      pos += headerSize;
      pos = this.#startPayload(chunk, pos);
    }
    const events = this.#events;
    this.#events = NO_EVENTS;
    return events === NO_EVENTS ? [] : events;
  }

  /** Adds an event to those push() returns. */
  #emit(event: DecoderEvent): void {
    // Most reads complete one message: its array starts with exactly one slot
    // rather than the 16 a push() onto an empty array reserves.
    if (this.#events === NO_EVENTS) this.#events = [event];
    else this.#events.push(event);
  }

  // ---------------------------------------------------------------------------
  // Reading the header (§5.2)

  /**
   * Reads a header that starts at `chunk[pos]`, the common case. Returns its
   * size, or 0 if the chunk ends first (the bytes are set aside) or on error.
   */
  #readHeaderFromChunk(chunk: Uint8Array, pos: number): number {
    const size = this.#parseHeader(chunk, pos, chunk.length);
    if (size === 0 && !this.#done) {
      if (this.#header === EMPTY) this.#header = new Uint8Array(MAX_HEADER_SIZE);
      this.#header.set(chunk.subarray(pos));
      this.#headerFilled = chunk.length - pos;
    }
    return size;
  }

  /**
   * Completes a header that an earlier chunk cut off. Returns how many bytes of
   * `chunk` the header took, or 0 if it is still incomplete or on error.
   */
  #readHeaderFromBuffer(chunk: Uint8Array, pos: number): number {
    const had = this.#headerFilled;
    // Copy as much as the largest header could need; what turns out to be
    // payload is simply not counted as consumed.
    const take = Math.min(MAX_HEADER_SIZE - had, chunk.length - pos);
    this.#header.set(chunk.subarray(pos, pos + take), had);
    const size = this.#parseHeader(this.#header, 0, had + take);
    if (size === 0) {
      this.#headerFilled = had + take;
      return 0;
    }
    this.#headerFilled = 0;
    return size - had;
  }

  /**
   * Parses and checks the header in `bytes[start..end)`. Returns the header
   * size if it is complete and valid, 0 if more bytes are needed or on error.
   * Every check runs as soon as the bytes it needs are there, so a bad frame
   * fails before its payload arrives.
   */
  #parseHeader(bytes: Uint8Array, start: number, end: number): number {
    const available = end - start;
    if (available === 0) return 0;
    if (!this.#checkFirstByte(bytes[start]) || available === 1) return 0;
    const second = bytes[start + 1];
    if (!this.#checkSecondByte(second)) return 0;

    const lengthCode = second & 0x7f;
    const lengthSize = lengthCode === 126 ? 2 : lengthCode === 127 ? 8 : 0;
    const size = 2 + lengthSize + (this.#masked ? 4 : 0);
    if (available < size) return 0;

    if (!this.#readPayloadLength(bytes, start + 2, lengthCode)) return 0;
    if (!this.#checkSizeLimits()) return 0;
    if (this.#masked) this.#readMaskKey(bytes, start + 2 + lengthSize);
    return size;
  }

  /** FIN, RSV1-3 and the opcode (§5.2), and whether the opcode fits the message state (§5.4). */
  #checkFirstByte(first: number): boolean {
    this.#fin = (first & 0x80) !== 0;
    this.#opcode = first & 0x0f;
    const opcode = this.#opcode;
    const rsv = first & 0x70;
    this.#compressed = rsv === 0x40;
    // §5.2: RSV bits must be 0 unless a negotiated extension defines them.
    // permessage-deflate defines RSV1 alone (RFC 7692 §6).
    if (rsv !== 0 && (!this.#compressed || this.#inflate === undefined)) {
      return this.#fail(CloseCode.ProtocolError, "reserved bits set");
    }
    if (!isKnownOpcode(opcode)) {
      return this.#fail(CloseCode.ProtocolError, `reserved opcode 0x${opcode.toString(16)}`);
    }
    // RFC 7692 §6.1: RSV1 marks the first frame of a compressed message; it is
    // never set on a control frame or a continuation frame.
    if (this.#compressed && (isControlOpcode(opcode) || opcode === Opcode.Continuation)) {
      return this.#fail(CloseCode.ProtocolError, "RSV1 set on a control or continuation frame");
    }
    if (isControlOpcode(opcode)) {
      // §5.5: control frames must not be fragmented.
      if (!this.#fin) return this.#fail(CloseCode.ProtocolError, "fragmented control frame");
    } else if (opcode === Opcode.Continuation) {
      // §5.4: a continuation frame only continues a message that was started.
      if (this.#messageOpcode === 0) {
        return this.#fail(CloseCode.ProtocolError, "continuation frame without a message");
      }
    } else if (this.#messageOpcode !== 0) {
      // §5.4: fragments of one message may not interleave with another message.
      return this.#fail(CloseCode.ProtocolError, "new message before the previous one ended");
    }
    return true;
  }

  /** The MASK bit (§5.1, §5.3) and, for control frames, the 7-bit length (§5.5). */
  #checkSecondByte(second: number): boolean {
    this.#masked = (second & 0x80) !== 0;
    // §5.1: a client masks every frame it sends; a server masks none.
    if (this.#masked !== this.#expectMasked) {
      return this.#fail(
        CloseCode.ProtocolError,
        this.#masked ? "masked frame from a server" : "unmasked frame from a client",
      );
    }
    // §5.5: a control payload fits in the 7-bit length, so 126 and 127 are errors.
    if (isControlOpcode(this.#opcode) && (second & 0x7f) > MAX_CONTROL_PAYLOAD) {
      return this.#fail(CloseCode.ProtocolError, "control frame payload over 125 bytes");
    }
    return true;
  }

  /**
   * The payload length: 0-125 in the 7-bit field, else a 16-bit (126) or 64-bit
   * (127) big-endian extended length, in its shortest form (§5.2).
   */
  #readPayloadLength(bytes: Uint8Array, at: number, lengthCode: number): boolean {
    if (lengthCode < 126) {
      this.#payloadLength = lengthCode;
      return true;
    }
    if (lengthCode === 126) {
      const length = (bytes[at] << 8) | bytes[at + 1];
      // §5.2: "the minimal number of bytes MUST be used to encode the length".
      if (length < 126) return this.#fail(CloseCode.ProtocolError, "non-minimal 16-bit length");
      this.#payloadLength = length;
      return true;
    }
    // §5.2: "the most significant bit MUST be 0".
    if ((bytes[at] & 0x80) !== 0) {
      return this.#fail(CloseCode.ProtocolError, "64-bit length with the top bit set");
    }
    const high = ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) |
      bytes[at + 3]) >>> 0;
    const low = ((bytes[at + 4] << 24) | (bytes[at + 5] << 16) | (bytes[at + 6] << 8) |
      bytes[at + 7]) >>> 0;
    // Past 2^53 this loses precision, but any such length is far over the limits anyway.
    const length = high * 0x1_0000_0000 + low;
    if (length < 65_536) return this.#fail(CloseCode.ProtocolError, "non-minimal 64-bit length");
    this.#payloadLength = length;
    return true;
  }

  /** Refuses a frame or message that would be too big, before any payload is buffered (§7.4.1). */
  #checkSizeLimits(): boolean {
    const length = this.#payloadLength;
    if (isControlOpcode(this.#opcode)) return true; // at most 125 bytes, checked above
    if (length > this.#maxFrameSize) {
      return this.#fail(CloseCode.MessageTooBig, `frame of ${length} bytes is too big`);
    }
    const messageLength = this.#messageLength + length;
    if (messageLength > this.#maxMessageSize) {
      return this.#fail(CloseCode.MessageTooBig, `message of ${messageLength} bytes is too big`);
    }
    return true;
  }

  /** The 4-byte masking key follows the length (§5.3). */
  #readMaskKey(bytes: Uint8Array, at: number): void {
    const key = this.#maskKey;
    key[0] = bytes[at];
    key[1] = bytes[at + 1];
    key[2] = bytes[at + 2];
    key[3] = bytes[at + 3];
  }

  // ---------------------------------------------------------------------------
  // Reading the payload

  /**
   * Called right after a header. If the whole payload is in the chunk, handles
   * the frame from there; otherwise sets the available part aside. Returns the
   * new position in the chunk.
   */
  #startPayload(chunk: Uint8Array, pos: number): number {
    const length = this.#payloadLength;
    const available = chunk.length - pos;
    if (available >= length) {
      this.#handleFrame(chunk, pos, false);
      return pos + length;
    }
    const payload = length <= PARTIAL_PAYLOAD_START
      ? allocate(length)
      : new Uint8Array(Math.max(available, PARTIAL_PAYLOAD_START));
    payload.set(chunk.subarray(pos));
    this.#payload = payload;
    this.#payloadFilled = available;
    return chunk.length;
  }

  /** Adds bytes to a payload begun in an earlier chunk; handles the frame once complete. */
  #continuePayload(chunk: Uint8Array, pos: number): number {
    const length = this.#payloadLength;
    const take = Math.min(length - this.#payloadFilled, chunk.length - pos);
    const filled = this.#payloadFilled + take;
    let payload = this.#payload!;
    if (filled > payload.length) {
      // Double (at least), never past the declared length: when the last byte
      // arrives the buffer holds exactly the payload.
      const grown = new Uint8Array(Math.min(length, Math.max(filled, payload.length * 2)));
      grown.set(payload.subarray(0, this.#payloadFilled));
      payload = this.#payload = grown;
    }
    payload.set(chunk.subarray(pos, pos + take), this.#payloadFilled);
    this.#payloadFilled = filled;
    if (filled === length) {
      this.#payload = null;
      this.#payloadFilled = 0;
      this.#handleFrame(payload, 0, true);
    }
    return pos + take;
  }

  // ---------------------------------------------------------------------------
  // Handling a complete frame

  /**
   * Handles the frame whose payload is `source[start..start + length)`.
   * `owned` is true when `source` is our own buffer holding exactly the
   * payload, which may then be unmasked in place and handed out as is.
   */
  #handleFrame(source: Uint8Array, start: number, owned: boolean): void {
    const opcode = this.#opcode;
    if (isControlOpcode(opcode)) {
      this.#handleControlFrame(this.#ownedPayload(source, start, owned));
    } else if (opcode !== Opcode.Continuation && this.#fin) {
      // An unfragmented message, by far the most common frame (§5.6).
      if (this.#compressed) this.#emitInflated(opcode, this.#ownedPayload(source, start, owned));
      else if (opcode === Opcode.Text) this.#emitText(source, start, owned);
      else this.#emit({ type: "binary", data: this.#ownedPayload(source, start, owned) });
    } else {
      this.#handleFragment(source, start);
    }
  }

  /** The unmasked payload in fresh memory the receiver may keep (§5.3). */
  #ownedPayload(source: Uint8Array, start: number, owned: boolean): Uint8Array {
    const key = this.#masked ? this.#maskKey : null;
    if (owned) {
      if (key !== null) applyMask(source, 0, source.length, key, 0);
      return source;
    }
    const data = allocate(this.#payloadLength);
    copyPayload(source, start, data, key);
    return data;
  }

  /** Decodes an unfragmented text message; invalid UTF-8 fails with 1007 (§8.1). */
  #emitText(source: Uint8Array, start: number, owned: boolean): void {
    let bytes: Uint8Array;
    if (owned) {
      bytes = source;
      if (this.#masked) applyMask(bytes, 0, bytes.length, this.#maskKey, 0);
    } else if (this.#masked) {
      // Unmask a copy, never the caller's chunk; the string is all we keep.
      bytes = scratchOf(this.#payloadLength);
      copyPayload(source, start, bytes, this.#maskKey);
    } else {
      bytes = source.subarray(start, start + this.#payloadLength);
    }
    const data = decodeUtf8(bytes);
    if (data === undefined) {
      this.#fail(CloseCode.InvalidPayload, "text message is not valid UTF-8");
      return;
    }
    this.#emit({ type: "text", data });
  }

  /**
   * One fragment of a message (§5.4): the first has the message's opcode and
   * FIN=0, the others are continuations, the last has FIN=1. Each is unmasked
   * straight into the message buffer. Text fragments are validated as they
   * arrive, so bad UTF-8 fails at once (§8.1).
   */
  #handleFragment(source: Uint8Array, start: number): void {
    if (this.#opcode !== Opcode.Continuation) {
      this.#messageOpcode = this.#opcode;
      this.#messageCompressed = this.#compressed;
    }
    // Compressed text is checked once inflated.
    const isText = this.#messageOpcode === Opcode.Text && !this.#messageCompressed;
    const length = this.#payloadLength;
    const offset = this.#messageLength;
    const end = offset + length;
    if (end > this.#message.length) this.#growMessage(end);
    const target = this.#message.subarray(offset, end);
    copyPayload(source, start, target, this.#masked ? this.#maskKey : null);
    this.#messageLength = end;
    if (isText && !(this.#utf8 ??= new Utf8Validator()).push(target)) {
      this.#fail(CloseCode.InvalidPayload, "text message is not valid UTF-8");
      return;
    }
    if (!this.#fin) return;

    const message = this.#takeMessage();
    const textComplete = !isText || this.#utf8!.finish();
    const opcode = this.#messageOpcode;
    this.#messageOpcode = 0;
    this.#utf8?.reset();
    if (this.#messageCompressed) {
      this.#messageCompressed = false;
      this.#emitInflated(opcode, message);
    } else if (!isText) {
      this.#emit({ type: "binary", data: message });
    } else if (!textComplete) {
      // The message ended in the middle of a character.
      this.#fail(CloseCode.InvalidPayload, "text message is not valid UTF-8");
    } else {
      // Already validated fragment by fragment: the lenient decoder is exact here.
      this.#emit({ type: "text", data: lenientDecoder.decode(message) });
    }
  }

  /**
   * A compressed message, all of it (RFC 7692 §6.2): inflated within the
   * message limit (a bomb fails with 1009 before it is inflated past it), then
   * delivered like any other; text is checked as UTF-8 once inflated (§8.1).
   */
  #emitInflated(opcode: number, payload: Uint8Array): void {
    const result = this.#inflate!(payload, this.#maxMessageSize);
    if (!(result instanceof Uint8Array)) {
      this.#fail(result.code, result.reason);
    } else if (opcode === Opcode.Binary) {
      this.#emit({ type: "binary", data: result });
    } else {
      const data = decodeUtf8(result);
      if (data === undefined) {
        this.#fail(CloseCode.InvalidPayload, "text message is not valid UTF-8");
      } else this.#emit({ type: "text", data });
    }
  }

  /**
   * Makes room for `needed` bytes of message: at least double the capacity
   * (amortised O(1) per byte however small the fragments), never past the
   * message limit, which #checkSizeLimits() has already applied to `needed`.
   */
  #growMessage(needed: number): void {
    const doubled = Math.max(MESSAGE_BUFFER_START, this.#message.length * 2);
    const grown = new Uint8Array(Math.min(Math.max(needed, doubled), this.#maxMessageSize));
    grown.set(this.#message.subarray(0, this.#messageLength));
    this.#message = grown;
  }

  /**
   * The finished message, handed to the receiver, and the buffer released.
   * A buffer at least half full is handed out as it is; otherwise the bytes
   * are copied out, so the receiver never holds more than twice the message.
   */
  #takeMessage(): Uint8Array {
    const buffer = this.#message;
    const length = this.#messageLength;
    this.#message = EMPTY;
    this.#messageLength = 0;
    if (length * 2 >= buffer.length) return buffer.subarray(0, length);
    const message = allocate(length);
    message.set(buffer.subarray(0, length));
    return message;
  }

  /** Ping, pong and close (§5.5), delivered in place even inside a fragmented message. */
  #handleControlFrame(data: Uint8Array): void {
    const opcode = this.#opcode;
    if (opcode === Opcode.Ping) {
      this.#emit({ type: "ping", data });
    } else if (opcode === Opcode.Pong) {
      this.#emit({ type: "pong", data });
    } else {
      // §5.5.1: an optional 2-byte code, then an optional UTF-8 reason.
      const close = parseClosePayload(data);
      if (!close.ok) {
        this.#fail(close.code, close.reason);
        return;
      }
      this.#emit({ type: "close", code: close.code, reason: close.reason });
      this.#done = true;
    }
  }

  /** Reports a violation; the caller must close with `code` (§7.1.7). Nothing more is read. */
  #fail(code: number, reason: string): false {
    this.#emit({ type: "error", code, reason });
    this.#done = true;
    this.#payload = null;
    this.#message = EMPTY;
    this.#messageLength = 0;
    return false;
  }
}
