/**
 * Presence wired into the hub, on an injected clock and the memory store:
 * who is online from `?id=`, tabs, timeouts, away, `presence_subscribe`
 * (state then diffs, diffs held while the state is read), the client's
 * `PresenceView` (gaps resync), and the HTTP handler.
 */
import { assert, assertEquals } from "@std/assert";
import { Hub, type HubOptions } from "../hub/mod.ts";
import {
  type MemberRow,
  MemoryPresenceStore,
  Presence,
  type PresenceEvent,
  presenceFetch,
} from "../hub/presence/mod.ts";
import { ReconnectingSocket } from "../client/reconnecting_socket.ts";
import { ManualClock } from "./_clock.ts";
import { fakeWebSocketClass } from "./_fake_websocket.ts";
import { connect, hangUp, type Json, say } from "./_hub_fake.ts";
import { type CloseInfo, serve } from "../server/mod.ts";
import { RawClient } from "./_raw_client.ts";
import { sleep, waitFor } from "./_wait.ts";

/** A memory store whose `members()` reads wait for `release()` while `gate` is set. */
class GatedStore extends MemoryPresenceStore {
  gate: Promise<void> | undefined;
  open = () => {};
  override async members(topic: string): Promise<MemberRow[]> {
    const rows = await super.members(topic);
    if (this.gate) await this.gate;
    return rows;
  }
  shut(): void {
    this.gate = new Promise((resolve) => this.open = resolve);
  }
}

async function settle(presence: Presence): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await presence.flush();
    await sleep(0);
  }
}

async function setup(options: HubOptions = {}, presenceTimeout = 30_000, awayAfter = 0) {
  const clock = new ManualClock(1_700_000_000_000);
  const store = new GatedStore({ now: () => clock.now() });
  const presence = new Presence({ store, clock, nodeId: "n1", presenceTimeout, awayAfter });
  const events: PresenceEvent[] = [];
  presence.subscribe((event) => events.push(event));
  await presence.start();
  const hub = new Hub({ clock, wallClock: () => clock.now(), presence, ...options });
  hub.defaultTopics.add("lobby");
  const fetch = presenceFetch(presence);
  const get = async (path: string) => {
    const response = await fetch(new Request(`http://localhost${path}`));
    return { status: response.status, body: await response.json() };
  };
  const done = async () => {
    hub.dispose();
    await presence.close();
  };
  return { clock, store, presence, events, hub, get, done };
}

const timeout: CloseInfo = { code: 1006, reason: "", wasClean: false, cause: "timeout" };
const diffs = (messages: Json[]) =>
  messages.filter((m) => String(m.type).startsWith("presence_"))
    .map((m) =>
      [m.type, (m.member as Json)?.id, m.offset, m.reason].filter((x) => x !== undefined)
    );

Deno.test("hub presence: a client connected with ?id= is online at once, in its topics", async () => {
  const t = await setup();
  const [ann, welcome] = await connect(t.hub, "?id=ann");
  assertEquals(welcome[0].type, "welcome");
  // No heartbeat, no message: online, and a member of the default topic.
  const user = await t.get("/presence/ann");
  assertEquals(user.status, 200);
  assertEquals(user.body.status, "online");
  assertEquals(user.body.topics, ["lobby"]);
  assertEquals(user.body.connected_at, t.clock.now());
  assertEquals(t.events.map((e) => [e.type, e.topic, e.userId]), [["join", "lobby", "ann"]]);
  // A topic joined later is one more membership; leaving it is a leave {closed}.
  await say(t.hub, ann, { type: "subscribe", topic: "board" });
  assertEquals((await t.get("/presence/ann")).body.topics.sort(), ["board", "lobby"]);
  await say(t.hub, ann, { type: "unsubscribe", topic: "board" });
  assertEquals(t.events.slice(1).map((e) => [e.type, e.topic, e.reason]), [
    ["join", "board", undefined],
    ["leave", "board", "closed"],
  ]);
  await hangUp(t.hub, ann);
  await settle(t.presence);
  const gone = await t.get("/presence/ann");
  assertEquals(gone.body.status, "offline");
  assertEquals(gone.body.last_seen, t.clock.now());
  await t.done();
});

Deno.test("hub presence: several tabs of one user are one entry, one join and one leave", async () => {
  const t = await setup();
  const [tab1] = await connect(t.hub, "?id=ann");
  t.clock.advance(100);
  const [tab2] = await connect(t.hub, "?id=ann");
  const [bob] = await connect(t.hub, "?id=bob");
  const lobby = await t.get("/presence?topic=lobby");
  assertEquals(lobby.status, 200);
  assertEquals(lobby.body.members.map((m: Json) => m.id).sort(), ["ann", "bob"]);
  await hangUp(t.hub, tab1);
  assertEquals((await t.get("/presence/ann")).body.status, "online");
  await hangUp(t.hub, tab2);
  await hangUp(t.hub, bob);
  assertEquals(
    t.events.map((e) => [e.type, e.userId]),
    [["join", "ann"], ["join", "bob"], ["leave", "ann"], ["leave", "bob"]],
  );
  await t.done();
});

