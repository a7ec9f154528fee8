/**
 * One contract, three stores: the same cases run against memory, Deno KV and
 * a real redis-server.
 */
import { assert, assertEquals } from "@std/assert";
import {
  KvPresenceStore,
  MemoryPresenceStore,
  type PresenceStore,
  RedisPresenceStore,
  type UserRecord,
} from "../hub/presence/mod.ts";
import { RedisServer } from "./_redis.ts";
import { sleep, waitFor } from "./_wait.ts";

interface Harness {
  /** A fresh, empty store (a second call in one case shares the first's data). */
  open(): Promise<PresenceStore>;
  /** Lets `ms` of lease time pass. */
  pass(ms: number): Promise<void>;
}

const LEASE = 250;

function record(userId: string, nodeId: string, lastSeen = 5_000): UserRecord {
  return {
    userId,
    nodeId,
    connectedAt: 1_000,
    lastSeen,
    lastActive: 1_000,
    status: "online",
    meta: { name: userId.toUpperCase() },
  };
}

const cases: Record<string, (h: Harness) => Promise<void>> = {
  "rows: put, read and remove": async (h) => {
    const store = await h.open();
    await store.claim("a", 60_000);
    const before = store.writes;
    await store.write({ users: [record("ann", "a"), record("bob", "a")] });
    await store.write({
      joined: [{ topic: "lobby", userId: "ann", nodeId: "a", joinedAt: 2_000 }],
    });
    await store.write({
      joined: [{ topic: "lobby", userId: "bob", nodeId: "a", joinedAt: 2_000 }],
    });
    await store.write({ joined: [{ topic: "dev", userId: "ann", nodeId: "a", joinedAt: 3_000 }] });
    assertEquals(store.writes - before, 5);
    assertEquals((await store.members("lobby")).map((r) => r.userId).sort(), ["ann", "bob"]);
    assertEquals((await store.topicsOf("ann")).map((r) => r.topic).sort(), ["dev", "lobby"]);
    assertEquals(await store.records("ann"), [record("ann", "a")]);
    assertEquals(await store.lastSeenAt("ann"), undefined);

    await store.write({ left: [{ topic: "lobby", userId: "ann", nodeId: "a" }] });
    assertEquals((await store.members("lobby")).map((r) => r.userId), ["bob"]);
    await store.write({ left: [{ topic: "dev", userId: "ann", nodeId: "a" }] });
    await store.write({ gone: [{ userId: "ann", nodeId: "a", lastSeenAt: 7_000 }] });
    assertEquals(await store.records("ann"), []);
    assertEquals(await store.topicsOf("ann"), []);
    assertEquals(await store.lastSeenAt("ann"), 7_000);
    // lastSeenAt never goes back.
    await store.write({ gone: [{ userId: "ann", nodeId: "a", lastSeenAt: 6_000 }] });
    assertEquals(await store.lastSeenAt("ann"), 7_000);
    await store.close();
  },

  "one batch: puts and deletes of many rows together": async (h) => {
    const store = await h.open();
    await store.claim("a", 60_000);
    const users = Array.from({ length: 700 }, (_, i) => record(`u${i}`, "a"));
    const joined = users.map((u) => ({ topic: "big", userId: u.userId, nodeId: "a", joinedAt: 1 }));
    const before = store.writes;
    await store.write({ users, joined });
    assertEquals(store.writes - before, 1_400);
    assertEquals((await store.members("big")).length, 700);
    await store.write({
      gone: users.slice(0, 400).map((u) => ({ userId: u.userId, nodeId: "a", lastSeenAt: 9 })),
      left: joined.slice(0, 400),
      joined: [{ topic: "other", userId: "u0", nodeId: "a", joinedAt: 2 }],
    });
    assertEquals((await store.members("big")).length, 300);
    assertEquals(await store.records("u1"), []);
    assertEquals(await store.lastSeenAt("u399"), 9);
    assertEquals((await store.records("u400")).length, 1);
    assertEquals((await store.topicsOf("u0")).map((r) => r.topic), ["other"]);
    await store.close();
  },

  "a lapsed lease hides its rows at once; reap deletes them once": async (h) => {
    const store = await h.open();
    await store.claim("dead", LEASE);
    await store.claim("alive", 60_000);
    await store.write({ users: [record("ann", "dead", 4_000), record("ann", "alive", 3_000)] });
    await store.write({ joined: [{ topic: "t", userId: "ann", nodeId: "dead", joinedAt: 1 }] });
    await store.write({ joined: [{ topic: "t", userId: "bob", nodeId: "dead", joinedAt: 1 }] });
    await store.write({ joined: [{ topic: "t", userId: "ann", nodeId: "alive", joinedAt: 1 }] });
    assertEquals((await store.members("t")).length, 3);
    assertEquals(await store.reap(), []);

    await h.pass(LEASE + 150);
    assertEquals(await store.members("t"), [
      { topic: "t", userId: "ann", nodeId: "alive", joinedAt: 1 },
    ]);
    assertEquals((await store.records("ann")).map((r) => r.nodeId), ["alive"]);
    assertEquals(await store.reap(), ["dead"]);
    assertEquals(await store.reap(), []);
    // What the dead node knew of its users survives as last seen.
    assertEquals(await store.lastSeenAt("ann"), 4_000);
    await store.close();
  },

  "claiming an id clears what its crashed predecessor left": async (h) => {
    const first = await h.open();
    await first.claim("n1", 60_000);
    await first.write({ users: [record("ann", "n1")] });
    await first.write({ joined: [{ topic: "t", userId: "ann", nodeId: "n1", joinedAt: 1 }] });
    // The successor (another instance on the same data) starts with the same id.
    const second = await h.open();
    await second.claim("n1", 60_000);
    assertEquals(await second.members("t"), []);
    assertEquals(await second.records("ann"), []);
    await first.close();
    await second.close();
  },

  "release removes a node's rows and lease": async (h) => {
    const store = await h.open();
    await store.claim("a", 60_000);
    await store.write({ users: [record("ann", "a")] });
    await store.write({ joined: [{ topic: "t", userId: "ann", nodeId: "a", joinedAt: 1 }] });
    await store.release("a");
    assertEquals(await store.members("t"), []);
    assertEquals(await store.records("ann"), []);
    assertEquals(await store.reap(), []);
    await store.close();
  },

  "publish reaches subscribers": async (h) => {
    const store = await h.open();
    const seen: string[] = [];
    const off = store.subscribe((event) => seen.push(`${event.type}:${event.nodeId}`));
    await store.publish({ type: "node-lost", nodeId: "x" });
    await waitFor(() => seen.length === 1, 2_000);
    assertEquals(seen, ["node-lost:x"]);
    off();
    await store.publish({ type: "node-lost", nodeId: "y" });
    await sleep(50);
    assertEquals(seen, ["node-lost:x"]);
    await store.close();
  },
};

