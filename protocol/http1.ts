/**
 * HTTP/1.1 for a server, sans-I/O, in the manner of Python's h11: bytes the
 * caller read go into a {@linkcode RequestParser}, which hands back one event
 * at a time (a request head, body data, the end of the body, or the status
 * to refuse the request with); {@linkcode buildResponseHead} and
 * {@linkcode encodeChunk} make the bytes to write back.
 *
 * ```text
 * receive(bytes) → next(): request → data … → end → request → … (pipelined)
 * ```
 *
 * Parsing choices (RFC 9112):
 * - Lines of a head may end in CRLF or in a lone LF (§2.2 allows recognising
 *   a single LF). This parser never forwards a request to another server, so
 *   reading bare LF cannot create a disagreement with a downstream parser,
 *   and it lets people type requests by hand with `nc`. A bare CR is
 *   rejected (§2.2). Chunked framing, where a disagreement would smuggle a
 *   request, takes CRLF only (§7.1).
 * - Empty lines before the start line are skipped (§2.2).
 * - The head must be ASCII with no control characters other than HTAB:
 *   non-ASCII bytes (obs-text) are refused, which also fails a TLS
 *   ClientHello sent to a plain port at once rather than after a timeout.
 * - Whitespace between a field name and its colon (§5.1) and obsolete line
 *   folding (§5.2) are rejected with 400.
 * - At most 100 header fields by default, else 431 (RFC 6585 §5): a browser
 *   sends about 15, and each field costs a search of the ones before it in
 *   `Headers`, so 16 KiB of tiny fields would cost O(n²).
 * - Body length (§6.3): `Transfer-Encoding` together with `Content-Length`
 *   is refused (400, the classic smuggling shape); a transfer coding other
 *   than a lone `chunked` gets 501, or 400 if `chunked` is not last; several
 *   `Content-Length` values must agree. A body over `maxBodyBytes` gets 413.
 * - Chunk extensions (§7.1.1) are ignored, and refused with 400 past
 *   `maxHeaderBytes` in one body: they are work without body bytes.
 * - Persistence (§9.3): HTTP/1.1 keeps the connection unless
 *   `Connection: close`; HTTP/1.0 closes it unless `Connection: keep-alive`.
 *
 * @module
 */
import { FIELD_VALUE, hasToken, headerLines, TOKEN, tokenList } from "./_fields.ts";

const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
const DEFAULT_MAX_HEADER_FIELDS = 100;
const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A parsed HTTP request head.
 */
export interface HttpRequestHead {
  /** The method, case preserved (methods are case-sensitive, RFC 9110 §9.1). */
  method: string;
  /** The request target as sent, e.g. `/ws?id=alice`. */
  target: string;
  /** The HTTP version without the `HTTP/` prefix, e.g. `"1.1"`. */
  version: string;
  /**
   * The header fields; repeated fields are combined with ", ". A head from
   * {@linkcode parseRequestHead} or {@linkcode RequestParser} builds it on
   * first read, through an accessor that a spread does not copy: copy a head
   * as `{ ...head, headers: head.headers }`.
   */
  headers: Headers;
}

/**
 * A parsed HTTP response head.
 */
export interface HttpResponseHead {
  /** The HTTP version without the `HTTP/` prefix, e.g. `"1.1"`. */
  version: string;
  /** The status code. */
  status: number;
  /** The reason phrase (possibly empty). */
  statusText: string;
  /** The header fields; repeated fields are combined with ", ". */
  headers: Headers;
}

/**
 * The outcome of parsing a head from the bytes received so far.
 *
 * - `incomplete`: read more and try again with all the bytes.
 * - `complete`: `headLength` bytes (up to and including the empty line) were
 *   the head; anything after them is already the peer's first frames.
 * - `error`: answer with `status` (431 if the head is too large, else 400)
 *   and close.
 *
 * @example
 * ```ts
 * import { parseRequestHead, type ParseHeadResult } from "@heartwire/heartwire/protocol";
 * const result: ParseHeadResult = parseRequestHead(new TextEncoder().encode("GET / HT"));
 * result.kind; // "incomplete"
 * ```
 */
export type ParseHeadResult<Head = HttpRequestHead> =
  | { kind: "incomplete" }
  | { kind: "complete"; head: Head; headLength: number }
  | { kind: "error"; status: 400 | 431; reason: string };

/**
 * Options for {@linkcode parseRequestHead} and {@linkcode parseResponseHead}.
 *
 * @example
 * ```ts
 * import { parseRequestHead, type ParseHeadOptions } from "@heartwire/heartwire/protocol";
 * const options: ParseHeadOptions = { maxHeaderBytes: 8192 };
 * parseRequestHead(new Uint8Array(0), options);
 * ```
 */
