import { assert, assertEquals, assertMatch, assertNotEquals, assertThrows } from "@std/assert";
import { chat, Hub, type HubOptions, MemoryHistory, MemorySessionStore } from "../hub/mod.ts";
import { serve } from "../server/mod.ts";
import { ManualClock } from "./_clock.ts";
import { connect, hangUp, type Json, say } from "./_hub_fake.ts";
import { sleep, waitFor } from "./_wait.ts";

/** A hub with chat in "lobby", `ts` and `server_ts` fixed at 42. */
function chatHub(options: HubOptions = {}): Hub {
  return chat(new Hub({ wallClock: () => 42, ...options }), { wallClock: () => 42 });
}

/** The `subscribed` answers after a welcome, by topic. */
function positions(messages: Json[]): Record<string, Json> {
  const found: Record<string, Json> = {};
  for (const m of messages) if (m.type === "subscribed") found[m.topic as string] = m;
  return found;
}

Deno.test("hub: welcome, then where each topic stands (the default topic and $direct)", async () => {
  const hub = chatHub({ heartbeat: { interval: 1_500, timeout: 500 } });
  try {
    const [, [welcome, lobby, direct]] = await connect(hub, "?id=alice");
    assertEquals(welcome.type, "welcome");
    assertEquals([welcome.id, welcome.resumed, welcome.last_cseq], ["alice", false, 0]);
    assertEquals(welcome.heartbeat, { interval: 1_500, timeout: 500 });
    assertMatch(welcome.session as string, /^[0-9a-f-]{36}$/);
    assertEquals([lobby.type, lobby.topic, lobby.offset], ["subscribed", "lobby", 0]);
    assertMatch(lobby.epoch as string, /^[0-9a-z]{8}$/);
    assertEquals([direct.type, direct.topic, direct.offset], ["subscribed", "$direct", 0]);
    assertEquals("recovered" in lobby, false, "not an answer to a recovering subscribe");
    const [, [anon]] = await connect(hub, "?id=" + encodeURIComponent("bad\nid"));
    assertMatch(
      anon.id as string,
      /^anon-[0-9a-f]{8}$/,
      "a control character makes the id invalid",
    );
  } finally {
    hub.dispose();
  }
});

Deno.test("hub: heartbeat is answered at once, before a slow handler's message, never numbered", async () => {
  const hub = chatHub();
  try {
    let release!: () => void;
    let started!: () => void;
    const running = new Promise<void>((resolve) => started = resolve);
    hub.on("slow", () => {
      started();
      return new Promise<void>((resolve) => release = resolve);
    });
    const [ws] = await connect(hub);
    const slow = hub.message(ws.ws, JSON.stringify({ type: "slow", cseq: 1 }));
    await running;
    await hub.message(ws.ws, JSON.stringify({ type: "heartbeat", id: 7, ts: 1.5, extra: 1 }));
    assertEquals(ws.take(), [{ type: "heartbeat_ack", id: 7, ts: 1.5, server_ts: 42 }]);
    release();
    await slow;
    assertEquals(ws.take(), [{ type: "ack", cseq: 1 }]);
    const [error, ...rest] = await say(hub, ws, { type: "heartbeat", ts: "yesterday" });
    assertEquals([error.type, rest], ["error", []]);
    assertMatch(error.reason as string, /^heartbeat field "ts" must be a finite number/);
  } finally {
    hub.dispose();
  }
});

