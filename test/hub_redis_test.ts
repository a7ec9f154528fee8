/**
 * The hub across nodes through a real Redis: `redis-server` is started on a
 * free loopback port (no persistence) and stopped at the end. Two hubs in
 * this process, each with its own Redis connections and its own server,
 * stand for two nodes.
 */
import { assert, assertEquals, assertNotEquals } from "@std/assert";
import { chat, Hub, type HubOptions } from "../hub/mod.ts";
import {
  connectRedisBackend,
  type RedisBackend,
  type RedisBackendOptions,
  RedisHistory,
  RedisSessionStore,
} from "../hub/redis/mod.ts";
import { SESSION_TAKEN_OVER, takenOverReason } from "../protocol/messages.ts";
import { serve, type Server } from "../server/mod.ts";
import { historyContract } from "./_history_contract.ts";
import { freePort } from "./_port.ts";
import { RedisServer } from "./_redis.ts";
import { sleep, waitFor } from "./_wait.ts";

type Json = Record<string, unknown>;

/** A WebSocket client that keeps what it is sent, for `next` to pick from. */
class Peer {
  readonly ws: WebSocket;
  readonly inbox: Json[] = [];
  readonly closed: Promise<CloseEvent>;

  private constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.onmessage = (event) => this.inbox.push(JSON.parse(event.data));
    this.closed = new Promise((resolve) => this.ws.onclose = resolve);
  }

  static async open(server: Server, query: string): Promise<Peer> {
    const peer = new Peer(`ws://127.0.0.1:${server.addr.port}/ws?${query}`);
    await new Promise((resolve, reject) => {
      peer.ws.onopen = resolve;
      peer.ws.onerror = reject;
    });
    return peer;
  }

  send(message: Json): void {
    this.ws.send(JSON.stringify(message));
  }

  /** Takes the first message that `match` accepts (and every one before it). */
  async next(match: (m: Json) => boolean, what = "a message"): Promise<Json> {
    let found = -1;
    await waitFor(() => (found = this.inbox.findIndex(match)) >= 0, 5_000).catch(() => {
      throw new Error(`no ${what}; got ${JSON.stringify(this.inbox)}`);
    });
    return this.inbox.splice(0, found + 1)[found];
  }

  /** Waits for a message that `match` accepts, taking nothing. */
  async seen(match: (m: Json) => boolean, count = 1): Promise<Json[]> {
    let found: Json[] = [];
    await waitFor(() => (found = this.inbox.filter(match)).length >= count, 5_000).catch(() => {
      throw new Error(`not ${count} such messages; got ${JSON.stringify(this.inbox)}`);
    });
    return found;
  }

  /** Takes what came until now. */
  take(): Json[] {
    return this.inbox.splice(0);
  }

  async close(): Promise<void> {
    this.ws.close();
    await this.closed;
  }
}

const type = (t: string) => (m: Json) => m.type === t;

/** One node: a hub with chat on its own Redis connections and its own server. */
class Node {
  readonly hub: Hub;
  readonly server: Server;
  readonly redis: RedisBackend;
  readonly log: string[];

  private constructor(redis: RedisBackend, log: string[], options: HubOptions) {
    this.redis = redis;
    this.log = log;
    const { history, sessions, broker } = redis;
    this.hub = chat(
      new Hub({ history, sessions, broker, wallClock: () => 42, ...options }),
      { wallClock: () => 42 },
    );
    this.server = serve({ port: 0, hostname: "127.0.0.1", routes: { "/ws": this.hub } });
  }

  static async start(
    redis: RedisServer,
    options: RedisBackendOptions = {},
    hubOptions: HubOptions = {},
  ): Promise<Node> {
    const log: string[] = [];
    const backend = await connectRedisBackend(redis.url, {
      maxReconnectDelay: 100,
      log: (line) => log.push(line),
      ...options,
    });
    return new Node(backend, log, hubOptions);
  }

  connect(query: string): Promise<Peer> {
    return Peer.open(this.server, query);
  }

  async stop(): Promise<void> {
    await this.server.shutdown({ timeout: 500 });
    this.hub.dispose();
    await this.redis.close();
  }
}

/**
 * A test with a fresh Redis of its own (flushed between tests by being new), the
 * sanitizers off for the Redis client's sockets and timers.
 */
function redisTest(name: string, body: (redis: RedisServer) => Promise<void>): void {
  Deno.test({
    name,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const redis = await RedisServer.start();
      try {
        await body(redis);
      } finally {
        await redis.down();
      }
    },
  });
}

