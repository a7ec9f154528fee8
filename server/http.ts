/**
 * The HTTP/1.1 side of the server: read one request head from a fresh TCP
 * connection (bounded in size and time), and write plain responses.
 *
 * @module
 */
import {
  buildHttpResponse,
  type HttpRequestHead,
  parseRequestHead,
} from "../protocol/handshake.ts";

/**
 * The outcome of reading a request head.
 *
 * - `request`: a complete head, and the bytes after it (a client may send its
 *   first frames right behind the handshake; they must not be lost).
 * - `error`: an HTTP status to answer with (400 malformed, 431 too large).
 * - `closed`: the peer went away (or the read was cut off by the timeout).
 *
 * @example
 * ```ts ignore
 * import type { HeadResult } from "@heartwire/heartwire/server";
 * declare const result: HeadResult;
 * if (result.kind === "request") console.log(result.head.target);
 * ```
 */
export type HeadResult =
  | { kind: "request"; head: HttpRequestHead; rest: Uint8Array }
  | { kind: "error"; status: number; reason: string }
  | { kind: "closed" };

/** First size of the buffer a request head is read into. */
const HEAD_BUFFER_START = 2048;

/**
 * Reads from `conn` until a whole request head arrived, at most `maxHeaderBytes`.
 * The caller enforces the time limit by closing `conn`, which ends the read.
 *
 * @example
 * ```ts ignore
 * import { readRequestHead } from "@heartwire/heartwire/server";
 * declare const conn: Deno.Conn;
 * const result = await readRequestHead(conn, 16 * 1024);
 * ```
 */
export async function readRequestHead(
  conn: Deno.Conn,
  maxHeaderBytes: number,
): Promise<HeadResult> {
  // Reading into at most one byte more than the limit: filling that means
  // "too large". Most heads are well under 2 KiB, so start there and grow.
  const limit = maxHeaderBytes + 1;
  let buffer = new Uint8Array(Math.min(HEAD_BUFFER_START, limit));
  let filled = 0;
  while (filled < limit) {
    if (filled === buffer.length) {
      const grown = new Uint8Array(Math.min(buffer.length * 2, limit));
      grown.set(buffer);
      buffer = grown;
    }
    let n: number | null;
    try {
      n = await conn.read(buffer.subarray(filled));
    } catch {
      return { kind: "closed" };
    }
    if (n === null) return { kind: "closed" };
    filled += n;
    // A head can only have ended in a read that brought a line feed: skipping
    // the rest keeps a peer trickling one byte per packet from costing a
    // rescan of everything so far each time (quadratic work).
    if (!buffer.subarray(filled - n, filled).includes(0x0a)) continue;
    const parsed = parseRequestHead(buffer.subarray(0, filled), { maxHeaderBytes });
    if (parsed.kind === "complete") {
      return {
        kind: "request",
        head: parsed.head,
        rest: buffer.slice(parsed.headLength, filled),
      };
    }
    if (parsed.kind === "error") {
      return { kind: "error", status: parsed.status, reason: parsed.reason };
    }
  }
  return { kind: "error", status: 431, reason: "request head too large" };
}

const encoder = new TextEncoder();

/**
 * Writes every byte of `data` (a string is sent as UTF-8).
 *
 * @example
 * ```ts ignore
 * import { writeAll } from "@heartwire/heartwire/server";
 * declare const conn: Deno.Conn;
 * await writeAll(conn, "HTTP/1.1 204 No Content\r\n\r\n");
 * ```
 */
export async function writeAll(conn: Deno.Conn, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

/**
 * A plain HTTP response a route can return.
 *
 * @example
 * ```ts
 * import type { HttpResponse } from "@heartwire/heartwire/server";
 * const ok: HttpResponse = { status: 200, body: "ok\n" };
 * ```
 */
export interface HttpResponse {
  /** The status code. */
  status: number;
  /** The body (UTF-8). */
  body?: string;
  /** Defaults to `text/plain; charset=utf-8`. */
  contentType?: string;
  /** Extra headers. */
  headers?: Record<string, string>;
}

/**
 * Sends `response` and closes the connection (heartwire speaks one request per
 * plain HTTP connection: its HTTP side only serves upgrades and small pages).
 *
 * @example
 * ```ts ignore
 * import { respondAndClose } from "@heartwire/heartwire/server";
 * declare const conn: Deno.Conn;
 * await respondAndClose(conn, { status: 404, body: "not found\n" });
 * ```
 */
export async function respondAndClose(conn: Deno.Conn, response: HttpResponse): Promise<void> {
  const text = buildHttpResponse(response.status, {
    body: response.body ?? "",
    contentType: response.contentType,
    headers: { ...response.headers, Connection: "close" },
  });
  try {
    await writeAll(conn, text);
  } catch {
    // The peer is gone; nothing to tell it.
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}
