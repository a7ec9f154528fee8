/**
 * The opening handshake (RFC 6455 §4): an HTTP/1.1 request that asks to
 * upgrade, answered by `101 Switching Protocols`.
 *
 * Everything here is sans-I/O: it parses bytes the caller read and builds the
 * text the caller writes.
 *
 * Server side: {@linkcode parseRequestHead} → {@linkcode validateUpgradeRequest}
 * → {@linkcode buildUpgradeResponse} (or {@linkcode buildHttpResponse} to refuse).
 *
 * Client side: {@linkcode generateKey} → {@linkcode buildUpgradeRequest} →
 * {@linkcode parseResponseHead} → {@linkcode verifyUpgradeResponse}.
 *
 * ```text
 * GET /chat HTTP/1.1                          HTTP/1.1 101 Switching Protocols
 * Host: server.example.com                    Upgrade: websocket
 * Upgrade: websocket                          Connection: Upgrade
 * Connection: Upgrade                         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
 * Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
 * Sec-WebSocket-Version: 13
 * ```
 *
 * HTTP parsing choices (RFC 9112):
 * - Lines may end in CRLF or in a lone LF (§2.2 allows recognising a single
 *   LF). This parser never forwards a request to another server, so reading
 *   bare LF cannot create a disagreement with a downstream parser, and it
 *   lets people type requests by hand with `nc`. A bare CR is rejected (§2.2).
 * - Empty lines before the start line are skipped (§2.2).
 * - The head must be ASCII with no control characters other than HTAB:
 *   non-ASCII bytes (obs-text) have no use in a WebSocket handshake, and
 *   rejecting them at once also fails a TLS ClientHello sent to a plain port
 *   without waiting for a timeout.
 * - Whitespace between a field name and its colon (§5.1) and obsolete line
 *   folding (§5.2) are rejected with 400.
 * - At most 100 header fields by default, else 431 (RFC 6585 §5): a browser's
 *   upgrade request has about 15, and each field costs a search of the ones
 *   before it in `Headers`, so 16 KiB of tiny fields would cost O(n²).
 *
 * @module
 */

import { sha1 } from "./_sha1.ts";

/** RFC 6455 §1.3: the GUID appended to the client's key before hashing. */
const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
const DEFAULT_MAX_HEADER_FIELDS = 100;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** RFC 9110 §5.6.2: `token = 1*tchar`. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/**
 * RFC 9110 §5.5: a field value holds visible characters, SP and HTAB. Like the
 * parser, the builders stay within ASCII (no obs-text).
 */
const FIELD_VALUE = /^[\t\x20-\x7e]*$/;

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
  return btoa(binary);
}

/**
 * Computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: the base64 of the
 * SHA-1 of the key followed by the WebSocket GUID (RFC 6455 §4.2.2).
 *
 * @example
 * ```ts
 * import { acceptKey } from "@heartwire/heartwire/protocol";
 * acceptKey("dGhlIHNhbXBsZSBub25jZQ=="); // "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
 * ```
 */
export function acceptKey(key: string): string {
  return toBase64(sha1(encoder.encode(key + WEBSOCKET_GUID)));
}

// ---------------------------------------------------------------------------
// Parsing heads
// ---------------------------------------------------------------------------

/**
 * A parsed HTTP request head.
 *
 * @example
 * ```ts
 * import type { HttpRequestHead } from "@heartwire/heartwire/protocol";
 * const head: HttpRequestHead = {
 *   method: "GET",
 *   target: "/echo",
 *   version: "1.1",
 *   headers: new Headers({ host: "localhost" }),
 * };
 * ```
 */
export interface HttpRequestHead {
  /** The method, case preserved (methods are case-sensitive, RFC 9110 §9.1). */
  method: string;
  /** The request target as sent, e.g. `/ws?id=alice`. */
  target: string;
  /** The HTTP version without the `HTTP/` prefix, e.g. `"1.1"`. */
  version: string;
  /** The header fields; repeated fields are combined with ", ". */
  headers: Headers;
}