Deno.test("hub: a custom type's handler gets the session and client id; its return value is the ack's reply", async () => {
  const hub = chatHub();
  try {
    const seen: unknown[] = [];
    hub.on<{ a: number; b: number }>("add", (ctx, m) => {
      seen.push([ctx.clientId, ctx.session.id, m.type, m.cseq]);
      return { sum: m.a + m.b };
    });
    hub.on("later", async () => {
      await sleep(5);
      return "done";
    });
    hub.on("nothing", () => undefined);
    hub.on("fail", () => {
      throw new Error("no such move");
    });
    hub.on("reject", () => Promise.reject(new Error("rejected")));
    const [ws, [welcome]] = await connect(hub, "?id=ann");
    assertEquals(await say(hub, ws, { type: "add", a: 2, b: 3, cseq: 1 }), [
      { type: "ack", cseq: 1, reply: { sum: 5 } },
    ]);
    assertEquals(seen, [["ann", welcome.session, "add", 1]]);
    assertEquals(await say(hub, ws, { type: "later", cseq: 2 }), [
      { type: "ack", cseq: 2, reply: "done" },
    ]);
    assertEquals(await say(hub, ws, { type: "nothing", cseq: 3 }), [{ type: "ack", cseq: 3 }]);
    assertEquals(await say(hub, ws, { type: "fail", cseq: 4 }), [
      { type: "error", reason: "no such move", cseq: 4 },
      { type: "ack", cseq: 4 },
    ]);
    assertEquals(await say(hub, ws, { type: "reject", cseq: 5 }), [
      { type: "error", reason: "rejected", cseq: 5 },
      { type: "ack", cseq: 5 },
    ]);
    // Without a cseq: processed, nothing to ack.
    assertEquals(await say(hub, ws, { type: "add", a: 1, b: 1 }), []);
    assertEquals(seen.length, 2);
    assertEquals(ws.closedWith, undefined, "the connection stays");
  } finally {
    hub.dispose();
  }
});

Deno.test("hub: reserved types cannot be registered; unknown and reserved types get an error", async () => {
  const hub = chatHub();
  try {
    for (const type of ["heartbeat", "ack", "subscribe", "unsubscribe", "welcome", "error", ""]) {
      assertThrows(() => hub.on(type, () => {}), TypeError);
    }
    const [ws] = await connect(hub);
    assertEquals(await say(hub, ws, { type: "dance", cseq: 1 }), [
      { type: "error", reason: 'unknown message type "dance"', cseq: 1 },
      { type: "ack", cseq: 1 },
    ]);
    assertEquals(await say(hub, ws, { type: "ack", cseq: 2 }), [
      { type: "error", reason: '"ack" is a server message type', cseq: 2 },
      { type: "ack", cseq: 2 },
    ]);
    assertEquals(await say(hub, ws, "{oops"), [{
      type: "error",
      reason: "message is not valid JSON",
    }]);
    assertEquals(await say(hub, ws, '{"type":"dance","cseq":0}'), [
      { type: "error", reason: 'dance field "cseq" must be a whole number >= 1' },
    ]);
    assertEquals(ws.closedWith, undefined);
    const binary = await connect(hub);
    await hub.message(binary[0].ws, new Uint8Array([1]));
    assertEquals(binary[0].closedWith?.[0], 1003);
  } finally {
    hub.dispose();
  }
});

Deno.test("hub: chat is one handler: every member of the topic gets one string, offsets rise", async () => {
  const hub = chatHub();
  try {
    const [a] = await connect(hub, "?id=alice");
    const [b] = await connect(hub, "?id=bob");
    assertEquals(await say(hub, a, { type: "chat", text: "hi", cseq: 1 }), [
      { type: "chat", topic: "lobby", offset: 1, from: "alice", text: "hi", ts: 42 },
      { type: "ack", cseq: 1 },
    ]);
    assertEquals(b.take(), [
      { type: "chat", topic: "lobby", offset: 1, from: "alice", text: "hi", ts: 42 },
    ]);
    await say(hub, b, { type: "subscribe", topic: "side", cseq: 1 });
    assertEquals((await say(hub, b, { type: "chat", topic: "side", text: "psst" }))[0].offset, 1);
    assertEquals(a.take(), [], "a is not in side");
    assertEquals(await say(hub, a, { type: "chat", topic: "side", text: "x", cseq: 2 }), [
      { type: "error", reason: 'subscribe to "side" first', cseq: 2 },
      { type: "ack", cseq: 2 },
    ]);
    assertEquals(await say(hub, a, { type: "chat", text: 7, cseq: 3 }), [
      { type: "error", reason: 'chat field "text" must be a string', cseq: 3 },
      { type: "ack", cseq: 3 },
    ]);
    assertEquals(
      (await say(hub, a, { type: "chat", text: "x".repeat(4_097), cseq: 4 }))[0].reason,
      "chat text is longer than 4096 characters",
    );
  } finally {
    hub.dispose();
  }
});

