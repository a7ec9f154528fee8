/**
 * The floor for keepalive on Deno, for `deno task bench:scale`: a bare
 * `Deno.listen` loop running ws's isAlive recipe with no WebSocket work
 * beyond it. Every interval, one pass over all connections: one that sent
 * nothing since the previous pass is closed, the others are marked and sent
 * a prebuilt ping frame (RFC 6455 §5.5.2). Each connection has one pending
 * 256-byte read; any bytes read count as the pong (nothing is parsed).
 *
 * What it measures: what TCP, Deno's read and write ops and the event loop
 * cost per ping and per connection when nothing else runs, so the gap to
 * heartwire is what frame decoding, the timer heap and the server's
 * bookkeeping add, and the gap to ws on Node is the runtime's.
 *
 * `deno run --allow-net raw_isalive.ts <hostname> <port> <intervalMs>`
 *
 * Prints `listening <port>` once ready; on SIGTERM prints (to stderr)
 * `closed {"timeout":N,...}` (the connections it ended, and `Deno.memoryUsage()`:
 * how much of the RSS is V8 heap) and exits.
 *
 * @module
 */
import { buildUpgradeResponse } from "../../../protocol/handshake.ts";
import { writeAll } from "../../../server/_http_io.ts";
import { readUpgrade } from "./_raw_upgrade.ts";

const [hostname = "127.0.0.1", port = "0", interval = "1000"] = Deno.args;
/** FIN + ping opcode, empty payload: the whole frame. */
const PING = new Uint8Array([0x89, 0x00]);

interface Peer {
  conn: Deno.Conn;
  alive: boolean;
}

const peers = new Set<Peer>();
let timedOut = 0;

/** The opening handshake, in its own frame so its 4 KiB buffer is not kept. */
async function upgrade(conn: Deno.Conn): Promise<boolean> {
  const upgrade = await readUpgrade(conn, new Uint8Array(4096));
  if (upgrade === undefined) return false;
  await writeAll(conn, buildUpgradeResponse(upgrade.key));
  return true;
}

async function handle(conn: Deno.Conn): Promise<void> {
  const peer: Peer = { conn, alive: true };
  try {
    if (!await upgrade(conn)) return;
    peers.add(peer);
    const buffer = new Uint8Array(256);
    while (await conn.read(buffer) !== null) peer.alive = true;
  } catch {
    // reset by the peer, or closed by the sweep
  } finally {
    peers.delete(peer);
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

setInterval(() => {
  for (const peer of peers) {
    if (!peer.alive) {
      timedOut++;
      peers.delete(peer);
      peer.conn.close();
      continue;
    }
    peer.alive = false;
    // A 2-byte write to an idle socket completes at once; a failure means the
    // peer is gone, which its read loop sees.
    peer.conn.write(PING).catch(() => {});
  }
}, Number(interval));

const listener = Deno.listen({ hostname, port: Number(port) });
console.log(`listening ${(listener.addr as Deno.NetAddr).port}`);
Deno.addSignalListener("SIGTERM", () => {
  console.error(`closed ${JSON.stringify({ timeout: timedOut, ...Deno.memoryUsage() })}`);
  Deno.exit(0);
});
for await (const conn of listener) handle(conn);