Deno.test("hub presence: a silent client goes offline with exactly one leave {timeout}", async () => {
  const t = await setup({}, 30_000);
  const [ann] = await connect(t.hub, "?id=ann");
  const [bob] = await connect(t.hub, "?id=bob");
  // Bob's heartbeats keep him; Ann says nothing.
  for (let i = 0; i < 8; i++) {
    t.clock.advance(5_000);
    await say(t.hub, bob, { type: "heartbeat", id: i });
  }
  await settle(t.presence);
  assertEquals(t.events.map((e) => [e.type, e.userId, e.reason]), [
    ["join", "ann", undefined],
    ["join", "bob", undefined],
    ["leave", "ann", "timeout"],
  ]);
  // The server's keepalive drops her later: no second leave.
  await t.hub.close(ann.ws, timeout);
  // Bob's keepalive drop is a leave {timeout} too.
  await t.hub.close(bob.ws, timeout);
  assertEquals(t.events.slice(3).map((e) => [e.type, e.userId, e.reason]), [
    ["leave", "bob", "timeout"],
  ]);
  await t.done();
});

Deno.test("hub presence: a connection timed out by presence that speaks again is closed", async () => {
  const t = await setup({}, 10_000);
  const [ann] = await connect(t.hub, "?id=ann");
  t.clock.advance(12_000); // silent past the presence timeout: everyone was told she left
  await say(t.hub, ann, { type: "heartbeat" }); // stale, or a stall: either way not a join
  assertEquals(ann.closedWith, [1000, "presence timeout"]);
  await hangUp(t.hub, ann);
  assertEquals(t.events.map((e) => [e.type, e.reason]), [["join", undefined], [
    "leave",
    "timeout",
  ]]);
  // Her client comes back on a new connection: online again.
  await connect(t.hub, "?id=ann");
  assertEquals((await t.get("/presence/ann")).body.status, "online");
  assertEquals(t.events.length, 3);
  await t.done();
});

Deno.test("hub presence: heartbeats keep a user online but away; a message makes them online", async () => {
  const t = await setup({}, 30_000, 20_000);
  const [ann] = await connect(t.hub, "?id=ann");
  for (let i = 0; i < 6; i++) {
    t.clock.advance(5_000);
    await say(t.hub, ann, { type: "heartbeat" });
  }
  assertEquals((await t.get("/presence/ann")).body.status, "away");
  await say(t.hub, ann, { type: "whatever" }); // even a refused message is activity
  assertEquals((await t.get("/presence/ann")).body.status, "online");
  assertEquals(t.events.map((e) => [e.type, e.presence.status]), [
    ["join", "online"],
    ["update", "away"],
    ["update", "online"],
  ]);
  await t.done();
});

Deno.test("hub presence: presence_subscribe gets the state, then diffs in offset order", async () => {
  const t = await setup();
  const [ann] = await connect(t.hub, "?id=ann");
  const state = await say(t.hub, ann, { type: "presence_subscribe", topic: "lobby", cseq: 1 });
  assertEquals(state.map((m) => m.type), ["presence_state", "ack"]);
  const epoch = state[0].epoch as string;
  assertEquals(state[0].offset, 1);
  assertEquals(state[0].members, [{
    id: "ann",
    status: "online",
    connected_at: t.clock.now(),
    last_seen: t.clock.now(),
  }]);
  const [bob] = await connect(t.hub, "?id=bob");
  await hangUp(t.hub, bob);
  const [carl] = await connect(t.hub, "?id=carl");
  await t.hub.close(carl.ws, timeout);
  const got = ann.take();
  assertEquals(diffs(got), [
    ["presence_join", "bob", 2],
    ["presence_leave", "bob", 3, "closed"],
    ["presence_join", "carl", 4],
    ["presence_leave", "carl", 5, "timeout"],
  ]);
  assert(got.every((m) => m.epoch === epoch && m.topic === "lobby"));
  assertEquals((got[1].member as Json).status, "offline");
  // presence_unsubscribe stops the diffs.
  await say(t.hub, ann, { type: "presence_unsubscribe", topic: "lobby" });
  await connect(t.hub, "?id=dora");
  assertEquals(diffs(ann.take()), []);
  await t.done();
});

