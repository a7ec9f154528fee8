/**
 * permessage-deflate (RFC 7692), with no I/O: negotiation of the extension in
 * the opening handshake, and the per-message transform behind a pluggable
 * DEFLATE {@linkcode DeflateEngine} (server/ supplies one built on
 * `node:zlib`; tests may supply their own).
 *
 * How a message travels once the extension is on (§6):
 *
 * ```text
 * send:    payload ── DEFLATE, sync flush ── drop the trailing 00 00 ff ff ── frame(s), RSV1 on the first
 * receive: frame(s), RSV1 on the first ── join ── append 00 00 ff ff ── INFLATE (≤ maxLength) ── payload
 * ```
 *
 * Memory. A compressor that keeps its context between messages ("context
 * takeover") holds a zlib deflate stream for the life of the connection:
 * about `2^(windowBits + 2) + 2^(memLevel + 9)` bytes, 256 KiB at the zlib
 * defaults. Without context takeover nothing needs to outlive a message, and
 * since the codec is synchronous one stream per engine serves every
 * connection, reset between messages. The same holds for decompression (about
 * `2^windowBits + 7 KiB` per stream). {@linkcode DeflateOptions} chooses.
 *
 * Security: compressed sizes reveal how much of a message repeats what came
 * before it (the CRIME/BREACH attacks). Do not compress secrets together with
 * text an attacker controls, least of all with context takeover.
 *
 * @module
 */

import { CloseCode } from "./close.ts";

// ---------------------------------------------------------------------------
// The Sec-WebSocket-Extensions header (RFC 6455 §9.1)

/**
 * One extension in a `Sec-WebSocket-Extensions` header: its name and its
 * parameters in order, duplicates kept (RFC 7692 §7 must see them).
 *
 * @example
 * ```ts
 * import { parseExtensions } from "@heartwire/heartwire/protocol";
 * const [offer] = parseExtensions("permessage-deflate; client_max_window_bits")!;
 * console.log(offer.params); // [{ name: "client_max_window_bits", value: undefined }]
 * ```
 */
export interface ExtensionOffer {
  /** The extension token, e.g. `permessage-deflate`. */
  name: string;
  /** Its parameters; `value` is undefined for a parameter without `=`. */
  params: { name: string; value: string | undefined }[];
}

/** RFC 7230 §3.2.6 tchar. */
function isTokenChar(code: number): boolean {
  return (code >= 0x61 && code <= 0x7a) || (code >= 0x41 && code <= 0x5a) ||
    (code >= 0x30 && code <= 0x39) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(code));
}

/**
 * Parses a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1):
 *
 * ```text
 * extension-list  = 1#extension
 * extension       = extension-token *( ";" extension-param )
 * extension-param = token [ "=" (token | quoted-string) ]
 * ```
 *
 * Several header lines are one list joined with commas (RFC 7230 §3.2.2),
 * which is what `Headers.get()` returns. A quoted value must unquote to a
 * token (§9.1). Empty list elements are skipped (RFC 7230 §7). Returns
 * undefined if the value does not follow the grammar.
 *
 * @example
 * ```ts
 * import { parseExtensions } from "@heartwire/heartwire/protocol";
 * parseExtensions('permessage-deflate; server_max_window_bits="10", x-foo');
 * // [{ name: "permessage-deflate", params: [{ name: "server_max_window_bits", value: "10" }] },
 * //  { name: "x-foo", params: [] }]
 * ```
 */
