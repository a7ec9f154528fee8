/**
 * The program on two nodes that share one real Redis (`--redis`): chat on
 * one node reaches a client on the other, presence is shared, and `/healthz`
 * says "degraded" while Redis is away.
 */
import { assertEquals } from "@std/assert";
import { connectRedisBackend } from "../hub/redis/mod.ts";
import { openPresence } from "../hub/mod.ts";
import { parseCliArgs } from "../server/_cli.ts";
import { type Program, startProgram } from "../server/main.ts";
import { RedisServer } from "./_redis.ts";
import { waitFor } from "./_wait.ts";

async function node(url: string): Promise<Program> {
  const cli = parseCliArgs([
    "--port=0",
    "--hostname=127.0.0.1",
    "--stats-interval=0",
    `--redis=${url}`,
  ]);
  const presence = await openPresence({ kind: "redis", redisUrl: url, presenceTimeout: 5_000 });
  const redis = await connectRedisBackend(url, { log: () => {} });
  const program = await startProgram(cli, { presence, redis, log: () => {} });
  const stop = program.stop.bind(program);
  return Object.assign(program, {
    async stop() {
      await stop({ timeout: 500 });
      await presence.close();
      await presence.store.close();
      await redis.close();
    },
  });
}

/** A /ws client that collects every message it is sent. */
function client(port: number, id: string) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?id=${id}`);
  const seen: Record<string, unknown>[] = [];
  ws.onmessage = (e) => seen.push(JSON.parse(e.data));
  const closed = new Promise((resolve) => ws.onclose = resolve);
  return { ws, seen, closed };
}

Deno.test("program --redis: chat crosses nodes, presence is shared, /healthz follows Redis", async () => {
  const redisServer = await RedisServer.start();
  const a = await node(redisServer.url);
  const b = await node(redisServer.url);
  const alice = client(a.server.addr.port, "alice");
  const bob = client(b.server.addr.port, "bob");
  try {
    await waitFor(() => alice.seen.some((m) => m.type === "welcome"));
    await waitFor(() => bob.seen.some((m) => m.type === "welcome"));
    // Both are in "lobby"; Alice chats on node A, Bob reads it on node B.
    await waitFor(() => bob.seen.some((m) => m.type === "subscribed" && m.topic === "lobby"));
    alice.ws.send(JSON.stringify({ type: "chat", text: "across nodes", cseq: 1 }));
    await waitFor(() => bob.seen.some((m) => m.type === "chat" && m.text === "across nodes"));
    const chat = bob.seen.find((m) => m.type === "chat")!;
    assertEquals(chat.from, "alice");
    assertEquals(chat.topic, "lobby");
    // Presence: node B knows Alice is online on node A.
    await waitFor(async () => {
      const response = await fetch(`http://127.0.0.1:${b.server.addr.port}/presence/alice`);
      const body = await response.json();
      return response.status === 200 && body.status === "online";
    });
    const healthy = await fetch(`http://127.0.0.1:${a.server.addr.port}/healthz`);
    assertEquals([healthy.status, await healthy.text()], [200, "ok\n"]);
    // Redis goes away: the node says it is degraded (a balancer can route around it).
    await redisServer.stop();
    await waitFor(async () => {
      const response = await fetch(`http://127.0.0.1:${a.server.addr.port}/healthz`);
      const text = await response.text();
      return response.status === 503 && text.includes("degraded");
    });
  } finally {
    alice.ws.close();
    bob.ws.close();
    await Promise.all([alice.closed, bob.closed]);
    await a.stop();
    await b.stop();
    await redisServer.stop().catch(() => {});
  }
});
