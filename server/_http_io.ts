/**
 * Writing HTTP/1.1 responses to a socket: small refusals, and the `Response`
 * of a `fetch` handler with its body sized or streamed. Internal to server/.
 *
 * @module
 */
import {
  buildHttpResponse,
  buildResponseHead,
  encodeChunk,
  LAST_CHUNK,
  type ResponseBody,
} from "../protocol/http1.ts";
import { concat } from "../protocol/_concat.ts";

const encoder = new TextEncoder();

/** Writes every byte of `data` (a string is sent as UTF-8). */
export async function writeAll(conn: Deno.Conn, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

/** Sends a small plain-text response with `Connection: close`, then closes the connection. */
export async function respondAndClose(
  conn: Deno.Conn,
  status: number,
  reason: string,
  headers?: Record<string, string>,
): Promise<void> {
  const text = buildHttpResponse(status, {
    reason,
    headers: { ...headers, Connection: "close" },
  });
  try {
    await writeAll(conn, text);
  } catch {
    // The peer is gone; nothing to tell it.
  } finally {
    closeQuietly(conn);
  }
}

/** Closes a connection that may already be closed. */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

/** How the request being answered shapes its response. */
export interface ResponseContext {
  /** A HEAD request: the head only (RFC 9110 §9.3.2). */
  head: boolean;
  /** The client speaks HTTP/1.0: it cannot read chunks (RFC 9112 §7.1). */
  http10: boolean;
  /** Whether the connection is to carry another request afterwards. */
  keepAlive: boolean;
  /** Writes bytes to the connection (the server bounds its time). Default {@linkcode writeAll}. */
  write?: (data: string | Uint8Array) => Promise<void>;
}

let dateSecond = -1;
let dateText = "";

/** The current time as an HTTP-date (RFC 9110 §5.6.7), formatted at most once a second. */
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

/**
 * Microtask turns within which a body that is already whole (from a string,
 * bytes or JSON) reports its end: Deno takes 1 to 5. A timer would do too,
 * but costs a macrotask per response, which under load is most of the time.
 */
const SOON_TICKS = 16;

/** Resolves with `promise`'s outcome if it settles within a few microtask turns, else "later". */
async function settledSoon<T>(promise: Promise<T>): Promise<T | "later"> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  for (let i = 0; i < SOON_TICKS && !settled; i++) await null;
  return settled ? await promise : "later";
}

function asBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === "string") return encoder.encode(chunk);
  throw new TypeError("a response body stream must yield Uint8Array chunks");
}

/**
 * Writes a `fetch` handler's `Response`. A body that is complete at once
 * (a string, bytes, JSON) goes out with
 * `Content-Length` in one write; a body still streaming goes out chunked as it
 * comes (or, to an HTTP/1.0 client, raw until the connection closes).
 *
 * @returns whether the connection may carry another request.
 */
export async function writeResponse(
  conn: Deno.Conn,
  response: Response,
  context: ResponseContext,
): Promise<boolean> {
  let keepAlive = context.keepAlive &&
    !(response.headers.get("connection") ?? "").toLowerCase().includes("close");
  const connection = keepAlive ? (context.http10 ? "keep-alive" : undefined) : "close";
  // RFC 9110 §6.6.1: an origin server with a clock sends Date.
  const fields: [string, string][] = [...response.headers];
  if (!response.headers.has("date")) fields.push(["Date", httpDate()]);
  const status = response.status;
  const write = context.write ?? ((data: string | Uint8Array) => writeAll(conn, data));
  const headFor = (body: ResponseBody) =>
    buildResponseHead(status, {
      statusText: response.statusText,
      headers: fields,
      body,
      connection,
    });
  const noContent = status < 200 || status === 204 || status === 304;
  if (context.head || noContent || response.body === null) {
    await response.body?.cancel().catch(() => {});
    let body: ResponseBody = { length: 0 };
    if (context.head || noContent) {
      // HEAD: the length a GET would have, if the handler said it (RFC 9110 §9.3.2).
      const declared = response.headers.get("content-length");
      body = declared !== null && /^\d+$/.test(declared) ? { length: Number(declared) } : "none";
    }
    await write(headFor(body));
    return keepAlive;
  }
  const reader = response.body.getReader();
  try {
    const parts: Uint8Array[] = [];
    let size = 0;
    let read = reader.read();
    for (;;) {
      const result = await settledSoon(read);
      if (result === "later") break;
      if (result.done) {
        await write(concat([encoder.encode(headFor({ length: size })), ...parts]));
        return keepAlive;
      }
      const bytes = asBytes(result.value);
      parts.push(bytes);
      size += bytes.length;
      read = reader.read();
    }
    // Still streaming: send what we have now, the rest as it comes.
    const chunked = !context.http10;
    if (!chunked) keepAlive = false;
    const frame = (bytes: Uint8Array) => chunked ? encodeChunk(bytes) : bytes;
    const first = parts.filter((part) => part.length > 0).map(frame);
    await write(
      concat([
        encoder.encode(
          buildResponseHead(status, {
            statusText: response.statusText,
            headers: fields,
            body: chunked ? "chunked" : "until-close",
            connection: keepAlive ? undefined : "close",
          }),
        ),
        ...first,
      ]),
    );
    for (;;) {
      const result = await read;
      if (result.done) break;
      const bytes = asBytes(result.value);
      if (bytes.length > 0) await write(frame(bytes));
      read = reader.read();
    }
    if (chunked) await write(LAST_CHUNK);
    return keepAlive;
  } catch (error) {
    await reader.cancel(error).catch(() => {});
    throw error;
  }
}