export interface ParseHeadOptions {
  /** The largest head accepted, in bytes, including its final empty line. Default 16384. */
  maxHeaderBytes?: number;
  /** The most header fields accepted (repeated names count each time). Default 100. */
  maxHeaderFields?: number;
}

const LF = 0x0a;
const CR = 0x0d;

type Scan =
  | { kind: "incomplete" }
  | { kind: "error"; status: 400 | 431; reason: string }
  | { kind: "complete"; lines: string[]; headLength: number };

/**
 * Finds the end of a head (the first empty line), checking every byte on the
 * way, and splits the head into lines. Shared by requests and responses.
 */
function scanHead(bytes: Uint8Array, maxHeaderBytes: number): Scan {
  const length = bytes.length;
  // RFC 9112 §2.2: skip empty lines before the start line.
  let start = 0;
  for (;;) {
    if (bytes[start] === LF) start += 1;
    else if (bytes[start] === CR && bytes[start + 1] === LF) start += 2;
    else break;
  }
  for (let i = start; i < length; i++) {
    const byte = bytes[i];
    if (byte >= 0x20 && byte < 0x7f) continue; // the common case: visible ASCII or SP
    if (byte === LF) {
      // A line ended; an empty line right after it ends the head.
      if (bytes[i + 1] === LF || (bytes[i + 1] === CR && bytes[i + 2] === LF)) {
        const headLength = bytes[i + 1] === LF ? i + 2 : i + 3;
        if (headLength > maxHeaderBytes) {
          return { kind: "error", status: 431, reason: "request head too large" };
        }
        const text = decoder.decode(bytes.subarray(start, i));
        return { kind: "complete", lines: text.split("\n"), headLength };
      }
      continue;
    }
    if (byte === CR) {
      // RFC 9112 §2.2: a CR must be followed by LF. (At the very end of the
      // bytes we cannot tell yet.)
      if (i + 1 < length && bytes[i + 1] !== LF) {
        return { kind: "error", status: 400, reason: "bare CR in head" };
      }
      continue;
    }
    if (byte === 0x09) continue; // HTAB is allowed inside field values
    return {
      kind: "error",
      status: 400,
      reason: byte >= 0x80
        ? `non-ASCII byte 0x${byte.toString(16)} in head`
        : `control character 0x${byte.toString(16).padStart(2, "0")} in head`,
    };
  }
  if (length > maxHeaderBytes) {
    return { kind: "error", status: 431, reason: "request head too large" };
  }
  return { kind: "incomplete" };
}

/**
 * Parses header field lines (RFC 9112 §5) into lower-cased names and their
 * values, alternating, or returns the error to answer with. `lines[0]`, the
 * start line, is skipped.
 */
function parseFields(
  lines: string[],
  maxFields = DEFAULT_MAX_HEADER_FIELDS,
): string[] | { status: 400 | 431; reason: string } {
  if (lines.length - 1 > maxFields) {
    return { status: 431, reason: `more than ${maxFields} header fields` };
  }
  const malformed = (reason: string) => ({ status: 400 as const, reason });
  const fields: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    let line = lines[i];
    if (line.endsWith("\r")) line = line.slice(0, -1);
    if (line[0] === " " || line[0] === "\t") return malformed("obsolete line folding in header");
    const colon = line.indexOf(":");
    if (colon === -1) return malformed(`header line without a colon: ${JSON.stringify(line)}`);
    const name = line.slice(0, colon);
    if (name.endsWith(" ") || name.endsWith("\t")) {
      // §5.1: MUST be rejected, it has been used to smuggle requests.
      return malformed(`whitespace before the colon in header ${JSON.stringify(name.trimEnd())}`);
    }
    if (!TOKEN.test(name)) return malformed(`invalid header name ${JSON.stringify(name)}`);
    // §5.1: leading and trailing whitespace (OWS) is not part of the value.
    // The bytes were already checked, so the value only holds valid characters.
    fields.push(name.toLowerCase(), line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, ""));
  }
  return fields;
}

/** A `Headers` of a {@linkcode parseFields} list (repeated fields joined, as `Headers` does). */
function headersOf(fields: readonly string[]): Headers {
  const headers = new Headers();
  for (let i = 0; i < fields.length; i += 2) headers.append(fields[i], fields[i + 1]);
  return headers;
}

