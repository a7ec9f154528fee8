/**
 * The opening handshake (RFC 6455 §4): an HTTP/1.1 request that asks to
 * upgrade, answered by `101 Switching Protocols`.
 *
 * Everything here is sans-I/O: it checks heads the caller parsed (with
 * http1.ts) and builds the text the caller writes.
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
 * @module
 */

import { sha1 } from "./_sha1.ts";
import { hasToken, headerLines, TOKEN, tokenList } from "./_fields.ts";
import { headerValue, type HttpRequestHead, type HttpResponseHead } from "./http1.ts";
// The head types moved to http1.ts; importing them from here keeps working.
export type { HttpRequestHead, HttpResponseHead } from "./http1.ts";

/** RFC 6455 §1.3: the GUID appended to the client's key before hashing. */
const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const encoder = new TextEncoder();

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
// Server side
// ---------------------------------------------------------------------------

/**
 * `Sec-WebSocket-Key` must be base64 of 16 bytes (§4.1): 22 characters, the
 * last of which carries only 2 data bits (so its low 4 bits are zero: A, Q,
 * g or w), then `==`. Anything else is not a canonical encoding.
 */
const KEY_PATTERN = /^[A-Za-z0-9+/]{21}[AQgw]==$/;

/**
 * Options for {@linkcode validateUpgradeRequest}.
 */
export interface ValidateUpgradeOptions {
  /** The subprotocols this endpoint speaks, most preferred first. */
  protocols?: string[];
}

/**
 * Whether an upgrade request may proceed: with the key and the chosen
 * subprotocol, or with the HTTP status (and headers) to refuse it with.
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
 * `Sec-WebSocket-Extensions` is not looked at here: extensions (§9.1) are
 * negotiated separately, permessage-deflate by {@linkcode negotiateDeflate}.
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
  // Read from the parsed field list: most upgrades never need a Headers.
  const field = (name: string) => headerValue(head, name);
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
  const host = field("host");
  // RFC 9112 §3.2: a request with no Host, or more than one, gets 400. Two
  // Host lines reach us combined as "a, b"; a host never contains a comma.
  if (host === null || host === "" || host.includes(",")) {
    return { ok: false, status: 400, reason: "exactly one Host header is required" };
  }
  // RFC 9112 §6.3: these headers announce content, which would sit between the
  // head and the first frame. Reading those bytes as frames would disagree with
  // any proxy in between about where the frames start, so refuse (§4.2.1).
  const contentLength = field("content-length");
  if (field("transfer-encoding") !== null || (contentLength !== null && contentLength !== "0")) {
    return { ok: false, status: 400, reason: "an upgrade request must not have content" };
  }
  if (!hasToken(field("upgrade"), "websocket")) {
    return {
      ok: false,
      status: 426,
      reason: "this resource needs a WebSocket upgrade",
      headers: { Upgrade: "websocket" }, // RFC 9110 §15.5.22: a 426 names the protocol
    };
  }
  if (!hasToken(field("connection"), "upgrade")) {
    return { ok: false, status: 400, reason: 'Connection header must include "Upgrade"' };
  }
  const version = field("sec-websocket-version");
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
  const key = field("sec-websocket-key");
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
  const offered = tokenList(field("sec-websocket-protocol"));
  const protocol = options.protocols?.find((candidate) => offered.includes(candidate));
  if (protocol !== undefined) decision.protocol = protocol;
  const origin = field("origin");
  if (origin !== null) decision.origin = origin;
  return decision;
}

/** Renders `Name: value\r\n` lines, refusing anything that could inject a line. */
/**
 * Options for {@linkcode buildUpgradeResponse}.
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
  return "HTTP/1.1 101 Switching Protocols\r\n" + headerLines(Object.entries(fields)) +
    headerLines(Object.entries(options.headers ?? {})) + "\r\n";
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
  return `GET ${options.path} HTTP/1.1\r\n` + headerLines(Object.entries(fields)) +
    headerLines(Object.entries(options.headers ?? {})) + "\r\n";
}

/**
 * Options for {@linkcode verifyUpgradeResponse}.
 */
export interface VerifyUpgradeOptions {
  /** The subprotocols the request offered. */
  protocols?: string[];
}

/**
 * The client's verdict on the server's answer.
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
