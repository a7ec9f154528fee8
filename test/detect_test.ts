/**
 * Dead-peer detection among live peers (issue 13; `deno task bench:detect`
 * measures it at 10 000): 200 idle peers answer every ping, then 20 of them
 * go dead at once — they keep reading but never answer again and send no
 * FIN — with a 200 ms interval and timeout. Every dead one must be dropped
 * within interval + timeout of going dead (plus the server's read lag, which
 * the keepalive waits out and paces its pings by), and no live one at all.
 */
import { assertEquals, assertLessOrEqual } from "@std/assert";
import { Opcode } from "../protocol/opcodes.ts";
import { echoHandler, serve } from "../server/mod.ts";
import { RawClient } from "./_raw_client.ts";
import { waitFor } from "./_wait.ts";

const PEERS = 200;
const DEAD = 20;
const INTERVAL = 200;
const TIMEOUT = 200;

interface Peer {
  client: RawClient;
  /** When it went dead (performance.now()), or -1 while it answers. */
  deadSince: number;
  /** When it saw the server end it, or -1. */
  endedAt: number;
  pongs: number;
}

/** Answers every ping until dead; then reads and discards; notes the end. */
async function run(peer: Peer): Promise<void> {
  try {
    for (;;) {
      const event = await peer.client.next(60_000);
      if (event.type === "eof" || event.type === "close" || event.type === "error") break;
      if (event.type === "ping" && peer.deadSince < 0) {
        await peer.client.sendFrame(Opcode.Pong, event.data);
        peer.pongs++;
      }
    }
  } catch {
    // a reset also ends it
  }
  peer.endedAt = performance.now();
}

Deno.test("detect: 20 of 200 peers go dead at once; each is dropped in time, no live one", async () => {
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    routes: { "/echo": echoHandler },
    pingInterval: INTERVAL,
    pingTimeout: TIMEOUT,
    maxConnections: PEERS + 10,
  });
  const peers: Peer[] = [];
  const runs: Promise<void>[] = [];
  try {
    for (let i = 0; i < PEERS; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: 50 }, () => RawClient.connect(server.addr.port)),
      );
      for (const client of batch) {
        const peer = { client, deadSince: -1, endedAt: -1, pongs: 0 };
        peers.push(peer);
        runs.push(run(peer));
      }
    }
    await waitFor(() => server.connections.size === PEERS);
    await new Promise((resolve) => setTimeout(resolve, 3 * INTERVAL)); // pings flowing
    assertEquals(peers.filter((peer) => peer.endedAt >= 0).length, 0);

    const dead = peers.filter((_, i) => i % (PEERS / DEAD) === 0);
    const since = performance.now();
    for (const peer of dead) peer.deadSince = since;
    await waitFor(() => dead.every((peer) => peer.endedAt >= 0), 5_000);
    // Two more rounds: the live ones stay.
    await new Promise((resolve) => setTimeout(resolve, 2 * (INTERVAL + TIMEOUT)));

    const times = dead.map((peer) => peer.endedAt - since).sort((a, b) => a - b);
    // interval + timeout after the last pong (which came before going dead),
    // plus, on a busy machine, the server's recent read lag (at most
    // interval + timeout) on the deadline and again (at most a timeout) on
    // the ping it paces: never a grace period on top unless the lag is capped.
    assertLessOrEqual(
      times.at(-1)!,
      2 * (INTERVAL + TIMEOUT) + TIMEOUT + 100,
      `times ${times}`,
    );
    // Most go at interval + timeout; a busy machine (the suite runs files in
    // parallel on two cores) adds its read lag, and the pacing, to some.
    assertLessOrEqual(times[DEAD / 2], INTERVAL + 2 * TIMEOUT + 100, `median of ${times}`);
    assertEquals(server.stats.closed.timeout, DEAD);
    const live = peers.filter((peer) => peer.deadSince < 0);
    assertEquals(live.filter((peer) => peer.endedAt >= 0).length, 0, "a live peer was dropped");
    assertEquals(server.connections.size, PEERS - DEAD);
    assertEquals(live.every((peer) => peer.pongs >= 3), true, "live peers were pinged");
  } finally {
    for (const peer of peers) peer.client.close();
    await Promise.all(runs);
    await server.shutdown({ timeout: 0 });
    await server.finished;
  }
});