/**
 * A request head as parsed, whose `headers` is built on first use. A
 * `Headers` checks every name and value again (WebIDL ByteStrings) as it is
 * filled, which costs as much as the rest of the parse, while most upgrade
 * requests are only ever asked for a handful of fields: the handshake's own
 * checks read them with {@linkcode headerValue}, straight from the list.
 *
 * `headers` is an accessor on the prototype, so a spread (`{ ...head }`)
 * copies `method`, `target` and `version` only; the list is private, so it
 * shows in no copy or log either.
 */
class ParsedRequestHead implements HttpRequestHead {
  method: string;
  target: string;
  version: string;
  /** Lower-cased field names and their values, alternating, in the order received. */
  readonly #fields: readonly string[];
  #headers: Headers | undefined;

  constructor(method: string, target: string, version: string, fields: string[]) {
    this.method = method;
    this.target = target;
    this.version = version;
    this.#fields = fields;
  }

  get headers(): Headers {
    return this.#headers ??= headersOf(this.#fields);
  }

  set headers(headers: Headers) {
    this.#headers = headers;
  }

  /**
   * The field list of a head this module parsed whose `headers` was never
   * built nor replaced; otherwise undefined: its `Headers` is then the truth.
   */
  static fieldsOf(head: HttpRequestHead): readonly string[] | undefined {
    return #fields in head && head.#headers === undefined ? head.#fields : undefined;
  }
}

/**
 * What `head.headers.get(name)` returns — the field's value, repeated fields
 * joined with ", ", or null — without building the `Headers` of a head
 * {@linkcode parseRequestHead} made. `name` is case-insensitive, as in
 * `Headers`.
 *
 * @example
 * ```ts
 * import { headerValue, parseRequestHead } from "@heartwire/heartwire/protocol";
 * const bytes = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nX: 2\r\n\r\n");
 * const result = parseRequestHead(bytes);
 * if (result.kind === "complete") headerValue(result.head, "x"); // "1, 2"
 * ```
 */
export function headerValue(head: HttpRequestHead, name: string): string | null {
  const fields = ParsedRequestHead.fieldsOf(head);
  if (fields === undefined) return head.headers.get(name);
  // The list's names are lower case; the handshake's own lookups already are.
  const key = name.toLowerCase();
  let value: string | null = null;
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i] === key) value = value === null ? fields[i + 1] : `${value}, ${fields[i + 1]}`;
  }
  return value;
}

/**
 * The head's fields as `[name, value]` pairs in the order received (names
 * lower-cased), without building its `Headers` if {@linkcode parseRequestHead}
 * made it; for another head, or once its `headers` was read or replaced, that
 * `Headers`' entries (sorted, repeated fields joined except `set-cookie`).
 *
 * @example
 * ```ts
 * import { headerEntries, parseRequestHead } from "@heartwire/heartwire/protocol";
 * const bytes = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
 * const result = parseRequestHead(bytes);
 * if (result.kind === "complete") [...headerEntries(result.head)]; // [["host", "a"], ["upgrade", "websocket"]]
 * ```
 */
export function* headerEntries(head: HttpRequestHead): Iterable<[string, string]> {
  const fields = ParsedRequestHead.fieldsOf(head);
  if (fields === undefined) {
    yield* head.headers;
    return;
  }
  for (let i = 0; i < fields.length; i += 2) yield [fields[i], fields[i + 1]];
}

/** RFC 9112 §3: `method SP request-target SP HTTP-version`, single spaces. */
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP\/(\d\.\d)\r?$/;
/** RFC 9112 §4: `HTTP-version SP status-code SP [reason-phrase]`; the last SP is optional here. */
const STATUS_LINE = /^HTTP\/(\d\.\d) (\d{3})(?: ([^\r]*))?\r?$/;

/**
 * Parses an HTTP/1.x request head from the start of `bytes`, which may hold
 * only part of it, or more than it (the client's first frames can arrive in
 * the same read). Call it again with all bytes received so far until it
 * returns `complete` or `error`.
 *
 * @example
 * ```ts
 * import { parseRequestHead } from "@heartwire/heartwire/protocol";
 * const bytes = new TextEncoder().encode("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n\x81\x80");
 * const result = parseRequestHead(bytes);
 * if (result.kind === "complete") {
 *   result.head.target; // "/echo"
 *   bytes.subarray(result.headLength); // the 2 bytes of the first frame
 * }
 * ```
 */