async function runContract(t: Deno.TestContext, makeHarness: () => Harness): Promise<void> {
  for (const [name, run] of Object.entries(cases)) {
    await t.step(name, () => run(makeHarness()));
  }
}

Deno.test("presence store contract: memory", async (t) => {
  await runContract(t, () => {
    let now = 1_000_000;
    let shared: MemoryPresenceStore | undefined;
    return {
      open: () => {
        // Two opens in one case share data, like two processes on one database.
        shared ??= new MemoryPresenceStore({ now: () => now });
        return Promise.resolve(shared);
      },
      pass: (ms) => {
        now += ms;
        return Promise.resolve();
      },
    };
  });
});

Deno.test("presence store contract: Deno KV", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "presence_kv_" });
  let n = 0;
  try {
    await runContract(t, () => {
      const path = `${dir}/${++n}.db`;
      return {
        open: () => KvPresenceStore.open(path),
        pass: sleep,
      };
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("presence store contract: Redis", async (t) => {
  const redis = await RedisServer.start();
  let n = 0;
  try {
    await runContract(t, () => {
      const prefix = `t${++n}:`;
      return {
        open: () => RedisPresenceStore.open(redis.url, { prefix }),
        pass: sleep,
      };
    });
  } finally {
    await redis.stop();
  }
});

Deno.test("Redis store: another process's publish arrives", async () => {
  const redis = await RedisServer.start();
  try {
    const a = await RedisPresenceStore.open(redis.url);
    const b = await RedisPresenceStore.open(redis.url);
    assert(b.crossProcess);
    const got: string[] = [];
    b.subscribe((event) => got.push(event.type));
    await a.publish({ type: "node-lost", nodeId: "a" });
    await waitFor(() => got.length === 1, 2_000);
    await a.close();
    await b.close();
  } finally {
    await redis.stop();
  }
});

Deno.test("Redis store: foreign or malformed messages on the channel are ignored", async () => {
  const redis = await RedisServer.start();
  try {
    const store = await RedisPresenceStore.open(redis.url);
    const other = await RedisPresenceStore.open(redis.url);
    const got: string[] = [];
    store.subscribe((event) => got.push(event.type));
    // Raw publishes of junk, then one real event: only the event arrives.
    const { createClient } = await import("npm:redis@5");
    const raw = createClient({ url: redis.url });
    await raw.connect();
    await raw.publish("hw:presence:events", "not json");
    await raw.publish("hw:presence:events", JSON.stringify({ hello: 1 }));
    await other.publish({ type: "node-lost", nodeId: "z" });
    await waitFor(() => got.length === 1, 2_000);
    await sleep(50);
    assertEquals(got, ["node-lost"]);
    await raw.close();
    await store.close();
    await other.close();
  } finally {
    await redis.stop();
  }
});
