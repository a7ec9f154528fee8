/**
 * Crashes: a node holding 200 users is killed with SIGKILL; the next node on
 * the same Deno KV file or Redis shows no ghost online past the lease. Two
 * nodes on one Redis: a user on A is seen from B, and leaves B with
 * `node-lost` within the lease when A dies.
 */
import { assert, assertEquals } from "@std/assert";
import {
  KvPresenceStore,
  Presence,
  type PresenceEvent,
  type PresenceStore,
  RedisPresenceStore,
} from "../hub/presence/mod.ts";
import { type ReadyChild, spawnReady } from "./_child.ts";
import { RedisServer } from "./_redis.ts";
import { waitFor } from "./_wait.ts";

const NODE = new URL("./_presence_node.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const LEASE = 600;
const USERS = 200;

/** Starts a node process and waits until its users are in the store. */
function spawnNode(args: string[]): Promise<Node> {
  const nodeArgs = ["--users", String(USERS), "--lease", String(LEASE), ...args];
  return spawnReady(["run", "-A", "--config", CONFIG, NODE, ...nodeArgs], {
    mark: "ready",
    what: "the node",
    rest: "drain", // its output is read until it exits
  });
}

type Node = ReadyChild;

async function kill9(node: Node): Promise<number> {
  node.child.kill("SIGKILL");
  await node.child.status;
  await node.drained;
  return Date.now();
}

async function crashCase(
  open: () => Promise<PresenceStore>,
  storeArgs: string[],
  sameId: boolean,
): Promise<void> {
  const nodeId = sameId ? "fixed-node" : "old-node";
  const child = await spawnNode([...storeArgs, "--node", nodeId]);
  const store = await open();
  const next = new Presence({
    store,
    nodeId: sameId ? "fixed-node" : "new-node",
    presenceTimeout: LEASE,
    lease: LEASE,
  });
  try {
    assertEquals((await store.members("lobby")).length, USERS);
    const killedAt = await kill9(child);
    await next.start();
    if (sameId) {
      // The successor with the dead node's id clears its rows before serving.
      assertEquals(await next.list("lobby"), []);
    } else {
      await waitFor(async () => (await next.list("lobby")).length === 0, LEASE * 3);
      // Gone no later than the lease (plus slack for a loaded machine), not a timeout later.
      assert(Date.now() - killedAt <= LEASE + 600, `ghosts for ${Date.now() - killedAt} ms`);
      // And the rows themselves are reaped, leaving last-seen behind.
      await waitFor(async () => (await store.lastSeenAt("user0")) !== undefined, LEASE * 3);
    }
    assertEquals((await next.get("user7"))?.status ?? "offline", "offline");
  } finally {
    await next.close();
    await store.close();
  }
}

Deno.test("crash on Deno KV: kill -9 a node with 200 users, no ghost past the lease", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "presence_crash_" });
  try {
    for (const sameId of [false, true]) {
      await t.step(sameId ? "restart with the same node id" : "a new node", async () => {
        const path = `${dir}/${sameId}.db`;
        await crashCase(
          () => KvPresenceStore.open(path),
          ["--store", "kv", "--path", path],
          sameId,
        );
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("crash on Redis: kill -9 a node with 200 users, no ghost past the lease", async (t) => {
  const redis = await RedisServer.start();
  try {
    for (const sameId of [false, true]) {
      await t.step(sameId ? "restart with the same node id" : "a new node", async () => {
        await crashCase(
          () => RedisPresenceStore.open(redis.url),
          ["--store", "redis", "--redis", redis.url],
          sameId,
        );
      });
    }
  } finally {
    await redis.stop();
  }
});

Deno.test("two nodes on one Redis: A's users seen from B, node-lost on B within the lease when A dies", async () => {
  const redis = await RedisServer.start();
  const store = await RedisPresenceStore.open(redis.url);
  const b = new Presence({ store, nodeId: "B", presenceTimeout: LEASE, lease: LEASE });
  const events: PresenceEvent[] = [];
  b.subscribe((event) => events.push(event));
  try {
    await b.start();
    const a = await spawnNode(["--store", "redis", "--redis", redis.url, "--node", "A"]);
    await waitFor(() => events.filter((e) => e.type === "join").length === USERS, 5_000);
    const ann = await b.get("user3");
    assertEquals([ann?.status, ann?.nodes, ann?.meta.name, ann?.topics], ["online", ["A"], "U3", [
      "lobby",
    ]]);
    assertEquals((await b.list("lobby")).length, USERS);

    const killedAt = await kill9(a);
    await waitFor(() => events.filter((e) => e.type === "leave").length === USERS, LEASE * 4);
    const took = Date.now() - killedAt;
    // Lease, plus at most one reap period (lease / 3), plus slack.
    assert(took <= LEASE + LEASE / 3 + 600, `node-lost after ${took} ms`);
    const leaves = events.filter((e) => e.type === "leave");
    assert(leaves.every((e) => e.reason === "node-lost"));
    assertEquals(new Set(leaves.map((e) => e.userId)).size, USERS, "one leave per user");
    assertEquals(await b.list("lobby"), []);
  } finally {
    await b.close();
    await store.close();
    await redis.stop();
  }
});
