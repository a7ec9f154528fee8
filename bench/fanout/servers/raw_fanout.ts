/**
 * The fan-out ceiling: a plain `Deno.listen` server with no WebSocket
 * parsing. After the opening handshake (RFC 6455 §4.2.2), a connection on
 * `/sub` is a subscriber; every read from a connection on `/pub` is copied
 * once and queued, byte for byte (masks included), to every subscriber. Each
 * subscriber has at most one write in progress; what is queued meanwhile
 * goes out together in the next one (as heartwire's write queue does).
 *
 * What it measures: the cost of Deno's write ops alone — the floor for any
 * TypeScript fan-out on Deno. The generator runs with `--masked-echo` to
 * decode the still-masked frames. Nothing bounds a queue: the generator's
 * window of outstanding broadcasts does.
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
import { concat } from "../../../protocol/_concat.ts";
import { writeAll } from "../../../server/_http_io.ts";
import { readUpgrade } from "../../load/servers/_raw_upgrade.ts";

interface Subscriber {
  conn: Deno.Conn;
  /** Queued while a write is in progress. */
  queued: Uint8Array[];
  writing: boolean;
}

const subscribers = new Set<Subscriber>();

async function handle(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(16 * 1024);
  let subscriber: Subscriber | undefined;
  try {
    const upgrade = await readUpgrade(conn, buffer);
    if (upgrade === undefined) return;
    const { key, headLength, filled } = upgrade;
    const publisher = upgrade.target === "/pub";
    if (!publisher) {
      subscriber = { conn, queued: [], writing: false };
      subscribers.add(subscriber);
    }
    await writeAll(conn, buildUpgradeResponse(key));
    if (publisher && filled > headLength) broadcast(buffer.slice(headLength, filled));
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) return;
      if (publisher) broadcast(buffer.slice(0, n));
    }
  } catch {
    // reset by the peer
  } finally {
    if (subscriber) subscribers.delete(subscriber);
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

/** Queues `bytes` (not to be changed afterwards) to every subscriber. */
function broadcast(bytes: Uint8Array): void {
  for (const subscriber of subscribers) {
    subscriber.queued.push(bytes);
    if (!subscriber.writing) flush(subscriber);
  }
}

/** Writes a subscriber's queue until it is empty, all queued chunks in one write each time. */
async function flush(subscriber: Subscriber): Promise<void> {
  subscriber.writing = true;
  try {
    while (subscriber.queued.length > 0) {
      const chunks = subscriber.queued;
      subscriber.queued = [];
      await writeAll(subscriber.conn, concat(chunks));
    }
  } catch {
    subscriber.queued = []; // the subscriber is gone; its reader cleans up
  } finally {
    subscriber.writing = false;
  }
}

const listener = Deno.listen({ hostname: "127.0.0.1", port: Number(Deno.args[0] ?? 0) });
console.log(`listening ${(listener.addr as Deno.NetAddr).port}`);
for await (const conn of listener) handle(conn);