Deno.test("hub presence: diffs made while the state is read follow it, none twice, none lost", async () => {
  const t = await setup();
  const [ann] = await connect(t.hub, "?id=ann");
  t.store.shut();
  const asked = say(t.hub, ann, { type: "presence_subscribe", topic: "lobby" });
  await sleep(0);
  await connect(t.hub, "?id=bob"); // offset 2, while the read waits
  t.store.open();
  t.store.gate = undefined;
  const got = await asked;
  assertEquals(got[0].type, "presence_state");
  // The state names offset 1 (read before bob joined) though it lists bob (diffs are
  // idempotent); the diff it does not claim follows it, held while it was read.
  assertEquals(got[0].offset, 1);
  assertEquals((got[0].members as Json[]).map((m) => m.id).sort(), ["ann", "bob"]);
  assertEquals(diffs(got.slice(1)), [["presence_join", "bob", 2]]);
  await connect(t.hub, "?id=carl");
  assertEquals(diffs(ann.take()), [["presence_join", "carl", 3]]);
  await t.done();
});

Deno.test("hub presence: presence_subscribe is refused without a tracker, for bad topics and past the bound", async () => {
  const plain = new Hub();
  const [ws] = await connect(plain, "?id=ann");
  const refused = await say(plain, ws, { type: "presence_subscribe", topic: "lobby", cseq: 1 });
  assertEquals(refused[0], {
    type: "error",
    reason: "presence is not enabled on this server",
    cseq: 1,
  });
  plain.dispose();

  const t = await setup({
    maxTopicsPerSession: 2,
    authorize: (_session, topic) => topic !== "secret" || "no peeking",
  });
  const [ann] = await connect(t.hub, "?id=ann");
  const error = async (topic: unknown) =>
    (await say(t.hub, ann, { type: "presence_subscribe", topic })).find((m) => m.type === "error")
      ?.reason;
  assertEquals(await error("secret"), "no peeking");
  assertEquals(
    await error("$direct"),
    "topic name must not start with $ or hold control characters",
  );
  assertEquals(await error(7), 'presence_subscribe field "topic" must be a string');
  assertEquals(await error("a"), undefined);
  assertEquals(await error("b"), undefined);
  assertEquals(await error("c"), "already following the presence of 2 topics");
  assertEquals(await error("a"), undefined); // asking again is a resync, not one more
  await t.done();
});

Deno.test("hub presence: a take-over keeps the user online (no leave, no join)", async () => {
  const t = await setup();
  const [first, welcome] = await connect(t.hub, "?id=ann");
  const session = welcome[0].session as string;
  const [second] = await connect(t.hub, `?id=ann&session=${session}`);
  assertEquals(first.closedWith?.[0], 4000);
  await hangUp(t.hub, first);
  assertEquals(t.events.map((e) => e.type), ["join"]);
  await hangUp(t.hub, second);
  assertEquals(t.events.map((e) => e.type), ["join", "leave"]);
  await t.done();
});

Deno.test("presence over HTTP: snapshot, one user, 404, 400, 405 and the fallback", async () => {
  const t = await setup();
  await connect(t.hub, "?id=ann");
  assertEquals((await t.get("/presence/nobody")).status, 404);
  assertEquals((await t.get("/presence/nobody")).body, { error: "unknown user", id: "nobody" });
  for (const path of ["/presence", "/presence?topic=", `/presence?topic=${"x".repeat(65)}`]) {
    const answer = await t.get(path);
    assertEquals([answer.status, typeof answer.body.error], [400, "string"], path);
  }
  assertEquals((await t.get("/presence/%E0%A4%A")).status, 400);
  assertEquals((await t.get("/presence/a%0Ab")).status, 400);
  assertEquals((await t.get("/elsewhere")).status, 404);
  const fetch = presenceFetch(t.presence, { fallback: () => new Response("app") });
  const post = await fetch(new Request("http://localhost/presence/ann", { method: "POST" }));
  assertEquals([post.status, post.headers.get("allow")], [405, "GET, HEAD"]);
  await post.body?.cancel();
  assertEquals(await (await fetch(new Request("http://localhost/"))).text(), "app");
  const lobby = await fetch(new Request("http://localhost/presence?topic=lobby"));
  assertEquals(lobby.headers.get("content-type"), "application/json; charset=utf-8");
  assertEquals(lobby.headers.get("cache-control"), "no-store");
  const body = await lobby.json();
  assertEquals([body.topic, body.members.map((m: Json) => m.id)], ["lobby", ["ann"]]);
  // A failing store is a 503 with a JSON error, not a crash.
  const errors: unknown[] = [];
  const broken = presenceFetch(t.presence, { onError: (error) => errors.push(error) });
  t.store.members = () => Promise.reject(new Error("store down"));
  const down = await broken(new Request("http://localhost/presence?topic=lobby"));
  assertEquals([down.status, await down.json()], [503, { error: "presence store unavailable" }]);
  assertEquals(errors.length, 1);
  await t.done();
});