export function parseExtensions(header: string): ExtensionOffer[] | undefined {
  const offers: ExtensionOffer[] = [];
  let pos = 0;
  const end = header.length;
  const skipSpace = () => {
    while (pos < end && (header[pos] === " " || header[pos] === "\t")) pos++;
  };
  const token = (): string => {
    const start = pos;
    while (pos < end && isTokenChar(header.charCodeAt(pos))) pos++;
    return header.slice(start, pos);
  };
  const quoted = (): string | undefined => {
    pos++; // the opening DQUOTE
    let value = "";
    while (pos < end && header[pos] !== '"') {
      if (header[pos] === "\\") pos++; // quoted-pair
      if (pos === end) return undefined;
      value += header[pos++];
    }
    if (pos === end) return undefined;
    pos++; // the closing DQUOTE
    return value;
  };

  while (true) {
    skipSpace();
    if (pos === end) break;
    if (header[pos] === ",") {
      pos++;
      continue;
    }
    const name = token();
    if (name === "") return undefined;
    const offer: ExtensionOffer = { name, params: [] };
    skipSpace();
    while (pos < end && header[pos] === ";") {
      pos++;
      skipSpace();
      const param = token();
      if (param === "") return undefined;
      skipSpace();
      let value: string | undefined;
      if (header[pos] === "=") {
        pos++;
        skipSpace();
        if (header[pos] === '"') {
          value = quoted();
          // §9.1: the unescaped value must itself be a token.
          if (value === undefined || value === "" || !isToken(value)) return undefined;
        } else {
          value = token();
          if (value === "") return undefined;
        }
        skipSpace();
      }
      offer.params.push({ name: param, value });
    }
    offers.push(offer);
    if (pos === end) break;
    if (header[pos] !== ",") return undefined;
    pos++;
  }
  return offers;
}

