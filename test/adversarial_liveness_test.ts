/**
 * Liveness under a stall (issue 9): 1 000 idle peers in another process that
 * answer every ping, a 200 ms interval and timeout, and a 1 s synchronous
 * stall in the server's process. None of them may be dropped for the
 * server's own stall, and a truly silent peer among them must still go.
 */
import { assertEquals, assertLess } from "@std/assert";
import type { Clock } from "../protocol/clock.ts";
import { echoHandler, serve, systemClock } from "../server/mod.ts";
import { LoadProcess } from "../bench/load/scale.ts";
import { RawClient } from "./_raw_client.ts";
import { sleep, waitFor } from "./_wait.ts";

const PEERS = 1_000;

Deno.test("liveness: a 1 s stall drops none of 1 000 answering peers, and a silent one still goes", async () => {
  // The stall comes 1 ms after a wake-up of the server's timer heap, once
  // armed: the pings that wake-up sent are answered while the server is
  // stalled, so their pongs wait unread in the sockets past their deadlines.
  let armed = false;
  let stalledAt = -1;
  const stall = () => {
    stalledAt = performance.now();
    const until = stalledAt + 1_000; // longer than interval + timeout
    while (performance.now() < until) { /* one synchronous turn */ }
  };
  const clock: Clock = {
    now: systemClock.now,
    clearTimeout: systemClock.clearTimeout,
    setTimeout: (callback, delay) =>
      systemClock.setTimeout(() => {
        callback();
        if (armed) {
          armed = false;
          setTimeout(stall, 1);
        }
      }, delay),
  };
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    routes: { "/echo": echoHandler },
    clock,
    pingInterval: 200,
    pingTimeout: 200,
    pingJitter: 0, // connections opened together ping together: bigger bursts
    maxConnections: PEERS + 100,
  });
  // The bench's lean load generator (bench/load/scale.ts): holds idle
  // connections, answers pings at once. On Node where there is one: a Deno
  // client completes at most 128 reads per turn of its event loop, so it
  // answers late itself while busy opening connections (_scale_client.cjs).
  const node = await new Deno.Command("node", { args: ["--version"], stdout: "null" }).output()
    .then((result) => result.success, () => false);
  const peers = new LoadProcess("127.0.0.1", server.addr.port, PEERS, node);
  let silent: RawClient | undefined;
  try {
    assertEquals(await peers.opened(), `opened ${PEERS} 0`);
    await waitFor(() => server.connections.size === PEERS);
    await sleep(600); // pings flowing
    // A peer that never answers (nor reads): its first ping falls due during the stall.
    silent = await RawClient.connect(server.addr.port);
    await waitFor(() => server.connections.size === PEERS + 1);
    const silentSince = performance.now();

    armed = true;
    await waitFor(() => stalledAt >= 0);
    await waitFor(() => server.stats.closed.timeout >= 1, 5_000);
    const silentAfter = performance.now() - silentSince;
    await sleep(1_000); // more rounds after the stall
    const mark = await peers.finish();
    assertEquals(mark.opened, PEERS);
    assertEquals(mark.dropped, 0, "peers that answered every ping were dropped");
    assertEquals(server.stats.closed.timeout, 1, "only the silent peer timed out");
    assertEquals(await silent.untilEof().then(() => "eof"), "eof");
    // interval + timeout, the stall, one more timeout after it, and the
    // measured read lag (at most interval + timeout): well under 3 s.
    assertLess(silentAfter, 3_000);
    assertLess(0, mark.pings, "no pings were sent");
  } finally {
    silent?.close();
    peers.kill();
    await server.shutdown({ timeout: 0 });
    await server.finished;
  }
});
