/**
 * A deliberately low-level WebSocket client for tests: raw `Deno.connect`,
 * hand-written handshake bytes, hand-picked frames. It can misbehave on
 * purpose (unmasked frames, bad opcodes, never reading) in ways no real
 * client library allows.
 *
 * @module
 */
import { type DecoderEvent, FrameDecoder } from "../protocol/frame_decoder.ts";
import { encodeFrame } from "../protocol/frame_encoder.ts";
import { concat, toBytes, utf8 } from "./_bytes.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** An event read from the server, or the end of the TCP stream. */
export type RawEvent = DecoderEvent | { type: "eof" };

/** Options for {@linkcode RawClient.connect}. */
export interface RawConnectOptions {
  /** Extra request header lines, e.g. `{ Origin: "https://a.example" }`. */
  headers?: Record<string, string>;
  /** Bytes sent in the same write as the request head. */
  pipelined?: Uint8Array;
  /** Hostname to connect to (default 127.0.0.1). */
  hostname?: string;
}

/** A raw WebSocket client over a plain TCP connection. */
export class RawClient {
  readonly conn: Deno.Conn;
  readonly responseHead: string;
  #decoder = new FrameDecoder({ role: "client", maxMessageSize: 64 * 1024 * 1024 });
  #events: RawEvent[] = [];
  #buffered: Uint8Array;
  #readBuffer = new Uint8Array(64 * 1024);
  #pending: Promise<number | null> | undefined;

  private constructor(conn: Deno.Conn, head: string, rest: Uint8Array) {
    this.conn = conn;
    this.responseHead = head;
    this.#buffered = rest;
  }

  /** Connects and completes the opening handshake; throws unless the answer is 101. */
  static async connect(port: number, path = "/echo", options: RawConnectOptions = {}) {
    const conn = await Deno.connect({ hostname: options.hostname ?? "127.0.0.1", port });
    const head = upgradeRequest(port, path, options.headers);
    await writeAll(conn, concat([head, options.pipelined ?? []]));
    const { head: response, rest } = await readHead(conn);
    if (!response.startsWith("HTTP/1.1 101")) {
      conn.close();
      throw new Error(`handshake refused: ${response.split("\r\n")[0]}`);
    }
    return new RawClient(conn, response, rest);
  }

  /** Sends raw bytes. */
  write(bytes: Uint8Array): Promise<void> {
    return writeAll(this.conn, bytes);
  }

  /** Sends one masked frame (or unmasked with `mask: false`). */
  sendFrame(
    opcode: number,
    payload: Uint8Array | string = new Uint8Array(0),
    options: { fin?: boolean; mask?: boolean } = {},
  ): Promise<void> {
    const data = toBytes(payload);
    return this.write(encodeFrame(opcode, data, { fin: options.fin, mask: options.mask ?? true }));
  }

  /** The next event from the server; `eof` once TCP ended. Fails after `timeout` ms. */
  async next(timeout = 5_000): Promise<RawEvent> {
    if (this.#buffered.length > 0) {
      this.#events.push(...this.#decoder.push(this.#buffered));
      this.#buffered = new Uint8Array(0);
    }
    const deadline = Date.now() + timeout;
    while (this.#events.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no event from the server within ${timeout} ms`);
      // One read stays pending across calls, so a timed-out next() loses no bytes.
      this.#pending ??= this.conn.read(this.#readBuffer).catch(() => null);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const n = await Promise.race([
        this.#pending,
        new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), left)),
      ]);
      clearTimeout(timer);
      if (n === "timeout") throw new Error(`no event from the server within ${timeout} ms`);
      this.#pending = undefined;
      if (n === null) return { type: "eof" };
      this.#events.push(...this.#decoder.push(this.#readBuffer.subarray(0, n)));
    }
    return this.#events.shift()!;
  }

  /** Reads until the server's close frame or EOF and returns that event. */
  async nextClose(timeout = 5_000): Promise<RawEvent> {
    for (;;) {
      const event = await this.next(timeout);
      if (event.type === "close" || event.type === "eof" || event.type === "error") return event;
    }
  }

  /** Reads until EOF, failing if TCP stays open past `timeout`. */
  async untilEof(timeout = 5_000): Promise<void> {
    for (;;) {
      const event = await this.next(timeout); // rejects if TCP stays open past the timeout
      if (event.type === "eof") return;
    }
  }

  /** Closes TCP. */
  close(): void {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}

/**
 * A valid opening handshake request for `path` (RFC 6455 §4.1, the key of
 * §1.3's example), with `headers` added.
 */
export function upgradeRequest(
  port: number,
  path = "/echo",
  headers: Record<string, string> = {},
): string {
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
  return `GET ${path} HTTP/1.1\r\nHost: localhost:${port}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n` +
    `Sec-WebSocket-Version: 13\r\n${extra}\r\n`;
}

/** Writes every byte. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

async function readHead(conn: Deno.Conn): Promise<{ head: string; rest: Uint8Array }> {
  let received: Uint8Array = new Uint8Array(0);
  const buffer = new Uint8Array(16 * 1024);
  for (;;) {
    const text = decoder.decode(received);
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      const headBytes = utf8(text.slice(0, end + 4)).length;
      return { head: text.slice(0, end + 4), rest: received.slice(headBytes) };
    }
    const n = await conn.read(buffer);
    if (n === null) return { head: text, rest: new Uint8Array(0) };
    received = concat([received, buffer.subarray(0, n)]);
  }
}

/**
 * Sends the opening handshake for `path` on a fresh socket and returns the
 * response head (a 101, or a refusal), then closes the socket.
 */
export async function upgradeResponse(
  port: number,
  path = "/echo",
  headers: Record<string, string> = {},
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, utf8(upgradeRequest(port, path, headers)));
    return (await readHead(conn)).head;
  } finally {
    conn.close();
  }
}

/** Sends raw request bytes and reads the whole response until the server closes. */
export async function rawHttp(
  port: number,
  request: string | Uint8Array,
): Promise<{ status: number; head: string; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, toBytes(request));
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(16 * 1024);
    // Until the server closes, or one whole Content-Length response came
    // (the connection may be kept alive for another request).
    for (;;) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
      const sofar = concat(chunks);
      const text = decoder.decode(sofar);
      const end = text.indexOf("\r\n\r\n");
      const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end + 2));
      if (
        end >= 0 && length &&
        sofar.length >= encoder.encode(text.slice(0, end + 4)).length + Number(length[1])
      ) break;
    }
    const text = decoder.decode(concat(chunks));
    const end = text.indexOf("\r\n\r\n");
    const head = end >= 0 ? text.slice(0, end) : text;
    return {
      status: Number(head.split(" ")[1]),
      head,
      body: end >= 0 ? text.slice(end + 4) : "",
    };
  } finally {
    try {
      conn.close();
    } catch {
      // closed by the server
    }
  }
}
