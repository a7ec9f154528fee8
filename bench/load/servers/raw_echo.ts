/**
 * Baseline (a): a plain `Deno.listen` read→write loop with no WebSocket
 * parsing at all.
 *
 * It answers the opening handshake (RFC 6455 §4.2.2) so the same load client
 * can connect, then writes every read back unchanged. The client's frames
 * therefore come back still masked; the client runs with `--masked-echo` and
 * decodes them as a server would.
 *
 * What it measures: the cost of TCP, Deno's read/write ops and the event loop
 * for one read and one write per batch — the floor for any TypeScript server
 * on Deno. The gap between this and heartwire is what frame decoding,
 * unmasking, UTF-8, the handler call, encoding and the write queue cost.
 *
 * Like heartwire, it leaves Nagle's algorithm as Deno sets it (no setNoDelay).
 *
 * Prints `listening <port>` once ready; SIGTERM stops it.
 *
 * @module
 */
import { buildUpgradeResponse } from "../../../protocol/handshake.ts";
import { writeAll } from "../../../server/_http_io.ts";
import { readUpgrade } from "./_raw_upgrade.ts";

const MAX_READ = 256 * 1024;

/** Handshake, then echo bytes until EOF. */
async function handle(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(16 * 1024);
  try {
    const upgrade = await readUpgrade(conn, buffer);
    if (upgrade === undefined) return;
    const { key, headLength, filled } = upgrade;
    await writeAll(conn, buildUpgradeResponse(key));
    // Frames pipelined behind the request head are echoed like any others.
    if (filled > headLength) await writeAll(conn, buffer.slice(headLength, filled));
    // Reads grow as heartwire's do (server/connection.ts: up to 256 KiB), so
    // large messages cost the ceiling no more reads than the server.
    let echo = buffer;
    for (;;) {
      const n = await conn.read(echo);
      if (n === null) return;
      await writeAll(conn, echo.subarray(0, n));
      if (n === echo.length && echo.length < MAX_READ) echo = new Uint8Array(echo.length * 2);
    }
  } catch {
    // reset by the peer
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

/**
 * A running raw echo server.
 *
 * @example
 * ```ts
 * import { startRawEcho } from "./raw_echo.ts";
 * const server = startRawEcho(0);
 * console.log(server.port);
 * await server.close();
 * ```
 */
export interface RawEchoServer {
  /** The port it listens on (127.0.0.1). */
  port: number;
  /** Stops accepting and resolves once every connection has ended (peers close them). */
  close(): Promise<void>;
}

/**
 * Starts the raw echo server on 127.0.0.1 (`port` 0 picks a free one).
 *
 * @example
 * ```ts
 * import { startRawEcho } from "./raw_echo.ts";
 * const server = startRawEcho(0);
 * await server.close();
 * ```
 */
export function startRawEcho(port: number): RawEchoServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const handlers = new Set<Promise<void>>();
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        const handler = handle(conn).finally(() => handlers.delete(handler));
        handlers.add(handler);
      }
    } catch {
      // the listener was closed
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      try {
        listener.close();
      } catch {
        // already closed
      }
      await accepting;
      await Promise.all(handlers);
    },
  };
}

if (import.meta.main) {
  console.log(`listening ${startRawEcho(Number(Deno.args[0] ?? 0)).port}`);
}
