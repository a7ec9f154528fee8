/**
 * Faults, on loopback and bounded:
 *
 * - 200 clients chatting over two program workers on one port; one worker
 *   is killed with SIGKILL mid-conversation. Every client reconnects (to the
 *   survivor, or the restarted worker), every message is acknowledged, and
 *   every acknowledged message was delivered. (Memory stores: a session
 *   does not move between workers, so a message whose ack died with the
 *   worker may be delivered twice; exactly once needs shared stores.)
 * - A path that silently stops forwarding (no FIN, no RST), in both
 *   directions or only towards the server: the server drops the peer within
 *   ping interval + ping timeout, and the client resumes its session.
 */
import { assert, assertEquals } from "@std/assert";
import { ReconnectingSocket } from "../client/mod.ts";
import { chat, Hub } from "../hub/mod.ts";
import { commandWorker, Supervisor, type WorkerHandle } from "../server/_supervisor.ts";
import { serve } from "../server/server.ts";
import { systemClock } from "../server/timer_heap.ts";
import { BlackholeProxy, type Dead } from "./_fault_proxy.ts";
import { freePort } from "./_port.ts";
import { workerArgs } from "./_program.ts";
import { waitFor } from "./_wait.ts";

Deno.test("faults: a worker killed under 200 chatting clients: all reconnect, every acked message delivered", async () => {
  const CLIENTS = 200;
  const ROUNDS = 10;
  const GHOSTS = 10;
  const port = freePort();
  // Presence in one Deno KV file that both workers share.
  const dir = await Deno.makeTempDir({ prefix: "heartwire-faults-" });
  const spawn = commandWorker(workerArgs([
    "--hostname=127.0.0.1",
    `--port=${port}`,
    "--presence-store=kv",
    `--kv-path=${dir}/presence.kv`,
  ]));
  const handles: WorkerHandle[] = [];
  const supervisor = new Supervisor({
    workers: 2,
    clock: systemClock,
    restartDelay: 50,
    log: () => {},
    spawn: (slot) => {
      const handle = spawn(slot);
      handles.push(handle);
      return handle;
    },
  });
  await supervisor.start();
  const clients = Array.from({ length: CLIENTS }, (_, i) => {
    const socket = new ReconnectingSocket(`ws://127.0.0.1:${port}/ws`, {
      id: `u${i}`,
      backoff: { minDelay: 20, initialDelay: 300, maxDelay: 600 },
      window: null,
      document: null,
    });
    const state = { socket, acked: 0, delivered: new Map<string, number>(), closes: 0 };
    socket.on<{ from: string; text: string }>("chat", (message) => {
      if (message.from !== `u${i}`) return;
      state.delivered.set(message.text, (state.delivered.get(message.text) ?? 0) + 1);
    });
    socket.addEventListener("close", () => state.closes++);
    return state;
  });
  // Clients that never come back: those on the killed worker must go offline.
  const ghosts = Array.from({ length: GHOSTS }, (_, k) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?id=ghost${k}`);
    const ghost = { ws, id: `ghost${k}`, welcomed: false, lost: false };
    ws.onmessage = () => ghost.welcomed = true;
    ws.onclose = () => ghost.lost = true;
    return ghost;
  });
  try {
    await waitFor(() => clients.every((c) => c.socket.readyState === 1), 10_000);
    await waitFor(() => ghosts.every((g) => g.welcomed), 5_000);
    const requests: Promise<unknown>[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, client] of clients.entries()) {
        requests.push(
          client.socket.request("chat", { text: `u${i}-${round}` }).then(() => client.acked++),
        );
      }
      if (round === 3) handles[0].kill("SIGKILL");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await Promise.race([
      Promise.all(requests),
      new Promise((_, reject) => setTimeout(() => reject(new Error("acks missing")), 15_000)),
    ]);
    await waitFor(() => clients.every((c) => c.delivered.size === ROUNDS), 5_000);
    const moved = clients.filter((c) => c.closes > 0).length;
    const twice = clients.reduce(
      (sum, c) => sum + [...c.delivered.values()].filter((n) => n > 1).length,
      0,
    );
    console.log(
      `${moved} of ${CLIENTS} clients lost their worker and reconnected; ` +
        `${CLIENTS * ROUNDS} messages acknowledged and delivered (${twice} twice)`,
    );
    assert(moved > 0 && moved < CLIENTS, `${moved} moved`);
    assertEquals(clients.filter((c) => c.socket.readyState === 1).length, CLIENTS);
    for (const client of clients) {
      assertEquals(client.acked, ROUNDS);
      assertEquals(client.socket.bufferedAmount, 0);
    }
    // Presence on the survivors: every live client online, each once; the
    // ghosts that died with the worker gone (its replacement, the same
    // node, clears what its predecessor left).
    const lost = ghosts.filter((g) => g.lost).length;
    assert(lost > 0 && lost < GHOSTS, `${lost} ghosts were on the killed worker`);
    const expected = [
      ...clients.map((_, i) => `u${i}`),
      ...ghosts.filter((g) => !g.lost).map((g) => g.id),
    ].sort();
    let online: string[] = [];
    await waitFor(async () => {
      const answer = await fetch(`http://127.0.0.1:${port}/presence?topic=lobby`);
      const { members } = await answer.json() as { members: { id: string; status: string }[] };
      online = members.filter((m) => m.status !== "offline").map((m) => m.id).sort();
      return JSON.stringify(online) === JSON.stringify(expected);
    }, 10_000).catch(() => assertEquals(online, expected));
    console.log(`presence: ${online.length} online; ${lost} ghosts of the killed worker gone`);
  } finally {
    for (const client of clients) client.socket.close();
    for (const ghost of ghosts) ghost.ws.close();
    await supervisor.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

for (const ways of [["toServer", "toClient"], ["toServer"]] as (keyof Dead)[][]) {
  Deno.test(`faults: blackholed ${ways.join(" and ")}: the server drops the peer within interval + timeout, the client resumes`, async () => {
    const INTERVAL = 300;
    const TIMEOUT = 300;
    const hub = chat(new Hub({ heartbeat: { interval: INTERVAL, timeout: TIMEOUT } }));
    const server = serve({
      hostname: "127.0.0.1",
      port: 0,
      routes: { "/ws": hub },
      pingInterval: INTERVAL,
      pingTimeout: TIMEOUT,
      closeTimeout: 300,
    });
    const proxy = new BlackholeProxy(server.addr.port);
    const socket = new ReconnectingSocket(`ws://127.0.0.1:${proxy.port}/ws`, {
      id: "victim",
      backoff: { minDelay: 50, initialDelay: 100, maxDelay: 200 },
      window: null,
      document: null,
    });
    const opens: boolean[] = [];
    socket.addEventListener("open", (event) => opens.push(event.detail.resumed));
    try {
      await waitFor(() => opens.length === 1, 3_000);
      await socket.request("chat", { text: "before" });
      const cut = Date.now();
      proxy.blackhole(ways);
      await waitFor(() => server.stats.closed.timeout === 1, 3_000);
      const dropped = Date.now() - cut;
      // Silence for up to the interval (less its jitter), then the ping's timeout.
      console.log(`server dropped the blackholed peer after ${dropped} ms`);
      assert(dropped <= INTERVAL + TIMEOUT + 400, `dropped after ${dropped} ms`); // + load slack
      await waitFor(() => opens.length === 2, 3_000);
      assertEquals(opens, [false, true]); // the same session, resumed
      await socket.request("chat", { text: "after" });
      assertEquals(socket.bufferedAmount, 0);
    } finally {
      socket.close();
      await proxy.close();
      await server.shutdown({ timeout: 300 });
      hub.dispose();
    }
  });
}