export function parseRequestHead(
  bytes: Uint8Array,
  options: ParseHeadOptions = {},
): ParseHeadResult<HttpRequestHead> {
  const scan = scanHead(bytes, options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES);
  if (scan.kind !== "complete") return scan;
  const match = REQUEST_LINE.exec(scan.lines[0]);
  if (!match) {
    return { kind: "error", status: 400, reason: "malformed request line" };
  }
  const fields = parseFields(scan.lines, options.maxHeaderFields);
  if (!Array.isArray(fields)) return { kind: "error", ...fields };
  return {
    kind: "complete",
    head: new ParsedRequestHead(match[1], match[2], match[3], fields),
    headLength: scan.headLength,
  };
}

/**
 * Parses an HTTP/1.x response head (the server's answer to an upgrade
 * request) from the start of `bytes`; see {@linkcode parseRequestHead}.
 *
 * @example
 * ```ts
 * import { parseResponseHead } from "@heartwire/heartwire/protocol";
 * const text = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
 * const result = parseResponseHead(new TextEncoder().encode(text));
 * if (result.kind === "complete") result.head.status; // 101
 * ```
 */
export function parseResponseHead(
  bytes: Uint8Array,
  options: ParseHeadOptions = {},
): ParseHeadResult<HttpResponseHead> {
  const scan = scanHead(bytes, options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES);
  if (scan.kind !== "complete") {
    return scan.kind === "error" && scan.status === 431
      ? { ...scan, reason: "response head too large" }
      : scan;
  }
  const match = STATUS_LINE.exec(scan.lines[0]);
  if (!match) return { kind: "error", status: 400, reason: "malformed status line" };
  const fields = parseFields(scan.lines, options.maxHeaderFields);
  if (!Array.isArray(fields)) return { kind: "error", ...fields };
  const headers = headersOf(fields);
  return {
    kind: "complete",
    head: {
      version: match[1],
      status: Number(match[2]),
      statusText: match[3] ?? "",
      headers,
    },
    headLength: scan.headLength,
  };
}

