/**
 * The restart storm (seed 003's fixed five-second reconnect, all clients at
 * once): 1 000 ReconnectingSockets on one server, which restarts — a new
 * server already listens on the same port (`reusePort`, as a rolling restart
 * has it) and the old one closes every connection with 1012 and a retry hint
 * drawn for each connection from the window. The clients' own backoff is cut
 * to nothing here, so what spreads them is the server's hint alone; the test
 * prints the histogram of reconnect times and fails if they bunch up.
 */
import { assert, assertEquals } from "@std/assert";
import { ReconnectingSocket } from "../client/mod.ts";
import { chat, Hub } from "../hub/mod.ts";
import { serve } from "../server/server.ts";
import { waitFor } from "./_wait.ts";

const CLIENTS = 1_000;
const WINDOW = 2_000; // ms: the retry hint window
const BUCKET = 100; // ms

Deno.test("restart storm: 1 000 clients dropped with 1012 come back spread over the hint window", async () => {
  // One hub behind both servers: the sessions resume on the new one.
  const hub = chat(new Hub({ heartbeat: { interval: 20_000, timeout: 10_000 } }));
  const options = { hostname: "127.0.0.1", routes: { "/ws": hub }, reusePort: true };
  const old = serve({ ...options, port: 0 });
  const port = old.addr.port;
  const sockets: ReconnectingSocket[] = [];
  const reopened: number[] = [];
  let fresh: ReturnType<typeof serve> | undefined;
  try {
    let restartAt = Infinity;
    let resumed = 0;
    for (let i = 0; i < CLIENTS; i++) {
      const socket = new ReconnectingSocket(`ws://127.0.0.1:${port}/ws`, {
        id: `c${i}`,
        // No client jitter: only the server's hint spreads the reconnects.
        backoff: { minDelay: 0, initialDelay: 1, maxDelay: 1 },
        window: null,
        document: null,
      });
      socket.addEventListener("open", (event) => {
        if (Date.now() < restartAt) return;
        reopened.push(Date.now() - restartAt);
        if (event.detail.resumed) resumed++;
      });
      sockets.push(socket);
      // A few at a time: the listen queue is not what is measured here.
      if (i % 100 === 99) await waitFor(() => old.connections.size === i + 1, 5_000);
    }
    await waitFor(() => sockets.every((s) => s.readyState === 1), 10_000);

    fresh = serve({ ...options, port });
    restartAt = Date.now();
    await old.shutdown({ code: 1012, retryAfter: WINDOW, timeout: 2_000 });
    await waitFor(() => reopened.length === CLIENTS, WINDOW + 5_000);
    assertEquals(fresh.connections.size, CLIENTS);
    assertEquals(resumed, CLIENTS);

    const buckets = new Array(Math.ceil((WINDOW + 500) / BUCKET)).fill(0);
    for (const ms of reopened) buckets[Math.min(buckets.length - 1, Math.floor(ms / BUCKET))]++;
    const widest = Math.max(...buckets);
    console.log(`reconnects after the restart (${CLIENTS} clients, hint window ${WINDOW} ms):`);
    for (let b = 0; b < buckets.length; b++) {
      const from = String(b * BUCKET).padStart(5);
      console.log(`${from} ms ${String(buckets[b]).padStart(4)} ${"#".repeat(buckets[b] / 5)}`);
    }
    const sorted = [...reopened].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.floor(q * (sorted.length - 1))];
    console.log(`p10 ${at(0.1)} ms, p50 ${at(0.5)} ms, p90 ${at(0.9)} ms, last ${at(1)} ms`);
    // Spread, not a burst: no 100 ms holds a quarter, and the window is used.
    assert(widest <= CLIENTS / 4, `${widest} in one ${BUCKET} ms bucket`);
    assert(at(0.1) < WINDOW * 0.3 && at(0.9) > WINDOW * 0.7, "spread over the window");
  } finally {
    for (const socket of sockets) socket.close();
    await old.shutdown({ timeout: 500 });
    await fresh?.shutdown({ timeout: 1_000 });
    hub.dispose();
  }
});
