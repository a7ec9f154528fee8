/**
 * The fan-out ceiling: a plain `Deno.listen` server with no WebSocket
 * parsing. After the opening handshake (RFC 6455 §4.2.2), a connection on
 * `/sub` is a subscriber; every read from a connection on `/pub` is written,
 * byte for byte (masks included), to every subscriber, and the next read
 * waits until all those writes are done.
 *
 * What it measures: the cost of Deno's write ops alone for N writes per
 * broadcast — the floor for any TypeScript fan-out on Deno. The generator
 * runs with `--masked-echo` to decode the still-masked frames.
 *
 * Subscribers are registered before their 101 goes out, so once the
 * generator holds every 101 they all are: it has no `?` count to ask for.
 *
 * `deno run --allow-net raw_fanout.ts [port]` prints `listening <port>`;
 * SIGTERM stops it.
 *
 * @module
 */
import { buildUpgradeResponse } from "../../../protocol/handshake.ts";
import { parseRequestHead } from "../../../protocol/http1.ts";
import { writeAll } from "../../../server/_http_io.ts";

const subscribers = new Set<Deno.Conn>();

async function handle(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(16 * 1024);
  try {
    let filled = 0;
    let publisher = false;
    for (;;) {
      const n = await conn.read(buffer.subarray(filled));
      if (n === null) return;
      filled += n;
      const result = parseRequestHead(buffer.subarray(0, filled));
      if (result.kind === "incomplete" && filled < buffer.length) continue;
      const key = result.kind === "complete" ? result.head.headers.get("sec-websocket-key") : null;
      if (result.kind !== "complete" || key === null) return;
      publisher = result.head.target === "/pub";
      if (!publisher) subscribers.add(conn);
      await writeAll(conn, buildUpgradeResponse(key));
      if (publisher && filled > result.headLength) {
        await broadcast(buffer.slice(result.headLength, filled));
      }
      break;
    }
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) return;
      if (publisher) await broadcast(buffer.subarray(0, n));
    }
  } catch {
    // reset by the peer
  } finally {
    subscribers.delete(conn);
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

function broadcast(bytes: Uint8Array): Promise<unknown> {
  const writes: Promise<void>[] = [];
  for (const subscriber of subscribers) writes.push(writeAll(subscriber, bytes).catch(() => {}));
  return Promise.all(writes);
}

const listener = Deno.listen({ hostname: "127.0.0.1", port: Number(Deno.args[0] ?? 0) });
console.log(`listening ${(listener.addr as Deno.NetAddr).port}`);
for await (const conn of listener) handle(conn);