/** Reason phrases (RFC 9110 §15, RFC 6585 for 429 and 431). */
const STATUS_TEXT: Record<number, string> = {
  100: "Continue",
  101: "Switching Protocols",
  200: "OK",
  204: "No Content",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  426: "Upgrade Required",
  413: "Content Too Large",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

/**
 * Options for {@linkcode buildHttpResponse}.
 */
export interface HttpResponseOptions {
  /** Body text used when `body` is not given: sent as the reason plus a newline. */
  reason?: string;
  /** Extra header fields; a field given here replaces the default of the same name. */
  headers?: Record<string, string>;
  /** The body (UTF-8). */
  body?: string;
  /** The body's type. Default `text/plain; charset=utf-8`. */
  contentType?: string;
}

/**
 * Builds a complete, small HTTP/1.1 response: status line, `Content-Type`
 * and `Content-Length` (in UTF-8 bytes) when there is a body, and
 * `Connection: close` for errors (status 400 and up), since heartwire closes
 * the connection after refusing a request. 1xx and 204 responses carry no
 * content and no `Content-Length` (RFC 9110 §8.6).
 *
 * @throws {TypeError} if the status is not a 3-digit code, or a header name
 * or value could break the response.
 *
 * @example
 * ```ts
 * import { buildHttpResponse } from "@heartwire/heartwire/protocol";
 * buildHttpResponse(404, { reason: "no route for /nope" });
 * // "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n" +
 * // "Content-Length: 19\r\nConnection: close\r\n\r\nno route for /nope\n"
 * ```
 */
export function buildHttpResponse(status: number, options: HttpResponseOptions = {}): string {
  if (!Number.isInteger(status) || status < 100 || status > 999) {
    throw new TypeError(`invalid HTTP status ${status}`);
  }
  const noContent = status < 200 || status === 204;
  const body = noContent
    ? ""
    : options.body ?? (options.reason !== undefined ? options.reason + "\n" : "");
  const fields: Record<string, string> = {};
  if (!noContent) {
    if (body !== "") fields["Content-Type"] = options.contentType ?? "text/plain; charset=utf-8";
    fields["Content-Length"] = String(encoder.encode(body).length);
  }
  if (status >= 400) fields["Connection"] = "close";
  // Caller headers win over the defaults, whatever their capitalisation.
  const extra = options.headers ?? {};
  const overridden = new Set(Object.keys(extra).map((name) => name.toLowerCase()));
  for (const name of Object.keys(fields)) {
    if (overridden.has(name.toLowerCase())) delete fields[name];
  }
  const statusText = STATUS_TEXT[status] ?? "";
  return `HTTP/1.1 ${status} ${statusText}\r\n` + headerLines(Object.entries(fields)) +
    headerLines(Object.entries(extra)) +
    "\r\n" + body;
}

// ---------------------------------------------------------------------------
// A connection's requests, one event at a time
// ---------------------------------------------------------------------------

/**
 * How a request's body is delimited (RFC 9112 §6.3).
 */
export type BodyFraming =
  | { kind: "none" }
  | { kind: "length"; length: number }
  | { kind: "chunked" };

/**
 * What {@linkcode RequestParser.next} found.
 *
 * - `request`: a head; its body (possibly empty) follows as `data` events
 *   and always ends with an `end` event. `keepAlive` tells whether the
 *   client lets the connection carry another request after this one.
 * - `data` / `end`: the body's bytes, then its end.
 * - `need-data`: feed more bytes with {@linkcode RequestParser.receive}.
 * - `closed`: the peer ended the connection between two requests.
 * - `error`: answer `status` and close; the parser stays in this state.
 */
export type RequestEvent =
  | {
    type: "request";
    head: HttpRequestHead;
    body: BodyFraming;
    keepAlive: boolean;
    /** The client sent `Expect: 100-continue` and waits for `100 Continue` before its body. */
    expectContinue: boolean;
  }
  | { type: "data"; data: Uint8Array }
  | { type: "end" }
  | { type: "need-data" }
  | { type: "closed" }
  | { type: "error"; status: 400 | 413 | 431 | 501 | 505; reason: string };

/**
 * Limits of a {@linkcode RequestParser}.
 *
 * @example
 * ```ts
 * import { RequestParser, type RequestParserOptions } from "@heartwire/heartwire/protocol";
 * const options: RequestParserOptions = { maxHeaderBytes: 8192, maxBodyBytes: 1024 * 1024 };
 * new RequestParser(options);
 * ```
 */
export interface RequestParserOptions extends ParseHeadOptions {
  /** The largest request body accepted, in bytes, before 413. Default 16 MiB. */
  maxBodyBytes?: number;
}

type State =
  | "head"
  | "empty-body"
  | "length"
  | "chunk-size"
  | "chunk-data"
  | "chunk-end"
  | "trailers"
  | "error"
  | "taken";

/** A chunk-size line longer than this is not a chunk size (RFC 9112 §7.1). */
const MAX_CHUNK_LINE = 1024;
const CHUNK_LINE = /^([0-9A-Fa-f]+)[ \t]*(?:;[\t\x20-\x7e]*)?$/;
const DIGITS = /^\d+$/;

/**
 * The server side of one HTTP/1.1 connection as a state machine: bytes in
 * with {@linkcode RequestParser.receive}, events out with
 * {@linkcode RequestParser.next}, one request after another (pipelining
 * included). It buffers at most one head plus what the caller reads at a
 * time: the caller reads more only when told `need-data`.
 *
 * @example
 * ```ts
 * import { RequestParser } from "@heartwire/heartwire/protocol";
 * const parser = new RequestParser();
 * parser.receive(new TextEncoder().encode(
 *   "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiGET / HTTP/1.1\r\nHost: a\r\n\r\n",
 * ));
 * parser.next().type; // "request" (POST /echo)
 * parser.next().type; // "data" ("hi")
 * parser.next().type; // "end"
 * parser.next().type; // "request" (GET /)
 * ```
 */
export class RequestParser {
  #buffer = new Uint8Array(0);
  #start = 0;
  #end = 0;
  #eof = false;
  #state: State = "head";
  /** Bytes left of a Content-Length body or of the current chunk. */
  #remaining = 0;
  /** Body bytes announced so far (chunked bodies grow chunk by chunk). */
  #bodyBytes = 0;
  /** Bytes of trailer section seen so far. */
  #trailerBytes = 0;
  /** Bytes of chunk extensions (and padding) in this body so far: at most `maxHeaderBytes`. */
  #extensionBytes = 0;
  /** Whether a head could have ended since the last scan (see receive()). */
  #lineSeen = false;
  #error: Extract<RequestEvent, { type: "error" }> | undefined;
  #maxHeaderBytes: number;
  #maxHeaderFields: number;
  #maxBodyBytes: number;

  /** A parser waiting for the first request of a connection. */
  constructor(options: RequestParserOptions = {}) {
    this.#maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
    this.#maxHeaderFields = options.maxHeaderFields ?? DEFAULT_MAX_HEADER_FIELDS;
    this.#maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  }

  /** Bytes received and not yet handed out as events. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Adds bytes read from the connection (they are copied). */
  receive(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.#end + bytes.length > this.#buffer.length) {
      const kept = this.#end - this.#start;
      const target = this.#buffer.length >= kept + bytes.length
        ? this.#buffer
        : new Uint8Array(Math.max(kept + bytes.length, this.#buffer.length * 2));
      target.set(this.#buffer.subarray(this.#start, this.#end));
      this.#buffer = target;
      this.#start = 0;
      this.#end = kept;
    }
    this.#buffer.set(bytes, this.#end);
    this.#end += bytes.length;
    // A head can only have ended in bytes that brought a line feed: skipping
    // the scan otherwise keeps a peer trickling one byte per packet from
    // costing a rescan of everything so far each time (quadratic work).
    if (bytes.includes(LF)) this.#lineSeen = true;
  }

  /** The peer closed its side: no more bytes will come. */
  receiveEof(): void {
    this.#eof = true;
  }

  /**
   * Hands over every byte not yet parsed and retires the parser: after a
   * `101 Switching Protocols` they belong to the new protocol.
   */
  takeRest(): Uint8Array {
    const rest = this.#buffer.slice(this.#start, this.#end);
    this.#state = "taken";
    this.#buffer = new Uint8Array(0);
    this.#start = this.#end = 0;
    return rest;
  }

  /** The next event from the bytes received so far. */
  next(): RequestEvent {
    switch (this.#state) {
      case "head":
        return this.#head();
      case "empty-body":
        return this.#endBody();
      case "length":
        return this.#lengthData();
      case "chunk-size":
        return this.#chunkSize();
      case "chunk-data":
        return this.#chunkData();
      case "chunk-end":
        return this.#chunkEnd();
      case "trailers":
        return this.#trailers();
      case "error":
        return this.#error!;
      case "taken":
        throw new Error("the parser's bytes were taken by an upgrade");
    }
  }

  #fail(status: 400 | 413 | 431 | 501 | 505, reason: string): RequestEvent {
    this.#state = "error";
    this.#error = { type: "error", status, reason };
    return this.#error;
  }

  #needData(what: string): RequestEvent {
    return this.#eof ? this.#fail(400, `connection closed in the middle of ${what}`) : {
      type: "need-data",
    };
  }

  #head(): RequestEvent {
    const buffered = this.#end - this.#start;
    if (!this.#lineSeen && buffered <= this.#maxHeaderBytes) {
      if (!this.#eof) return { type: "need-data" };
      return this.#onlyBlankLines() ? { type: "closed" } : this.#needData("a request head");
    }
    this.#lineSeen = false;
    const parsed = parseRequestHead(this.#buffer.subarray(this.#start, this.#end), {
      maxHeaderBytes: this.#maxHeaderBytes,
      maxHeaderFields: this.#maxHeaderFields,
    });
    if (parsed.kind === "error") return this.#fail(parsed.status, parsed.reason);
    if (parsed.kind === "incomplete") {
      if (!this.#eof) return { type: "need-data" };
      return this.#onlyBlankLines() ? { type: "closed" } : this.#needData("a request head");
    }
    const { head } = parsed;
    this.#start += parsed.headLength;
    // There may be a whole next request behind this one (pipelining).
    this.#lineSeen = true;
    if (head.version[0] !== "1") {
      return this.#fail(505, `HTTP/${head.version} is not supported`);
    }
    const body = this.#framing(head);
    if ("status" in body) return this.#fail(body.status, body.reason);
    const http10 = head.version === "1.0";
    const connection = headerValue(head, "connection");
    const keepAlive = http10 ? hasToken(connection, "keep-alive") : !hasToken(connection, "close");
    const expectContinue = !http10 && body.kind !== "none" &&
      (headerValue(head, "expect") ?? "").toLowerCase() === "100-continue";
    this.#bodyBytes = 0;
    this.#extensionBytes = 0;
    if (body.kind === "none") this.#state = "empty-body";
    else if (body.kind === "length") {
      this.#remaining = body.length;
      this.#state = body.length === 0 ? "empty-body" : "length";
    } else this.#state = "chunk-size";
    return { type: "request", head, body, keepAlive, expectContinue };
  }

  /** Whether the bytes left are only the empty lines §2.2 lets us skip. */
  #onlyBlankLines(): boolean {
    for (let i = this.#start; i < this.#end; i++) {
      if (this.#buffer[i] !== LF && this.#buffer[i] !== CR) return false;
    }
    return true;
  }

  /** RFC 9112 §6.3: which body follows this head, or why it cannot be told. */
  #framing(
    head: HttpRequestHead,
  ): BodyFraming | { status: 400 | 413 | 501; reason: string } {
    const transferEncoding = headerValue(head, "transfer-encoding");
    const contentLength = headerValue(head, "content-length");
    if (transferEncoding !== null) {
      if (contentLength !== null) {
        return { status: 400, reason: "both Transfer-Encoding and Content-Length" };
      }
      if (head.version === "1.0") {
        return { status: 400, reason: "Transfer-Encoding in an HTTP/1.0 request" };
      }
      const codings = tokenList(transferEncoding).map((coding) => coding.toLowerCase());
      if (codings[codings.length - 1] !== "chunked") {
        return { status: 400, reason: "the last transfer coding must be chunked" };
      }
      if (codings.length > 1) {
        return { status: 501, reason: `unsupported transfer coding ${codings[0]}` };
      }
      return { kind: "chunked" };
    }
    if (contentLength === null) return { kind: "none" };
    // Repeated fields arrive joined by ", "; they must all say the same (§6.3.5).
    const values = contentLength.split(",").map((value) => value.trim());
    if (!values.every((value) => DIGITS.test(value) && value === values[0])) {
      return { status: 400, reason: `invalid Content-Length ${JSON.stringify(contentLength)}` };
    }
    const length = values[0].length > 15 ? Infinity : Number(values[0]);
    if (length > this.#maxBodyBytes) {
      return { status: 413, reason: `body over ${this.#maxBodyBytes} bytes` };
    }
    return { kind: "length", length };
  }

  #endBody(): RequestEvent {
    this.#state = "head";
    return { type: "end" };
  }

  /** Hands out up to `#remaining` buffered body bytes (a copy: the buffer is reused). */
  #take(): Uint8Array {
    const n = Math.min(this.#remaining, this.#end - this.#start);
    const data = this.#buffer.slice(this.#start, this.#start + n);
    this.#start += n;
    this.#remaining -= n;
    return data;
  }

  #lengthData(): RequestEvent {
    if (this.#remaining === 0) return this.#endBody();
    if (this.#start === this.#end) return this.#needData("a request body");
    return { type: "data", data: this.#take() };
  }

  /** Finds a CRLF-ended line at the start of the buffer; the index of its CR, or -1. */
  #lineEnd(): number {
    for (let i = this.#start; i < this.#end; i++) {
      if (this.#buffer[i] === LF) return i > this.#start && this.#buffer[i - 1] === CR ? i - 1 : -2;
    }
    return -1;
  }

  #chunkSize(): RequestEvent {
    const cr = this.#lineEnd();
    if (cr === -2) return this.#fail(400, "chunk line not ended by CRLF");
    if (cr === -1) {
      if (this.#end - this.#start > MAX_CHUNK_LINE) return this.#fail(400, "chunk line too long");
      return this.#needData("a chunked body");
    }
    const line = decoder.decode(this.#buffer.subarray(this.#start, cr));
    const match = CHUNK_LINE.exec(line);
    if (!match) return this.#fail(400, `malformed chunk size line ${JSON.stringify(line)}`);
    this.#start = cr + 2;
    // Extensions are read and dropped, but they cost the same work as body
    // bytes: 1 KiB lines around 1-byte chunks would let a thousand times the
    // body limit through (the shape of CVE-2024-22019 in Node.js).
    this.#extensionBytes += line.length - match[1].length;
    if (this.#extensionBytes > this.#maxHeaderBytes) {
      return this.#fail(400, `chunk extensions over ${this.#maxHeaderBytes} bytes`);
    }
    const digits = match[1].replace(/^0+(?=.)/, "");
    const size = digits.length > 12 ? Infinity : parseInt(digits, 16);
    this.#bodyBytes += size;
    if (this.#bodyBytes > this.#maxBodyBytes) {
      return this.#fail(413, `body over ${this.#maxBodyBytes} bytes`);
    }
    if (size === 0) {
      this.#trailerBytes = 0;
      this.#state = "trailers";
      return this.#trailers();
    }
    this.#remaining = size;
    this.#state = "chunk-data";
    return this.#chunkData();
  }

  #chunkData(): RequestEvent {
    if (this.#start === this.#end) return this.#needData("a chunked body");
    const data = this.#take();
    if (this.#remaining === 0) this.#state = "chunk-end";
    return { type: "data", data };
  }

  #chunkEnd(): RequestEvent {
    if (this.#end - this.#start < 2) return this.#needData("a chunked body");
    if (this.#buffer[this.#start] !== CR || this.#buffer[this.#start + 1] !== LF) {
      return this.#fail(400, "chunk data not followed by CRLF");
    }
    this.#start += 2;
    this.#state = "chunk-size";
    return this.#chunkSize();
  }

  /** §7.1.2: trailer fields are read and dropped (nothing here asks for them). */
  #trailers(): RequestEvent {
    for (;;) {
      const cr = this.#lineEnd();
      if (cr === -2) return this.#fail(400, "trailer line not ended by CRLF");
      if (cr === -1) {
        if (this.#trailerBytes + this.#end - this.#start > this.#maxHeaderBytes) {
          return this.#fail(431, "trailer section too large");
        }
        return this.#needData("a chunked body's trailers");
      }
      const length = cr + 2 - this.#start;
      this.#start = cr + 2;
      this.#trailerBytes += length;
      if (this.#trailerBytes > this.#maxHeaderBytes) {
        return this.#fail(431, "trailer section too large");
      }
      if (length === 2) return this.#endBody();
    }
  }
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

/**
 * How a response's body is sent (RFC 9112 §6): `length` bytes, chunked,
 * until the connection closes (HTTP/1.0 clients, who cannot read chunks),
 * or no body at all.
 */
export type ResponseBody = { length: number } | "chunked" | "until-close" | "none";

/**
 * Options for {@linkcode buildResponseHead}.
 */
export interface ResponseHeadOptions {
  /** The reason phrase. Default: the standard one for the status. */
  statusText?: string;
  /**
   * Header fields. Framing fields (`Content-Length`, `Transfer-Encoding`,
   * `Connection`, `Keep-Alive`) are dropped: the writer sets them from `body`
   * and `connection`.
   */
  headers?: Iterable<[string, string]>;
  /** How the body is sent. */
  body: ResponseBody;
  /** Sent as the `Connection` field when given. */
  connection?: "close" | "keep-alive";
}

const FRAMING_FIELDS = new Set(["content-length", "transfer-encoding", "connection", "keep-alive"]);

/**
 * Builds a response's status line and header section (RFC 9112 §4, §6).
 * 1xx, 204 and 304 responses get no framing field (RFC 9110 §8.6).
 *
 * @throws {TypeError} if the status is not a 3-digit code, or a field or the
 * reason phrase could break the response.
 *
 * @example
 * ```ts
 * import { buildResponseHead } from "@heartwire/heartwire/protocol";
 * buildResponseHead(200, { headers: [["content-type", "text/plain"]], body: "chunked" });
 * // "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
 * ```
 */
export function buildResponseHead(status: number, options: ResponseHeadOptions): string {
  if (!Number.isInteger(status) || status < 100 || status > 999) {
    throw new TypeError(`invalid HTTP status ${status}`);
  }
  const statusText = options.statusText || STATUS_TEXT[status] || "";
  if (!FIELD_VALUE.test(statusText)) {
    throw new TypeError(`invalid reason phrase ${JSON.stringify(statusText)}`);
  }
  const fields: [string, string][] = [];
  for (const field of options.headers ?? []) {
    if (!FRAMING_FIELDS.has(field[0].toLowerCase())) fields.push(field);
  }
  const body = options.body;
  if (status >= 200 && status !== 204 && status !== 304) {
    if (body === "chunked") fields.push(["Transfer-Encoding", "chunked"]);
    else if (typeof body === "object") fields.push(["Content-Length", String(body.length)]);
  }
  if (options.connection) fields.push(["Connection", options.connection]);
  return `HTTP/1.1 ${status} ${statusText}\r\n` + headerLines(fields) + "\r\n";
}

/**
 * Frames `data` as one chunk of a chunked body (RFC 9112 §7.1): size in hex,
 * CRLF, the bytes, CRLF. An empty `data` would end the body, so it is
 * refused; send {@linkcode LAST_CHUNK} for that.
 *
 * @throws {RangeError} if `data` is empty.
 *
 * @example
 * ```ts
 * import { encodeChunk } from "@heartwire/heartwire/protocol";
 * encodeChunk(new TextEncoder().encode("hello")); // "5\r\nhello\r\n" as bytes
 * ```
 */
export function encodeChunk(data: Uint8Array): Uint8Array {
  if (data.length === 0) throw new RangeError("an empty chunk would end the body");
  const size = encoder.encode(data.length.toString(16) + "\r\n");
  const out = new Uint8Array(size.length + data.length + 2);
  out.set(size);
  out.set(data, size.length);
  out[out.length - 2] = CR;
  out[out.length - 1] = LF;
  return out;
}

/**
 * The end of a chunked body: a zero-size chunk and no trailers (RFC 9112 §7.1).
 *
 * @example
 * ```ts
 * import { LAST_CHUNK } from "@heartwire/heartwire/protocol";
 * LAST_CHUNK; // "0\r\n\r\n"
 * ```
 */
export const LAST_CHUNK = "0\r\n\r\n";