/**
 * A parsed HTTP response head.
 *
 * @example
 * ```ts
 * import type { HttpResponseHead } from "@heartwire/heartwire/protocol";
 * const head: HttpResponseHead = {
 *   version: "1.1",
 *   status: 101,
 *   statusText: "Switching Protocols",
 *   headers: new Headers({ upgrade: "websocket" }),
 * };
 * ```
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
 * Parses header field lines (RFC 9112 §5) into a Headers object, or returns
 * the error to answer with. `lines[0]`, the start line, is skipped.
 */
function parseFields(
  lines: string[],
  maxFields = DEFAULT_MAX_HEADER_FIELDS,
): Headers | { status: 400 | 431; reason: string } {
  if (lines.length - 1 > maxFields) {
    return { status: 431, reason: `more than ${maxFields} header fields` };
  }
  const malformed = (reason: string) => ({ status: 400 as const, reason });
  const headers = new Headers();
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
    headers.append(name, line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, ""));
  }
  return headers;
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
  const headers = parseFields(scan.lines, options.maxHeaderFields);
  if (!(headers instanceof Headers)) return { kind: "error", ...headers };
  return {
    kind: "complete",
    head: { method: match[1], target: match[2], version: match[3], headers },
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
  const headers = parseFields(scan.lines, options.maxHeaderFields);
  if (!(headers instanceof Headers)) return { kind: "error", ...headers };
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

// ---------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------

/**
 * Splits a comma-separated list header (RFC 9110 §5.6.1) into its non-empty,
 * trimmed elements.
 */
function tokenList(value: string | null): string[] {
  if (value === null) return [];
  const items: string[] = [];
  for (const part of value.split(",")) {
    const item = part.trim();
    if (item !== "") items.push(item);
  }
  return items;
}

/** Whether a list header contains `token`, compared ASCII case-insensitively. */
function hasToken(value: string | null, token: string): boolean {
  return tokenList(value).some((item) => item.toLowerCase() === token);
}

/**
 * `Sec-WebSocket-Key` must be base64 of 16 bytes (§4.1): 22 characters, the
 * last of which carries only 2 data bits (so its low 4 bits are zero: A, Q,
 * g or w), then `==`. Anything else is not a canonical encoding.
 */
const KEY_PATTERN = /^[A-Za-z0-9+/]{21}[AQgw]==$/;

/**
 * Options for {@linkcode validateUpgradeRequest}.
 *
 * @example
 * ```ts
 * import type { ValidateUpgradeOptions } from "@heartwire/heartwire/protocol";
 * const options: ValidateUpgradeOptions = { protocols: ["chat.v2", "chat.v1"] };
 * ```
 */
export interface ValidateUpgradeOptions {
  /** The subprotocols this endpoint speaks, most preferred first. */
  protocols?: string[];
}

/**
 * Whether an upgrade request may proceed: with the key and the chosen
 * subprotocol, or with the HTTP status (and headers) to refuse it with.
 *
 * @example
 * ```ts
 * import type { UpgradeDecision } from "@heartwire/heartwire/protocol";
 * const refusal: UpgradeDecision = { ok: false, status: 405, reason: "method must be GET" };
 * ```
 */
export type UpgradeDecision =
  | { ok: true; key: string; protocol?: string; origin?: string }
  | { ok: false; status: 400 | 405 | 426; reason: string; headers?: Record<string, string> };

/**
 * Checks an upgrade request against RFC 6455 §4.2.1, in this order:
 *
 * | check | failure |
 * |---|---|
 * | method is GET | 405, `Allow: GET` |
 * | HTTP/1.1 or a later 1.x | 400 |
 * | exactly one non-empty `Host` | 400 |
 * | no content: no `Transfer-Encoding`, `Content-Length` absent or 0 | 400 |
 * | `Upgrade` lists `websocket` | 426, `Upgrade: websocket` |
 * | `Connection` lists `upgrade` | 400 |
 * | `Sec-WebSocket-Version` is `13` | 426, `Sec-WebSocket-Version: 13` (§4.4) |
 * | `Sec-WebSocket-Key` is base64 of 16 bytes | 400 |
 *
 * 426 means "this resource needs a protocol you did not ask for", so it is
 * used where the client can fix the request by upgrading (a plain GET, an
 * old WebSocket version). A request that asks for websocket but lacks
 * `Connection: upgrade` is simply malformed: 400, as §4.2.1 prescribes for a
 * handshake the server cannot understand.
 *
 * The subprotocol is the first of `options.protocols` that the client offered
 * in `Sec-WebSocket-Protocol` (§4.2.2 /subprotocol/); none if there is no
 * match, which is not an error — the client decides whether to go on.
 * Extensions are never negotiated, so `Sec-WebSocket-Extensions` is ignored
 * (§9.1).
 *
 * @example
 * ```ts
 * import { parseRequestHead, validateUpgradeRequest } from "@heartwire/heartwire/protocol";
 * const text = "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n" +
 *   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
 *   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\n\r\n";
 * const parsed = parseRequestHead(new TextEncoder().encode(text));
 * if (parsed.kind === "complete") {
 *   validateUpgradeRequest(parsed.head, { protocols: ["superchat"] });
 *   // { ok: true, key: "dGhlIHNhbXBsZSBub25jZQ==", protocol: "superchat" }
 * }
 * ```
 */
export function validateUpgradeRequest(
  head: HttpRequestHead,
  options: ValidateUpgradeOptions = {},
): UpgradeDecision {
  const headers = head.headers;
  if (head.method !== "GET") {
    return {
      ok: false,
      status: 405,
      reason: `method must be GET, got ${head.method}`,
      headers: { Allow: "GET" },
    };
  }
  const [major, minor] = head.version.split(".").map(Number);
  if (major !== 1 || !(minor >= 1)) {
    return { ok: false, status: 400, reason: `HTTP/1.1 required, got HTTP/${head.version}` };
  }
  const host = headers.get("host");
  // RFC 9112 §3.2: a request with no Host, or more than one, gets 400. Two
  // Host lines reach us combined as "a, b"; a host never contains a comma.
  if (host === null || host === "" || host.includes(",")) {
    return { ok: false, status: 400, reason: "exactly one Host header is required" };
  }
  // RFC 9112 §6.3: these headers announce content, which would sit between the
  // head and the first frame. Reading those bytes as frames would disagree with
  // any proxy in between about where the frames start, so refuse (§4.2.1).
  const contentLength = headers.get("content-length");
  if (headers.has("transfer-encoding") || (contentLength !== null && contentLength !== "0")) {
    return { ok: false, status: 400, reason: "an upgrade request must not have content" };
  }
  if (!hasToken(headers.get("upgrade"), "websocket")) {
    return {
      ok: false,
      status: 426,
      reason: "this resource needs a WebSocket upgrade",
      headers: { Upgrade: "websocket" }, // RFC 9110 §15.5.22: a 426 names the protocol
    };
  }
  if (!hasToken(headers.get("connection"), "upgrade")) {
    return { ok: false, status: 400, reason: 'Connection header must include "Upgrade"' };
  }
  const version = headers.get("sec-websocket-version");
  if (version !== "13") {
    return {
      ok: false,
      status: 426,
      reason: version === null
        ? "Sec-WebSocket-Version is missing"
        : `unsupported WebSocket version ${version}`,
      headers: { "Sec-WebSocket-Version": "13" },
    };
  }
  const key = headers.get("sec-websocket-key");
  if (key === null || !KEY_PATTERN.test(key)) {
    return {
      ok: false,
      status: 400,
      reason: key === null
        ? "Sec-WebSocket-Key is missing"
        : "Sec-WebSocket-Key must be the base64 of 16 bytes",
    };
  }
  const decision: UpgradeDecision = { ok: true, key };
  const offered = tokenList(headers.get("sec-websocket-protocol"));
  const protocol = options.protocols?.find((candidate) => offered.includes(candidate));
  if (protocol !== undefined) decision.protocol = protocol;
  const origin = headers.get("origin");
  if (origin !== null) decision.origin = origin;
  return decision;
}

/** Renders `Name: value\r\n` lines, refusing anything that could inject a line. */
function headerLines(headers: Record<string, string>): string {
  let text = "";
  for (const [name, value] of Object.entries(headers)) {
    if (!TOKEN.test(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
    if (!FIELD_VALUE.test(value)) {
      throw new TypeError(`invalid value for header ${name}: ${JSON.stringify(value)}`);
    }
    text += `${name}: ${value}\r\n`;
  }
  return text;
}

/**
 * Options for {@linkcode buildUpgradeResponse}.
 *
 * @example
 * ```ts
 * import type { UpgradeResponseOptions } from "@heartwire/heartwire/protocol";
 * const options: UpgradeResponseOptions = { protocol: "chat", headers: { "X-Served-By": "a" } };
 * ```
 */
export interface UpgradeResponseOptions {
  /** The chosen subprotocol, sent as `Sec-WebSocket-Protocol`. */
  protocol?: string;
  /** Extra header fields. */
  headers?: Record<string, string>;
}

/**
 * Builds the `101 Switching Protocols` response that completes the handshake
 * (RFC 6455 §4.2.2). After it, both ends speak WebSocket frames.
 *
 * @throws {TypeError} if a header name or value could break the response.
 *
 * @example
 * ```ts
 * import { buildUpgradeResponse } from "@heartwire/heartwire/protocol";
 * buildUpgradeResponse("dGhlIHNhbXBsZSBub25jZQ==");
 * // "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
 * // "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
 * ```
 */
export function buildUpgradeResponse(key: string, options: UpgradeResponseOptions = {}): string {
  const fields: Record<string, string> = {
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Accept": acceptKey(key),
  };
  if (options.protocol !== undefined) {
    if (!TOKEN.test(options.protocol)) {
      throw new TypeError(`invalid subprotocol ${JSON.stringify(options.protocol)}`);
    }
    fields["Sec-WebSocket-Protocol"] = options.protocol;
  }
  return "HTTP/1.1 101 Switching Protocols\r\n" + headerLines(fields) +
    headerLines(options.headers ?? {}) + "\r\n";
}

/** Reason phrases (RFC 9110 §15, RFC 6585 for 429 and 431). */
const STATUS_TEXT: Record<number, string> = {
  101: "Switching Protocols",
  200: "OK",
  204: "No Content",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  426: "Upgrade Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/**
 * Options for {@linkcode buildHttpResponse}.
 *
 * @example
 * ```ts
 * import type { HttpResponseOptions } from "@heartwire/heartwire/protocol";
 * const options: HttpResponseOptions = { body: "ok\n", headers: { "Cache-Control": "no-store" } };
 * ```
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
  return `HTTP/1.1 ${status} ${statusText}\r\n` + headerLines(fields) + headerLines(extra) +
    "\r\n" + body;
}

// ---------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------

/**
 * A fresh `Sec-WebSocket-Key`: 16 random bytes, base64-encoded (RFC 6455 §4.1).
 *
 * @example
 * ```ts
 * import { generateKey } from "@heartwire/heartwire/protocol";
 * generateKey(); // e.g. "x3JJHMbDL1EzLkh9GBhXDw=="
 * ```
 */
export function generateKey(): string {
  return toBase64(crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * Options for {@linkcode buildUpgradeRequest}.
 *
 * @example
 * ```ts
 * import { buildUpgradeRequest, generateKey, type UpgradeRequestOptions } from "@heartwire/heartwire/protocol";
 * const options: UpgradeRequestOptions = { host: "localhost:8080", path: "/ws", key: generateKey() };
 * buildUpgradeRequest(options);
 * ```
 */
export interface UpgradeRequestOptions {
  /** The `Host` value: host, and port if not the default. */
  host: string;
  /** The resource name: path and query, starting with "/". */
  path: string;
  /** The `Sec-WebSocket-Key`, from {@linkcode generateKey}. */
  key: string;
  /** Subprotocols to offer, most preferred first. */
  protocols?: string[];
  /** The `Origin` to send (browsers always send one; other clients may). */
  origin?: string;
  /** Extra header fields. */
  headers?: Record<string, string>;
}

/**
 * Builds the client's upgrade request (RFC 6455 §4.1).
 *
 * @throws {TypeError} for a path that is not origin-form, a subprotocol that
 * is not a token or is repeated, or a header that could break the request.
 *
 * @example
 * ```ts
 * import { buildUpgradeRequest } from "@heartwire/heartwire/protocol";
 * buildUpgradeRequest({ host: "server.example.com", path: "/chat", key: "dGhlIHNhbXBsZSBub25jZQ==" });
 * // "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n" +
 * // "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
 * // "Sec-WebSocket-Version: 13\r\n\r\n"
 * ```
 */
export function buildUpgradeRequest(options: UpgradeRequestOptions): string {
  if (!/^\/[\x21-\x7e]*$/.test(options.path)) {
    throw new TypeError(`path must start with "/" and hold no spaces: ${options.path}`);
  }
  const fields: Record<string, string> = {
    Host: options.host,
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": options.key,
    "Sec-WebSocket-Version": "13",
  };
  const protocols = options.protocols ?? [];
  if (protocols.length > 0) {
    // §4.1: each subprotocol is a token and appears once.
    for (const protocol of protocols) {
      if (!TOKEN.test(protocol)) {
        throw new TypeError(`invalid subprotocol ${JSON.stringify(protocol)}`);
      }
    }
    if (new Set(protocols).size !== protocols.length) {
      throw new TypeError("subprotocols must be unique");
    }
    fields["Sec-WebSocket-Protocol"] = protocols.join(", ");
  }
  if (options.origin !== undefined) fields["Origin"] = options.origin;
  return `GET ${options.path} HTTP/1.1\r\n` + headerLines(fields) +
    headerLines(options.headers ?? {}) + "\r\n";
}

/**
 * Options for {@linkcode verifyUpgradeResponse}.
 *
 * @example
 * ```ts
 * import type { VerifyUpgradeOptions } from "@heartwire/heartwire/protocol";
 * const options: VerifyUpgradeOptions = { protocols: ["chat"] };
 * ```
 */
export interface VerifyUpgradeOptions {
  /** The subprotocols the request offered. */
  protocols?: string[];
}

/**
 * The client's verdict on the server's answer.
 *
 * @example
 * ```ts
 * import type { UpgradeVerdict } from "@heartwire/heartwire/protocol";
 * const verdict: UpgradeVerdict = { ok: false, reason: "expected status 101, got 404" };
 * ```
 */
export type UpgradeVerdict = { ok: true; protocol?: string } | { ok: false; reason: string };

/**
 * Checks the server's answer to an upgrade request (RFC 6455 §4.1, the
 * client's checks on the response). The connection must be failed unless:
 * the status is 101; `Upgrade` lists `websocket` and `Connection` lists
 * `upgrade` (case-insensitively); `Sec-WebSocket-Accept` equals
 * `acceptKey(key)`; no extension was accepted (none was asked for); and a
 * `Sec-WebSocket-Protocol`, if present, names one of the offered subprotocols.
 *
 * @example
 * ```ts
 * import { parseResponseHead, verifyUpgradeResponse } from "@heartwire/heartwire/protocol";
 * const text = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
 *   "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
 * const parsed = parseResponseHead(new TextEncoder().encode(text));
 * if (parsed.kind === "complete") {
 *   verifyUpgradeResponse(parsed.head, "dGhlIHNhbXBsZSBub25jZQ=="); // { ok: true }
 * }
 * ```
 */
export function verifyUpgradeResponse(
  head: HttpResponseHead,
  key: string,
  options: VerifyUpgradeOptions = {},
): UpgradeVerdict {
  const headers = head.headers;
  if (head.status !== 101) {
    return { ok: false, reason: `expected status 101, got ${head.status}` };
  }
  if (!hasToken(headers.get("upgrade"), "websocket")) {
    return { ok: false, reason: 'Upgrade header must be "websocket"' };
  }
  if (!hasToken(headers.get("connection"), "upgrade")) {
    return { ok: false, reason: 'Connection header must include "Upgrade"' };
  }
  const accept = headers.get("sec-websocket-accept");
  if (accept !== acceptKey(key)) {
    return {
      ok: false,
      reason: accept === null
        ? "Sec-WebSocket-Accept is missing"
        : "Sec-WebSocket-Accept does not match the key",
    };
  }
  if (headers.has("sec-websocket-extensions")) {
    return { ok: false, reason: "the server accepted an extension that was not requested" };
  }
  const protocol = headers.get("sec-websocket-protocol");
  if (protocol === null) return { ok: true };
  if (!(options.protocols ?? []).includes(protocol)) {
    return { ok: false, reason: `the server chose subprotocol ${protocol}, which was not offered` };
  }
  return { ok: true, protocol };
}