Deno.test("hub: publish and send from the server; one serialisation per broadcast", async () => {
  const hub = chatHub();
  try {
    const [a, [welcomeA]] = await connect(hub, "?id=a");
    const [b] = await connect(hub, "?id=b");
    const position = await hub.publish("lobby", "notice", { text: "maintenance" });
    assertEquals(position.offset, 1);
    const expected = { type: "notice", topic: "lobby", offset: 1, text: "maintenance" };
    assertEquals([a.take(), b.take()], [[expected], [expected]]);
    // Direct: only a, on its own topic, with its own offsets.
    assertEquals((await hub.send(welcomeA.session as string, "dm", { n: 1 }))?.offset, 1);
    assertEquals(a.take(), [{ type: "dm", topic: "$direct", offset: 1, n: 1 }]);
    assertEquals(b.take(), []);
    assertEquals(await hub.send("no-such-session", "dm"), undefined);
    // A handler answers its sender privately.
    hub.on("whisper", async (ctx) => {
      await ctx.send("whispered", { to: ctx.clientId });
    });
    assertEquals(await say(hub, b, { type: "whisper", cseq: 1 }), [{
      type: "whispered",
      topic: "$direct",
      offset: 1,
      to: "b",
    }, { type: "ack", cseq: 1 }]);
    await assertRejects(() => hub.publish("lobby", "ack"), TypeError);
    await assertRejects(() => hub.publish("lobby", "x", { offset: 3 }), TypeError);
    await assertRejects(() => hub.publish("$x", "x"), TypeError);
  } finally {
    hub.dispose();
  }
});

async function assertRejects(run: () => Promise<unknown>, type: new () => Error): Promise<void> {
  try {
    await run();
  } catch (error) {
    assert(error instanceof type, `expected ${type.name}, got ${error}`);
    return;
  }
  throw new Error("did not reject");
}

Deno.test("hub: authorize refuses a join with its reason; bounds on topics and names", async () => {
  const hub = chatHub({
    authorize: (session, topic) =>
      topic.startsWith("admin") ? session.clientId === "root" || "admins only" : true,
    maxTopicsPerSession: 3,
    maxTopics: 4,
  });
  try {
    const [ws] = await connect(hub, "?id=eve");
    assertEquals(await say(hub, ws, { type: "subscribe", topic: "admin", cseq: 1 }), [
      { type: "error", reason: "admins only", cseq: 1 },
      { type: "ack", cseq: 1 },
    ]);
    const [root] = await connect(hub, "?id=root");
    const [subscribed, ack] = await say(hub, root, { type: "subscribe", topic: "admin", cseq: 1 });
    assertEquals([subscribed.type, subscribed.topic, subscribed.offset], [
      "subscribed",
      "admin",
      0,
    ]);
    assertEquals(ack, { type: "ack", cseq: 1 });
    await hub.publish("admin", "secret");
    assertEquals(ws.take(), [], "eve got nothing of admin");
    assertEquals(root.take().length, 1);
    for (
      const [topic, reason] of [
        ["", "topic name must have 1 to 64 characters"],
        ["x".repeat(65), "topic name must have 1 to 64 characters"],
        ["$direct:abc", "topic name must not start with $ or hold control characters"],
        ["a\nb", "topic name must not start with $ or hold control characters"],
      ]
    ) {
      assertEquals((await say(hub, ws, { type: "subscribe", topic }))[0].reason, reason);
    }
    await say(hub, ws, { type: "subscribe", topic: "t1" });
    await say(hub, ws, { type: "subscribe", topic: "t2" });
    assertEquals(
      (await say(hub, ws, { type: "subscribe", topic: "t3" }))[0].reason,
      "already in 3 topics",
    );
    const [other] = await connect(hub, "?id=o");
    assertEquals(
      (await say(hub, other, { type: "subscribe", topic: "t9" }))[0].reason,
      "too many topics on this server",
    );
    assertEquals(await say(hub, other, { type: "unsubscribe", topic: "lobby", cseq: 1 }), [
      { type: "unsubscribed", topic: "lobby" },
      { type: "ack", cseq: 1 },
    ]);
    assertEquals(
      (await say(hub, other, { type: "unsubscribe", topic: "$direct" }))[0].type,
      "error",
    );
  } finally {
    hub.dispose();
  }
});