Deno.test("client presence view: state, diffs, a gap or new epoch resyncs, every reconnect resyncs", () => {
  const clock = new ManualClock(0);
  const { WebSocket, sockets } = fakeWebSocketClass();
  const socket = new ReconnectingSocket("ws://example.test/ws", {
    WebSocket,
    clock,
    window: null,
    document: null,
    backoff: { random: () => 0.5 },
  });
  const lobby = socket.presence("lobby");
  assertEquals(socket.presence("lobby"), lobby);
  const seen: string[] = [];
  for (const type of ["join", "leave", "update"]) {
    lobby.addEventListener(type, (e) => {
      const { member, reason } = (e as CustomEvent).detail;
      seen.push([type, member.id, reason].filter(Boolean).join(" "));
    });
  }
  const ws = sockets[0];
  ws.welcome();
  assertEquals(ws.sentOfType("presence_subscribe"), [{
    type: "presence_subscribe",
    topic: "lobby",
  }]);
  const member = (id: string, status = "online") => ({ id, status });
  const diff = (type: string, id: string, offset: number, extra: Json = {}) =>
    ws.receive({
      type: `presence_${type}`,
      topic: "lobby",
      epoch: "e1",
      offset,
      member: member(id),
      ...extra,
    });
  ws.receive({
    type: "presence_state",
    topic: "lobby",
    epoch: "e1",
    offset: 4,
    members: [member("ann")],
  });
  assert(lobby.synced);
  diff("join", "bob", 5);
  diff("join", "bob", 5); // a repeat: ignored
  diff("update", "ann", 6, { member: member("ann", "away") });
  diff("leave", "bob", 7, { reason: "timeout" });
  assertEquals(seen, ["join ann", "join bob", "update ann", "leave bob timeout"]);
  assertEquals([...lobby.members.values()], [member("ann", "away")]);
  // A gap: not applied; the state is asked for again, and diffs wait for it.
  diff("join", "carl", 9);
  assertEquals(lobby.synced, false);
  assertEquals(ws.sentOfType("presence_subscribe").length, 2);
  diff("join", "dora", 10);
  ws.receive({
    type: "presence_state",
    topic: "lobby",
    epoch: "e1",
    offset: 10,
    members: [member("carl"), member("dora")],
  });
  assertEquals(seen.slice(4), ["join carl", "join dora", "leave ann"]);
  // Another epoch (the topic emptied and started over): resync too.
  ws.receive({
    type: "presence_join",
    topic: "lobby",
    epoch: "e2",
    offset: 1,
    member: member("eve"),
  });
  assertEquals(ws.sentOfType("presence_subscribe").length, 3);
  assertEquals(lobby.members.has("eve"), false);
  // A reconnect asks again.
  ws.serverClose(1006);
  clock.advance(1_000);
  sockets[1].welcome({ resumed: true });
  assertEquals(sockets[1].sentOfType("presence_subscribe").length, 1);
  // close() stops following.
  lobby.close();
  assertEquals(sockets[1].sentOfType("presence_unsubscribe"), [
    { type: "presence_unsubscribe", topic: "lobby" },
  ]);
  assert(socket.presence("lobby") !== lobby);
  socket.close();
});

Deno.test("hub presence over loopback: keepalive dropping a peer is leave {timeout}, a close is leave {closed}", async () => {
  const presence = new Presence({ store: new MemoryPresenceStore() });
  const events: PresenceEvent[] = [];
  presence.subscribe((event) => events.push(event));
  await presence.start();
  const hub = new Hub({ presence });
  hub.defaultTopics.add("lobby");
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    pingInterval: 100,
    pingTimeout: 100,
    routes: { "/ws": hub },
  });
  const port = server.addr.port;
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?id=bob`);
  const raw = await RawClient.connect(port, "/ws?id=ann"); // never answers a ping
  try {
    await waitFor(() => events.length === 2);
    assertEquals(events.map((e) => e.userId).sort(), ["ann", "bob"]);
    // Ann's pings go unanswered: keepalive drops her, and presence hears why.
    await waitFor(() => events.some((e) => e.type === "leave"), 5_000);
    assertEquals(events.slice(2).map((e) => [e.type, e.userId, e.reason]), [
      ["leave", "ann", "timeout"],
    ]);
    // Bob (Deno's WebSocket answers pings) stays, until he closes.
    const closed = new Promise((resolve) => ws.onclose = resolve);
    ws.close(1000);
    await closed;
    await waitFor(() => events.length === 4);
    assertEquals(events.slice(3).map((e) => [e.type, e.userId, e.reason]), [
      ["leave", "bob", "closed"],
    ]);
  } finally {
    raw.close();
    await server.shutdown({ timeout: 500 });
    hub.dispose();
    await presence.close();
  }
});