function isToken(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    if (!isTokenChar(value.charCodeAt(i))) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Negotiation (RFC 7692 §7.1)

/** The extension token (RFC 7692 §7). */
export const PERMESSAGE_DEFLATE = "permessage-deflate";

/**
 * How a server takes part in permessage-deflate. Each option trades memory and
 * CPU for compression; the defaults keep a connection's memory small.
 *
 * @example
 * ```ts
 * import { negotiateDeflate, type DeflateOptions } from "@heartwire/heartwire/protocol";
 * // Context takeover for a better ratio on chat, with a 4 KiB window and a
 * // small hash table: 2^14 + 2^14 = 32 KiB of deflate state per connection.
 * const options: DeflateOptions = {
 *   serverNoContextTakeover: false,
 *   serverMaxWindowBits: 12,
 *   memLevel: 5,
 * };
 * negotiateDeflate("permessage-deflate; client_max_window_bits", options);
 * ```
 */
export interface DeflateOptions {
  /**
   * Compress each message on its own (default true): the server always
   * declares `server_no_context_takeover` (§7.1.1.1), and one zlib stream
   * serves all connections. False keeps a stream per connection, which
   * compresses small, similar messages several times better.
   */
  serverNoContextTakeover?: boolean;
  /**
   * Ask clients to compress each message on its own (default false): the
   * server declares `client_no_context_takeover` (§7.1.1.2) and inflates with
   * one shared stream. A client that offers it gets it regardless.
   */
  clientNoContextTakeover?: boolean;
  /**
   * The largest LZ77 window the server compresses with, 8–15 (default 15).
   * Declared as `server_max_window_bits` when below 15 (§7.1.2.1).
   */
  serverMaxWindowBits?: number;
  /**
   * The largest window a client may compress with, 8–15 (default 15). Only a
   * client that offers `client_max_window_bits` can be held to it (§7.1.2.2);
   * any other compresses with 15, and the server inflates with 15.
   */
  clientMaxWindowBits?: number;
  /** zlib compression level, 0–9 (default 6). */
  level?: number;
  /** zlib memLevel, 1–9 (default 8): hash table size, ~2^(memLevel + 9) bytes. */
  memLevel?: number;
  /** Messages shorter than this many bytes are sent uncompressed (default 128). */
  threshold?: number;
}

/**
 * The parameters both ends agreed on (RFC 7692 §7.1). "server" and "client"
 * name the sender: `serverMaxWindowBits` bounds what the server compresses.
 *
 * @example
 * ```ts
 * import { formatDeflateParams, type DeflateParams } from "@heartwire/heartwire/protocol";
 * const params: DeflateParams = {
 *   serverNoContextTakeover: true,
 *   clientNoContextTakeover: false,
 *   serverMaxWindowBits: 15,
 *   clientMaxWindowBits: 15,
 * };
 * formatDeflateParams(params); // "permessage-deflate; server_no_context_takeover"
 * ```
 */
export interface DeflateParams {
  /** The server starts every message with an empty window (§7.1.1.1). */
  serverNoContextTakeover: boolean;
  /** The client starts every message with an empty window (§7.1.1.2). */
  clientNoContextTakeover: boolean;
  /** log2 of the largest window the server compresses with, 8–15 (§7.1.2.1). */
  serverMaxWindowBits: number;
  /** log2 of the largest window the client compresses with, 8–15 (§7.1.2.2). */
  clientMaxWindowBits: number;
}

/**
 * What {@linkcode negotiateDeflate} agreed: the parameters and the
 * `Sec-WebSocket-Extensions` value to answer with.
 *
 * @example
 * ```ts
 * import { negotiateDeflate } from "@heartwire/heartwire/protocol";
 * const agreement = negotiateDeflate("permessage-deflate");
 * console.log(agreement?.response); // "permessage-deflate; server_no_context_takeover"
 * ```
 */
export interface DeflateAgreement {
  /** The agreed parameters. */
  params: DeflateParams;
  /** The value of the response's `Sec-WebSocket-Extensions` header. */
  response: string;
}

/** §7.1.2.1: a decimal integer 8–15 without leading zeros. */
const WINDOW_BITS = /^(?:[89]|1[0-5])$/;

function checkBits(name: string, value: number | undefined): number {
  if (value === undefined) return 15;
  if (!Number.isInteger(value) || value < 8 || value > 15) {
    throw new RangeError(`${name} must be an integer from 8 to 15, got ${value}`);
  }
  return value;
}

/**
 * Chooses permessage-deflate parameters for a client's offers, or returns
 * undefined to run without the extension.
 *
 * Offers are tried in the client's order of preference (RFC 6455 §9.1); the
 * first acceptable one wins. An offer is declined (§7) if it has a parameter
 * RFC 7692 does not define for offers, a bad value, or the same parameter
 * twice. A header that does not parse declines everything.
 *
 * The response holds `server_no_context_takeover` when the client asked for
 * it or `options.serverNoContextTakeover` (default true) wants it;
 * `client_no_context_takeover` when the client offered it or the options
 * impose it; `server_max_window_bits` when either side wants below 15;
 * `client_max_window_bits` only when the client offered it (§7.1.2.2).
 *
 * @example
 * ```ts
 * import { negotiateDeflate } from "@heartwire/heartwire/protocol";
 * // A browser's offer.
 * const agreement = negotiateDeflate("permessage-deflate; client_max_window_bits", {
 *   clientMaxWindowBits: 12,
 * });
 * console.log(agreement?.response);
 * // "permessage-deflate; server_no_context_takeover; client_max_window_bits=12"
 * ```
 */
export function negotiateDeflate(
  header: string | null | undefined,
  options: DeflateOptions = {},
): DeflateAgreement | undefined {
  if (!header) return undefined;
  const offers = parseExtensions(header);
  if (offers === undefined) return undefined;
  const serverLimit = checkBits("serverMaxWindowBits", options.serverMaxWindowBits);
  const clientLimit = checkBits("clientMaxWindowBits", options.clientMaxWindowBits);
  for (const offer of offers) {
    if (offer.name !== PERMESSAGE_DEFLATE) continue;
    const params = acceptOffer(offer, options, serverLimit, clientLimit);
    if (params !== undefined) return { params, response: formatDeflateParams(params) };
  }
  return undefined;
}

function acceptOffer(
  offer: ExtensionOffer,
  options: DeflateOptions,
  serverLimit: number,
  clientLimit: number,
): DeflateParams | undefined {
  const seen = new Set<string>();
  let serverNoContext = false;
  let clientNoContext = false;
  let serverBits = 15;
  let clientBits: number | undefined; // undefined: the client did not offer the parameter
  for (const { name, value } of offer.params) {
    if (seen.has(name)) return undefined; // §7: the same parameter twice
    seen.add(name);
    switch (name) {
      case "server_no_context_takeover":
      case "client_no_context_takeover":
        if (value !== undefined) return undefined; // §7.1.1: these take no value
        if (name === "server_no_context_takeover") serverNoContext = true;
        else clientNoContext = true;
        break;
      case "server_max_window_bits":
        // §7.1.2.1: a value is required.
        if (value === undefined || !WINDOW_BITS.test(value)) return undefined;
        serverBits = Number(value);
        break;
      case "client_max_window_bits":
        // §7.1.2.2: the value is optional; without one the client only says it understands it.
        if (value !== undefined && !WINDOW_BITS.test(value)) return undefined;
        clientBits = value === undefined ? 15 : Number(value);
        break;
      default:
        return undefined; // §7: a parameter not defined for offers
    }
  }
  return {
    serverNoContextTakeover: serverNoContext || (options.serverNoContextTakeover ?? true),
    clientNoContextTakeover: clientNoContext || (options.clientNoContextTakeover ?? false),
    serverMaxWindowBits: Math.min(serverBits, serverLimit),
    // §7.1.2.2: a client that did not offer the parameter cannot be limited.
    clientMaxWindowBits: clientBits === undefined ? 15 : Math.min(clientBits, clientLimit),
  };
}

/**
 * The `Sec-WebSocket-Extensions` value for agreed parameters, naming only
 * what differs from the defaults (context takeover, 15-bit windows).
 *
 * @example
 * ```ts
 * import { formatDeflateParams } from "@heartwire/heartwire/protocol";
 * formatDeflateParams({
 *   serverNoContextTakeover: false,
 *   clientNoContextTakeover: true,
 *   serverMaxWindowBits: 10,
 *   clientMaxWindowBits: 15,
 * }); // "permessage-deflate; client_no_context_takeover; server_max_window_bits=10"
 * ```
 */
export function formatDeflateParams(params: DeflateParams): string {
  let value = PERMESSAGE_DEFLATE;
  if (params.serverNoContextTakeover) value += "; server_no_context_takeover";
  if (params.clientNoContextTakeover) value += "; client_no_context_takeover";
  if (params.serverMaxWindowBits < 15) {
    value += `; server_max_window_bits=${params.serverMaxWindowBits}`;
  }
  if (params.clientMaxWindowBits < 15) {
    value += `; client_max_window_bits=${params.clientMaxWindowBits}`;
  }
  return value;
}

// ---------------------------------------------------------------------------
// The DEFLATE engine (supplied from outside protocol/)

/**
 * Raw DEFLATE (RFC 1951) streams, synchronous, as the transform needs them.
 * server/ supplies one on `node:zlib`.
 *
 * @example
 * ```ts
 * import type { DeflateEngine } from "@heartwire/heartwire/protocol";
 * // An engine that refuses to work, for a test of the failure path.
 * const broken: DeflateEngine = {
 *   createDeflater: () => {
 *     throw new Error("no zlib");
 *   },
 *   createInflater: () => {
 *     throw new Error("no zlib");
 *   },
 * };
 * ```
 */
export interface DeflateEngine {
  /** A new compressing stream. */
  createDeflater(options: DeflaterOptions): Deflater;
  /** A new decompressing stream for data compressed with at most `windowBits`. */
  createInflater(options: { windowBits: number }): Inflater;
}

/**
 * Parameters of a compressing stream.
 */
export interface DeflaterOptions {
  /** log2 of the LZ77 window, 8–15. An engine that cannot do 8 may use 9 if its matches stay within 256 bytes. */
  windowBits: number;
  /** Compression level, 0–9. */
  level: number;
  /** Memory for the match finder, 1–9. */
  memLevel: number;
}

/**
 * A raw DEFLATE compressing stream that lives across messages.
 *
 * @example
 * ```ts
 * import type { Deflater } from "@heartwire/heartwire/protocol";
 * // Stored blocks only: valid DEFLATE that compresses nothing.
 * const store: Deflater = {
 *   deflate(data) {
 *     if (data.length > 0xffff) throw new RangeError("one stored block only");
 *     const out = new Uint8Array(data.length + 10);
 *     out.set([0x00, data.length & 0xff, data.length >> 8, ~data.length & 0xff, (~data.length >> 8) & 0xff]);
 *     out.set(data, 5);
 *     out.set([0x00, 0x00, 0x00, 0xff, 0xff], 5 + data.length);
 *     return out;
 *   },
 *   reset() {},
 *   close() {},
 * };
 * ```
 */
export interface Deflater {
  /**
   * Compresses `data` and flushes with a sync flush: the output ends on a byte
   * boundary with an empty stored block, `00 00 ff ff` (§7.2.1). The stream
   * keeps its window for the next call.
   */
  deflate(data: Uint8Array): Uint8Array;
  /** Forgets the window: the next call starts a fresh stream. */
  reset(): void;
  /** Frees the stream; it is not used again. */
  close(): void;
}

/**
 * A raw DEFLATE decompressing stream that lives across messages.
 *
 * @example
 * ```ts
 * import type { Inflater } from "@heartwire/heartwire/protocol";
 * // An inflater that always reports the output as too big.
 * const refuse: Inflater = { inflate: () => undefined, reset() {}, close() {} };
 * ```
 */
export interface Inflater {
  /**
   * Decompresses the concatenation of `data`. Returns undefined as soon as the
   * output would exceed `maxLength` bytes, having produced at most a little
   * more than that. Throws on data that is not valid DEFLATE. If the DEFLATE
   * stream ends (a block with BFINAL set), the rest of `data` is ignored and
   * the next call starts a new stream.
   */
  inflate(data: readonly Uint8Array[], maxLength: number): Uint8Array | undefined;
  /** Forgets the window: the next call starts a fresh stream. */
  reset(): void;
  /** Frees the stream; it is not used again. */
  close(): void;
}

// ---------------------------------------------------------------------------
// The per-message transform (RFC 7692 §6, §7.2)

/** An empty DEFLATE stored block after a sync flush (§7.2.1). */
const TAIL = new Uint8Array([0x00, 0x00, 0xff, 0xff]);

/**
 * Streams that do not keep context between messages, shared by every
 * connection of an engine: the transform is synchronous, so one message uses
 * a stream at a time, and resets it when done.
 */
const sharedStreams = new WeakMap<DeflateEngine, Map<string, Deflater | Inflater>>();

function shared<T extends Deflater | Inflater>(
  engine: DeflateEngine,
  key: string,
  create: () => T,
): T {
  let streams = sharedStreams.get(engine);
  if (streams === undefined) sharedStreams.set(engine, streams = new Map());
  let stream = streams.get(key);
  if (stream === undefined) streams.set(key, stream = create());
  return stream as T;
}

/**
 * Options for {@linkcode PerMessageDeflate}.
 */
export interface PerMessageDeflateOptions {
  /** Which end this is: a server compresses with the server_* parameters (default "server"). */
  role?: "server" | "client";
  /** zlib compression level, 0–9 (default 6). */
  level?: number;
  /** zlib memLevel, 1–9 (default 8). */
  memLevel?: number;
  /** Messages shorter than this many bytes are sent uncompressed (default 128). */
  threshold?: number;
}

/**
 * A failed decompression and the close code it calls for: 1009 when the
 * message inflates past the size limit, 1007 when it is not valid DEFLATE.
 */
export interface InflateFailure {
  /** The close code to send (RFC 6455 §7.4.1). */
  code: number;
  /** Why, for the close frame and the logs. */
  reason: string;
}

/**
 * permessage-deflate for one connection (RFC 7692): compresses outgoing
 * messages and decompresses incoming ones with the agreed parameters.
 *
 * Streams are created on first use. A direction with context takeover keeps
 * its own stream until {@linkcode PerMessageDeflate.close}; a direction
 * without uses a stream shared with every other connection of the engine.
 *
 * @example
 * ```ts ignore
 * import { negotiateDeflate, PerMessageDeflate } from "@heartwire/heartwire/protocol";
 * import { zlibEngine } from "@heartwire/heartwire/server";
 * const agreement = negotiateDeflate("permessage-deflate")!;
 * const deflate = new PerMessageDeflate(agreement.params, zlibEngine);
 * const payload = deflate.compress(new TextEncoder().encode("hello ".repeat(50)));
 * // payload: send it in a data frame with RSV1 set.
 * deflate.close();
 * ```
 */
export class PerMessageDeflate {
  readonly #engine: DeflateEngine;
  readonly #threshold: number;
  readonly #deflaterOptions: DeflaterOptions;
  readonly #deflateNoContext: boolean;
  readonly #inflateBits: number;
  readonly #inflateNoContext: boolean;
  #deflater: Deflater | null = null;
  #inflater: Inflater | null = null;
  #closed = false;

  /** Creates the transform for one connection with negotiated `params`. */
  constructor(
    params: DeflateParams,
    engine: DeflateEngine,
    options: PerMessageDeflateOptions = {},
  ) {
    const server = (options.role ?? "server") === "server";
    this.#engine = engine;
    this.#threshold = options.threshold ?? 128;
    this.#deflaterOptions = {
      windowBits: server ? params.serverMaxWindowBits : params.clientMaxWindowBits,
      level: options.level ?? 6,
      memLevel: options.memLevel ?? 8,
    };
    this.#deflateNoContext = server
      ? params.serverNoContextTakeover
      : params.clientNoContextTakeover;
    // A window bigger than the peer's is harmless; 9 also accepts what a
    // zlib-based peer sends after agreeing to 8 (zlib deflates raw with 9).
    this.#inflateBits = Math.max(
      9,
      server ? params.clientMaxWindowBits : params.serverMaxWindowBits,
    );
    this.#inflateNoContext = server
      ? params.clientNoContextTakeover
      : params.serverNoContextTakeover;
  }

  /** Messages shorter than this many bytes are sent uncompressed. */
  get threshold(): number {
    return this.#threshold;
  }

  /** Bytes of zlib state this connection holds by itself (an estimate after zlib's own formula). */
  get retainedBytes(): number {
    let bytes = 0;
    if (this.#deflater !== null) {
      const { windowBits, memLevel } = this.#deflaterOptions;
      bytes += 2 ** (Math.max(9, windowBits) + 2) + 2 ** (memLevel + 9);
    }
    if (this.#inflater !== null) bytes += 2 ** this.#inflateBits + 7 * 1024;
    return bytes;
  }

  /**
   * Compresses a message payload (§7.2.1), or returns undefined if it should
   * go uncompressed (RSV1 clear): below the threshold, or, without context
   * takeover, when compressing did not make it smaller (already compressed
   * data). With context takeover the stream has taken the message in, so the
   * peer must inflate it too: the result is sent whatever its size. The
   * result goes in a data frame with RSV1 set, or in a fragmented message
   * whose first frame has RSV1 set (§6).
   */
  compress(data: Uint8Array): Uint8Array | undefined {
    if (this.#closed) throw new Error("PerMessageDeflate is closed");
    if (data.length < this.#threshold) return undefined;
    const { windowBits, level, memLevel } = this.#deflaterOptions;
    let deflater = this.#deflater;
    if (deflater === null) {
      const create = () => this.#engine.createDeflater(this.#deflaterOptions);
      deflater = this.#deflateNoContext
        ? shared(this.#engine, `deflate/${windowBits}/${level}/${memLevel}`, create)
        : (this.#deflater = create());
    }
    let output: Uint8Array;
    try {
      output = deflater.deflate(data);
    } finally {
      if (this.#deflateNoContext) deflater.reset();
    }
    // §7.2.1: remove the empty stored block a sync flush ends with.
    const end = output.length - 4;
    if (
      end < 0 || output[end] !== 0 || output[end + 1] !== 0 || output[end + 2] !== 0xff ||
      output[end + 3] !== 0xff
    ) {
      throw new Error("the DEFLATE engine did not end its output with a sync flush");
    }
    if (this.#deflateNoContext && end >= data.length) return undefined;
    return output.subarray(0, end);
  }

  /**
   * Decompresses the payload of a message that arrived with RSV1 set (§7.2.2),
   * all its fragments joined. The inflated size counts against `maxLength`:
   * past it, decompression stops and the result is a 1009 failure, so a small
   * "decompression bomb" never costs more than `maxLength` of memory.
   */
  decompress(payload: Uint8Array, maxLength: number): Uint8Array | InflateFailure {
    if (this.#closed) throw new Error("PerMessageDeflate is closed");
    let inflater = this.#inflater;
    if (inflater === null) {
      const create = () => this.#engine.createInflater({ windowBits: this.#inflateBits });
      inflater = this.#inflateNoContext
        ? shared(this.#engine, `inflate/${this.#inflateBits}`, create)
        : (this.#inflater = create());
    }
    let output: Uint8Array | undefined;
    try {
      // §7.2.2: append the empty stored block the sender removed.
      output = inflater.inflate([payload, TAIL], maxLength);
    } catch {
      inflater.reset();
      return { code: CloseCode.InvalidPayload, reason: "invalid compressed data" };
    }
    // A connection that failed is closed: its stream state no longer matters,
    // but a shared stream must start clean for the next connection.
    if (this.#inflateNoContext || output === undefined) inflater.reset();
    if (output === undefined) {
      return {
        code: CloseCode.MessageTooBig,
        reason: `message over ${maxLength} bytes after decompression`,
      };
    }
    return output;
  }

  /** Frees this connection's own streams. Safe to call more than once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#deflater?.close();
    this.#inflater?.close();
    this.#deflater = this.#inflater = null;
  }
}