Deno.test("hub: a re-sent cseq is acked again but never processed twice; an implausible jump is refused", async () => {
  const hub = chatHub({ maxCseqJump: 1_000 });
  try {
    let processed = 0;
    hub.on("count", () => ++processed);
    const [ws, [welcome]] = await connect(hub, "?id=a");
    assertEquals(await say(hub, ws, { type: "count", cseq: 1 }), [
      { type: "ack", cseq: 1, reply: 1 },
    ]);
    assertEquals(await say(hub, ws, { type: "count", cseq: 1 }), [{ type: "ack", cseq: 1 }]);
    // 2^53 − 1 would make every later message "done already": refused, unprocessed, unacked.
    assertEquals(await say(hub, ws, { type: "count", cseq: Number.MAX_SAFE_INTEGER }), [
      {
        type: "error",
        reason: `cseq ${Number.MAX_SAFE_INTEGER} is more than 1000 above the last processed (1)`,
      },
    ]);
    assertEquals(await say(hub, ws, { type: "count", cseq: 1_002 }), [
      { type: "error", reason: "cseq 1002 is more than 1000 above the last processed (1)" },
    ]);
    assertEquals(processed, 1);
    assertEquals(await say(hub, ws, { type: "count", cseq: 1_001 }), [
      { type: "ack", cseq: 1_001, reply: 2 },
    ]);
    await hangUp(hub, ws);
    const [again, [resumed]] = await connect(hub, `?id=a&session=${welcome.session}`);
    assertEquals([resumed.resumed, resumed.last_cseq], [true, 1_001]);
    assertEquals(await say(hub, again, { type: "count", cseq: 1_001 }), [
      { type: "ack", cseq: 1_001 },
    ]);
    assertEquals(processed, 2);
  } finally {
    hub.dispose();
  }
});

Deno.test("hub: a resume takes the session over: 4000 with last_cseq; the late connection changes nothing", async () => {
  const hub = chatHub();
  try {
    const [old, [welcome]] = await connect(hub, "?id=b");
    await say(hub, old, { type: "chat", text: "one", cseq: 1 });
    await say(hub, old, { type: "chat", text: "two", cseq: 2 });
    const [fresh, [again]] = await connect(hub, `?id=b&session=${welcome.session}`);
    assertEquals(again.resumed, true);
    assertEquals(old.closedWith, [4000, "last_cseq=2"]);
    // Late messages and the close of the replaced connection are ignored.
    assertEquals(await say(hub, old, { type: "chat", text: "late", cseq: 3 }), []);
    await hangUp(hub, old);
    assertEquals(hub.connections, 1);
    assertEquals((await say(hub, fresh, { type: "chat", text: "mine", cseq: 3 }))[0].offset, 3);
  } finally {
    hub.dispose();
  }
});

Deno.test("hub: an expired session's last cseq comes in resume_failed, to its own client id only", async () => {
  const clock = new ManualClock();
  const hub = chatHub({ clock, grace: 1_000 });
  try {
    const [keep] = await connect(hub, "?id=keep"); // a live connection keeps the sweep timer armed
    const [b, [welcome]] = await connect(hub, "?id=b");
    for (const cseq of [1, 2, 3]) await say(hub, b, { type: "chat", text: `m${cseq}`, cseq });
    await hangUp(hub, b);
    clock.advance(1_000);
    const sessions = hub.sessions as MemorySessionStore;
    assertEquals([sessions.size, sessions.tombstones], [1, 1]);
    const [, hidden] = await connect(hub, `?id=mallory&session=${welcome.session}`);
    assertEquals(hidden[0], {
      type: "resume_failed",
      session: welcome.session,
      reason: "unknown or expired session",
    });
    const [b2, [failed, fresh]] = await connect(hub, `?id=b&session=${welcome.session}`);
    assertEquals(failed, {
      type: "resume_failed",
      session: welcome.session,
      reason: "unknown or expired session",
      last_cseq: 3,
    });
    assertEquals([fresh.type, fresh.resumed, fresh.last_cseq], ["welcome", false, 0]);
    assertNotEquals(fresh.session, welcome.session);
    assertEquals((await say(hub, b2, { type: "chat", text: "m4", cseq: 1 }))[0].offset, 4);
    assertEquals(keep.take().length, 4);
  } finally {
    hub.dispose();
  }
});