/** A {@linkcode redisTest} with two nodes on its Redis, both started with `options`. */
function twoNodesTest(
  name: string,
  options: RedisBackendOptions,
  body: (a: Node, b: Node, redis: RedisServer) => Promise<void>,
): void {
  redisTest(name, async (redis) => {
    const a = await Node.start(redis, options);
    const b = await Node.start(redis, options);
    try {
      await body(a, b, redis);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
}

/** Opens a peer and reads its welcome and topic positions. */
async function join(node: Node, query: string): Promise<[Peer, Json, Json, Json]> {
  const peer = await node.connect(query);
  const welcome = await peer.next(type("welcome"));
  const lobby = await peer.next((m) => m.type === "subscribed" && m.topic === "lobby");
  const direct = await peer.next((m) => m.type === "subscribed" && m.topic === "$direct");
  return [peer, welcome, lobby, direct];
}

redisTest("redis: the history contract holds for RedisHistory", async (redis) => {
  const { createClient } = await import("npm:redis@5");
  const client = await createClient({ url: redis.url }).connect();
  try {
    let prefix = 0;
    for (const [name, step] of Object.entries(historyContract)) {
      try {
        // A prefix per step: each starts with no topics.
        await step((bounds) => new RedisHistory(client, { ...bounds, prefix: `c${++prefix}:` }));
      } catch (error) {
        throw new Error(`contract step "${name}" failed`, { cause: error });
      }
    }
    // Two nodes, each with its own connection, appending to one topic at once.
    const other = await client.duplicate().connect();
    try {
      const untemplated = (offset: number) => `{"offset":${offset}}`;
      const a = new RedisHistory(client, { prefix: "two:" });
      const b = new RedisHistory(other, { prefix: "two:" });
      const done = await Promise.all(
        Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).append("t", untemplated)),
      );
      assertEquals(
        done.map((d) => d.offset).sort((x, y) => x - y),
        Array.from({ length: 30 }, (_, i) => i + 1),
      );
      for (const d of done) assertEquals(d.text, `{"offset":${d.offset}}`);
      // The history is lost (flushed, evicted, Redis restarted): a new epoch.
      await client.sendCommand(["FLUSHALL"]);
      const after = await a.since("t", done[0]);
      assertEquals(after.recovered, false);
      assertEquals(after.position.offset, 0);
      assertNotEquals(after.position.epoch, done[0].epoch);
    } finally {
      other.destroy();
    }
  } finally {
    client.destroy();
  }
});

Deno.test("redis: an unreachable Redis is a clear error within connectTimeout", async () => {
  const port = freePort(); // nothing listens there now
  const start = Date.now();
  const error = await connectRedisBackend(`redis://:secret@127.0.0.1:${port}`, {
    connectTimeout: 300,
  }).then(() => undefined, (error: Error) => error);
  assert(error?.message.startsWith("cannot reach Redis at redis://:***@127.0.0.1"), error?.message);
  assert(Date.now() - start < 2_000);
});

redisTest(
  "redis: with commandTimeout, a Redis that hangs fails fast like one that is away",
  async (redis) => {
    const backend = await connectRedisBackend(redis.url, { commandTimeout: 100, log: () => {} });
    const { createClient } = await import("npm:redis@5");
    const other = await createClient({ url: redis.url }).connect();
    try {
      const sleeping = other.sendCommand(["DEBUG", "SLEEP", "0.6"]);
      await sleep(50);
      const start = Date.now();
      await assertRejects(backend.history.position("t"), "UnavailableError");
      assert(Date.now() - start < 450, `${Date.now() - start} ms`);
      await sleeping;
      assertEquals((await backend.history.position("t")).offset, 0, "and works again after");
    } finally {
      other.destroy();
      await backend.close();
    }
  },
);

redisTest(
  "redis: a node that missed the move cannot write its old record over the new owner's",
  async (redis) => {
    const { createClient } = await import("npm:redis@5");
    const client = await createClient({ url: redis.url }).connect();
    // Two stores that do not listen for moves: node A learns only from its writes.
    const a = new RedisSessionStore(client, { node: "A" });
    const b = new RedisSessionStore(client, { node: "B" });
    const moved: string[] = [];
    a.onMove = (session) => moved.push(session.id);
    try {
      const session = (await a.create("ivy", "192.0.2.1"))!;
      await a.attach(session);
      session.lastCseq = 4;
      await a.update(session);
      const resumed = await b.resume(session.id, "ivy");
      assert(resumed.ok);
      assertEquals(resumed.session.lastCseq, 4);
      await b.attach(resumed.session);
      // Node A's connection still had cseq 5 queued: its write is refused, it lets go.
      session.lastCseq = 5;
      await a.update(session);
      assertEquals(moved, [session.id]);
      assertEquals(a.size, 0);
      const stored = await client.sendCommand(["HMGET", `hw:s:${session.id}`, "cseq", "node"]);
      assertEquals(stored, ["4", "B"]);
      // Node B processes it instead, once.
      resumed.session.lastCseq = 5;
      await b.update(resumed.session);
      assertEquals(await client.sendCommand(["HGET", `hw:s:${session.id}`, "cseq"]), "5");
    } finally {
      a.dispose();
      b.dispose();
      client.destroy();
    }
  },
);

twoNodesTest(
  "redis: a publish on node A reaches a client on node B, in offset order",
  {},
  async (a, b) => {
    const [onB, bobWelcome, , bobDirect] = await join(b, "id=bob");
    const [onA] = await join(a, "id=alice");
    onA.send({ type: "chat", text: "hello from A", cseq: 1 });
    assertEquals(await onA.seen(type("ack")), [{ type: "ack", cseq: 1 }]);
    // As on one node: the sender has its own publication before its ack.
    assertEquals(onA.inbox.map((m) => m.type), ["chat", "ack"]);
    const [first] = await onB.seen(type("chat"));
    assertEquals([first.offset, first.from, first.text], [1, "alice", "hello from A"]);
    // Server publishes on both nodes at once: every client sees one order, no gap.
    await Promise.all(
      Array.from({ length: 20 }, (_, n) => (n % 2 ? a : b).hub.publish("lobby", "n", { n })),
    );
    for (const peer of [onA, onB]) {
      const lobby = await peer.seen((m) => m.topic === "lobby", 21);
      assertEquals(lobby.map((m) => m.offset), Array.from({ length: 21 }, (_, i) => i + 1));
    }
    assertEquals(a.redis.state, "healthy");
    // A direct message from node A to a session on node B; an unknown one is refused.
    assertEquals(await a.hub.send(bobWelcome.session as string, "dm", { text: "hi bob" }), {
      epoch: bobDirect.epoch,
      offset: 1,
    });
    assertEquals((await onB.seen(type("dm")))[0].text, "hi bob");
    assertEquals(await a.hub.send("no-such-session", "dm"), undefined);
    // Leaving and joining again at once leaves node B subscribed.
    onB.send({ type: "unsubscribe", topic: "lobby" });
    onB.send({ type: "subscribe", topic: "lobby", cseq: 1 });
    await onB.seen((m) => m.type === "ack" && m.cseq === 1);
    await a.hub.publish("lobby", "n", { n: "again" });
    assertEquals((await onB.seen((m) => m.n === "again"))[0].offset, 22);
    await Promise.all([onA.close(), onB.close()]);
  },
);

twoNodesTest(
  "redis: a session of node A resumes on node B: last cseq shared, topic recovered from its offset",
  {},
  async (a, b) => {
    const [first, welcome, lobby, direct] = await join(a, "id=carol");
    const session = welcome.session as string;
    for (const cseq of [1, 2]) first.send({ type: "chat", text: `m${cseq}`, cseq });
    await first.next((m) => m.type === "ack" && m.cseq === 2);
    await a.hub.send(session, "dm", { text: "for carol" });
    await first.next(type("dm"));
    await first.close();
    await b.hub.publish("lobby", "note", { text: "while away" }); // offset 3
    // On node B, with the session of node A.
    const [second, resumed] = await join(b, `id=carol&session=${session}`);
    assertEquals([resumed.session, resumed.resumed, resumed.last_cseq], [session, true, 2]);
    second.send({ type: "subscribe", topic: "lobby", epoch: lobby.epoch, offset: 1, cseq: 3 });
    const recovered = await second.next((m) => m.type === "subscribed" && m.recovered === true);
    assertEquals([recovered.epoch, recovered.offset], [lobby.epoch, 1]);
    assertEquals((await second.next(type("chat"))).offset, 2);
    assertEquals((await second.next(type("note"))).offset, 3);
    // A re-send of what node A processed is acked, not processed again.
    second.send({ type: "chat", text: "m2 again", cseq: 2 });
    await second.next((m) => m.type === "ack" && m.cseq === 2);
    second.send({ type: "chat", text: "m4", cseq: 4 });
    const m4 = await second.next(type("chat"));
    assertEquals([m4.offset, m4.text], [4, "m4"], "m2 was not published twice");
    assertEquals((await b.redis.history.position("lobby")).offset, 4);
    // Her direct topic too: node A kept its history when the session moved.
    second.send({ type: "subscribe", topic: "$direct", epoch: direct.epoch, offset: 0 });
    const dm = await second.next(type("dm"));
    assertEquals([dm.topic, dm.offset, dm.text], ["$direct", 1, "for carol"]);
    await b.hub.send(session, "dm", { text: "from B" });
    assertEquals((await second.next(type("dm"))).offset, 2);
    // Back to node A while B still holds the connection: B closes it as taken over.
    const [third, again] = await join(a, `id=carol&session=${session}`);
    assertEquals([again.resumed, again.last_cseq], [true, 4]);
    const event = await second.closed;
    assertEquals([event.code, event.reason], [SESSION_TAKEN_OVER, takenOverReason(4)]);
    assertEquals(b.hub.connections, 0);
    await third.close();
  },
);

twoNodesTest("redis: a session that expired, or whose node died, tells its last cseq on any node", {
  grace: 300,
  lease: 1_000,
}, async (a, b) => {
  // Expired: its hash goes after the grace; node A is never asked again.
  const [first, welcome] = await join(a, "id=hank");
  first.send({ type: "chat", text: "one", cseq: 1 });
  await first.next(type("ack"));
  await first.close();
  await sleep(450);
  const late = await b.connect(`id=hank&session=${welcome.session}`);
  const failed = await late.next(type("resume_failed"));
  assertEquals([failed.reason, failed.last_cseq], ["unknown or expired session", 1]);
  const fresh = await late.next(type("welcome"));
  assertEquals(fresh.resumed, false);
  // Its node died while attached: nothing renews the lease, nothing detaches.
  late.send({ type: "chat", text: "two", cseq: 1 });
  late.send({ type: "chat", text: "three", cseq: 2 });
  await late.next((m) => m.type === "ack" && m.cseq === 2);
  await b.redis.close(); // as if killed: node B's connections to Redis are gone
  await sleep(1_150);
  const [elsewhere] = await Promise.all([
    a.connect(`id=hank&session=${fresh.session}`),
    late.close(),
  ]);
  const lost = await elsewhere.next(type("resume_failed"));
  assertEquals(lost.last_cseq, 2);
  await elsewhere.close();
});

twoNodesTest(
  "redis: a trimmed history is told as recovered:false, on any node",
  { maxEntries: 2 },
  async (a, b) => {
    const [peer, , lobby] = await join(b, "id=dave");
    for (let n = 1; n <= 5; n++) await a.hub.publish("lobby", "n", { n });
    assertEquals((await peer.next((m) => m.offset === 5)).n, 5);
    peer.send({ type: "subscribe", topic: "lobby", epoch: lobby.epoch, offset: 1 });
    const lost = await peer.next(type("subscribed"));
    assertEquals([lost.recovered, lost.epoch, lost.offset], [false, lobby.epoch, 5]);
    peer.send({ type: "subscribe", topic: "lobby", epoch: lobby.epoch, offset: 3 });
    const kept = await peer.next(type("subscribed"));
    assertEquals([kept.recovered, kept.offset], [true, 3]);
    assertEquals([(await peer.next(type("n"))).n, (await peer.next(type("n"))).n], [4, 5]);
    await peer.close();
  },
);

twoNodesTest(
  "redis: Redis restarted mid-run: an error, no ack and 1013 while it is down; fan-out resumes after",
  {},
  async (a, b, redis) => {
    const [onA, welcome] = await join(a, "id=erin");
    const [onB] = await join(b, "id=frank");
    onA.send({ type: "chat", text: "before", cseq: 1 });
    assertEquals((await onB.next(type("chat"))).text, "before");
    await redis.down();
    await waitFor(() => !a.redis.healthy && !b.redis.healthy);
    // Two messages: the first fails, and the second must not be processed before it
    // (acks are cumulative): the connection is closed with a retry hint.
    onA.send({ type: "chat", text: "during 1", cseq: 2 });
    onA.send({ type: "chat", text: "during 2", cseq: 3 });
    const error = await onA.next(type("error"));
    assertEquals(error.cseq, 2);
    assert(String(error.reason).includes("redis"), String(error.reason));
    const bounced = await onA.closed;
    assertEquals([bounced.code, bounced.reason], [1013, "retry-after=1000"]);
    assertEquals(onA.inbox.filter((m) => m.type === "ack" || m.type === "error"), []);
    await assertRejects(a.hub.publish("lobby", "n", { n: 1 }), "UnavailableError");
    // A new connection cannot get a session now: it is told to come back.
    const refused = await (await b.connect("id=late")).closed;
    assertEquals([refused.code, refused.reason], [1013, "retry-after=1000"]);
    assertEquals(a.log.length, 1, a.log.join("\n"));
    assert(a.log[0].includes("lost"), a.log[0]);
    // No crash, no stray error report: the hubs carry on.
    await redis.up();
    await waitFor(() => a.redis.healthy && b.redis.healthy);
    assertEquals(a.log.length, 2, a.log.join("\n"));
    assert(a.log[1].includes("back"), a.log[1]);
    // The client comes back and re-sends what was not acked, in order. Redis lost
    // everything: the session is node A's record again, the history a new epoch.
    const [again, resumed] = await join(a, `id=erin&session=${welcome.session}`);
    assertEquals([resumed.resumed, resumed.last_cseq], [true, 1]);
    again.send({ type: "chat", text: "during 1", cseq: 2 });
    again.send({ type: "chat", text: "during 2", cseq: 3 });
    await again.seen((m) => m.type === "ack" && m.cseq === 3);
    const notice = await onB.next(type("subscribed"));
    assertEquals([notice.recovered, notice.offset], [false, 0]);
    const after = await onB.seen(type("chat"), 2);
    assertEquals(after.map((m) => [m.text, m.offset]), [["during 1", 1], ["during 2", 2]]);
    await Promise.all([again.close(), onB.close()]);
  },
);

redisTest(
  "redis: a node fills a gap in a channel from the history, or tells what it lost",
  async (redis) => {
    const { createClient } = await import("npm:redis@5");
    const client = await createClient({ url: redis.url }).connect();
    // Appends that publish nothing: to node A's channel they are a gap.
    const quiet = new RedisHistory(client, { maxEntries: 3 });
    const note = (n: number) => (offset: number) =>
      JSON.stringify({ type: "n", topic: "lobby", offset, n });
    // Published while node A's subscriber is away (it reconnects 25 ms or more later).
    let away: Promise<unknown> | undefined;
    const a = await Node.start(redis, {
      maxEntries: 3,
      onStateChange: (state) => {
        if (state === "degraded") away ??= quiet.append("lobby", note(10));
      },
    });
    try {
      const [peer, , lobby] = await join(a, "id=gus");
      await quiet.append("lobby", note(1));
      await quiet.append("lobby", note(2));
      await a.hub.publish("lobby", "n", { n: 3 });
      const got = await peer.seen(type("n"), 3);
      assertEquals(got.map((m) => [m.offset, m.n]), [[1, 1], [2, 2], [3, 3]], "1 and 2 fetched");
      // More than the history keeps goes by unpublished: the members are told.
      for (let n = 4; n <= 8; n++) await quiet.append("lobby", note(n));
      await a.hub.publish("lobby", "n", { n: 9 });
      await peer.seen(type("n"), 6);
      assertEquals(peer.take().slice(3), [
        { type: "subscribed", topic: "lobby", epoch: lobby.epoch, offset: 6, recovered: false },
        { type: "n", topic: "lobby", offset: 7, n: 7 },
        { type: "n", topic: "lobby", offset: 8, n: 8 },
        { type: "n", topic: "lobby", offset: 9, n: 9 },
      ]);
      // The subscriber connection drops; what is published meanwhile is still delivered.
      await client.sendCommand(["CLIENT", "KILL", "TYPE", "pubsub"]);
      await waitFor(() => away !== undefined);
      await away;
      await peer.seen((m) => m.offset === 10);
      assertEquals(a.log.length, 2, "the subscriber's drop is logged, and its return");
      await peer.close();
    } finally {
      client.destroy();
      await a.stop();
    }
  },
);

async function assertRejects(promise: Promise<unknown>, name: string): Promise<void> {
  try {
    await promise;
  } catch (error) {
    assertEquals((error as Error).name, name);
    return;
  }
  throw new Error(`expected a rejection with ${name}`);
}