Deno.test("hub: a live session removed by the server closes with 4001; its client is told the final last_cseq", async () => {
  const hub = chatHub();
  try {
    const [ws, [welcome]] = await connect(hub, "?id=a");
    await say(hub, ws, { type: "chat", text: "x", cseq: 5 });
    const session = hub.sessionOf(ws.ws)!;
    await hub.sessions.remove(session);
    assertEquals(ws.closedWith, [4001, "session ended"]);
    const [, [failed]] = await connect(hub, `?id=a&session=${welcome.session}`);
    assertEquals([failed.type, failed.last_cseq], ["resume_failed", 5]);
  } finally {
    hub.dispose();
  }
});

Deno.test("hub: a resumed client recovers a topic from its offset, missed publications in order", async () => {
  const hub = chatHub();
  try {
    const [a] = await connect(hub, "?id=a");
    const [b, [welcome, lobby]] = await connect(hub, "?id=b");
    await say(hub, a, { type: "chat", text: "1" });
    assertEquals(b.take().map((m) => m.offset), [1]);
    await hangUp(hub, b);
    for (const text of ["2", "3"]) await say(hub, a, { type: "chat", text });
    const [b2, opened] = await connect(hub, `?id=b&session=${welcome.session}`);
    assertEquals(positions(opened).lobby.offset, 3, "where the topic stands now");
    const recovered = await say(hub, b2, {
      type: "subscribe",
      topic: "lobby",
      epoch: lobby.epoch,
      offset: 1,
    });
    assertEquals(recovered.map((m) => [m.type, m.offset, m.recovered, m.text]), [
      ["subscribed", 1, true, undefined],
      ["chat", 2, undefined, "2"],
      ["chat", 3, undefined, "3"],
    ]);
  } finally {
    hub.dispose();
  }
});

Deno.test("hub: recovery says recovered:false after trimming and after an epoch change, never a silent gap", async () => {
  let epochs = 0;
  const history = new MemoryHistory({ maxEntries: 2, createEpoch: () => `e${++epochs}` });
  const hub = chatHub({ history });
  try {
    const [a, [, lobby]] = await connect(hub, "?id=a");
    assertEquals(lobby.epoch, "e1");
    for (const text of ["1", "2", "3"]) await say(hub, a, { type: "chat", text });
    a.take();
    // Offsets 2 and 3 are held; after 0 or 1... 1 was trimmed: offset 1 → 2, 3 recoverable.
    assertEquals(
      (await say(hub, a, { type: "subscribe", topic: "lobby", epoch: "e1", offset: 1 }))
        .map((m) => m.offset),
      [1, 2, 3],
    );
    assertEquals(await say(hub, a, { type: "subscribe", topic: "lobby", epoch: "e1", offset: 0 }), [
      { type: "subscribed", topic: "lobby", epoch: "e1", offset: 3, recovered: false },
    ]);
    // A new history (a restart, an eviction) is a new epoch ("e2" went to a's $direct).
    history.remove("lobby");
    assertEquals(await say(hub, a, { type: "subscribe", topic: "lobby", epoch: "e1", offset: 3 }), [
      { type: "subscribed", topic: "lobby", epoch: "e3", offset: 0, recovered: false },
    ]);
    assertEquals(
      await say(hub, a, { type: "subscribe", topic: "lobby", epoch: "e1", offset: 9 }),
      [{ type: "subscribed", topic: "lobby", epoch: "e3", offset: 0, recovered: false }],
    );
    // An offset ahead of the topic is not recoverable either.
    await say(hub, a, { type: "chat", text: "4" });
    assertEquals(
      (await say(hub, a, { type: "subscribe", topic: "lobby", epoch: "e3", offset: 5 }))[0]
        .recovered,
      false,
    );
  } finally {
    hub.dispose();
  }
});

Deno.test("hub: a publication racing a recovery waits behind it, never before or lost", async () => {
  // A history whose `since` answers late, as a shared store would.
  const memory = new MemoryHistory();
  let gate: Promise<void> = Promise.resolve();
  const history = {
    append: (topic: string, encode: (offset: number) => string) => memory.append(topic, encode),
    position: (topic: string) => memory.position(topic),
    since: async (topic: string, from: { epoch: string; offset: number }) => {
      const result = memory.since(topic, from);
      await gate;
      return result;
    },
    remove: (topic: string) => memory.remove(topic),
  };
  const hub = chatHub({ history });
  try {
    const [a, [, lobby]] = await connect(hub, "?id=a");
    await hub.publish("lobby", "n", { n: 1 });
    a.take();
    let open!: () => void;
    gate = new Promise((resolve) => open = resolve);
    const recovering = hub.message(
      a.ws,
      JSON.stringify({ type: "subscribe", topic: "lobby", epoch: lobby.epoch, offset: 0 }),
    );
    await sleep(1);
    await hub.publish("lobby", "n", { n: 2 }); // after `since` read the history
    assertEquals(a.take(), [], "held back");
    open();
    await recovering;
    assertEquals(a.take().map((m) => [m.type, m.offset]), [
      ["subscribed", 0],
      ["n", 1],
      ["n", 2],
    ]);
  } finally {
    hub.dispose();
  }
});

Deno.test("hub: direct messages sent while away are recovered on resume", async () => {
  const hub = chatHub();
  try {
    const [ws, [welcome, , direct]] = await connect(hub, "?id=a");
    await hangUp(hub, ws);
    await hub.send(welcome.session as string, "dm", { text: "while you were out" });
    const [again] = await connect(hub, `?id=a&session=${welcome.session}`);
    assertEquals(
      await say(hub, again, {
        type: "subscribe",
        topic: "$direct",
        epoch: direct.epoch,
        offset: 0,
      }),
      [
        { type: "subscribed", topic: "$direct", epoch: direct.epoch, offset: 0, recovered: true },
        { type: "dm", topic: "$direct", offset: 1, text: "while you were out" },
      ],
    );
  } finally {
    hub.dispose();
  }
});

Deno.test("hub: session ids up to 256 resume; a longer one is refused, never cut; createId is checked", async () => {
  let length = 256;
  let made = 0;
  const errors: unknown[] = [];
  const hub = chatHub({
    createId: () => String(++made).padStart(length, "s"),
    onError: (error) => errors.push(error),
  });
  try {
    const [ws, [welcome]] = await connect(hub, "?id=a");
    assertEquals((welcome.session as string).length, 256);
    await hangUp(hub, ws);
    const [, [resumed]] = await connect(hub, `?id=a&session=${welcome.session}`);
    assertEquals(resumed.resumed, true);
    const [, [failed]] = await connect(hub, `?id=a&session=${"s".repeat(257)}`);
    assertEquals([failed.reason, (failed.session as string).length], ["invalid session id", 256]);
    length = 257;
    const [bad] = await connect(hub, "?id=b");
    assertEquals(bad.closedWith?.[0], 1011);
    assertEquals(errors.length, 1);
    assert(errors[0] instanceof RangeError);
  } finally {
    hub.dispose();
  }
});

Deno.test("hub: when no session can be made, a new connection is told to retry later", async () => {
  const hub = chatHub({ maxSessions: 1 });
  try {
    await connect(hub, "?id=a");
    const [b] = await connect(hub, "?id=b");
    assertEquals(b.closedWith?.[0], 1013);
    assertMatch(b.closedWith![1], /^retry-after=\d+$/);
  } finally {
    hub.dispose();
  }
});

Deno.test("hub: requestReconnect and restart over real sockets; serve mounts the hub on /ws", async () => {
  const hub = chatHub();
  const server = serve({ port: 0, hostname: "127.0.0.1", routes: { "/ws": hub } });
  try {
    const url = `ws://127.0.0.1:${server.addr.port}/ws?id=real`;
    const ws = new WebSocket(url);
    const messages: Json[] = [];
    const closed = new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
    ws.onmessage = (event) => messages.push(JSON.parse(event.data));
    await waitFor(() => messages.length === 3, 3_000);
    assertEquals(messages.map((m) => m.type), ["welcome", "subscribed", "subscribed"]);
    ws.send(JSON.stringify({ type: "chat", text: "over tcp", cseq: 1 }));
    await waitFor(() => messages.length === 5, 3_000);
    assertEquals(messages[3].text, "over tcp");
    assertEquals(messages[4], { type: "ack", cseq: 1 });
    assertEquals(hub.requestReconnect(2_500), 1);
    await waitFor(() => messages.length === 6, 3_000);
    assertEquals(messages[5], { type: "reconnect", delay: 2_500 });
    assertEquals(hub.restart(4_000), 1);
    const event = await closed;
    assertEquals([event.code, event.reason], [1012, "retry-after=4000"]);
  } finally {
    await server.shutdown({ timeout: 1_000 });
    hub.dispose();
  }
});

Deno.test("hub: a history lost mid-stream is told to live members before its new offsets arrive", async () => {
  let epochs = 0;
  const history = new MemoryHistory({ createEpoch: () => `e${++epochs}` });
  const hub = chatHub({ history });
  try {
    const [a, [, lobby]] = await connect(hub, "?id=a");
    await hub.publish("lobby", "n", { n: 1 });
    history.remove("lobby"); // evicted, or a shared store restarted
    await hub.publish("lobby", "n", { n: 2 });
    // Without the notice, offset 1 of the new epoch would pass for the old offset 1: dropped.
    assertEquals(a.take(), [
      { type: "n", topic: "lobby", offset: 1, n: 1 },
      { type: "subscribed", topic: "lobby", epoch: "e3", offset: 0, recovered: false },
      { type: "n", topic: "lobby", offset: 1, n: 2 },
    ]);
    assertNotEquals(lobby.epoch, "e3");
  } finally {
    hub.dispose();
  }
});

Deno.test("hub: the server puts a session in a topic and takes it out; its client is told", async () => {
  const hub = chatHub({ maxTopicsPerSession: 2 });
  try {
    const [ws, [welcome]] = await connect(hub, "?id=a");
    const id = welcome.session as string;
    await hub.publish("news", "n", { n: 1 });
    assertEquals(await hub.subscribe(id, "news"), undefined);
    const [subscribed] = ws.take();
    assertEquals([subscribed.type, subscribed.topic, subscribed.offset], ["subscribed", "news", 1]);
    await hub.publish("news", "n", { n: 2 });
    assertEquals(ws.take().map((m) => m.offset), [2]);
    assertEquals(await hub.subscribe(id, "more"), "already in 2 topics");
    assertEquals(await hub.subscribe("nobody", "news"), "unknown session");
    await hub.unsubscribe(id, "news");
    assertEquals(ws.take(), [{ type: "unsubscribed", topic: "news" }]);
    await hub.publish("news", "n", { n: 3 });
    assertEquals(ws.take(), []);
  } finally {
    hub.dispose();
  }
});

Deno.test("hub: a message whose cseq was recorded is carried out even if the session is taken over meanwhile", async () => {
  // A store whose writes wait until the test lets them through: the take-over
  // happens between recording cseq 1 and running its handler.
  class SlowStore extends MemorySessionStore {
    gate: Promise<void> | undefined;
    override async update(session: Parameters<MemorySessionStore["update"]>[0]) {
      await this.gate;
      return super.update(session);
    }
  }
  const sessions = new SlowStore();
  const hub = new Hub({ sessions });
  const moves: number[] = [];
  hub.on("move", (_ctx, message) => {
    moves.push(message.x as number);
  });
  try {
    const [first, [welcome]] = await connect(hub, "?id=ann");
    let open!: () => void;
    sessions.gate = new Promise((resolve) => open = resolve);
    const pending = hub.message(first.ws, JSON.stringify({ type: "move", x: 7, cseq: 1 }));
    await sleep(0);
    // The same client comes back on a new connection (the old one looked dead) and resumes.
    const [second] = await connect(hub, `?id=ann&session=${welcome.session}`);
    assertEquals(first.closedWith?.[0], 4000); // taken over
    open();
    await pending;
    // The re-send on the new connection is acked as done, never run again.
    const replies = await say(hub, second, { type: "move", x: 7, cseq: 1 });
    assertEquals(replies.some((m) => m.type === "ack" && m.cseq === 1), true);
    assertEquals(moves, [7]); // once: neither lost nor doubled
  } finally {
    hub.dispose();
  }
});

Deno.test("hub: drain() waits for the messages already received", async () => {
  const hub = new Hub();
  let finish!: () => void;
  hub.on("slow", () => new Promise<void>((resolve) => finish = resolve));
  try {
    const [ws] = await connect(hub, "?id=bo");
    hub.message(ws.ws, JSON.stringify({ type: "slow", cseq: 1 }));
    let drained = false;
    const draining = hub.drain().then(() => drained = true);
    await sleep(10);
    assertEquals(drained, false);
    finish();
    await draining;
    assertEquals(drained, true);
  } finally {
    hub.dispose();
  }
});
