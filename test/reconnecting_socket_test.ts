import { assert, assertEquals, assertStringIncludes, assertThrows } from "@std/assert";
import { OutboxFullError } from "../client/outbox.ts";
import {
  ReconnectingSocket,
  type ReconnectingSocketOptions,
} from "../client/reconnecting_socket.ts";
import { ManualClock } from "./_clock.ts";
import { FakeDocument, FakeWebSocket, fakeWebSocketClass, FakeWindow } from "./_fake_websocket.ts";

const EVENTS = [
  "open",
  "message",
  "close",
  "error",
  "reconnecting",
  "online",
  "offline",
  "heartbeat",
  "resume_failed",
  "subscribed",
];

interface Seen {
  type: string;
  at: number;
  // deno-lint-ignore no-explicit-any
  detail: any;
}

function setup(options: ReconnectingSocketOptions = {}) {
  const clock = new ManualClock(0);
  const { WebSocket, sockets } = fakeWebSocketClass();
  const window = new FakeWindow();
  const document = new FakeDocument();
  const events: Seen[] = [];
  const socket = new ReconnectingSocket("ws://example.test/ws?token=t", {
    WebSocket,
    clock,
    window,
    document,
    backoff: { random: () => 0.5 },
    ...options,
  });
  for (const type of EVENTS) {
    socket.addEventListener(type, (event) => {
      const detail = event instanceof MessageEvent ? event.data : (event as CustomEvent).detail;
      events.push({ type, at: clock.now(), detail });
    });
  }
  const of = (type: string) => events.filter((event) => event.type === type);
  const last = () => sockets.at(-1)!;
  return { clock, sockets, window, document, events, socket, of, last };
}

/** A chat publication of "lobby" at `offset`. */
const pub = (offset: number, text = `m${offset}`) => ({
  type: "chat",
  topic: "lobby",
  offset,
  text,
});

/** The server says where "lobby" stands: the client follows it from `offset`. */
const follow = (ws: FakeWebSocket, offset = 0, epoch = "e1") =>
  ws.receive({ type: "subscribed", topic: "lobby", epoch, offset });

/** The chats a socket sent, as [cseq, text]. */
const chats = (ws: FakeWebSocket) => ws.sentOfType("chat").map((m) => [m.cseq, m.text]);

/** Lets the microtask that carries the final close event run. */
const microtasks = () => new Promise<void>((resolve) => queueMicrotask(resolve));

/** Every socket but the newest was let go: never two live sockets. */
function assertOneLive(sockets: FakeWebSocket[]): void {
  for (const old of sockets.slice(0, -1)) {
    assert(!old.attached, "an old socket still has handlers");
    assert(old.closedWith !== undefined || old.readyState === 3, "an old socket was not closed");
  }
}

/** Asserts that nothing is left after close(): no timers, listeners or handlers. */
function assertNothingLeft(t: ReturnType<typeof setup>): void {
  assertEquals(t.clock.pending, 0, "timers left");
  assertEquals(t.window.listeners, 0, "window listeners left");
  assertEquals(t.document.listeners, 0, "document listeners left");
  for (const ws of t.sockets) assert(!ws.attached, "socket handlers left");
}

Deno.test("ReconnectingSocket: connects with ?id, opens on welcome, starts the heartbeat", () => {
  const t = setup({ id: "alice" });
  assertEquals(t.sockets.length, 1);
  assertEquals(t.last().query.get("id"), "alice");
  assertEquals(t.last().query.get("token"), "t"); // the caller's query is kept
  assertEquals(t.last().query.get("session"), null);
  assertEquals(t.socket.readyState, ReconnectingSocket.CONNECTING);
  t.last().welcome({ id: "alice", session: "s9" });
  assertEquals(t.socket.readyState, ReconnectingSocket.OPEN);
  assertEquals([t.socket.session, t.socket.id], ["s9", "alice"]);
  assertEquals(t.of("open")[0].detail, { session: "s9", id: "alice", resumed: false });
  assertEquals(t.last().sentOfType("heartbeat").length, 1);
  t.socket.close();
});

Deno.test("ReconnectingSocket: send() numbers messages; queued before welcome, flushed in order", () => {
  const t = setup();
  assertEquals(t.socket.send({ type: "chat", text: "one" }), 1);
  assertEquals(t.socket.send('{"type":"chat","text":"two"}'), 2);
  assertEquals(t.last().sent.length, 0);
  assert(t.socket.bufferedAmount > 0);
  t.last().welcome();
  assertEquals(t.last().sentOfType("chat"), [
    { type: "chat", text: "one", cseq: 1 },
    { type: "chat", text: "two", cseq: 2 },
  ]);
  assertEquals(t.socket.send({ type: "chat", text: "three" }), 3);
  assertEquals(t.last().sent.at(-1), { type: "chat", text: "three", cseq: 3 });
  t.last().receive({ type: "ack", cseq: 3 });
  assertEquals(t.socket.bufferedAmount, 0);
  t.socket.close();
});

Deno.test("ReconnectingSocket: send() refuses what is not an app message, and a full outbox", () => {
  const t = setup({ outboxBytes: 100 });
  assertThrows(() => t.socket.send({ type: "heartbeat" }), TypeError);
  assertThrows(() => t.socket.send({ type: "ack", seq: 1 }), TypeError);
  assertThrows(() => t.socket.send("[1,2]"), TypeError);
  assertThrows(() => t.socket.send("subscribe", { topic: "x" }), TypeError);
  assertThrows(() => t.socket.send("ack"), TypeError);
  t.socket.send({ type: "chat", text: "x".repeat(40) });
  assertThrows(() => t.socket.send({ type: "chat", text: "y".repeat(40) }), OutboxFullError);
  t.socket.close();
  assertThrows(() => t.socket.send({ type: "chat", text: "z" }), Error, "closed");
});

Deno.test("ReconnectingSocket: reconnect sequence with full-jitter backoff, resume query", () => {
  const draws = [0, 1, 0.5, 1];
  const t = setup({ backoff: { random: () => draws.shift()! } });
  t.last().welcome({ session: "s1" });
  t.last().serverClose(1006);
  assertEquals(t.of("close")[0].detail, {
    code: 1006,
    reason: "",
    wasClean: false,
    willReconnect: true,
  });
  // Each failure: a `reconnecting` event, no socket until its delay is over.
  const expected = [500, 2_000, 2_250, 8_000]; // attempt k: 500 + r × (1000·2^k − 500)
  for (const [i, delay] of expected.entries()) {
    assertEquals(t.of("reconnecting")[i].detail, { attempt: i + 1, delay });
    assertEquals(t.sockets.length, i + 1);
    t.clock.advance(delay - 1);
    assertEquals(t.sockets.length, i + 1);
    t.clock.advance(1);
    assertEquals(t.sockets.length, i + 2);
    assertOneLive(t.sockets);
    assertEquals(t.last().query.get("session"), "s1");
    if (i < expected.length - 1) t.last().serverClose(1006);
  }
  t.last().welcome({ session: "s1", resumed: true });
  assertEquals(t.of("open").at(-1)!.detail.resumed, true);
  t.socket.close();
});

Deno.test("ReconnectingSocket: default jitter stays within [500, 1000] then [500, 2000]", () => {
  for (let run = 0; run < 50; run++) {
    const t = setup({ backoff: {} }); // Math.random
    t.last().serverClose(1006);
    const first = t.of("reconnecting")[0].detail.delay;
    assert(first >= 500 && first <= 1_000, `${first}`);
    t.clock.advance(first);
    t.last().serverClose(1006);
    const second = t.of("reconnecting")[1].detail.delay;
    assert(second >= 500 && second <= 2_000, `${second}`);
    t.socket.close();
  }
});

Deno.test("ReconnectingSocket: connect timeout gives up on a socket that never gets a welcome", () => {
  const t = setup({ connectTimeout: 3_000 });
  t.last().open(); // TCP and HTTP fine, but no welcome ever comes
  t.clock.advance(2_999);
  assertEquals(t.sockets.length, 1);
  t.clock.advance(1);
  assertEquals(t.sockets[0].closedWith?.reason, "connect timeout");
  assert(!t.sockets[0].attached);
  assertEquals(t.of("reconnecting").length, 1);
  t.clock.advance(750);
  assertEquals(t.sockets.length, 2);
  assertOneLive(t.sockets);
  t.last().welcome();
  t.clock.advance(10_000); // the timeout is gone once welcomed (heartbeats answered below)
  t.socket.close();
});

Deno.test("ReconnectingSocket: maxRetries gives up with a final close and nothing left", async () => {
  const t = setup({ maxRetries: 2 });
  for (let attempt = 0; attempt < 3; attempt++) {
    t.last().serverClose(1006);
    t.clock.advance(60_000);
  }
  await microtasks();
  assertEquals(t.sockets.length, 3); // the first attempt and 2 retries
  assertEquals(t.socket.readyState, ReconnectingSocket.CLOSED);
  assertEquals(t.of("reconnecting").length, 2);
  assertEquals(t.of("close").map((e) => e.detail.willReconnect), [false]);
  assertNothingLeft(t);
});

Deno.test("ReconnectingSocket: minUptime — a flapping connection keeps backing off, a stable one resets", () => {
  const t = setup({ minUptime: 5_000, backoff: { random: () => 1 } });
  t.last().welcome();
  t.clock.advance(1_000); // up only 1 s
  t.last().serverClose(1006);
  t.clock.advance(1_000);
  t.last().welcome();
  t.clock.advance(1_000);
  t.last().serverClose(1006);
  assertEquals(t.of("reconnecting").map((e) => e.detail.delay), [1_000, 2_000]);
  t.clock.advance(2_000);
  t.last().welcome();
  for (let i = 0; i < 60; i++) { // up 6 s, alive
    t.clock.advance(100);
    t.last().receive({ type: "heartbeat_ack" });
  }
  assertEquals(t.sockets.length, 3);
  t.last().serverClose(1006);
  assertEquals(t.of("reconnecting").at(-1)!.detail, { attempt: 1, delay: 1_000 });
  t.socket.close();
});

Deno.test("ReconnectingSocket: a 1012/1013 retry-after hint delays the next attempt", () => {
  const t = setup();
  t.last().welcome();
  t.last().serverClose(1012, "retry-after=5000");
  assertEquals(t.of("reconnecting")[0].detail.delay, 5_750); // hint + jittered backoff
  t.clock.advance(5_749);
  assertEquals(t.sockets.length, 1);
  t.clock.advance(1);
  assertEquals(t.sockets.length, 2);
  t.socket.close();
});

Deno.test("ReconnectingSocket: a reconnect message closes cleanly and waits at least its delay", () => {
  const t = setup();
  t.last().welcome();
  t.last().receive({ type: "reconnect", delay: 3_000 });
  assertEquals(t.sockets[0].closedWith, { code: 1000, reason: "reconnect requested" });
  assertEquals(t.of("close")[0].detail, {
    code: 1000,
    reason: "reconnect requested",
    wasClean: true,
    willReconnect: true,
  });
  t.clock.advance(3_749);
  assertEquals(t.sockets.length, 1);
  t.clock.advance(1);
  assertEquals(t.sockets.length, 2);
  t.socket.close();
});

Deno.test("ReconnectingSocket: offline does not burn retries; online reconnects at once", () => {
  const t = setup({ maxRetries: 1 });
  t.last().welcome();
  t.window.setOnline(false);
  assertEquals(t.of("offline").length, 1);
  t.last().serverClose(1006);
  t.clock.advance(10 * 60_000); // ten minutes offline: no attempts, no giving up
  assertEquals(t.sockets.length, 1);
  assertEquals(t.of("reconnecting").length, 0);
  assertEquals(t.socket.readyState, ReconnectingSocket.CONNECTING);
  t.window.setOnline(true);
  assertEquals(t.of("online").length, 1);
  assertEquals(t.sockets.length, 2); // at once, no backoff wait
  t.last().welcome({ resumed: true });
  assertEquals(t.socket.readyState, ReconnectingSocket.OPEN);
  t.socket.close();
});

Deno.test("ReconnectingSocket: going offline cancels a scheduled retry; online cuts a long backoff short", () => {
  const t = setup({ backoff: { random: () => 1, initialDelay: 20_000 } });
  t.last().serverClose(1006);
  assertEquals(t.of("reconnecting")[0].detail.delay, 20_000);
  t.window.setOnline(false);
  t.clock.advance(60_000);
  assertEquals(t.sockets.length, 1);
  t.window.setOnline(true);
  assertEquals(t.sockets.length, 2);
  assertEquals(t.clock.pending, 1); // only the new connect timeout
  t.socket.close();
});

Deno.test("ReconnectingSocket: online keeps a 1012/1013 retry-after hint, skipping only the backoff", () => {
  const t = setup();
  t.last().welcome();
  t.last().serverClose(1013, "retry-after=5000");
  assertEquals(t.of("reconnecting")[0].detail, { attempt: 1, delay: 5_750 });
  // Offline and back at 1 s: the server said 5 s, so not before 5 s.
  t.clock.advance(1_000);
  t.window.setOnline(false);
  t.window.setOnline(true);
  assertEquals(t.sockets.length, 1, "online must not cut a server retry hint short");
  assertEquals(t.of("reconnecting")[1].detail, { attempt: 1, delay: 4_000 });
  t.clock.advance(3_999);
  assertEquals(t.sockets.length, 1);
  t.clock.advance(1); // at the hint, not at the hint + backoff (5 750)
  assertEquals(t.sockets.length, 2);
  assertOneLive(t.sockets);
  // An online event with no offline before it (a retry still scheduled) does the same.
  t.last().welcome({ resumed: true });
  t.last().serverClose(1012, "retry-after=2000");
  const at = t.clock.now();
  t.window.setOnline(true);
  assertEquals(t.sockets.length, 2);
  t.clock.advance(1_999);
  assertEquals(t.sockets.length, 2);
  t.clock.advance(1);
  assertEquals(t.sockets.length, 3);
  assertEquals(t.clock.now() - at, 2_000);
  assertEquals(t.clock.pending, 1, "only the connect timeout: no stale retry timer");
  t.socket.close();
});

Deno.test("ReconnectingSocket: a reconnect delay that arrives offline is kept until online; later, online connects at once", () => {
  const t = setup();
  t.last().welcome();
  t.window.setOnline(false);
  t.last().receive({ type: "reconnect", delay: 3_000 });
  assertEquals(t.of("reconnecting").length, 0, "no attempt scheduled offline");
  t.clock.advance(1_000);
  t.window.setOnline(true);
  assertEquals(t.sockets.length, 1, "the server asked for 3 s");
  assertEquals(t.of("reconnecting").map((e) => e.detail), [{ attempt: 1, delay: 2_000 }]);
  // Offline again while that (free) attempt waits: nothing was counted, so nothing is taken back.
  t.clock.advance(1_000);
  t.window.setOnline(false);
  t.window.setOnline(true);
  assertEquals(t.of("reconnecting").at(-1)!.detail, { attempt: 1, delay: 1_000 });
  t.clock.advance(999);
  assertEquals(t.sockets.length, 1);
  t.clock.advance(1);
  assertEquals(t.sockets.length, 2);
  // A hint that has passed no longer holds anything up, and neither does the backoff.
  t.last().welcome({ resumed: true });
  t.last().serverClose(1012, "retry-after=1000");
  t.window.setOnline(false);
  t.clock.advance(1_500);
  t.window.setOnline(true);
  assertEquals(t.sockets.length, 3, "the hint is over: at once");
  t.last().serverClose(1006);
  assertEquals(t.of("reconnecting").at(-1)!.detail.delay > 0, true);
  t.window.setOnline(false);
  t.window.setOnline(true);
  assertEquals(t.sockets.length, 4, "no hint: the backoff is skipped as before");
  t.socket.close();
});

Deno.test("ReconnectingSocket: starts offline → no attempt until online", () => {
  const window = new FakeWindow();
  window.navigator.onLine = false;
  const t = setup({ window });
  assertEquals(t.sockets.length, 0);
  window.setOnline(true);
  assertEquals(t.sockets.length, 1);
  t.socket.close();
});

Deno.test("ReconnectingSocket: dead line found within interval + timeout, socket let go", () => {
  const t = setup({ heartbeat: { interval: 1_000, timeout: 500 } });
  t.last().welcome({ heartbeat: { interval: 25_000, timeout: 10_000 } }); // overridden
  // Alive: the server answers every heartbeat.
  for (let i = 0; i < 5; i++) {
    t.clock.advance(1_000);
    t.last().receive({ type: "heartbeat_ack" });
  }
  const died = t.clock.now() + 300;
  t.clock.advance(300);
  t.last().receive({ type: "chat", seq: 1, text: "last words" });
  t.clock.advance(1_500); // interval + timeout
  const close = t.of("close")[0];
  assert(close !== undefined, "not detected");
  assert(close.at - died <= 1_500, `${close.at - died} ms`);
  assertEquals(close.detail, {
    code: 1006,
    reason: "heartbeat timeout",
    wasClean: false,
    willReconnect: true,
  });
  assertEquals(t.sockets[0].closedWith, { code: 1000, reason: "heartbeat timeout" });
  assert(!t.sockets[0].attached);
  t.socket.close();
});

Deno.test("ReconnectingSocket: heartbeat event carries the RTT; visibilitychange checks at once", () => {
  const t = setup();
  t.last().welcome({ heartbeat: { interval: 25_000, timeout: 10_000 } });
  const [beat] = t.last().sentOfType("heartbeat");
  t.clock.advance(42);
  t.last().receive({ type: "heartbeat_ack", id: beat.id, ts: beat.ts });
  assertEquals(t.of("heartbeat")[0].detail, { rtt: 42 });
  t.clock.advance(5_000);
  t.document.setVisible(false);
  assertEquals(t.last().sentOfType("heartbeat").length, 1);
  t.document.setVisible(true);
  assertEquals(t.last().sentOfType("heartbeat").length, 2); // at once, not in 20 s
  t.clock.advance(10_000);
  assertEquals(t.of("close")[0].detail.reason, "heartbeat timeout");
  t.socket.close();
});

Deno.test("ReconnectingSocket: outbox re-sent in order after reconnect, minus what the server had", () => {
  const t = setup();
  t.last().welcome({ session: "s1" });
  for (const text of ["a", "b", "c"]) t.socket.send({ type: "chat", text });
  t.last().receive({ type: "ack", cseq: 1 });
  t.last().serverClose(1006);
  t.socket.send({ type: "chat", text: "d" }); // while disconnected
  t.socket.send({ type: "chat", text: "e" });
  t.clock.advance(750);
  // The server processed "b" but its ack was lost with the connection.
  t.last().welcome({ session: "s1", resumed: true, last_cseq: 2 });
  assertEquals(chats(t.last()), [[3, "c"], [4, "d"], [5, "e"]]);
  t.socket.close();
});

Deno.test("ReconnectingSocket: publications delivered once, in order; each topic recovered from its offset after a reconnect", () => {
  const t = setup();
  t.last().welcome({ session: "s1" });
  t.last().receive(pub(1)); // not followed yet: dropped
  follow(t.last(), 1);
  assertEquals(t.of("subscribed")[0].detail, { topic: "lobby", epoch: "e1", offset: 1 });
  for (const offset of [2, 3]) t.last().receive(pub(offset));
  t.last().receive(pub(3)); // a duplicate
  t.last().serverClose(1006);
  t.clock.advance(750);
  t.last().welcome({ session: "s1", resumed: true });
  // Recovery goes out first, then the outbox; where the topic stands now changes nothing.
  assertEquals(t.last().sentOfType("subscribe"), [
    { type: "subscribe", topic: "lobby", epoch: "e1", offset: 3 },
  ]);
  follow(t.last(), 6);
  t.last().receive(pub(6)); // live, racing the recovery: a gap, waits for it
  assertEquals(t.of("message").length, 2);
  t.last().receive({ type: "subscribed", topic: "lobby", epoch: "e1", offset: 3, recovered: true });
  for (const offset of [4, 5, 6]) t.last().receive(pub(offset));
  t.last().receive(pub(7));
  assertEquals(t.of("message").map((e) => e.detail.offset), [2, 3, 4, 5, 6, 7]);
  assertEquals(t.socket.topics.get("lobby"), { epoch: "e1", offset: 7, syncing: false });
  assertEquals(t.of("error"), [], "a gap while recovering is expected, not reported");
  t.socket.close();
});

Deno.test("ReconnectingSocket: recovered:false is reported and the topic goes on from the server's offset", () => {
  const t = setup();
  t.last().welcome({ session: "s1" });
  follow(t.last(), 0);
  t.last().receive(pub(1));
  t.last().serverClose(1006);
  t.clock.advance(750);
  t.last().welcome({ session: "s1", resumed: true });
  // The server restarted: a new epoch, history gone.
  t.last().receive({
    type: "subscribed",
    topic: "lobby",
    epoch: "e2",
    offset: 4,
    recovered: false,
  });
  t.last().receive(pub(5));
  assertEquals(t.of("subscribed").at(-1)!.detail, {
    topic: "lobby",
    epoch: "e2",
    offset: 4,
    recovered: false,
  });
  assertEquals(t.of("message").map((e) => e.detail.offset), [1, 5]);
  t.socket.close();
});

Deno.test("ReconnectingSocket: resume_failed is reported; topics are recovered on the new session too", () => {
  const t = setup();
  t.last().welcome({ session: "s1" });
  follow(t.last(), 0);
  t.last().receive(pub(1, "old"));
  t.last().serverClose(1006);
  t.clock.advance(750);
  t.last().open();
  t.last().receive({ type: "resume_failed", session: "s1", reason: "expired" });
  t.last().welcome({ session: "s2", resumed: false });
  assertEquals(t.last().sentOfType("subscribe").map((m) => m.offset), [1]);
  t.last().receive({ type: "subscribed", topic: "lobby", epoch: "e1", offset: 1, recovered: true });
  t.last().receive(pub(2, "new"));
  assertEquals(t.of("resume_failed")[0].detail, {
    session: "s1",
    reason: "expired",
    dropped: 0,
    resent: 0,
  });
  assertEquals(t.of("message").map((e) => e.detail.text), ["old", "new"]);
  assertEquals(t.socket.session, "s2");
  t.socket.close();
});

/** Welcomed on s1, sent chats 1..4 (1 acked), lost the connection, queued 5: reconnecting. */
function sentFourThenLost() {
  const t = setup();
  t.last().welcome({ session: "s1" });
  for (const text of ["a", "b", "c", "d"]) t.socket.send({ type: "chat", text });
  t.last().receive({ type: "ack", cseq: 1 });
  t.last().serverClose(1006); // the acks of 2 and 3 were on their way
  t.socket.send({ type: "chat", text: "e" }); // cseq 5, never sent
  t.clock.advance(750);
  t.last().open();
  return t;
}

Deno.test("ReconnectingSocket: resume_failed with last_cseq drops what the old session processed", () => {
  const t = sentFourThenLost();
  // The old session expired after processing 2 and 3 (their acks were lost).
  t.last().receive({ type: "resume_failed", session: "s1", reason: "expired", last_cseq: 3 });
  assertEquals(t.of("resume_failed")[0].detail, {
    session: "s1",
    reason: "expired",
    lastCseq: 3,
    dropped: 2,
    resent: 1, // d: sent before, never processed
  });
  assertEquals(t.last().sent, [], "nothing goes out before the welcome");
  t.last().welcome({ session: "s2", resumed: false, last_cseq: 0 });
  // Each once, renumbered from the new session's last_cseq + 1.
  assertEquals(chats(t.last()), [[1, "d"], [2, "e"]]);
  assertEquals(t.socket.send({ type: "chat", text: "f" }), 3);
  t.last().receive({ type: "ack", cseq: 3 });
  assertEquals(t.socket.bufferedAmount, 0);
  assertEquals(chats(t.last()), [[1, "d"], [2, "e"], [3, "f"]]);
  t.socket.close();
});

Deno.test("ReconnectingSocket: a connection lost between resume_failed and welcome drops nothing twice", () => {
  const t = sentFourThenLost();
  t.last().receive({ type: "resume_failed", session: "s1", reason: "expired", last_cseq: 3 });
  t.last().serverClose(1006); // before the welcome: still on s1
  t.clock.advance(2_000);
  assertEquals(t.last().query.get("session"), "s1");
  t.last().open();
  t.last().receive({ type: "resume_failed", session: "s1", reason: "expired", last_cseq: 3 });
  assertEquals(t.of("resume_failed")[1].detail.dropped, 0);
  t.last().welcome({ session: "s2" });
  assertEquals(chats(t.last()), [[1, "d"], [2, "e"]]);
  t.socket.close();
});

Deno.test("ReconnectingSocket: resume_failed without last_cseq re-sends every unacked message (at-least-once)", () => {
  const t = sentFourThenLost();
  t.last().receive({ type: "resume_failed", session: "s1", reason: "unknown or expired session" });
  const detail = t.of("resume_failed")[0].detail;
  assertEquals(detail, {
    session: "s1",
    reason: "unknown or expired session",
    dropped: 0,
    resent: 3, // b, c, d may have been processed: reported, since they may be doubled
  });
  assertEquals("lastCseq" in detail, false);
  t.last().welcome({ session: "s2" });
  assertEquals(chats(t.last()), [[1, "b"], [2, "c"], [3, "d"], [4, "e"]]);
  t.socket.close();
});

Deno.test("ReconnectingSocket: a last_cseq for a session it did not ask for is not applied", () => {
  const t = sentFourThenLost();
  t.last().receive({ type: "resume_failed", session: "other", reason: "x", last_cseq: 4 });
  assertEquals(t.of("resume_failed")[0].detail, {
    session: "other",
    reason: "x",
    dropped: 0,
    resent: 3,
  });
  t.last().welcome({ session: "s2" });
  assertEquals(chats(t.last()).map(([, text]) => text), ["b", "c", "d", "e"]);
  t.socket.close();
});

/** Welcomed on s1, sent chats 1..4 (1 acked) whose other acks are on their way. */
function sentFour() {
  const t = setup();
  t.last().welcome({ session: "s1" });
  for (const text of ["a", "b", "c", "d"]) t.socket.send({ type: "chat", text });
  t.last().receive({ type: "ack", cseq: 1 });
  return t;
}

Deno.test("ReconnectingSocket: taken over (4000) with last_cseq: not resumed; what was processed is dropped", () => {
  const t = sentFour();
  // Another tab resumed s1; it had processed 2 and 3, whose acks are lost.
  t.last().serverClose(4000, "last_cseq=3");
  assertEquals(t.events.map((e) => e.type).slice(-3), ["close", "reconnecting", "resume_failed"]);
  assertEquals(t.of("resume_failed")[0].detail, {
    session: "s1",
    reason: "session taken over",
    lastCseq: 3,
    dropped: 2,
    resent: 1, // d: sent before, never processed
  });
  assertEquals(t.of("close")[0].detail.code, 4000);
  t.socket.send({ type: "chat", text: "e" }); // cseq 5, while away
  t.clock.advance(750);
  // Resuming s1 would take it back from the other tab, which would take it back again...
  assertEquals(t.last().query.get("session"), null);
  t.last().welcome({ session: "s2", resumed: false, last_cseq: 0 });
  assertEquals(chats(t.last()), [[1, "d"], [2, "e"]], "each once, renumbered");
  assertEquals(t.socket.session, "s2");
  assertOneLive(t.sockets);
  t.socket.close();
});

Deno.test("ReconnectingSocket: taken over (4000) without last_cseq re-sends every unacked message, reported", () => {
  const t = sentFour();
  t.last().serverClose(4000, "session taken over"); // an older server: no count in the reason
  const detail = t.of("resume_failed")[0].detail;
  assertEquals(detail, { session: "s1", reason: "session taken over", dropped: 0, resent: 3 });
  assertEquals("lastCseq" in detail, false);
  t.clock.advance(750);
  assertEquals(t.last().query.get("session"), null);
  t.last().welcome({ session: "s2" });
  assertEquals(chats(t.last()), [[1, "b"], [2, "c"], [3, "d"]]);
  t.socket.close();
});

Deno.test("ReconnectingSocket: taken over (4000): close listeners may send or close", async () => {
  const t = sentFour();
  t.socket.addEventListener("close", () => t.socket.send({ type: "chat", text: "e" }), {
    once: true,
  });
  t.last().serverClose(4000, "last_cseq=3");
  // e was queued, not sent: not at risk.
  assertEquals(t.of("resume_failed")[0].detail.resent, 1);
  t.clock.advance(750);
  t.last().welcome({ session: "s2" });
  assertEquals(chats(t.last()), [[1, "d"], [2, "e"]]);
  t.socket.close();

  const u = sentFour();
  u.socket.addEventListener("close", () => u.socket.close(), { once: true });
  u.last().serverClose(4000, "last_cseq=3");
  assertEquals(u.of("resume_failed"), [], "closed for good: no new session follows");
  assertNothingLeft(u);
  await microtasks();
});

Deno.test("ReconnectingSocket: session ended (4001) is resumed as usual; resume_failed's last_cseq applies", () => {
  const t = sentFour();
  t.last().serverClose(4001, "session ended");
  assertEquals(t.of("resume_failed"), [], "nothing known yet: the server tells on resume");
  t.clock.advance(750);
  assertEquals(t.last().query.get("session"), "s1");
  assertEquals(t.last().query.get("id"), "c1", "the id the session belongs to");
  t.last().open();
  t.last().receive({
    type: "resume_failed",
    session: "s1",
    reason: "unknown or expired session",
    last_cseq: 3,
  });
  assertEquals(t.of("resume_failed")[0].detail.dropped, 2);
  t.last().welcome({ session: "s2" });
  assertEquals(chats(t.last()), [[1, "d"]]);
  t.socket.close();
});

Deno.test("ReconnectingSocket: errors and bad messages are reported; the connection stays", () => {
  const t = setup();
  t.last().welcome();
  t.last().receive("not json");
  t.last().receive({ type: "mystery" }); // not a protocol message, yet no topic
  t.last().receive({ type: "error", reason: "chat text too long", cseq: 2 });
  assertEquals(t.of("error").map((e) => e.detail), [
    { reason: "message is not valid JSON" },
    { reason: 'mystery field "topic" must be a string' },
    { reason: "chat text too long", cseq: 2 },
  ]);
  assertEquals(t.socket.readyState, ReconnectingSocket.OPEN);
  t.socket.close();
});

Deno.test("ReconnectingSocket: close() leaves nothing, whatever the state", async () => {
  const states: [string, (t: ReturnType<typeof setup>) => void][] = [
    ["connecting", () => {}],
    ["open", (t) => {
      t.last().welcome();
      follow(t.last());
      t.last().receive(pub(1));
    }],
    ["waiting to retry", (t) => {
      t.last().serverClose(1006);
    }],
    ["offline", (t) => {
      t.last().welcome();
      t.window.setOnline(false);
      t.last().serverClose(1006);
    }],
  ];
  for (const [name, reach] of states) {
    const t = setup();
    reach(t);
    assert(t.clock.pending > 0 || name === "offline", name);
    t.socket.close(1000, "bye");
    assertEquals(t.socket.readyState, ReconnectingSocket.CLOSED);
    assertNothingLeft(t);
    await microtasks();
    const closes = t.of("close").filter((e) => !e.detail.willReconnect);
    assertEquals(closes.map((e) => [e.detail.code, e.detail.reason]), [[1000, "bye"]], name);
    if (name === "open") {
      assertEquals(t.sockets[0].closedWith, { code: 1000, reason: "bye" });
    }
    t.socket.close(); // idempotent
    t.window.setOnline(true); // nothing listens any more
    t.clock.advance(60_000);
    assertEquals(t.sockets.length, 1);
  }
});

Deno.test("ReconnectingSocket: close() from inside a close listener stops the reconnect", async () => {
  const t = setup();
  t.socket.addEventListener("close", () => t.socket.close());
  t.last().welcome();
  t.last().serverClose(1006);
  assertNothingLeft(t);
  await microtasks();
  assertEquals(t.of("close").map((e) => e.detail.willReconnect), [true, false]);
});

Deno.test("ReconnectingSocket: close() rejects codes a client may not send", () => {
  const t = setup();
  assertThrows(() => t.socket.close(1006), RangeError);
  assertEquals(t.socket.readyState, ReconnectingSocket.CONNECTING);
  t.socket.close(4001, "done");
  assertNothingLeft(t);
});

Deno.test("ReconnectingSocket: close() with an over-long reason still closes the socket", () => {
  const t = setup();
  t.last().welcome();
  t.socket.close(1000, "x".repeat(200));
  assertEquals(t.sockets[0].closedWith, { code: 1000, reason: undefined });
  assertNothingLeft(t);
});

Deno.test("ReconnectingSocket: close() in the error listener of a WebSocket constructor that throws stays closed", async () => {
  const clock = new ManualClock(0);
  let attempts = 0;
  class Refusing {
    constructor() {
      attempts++;
      throw new DOMException("blocked by policy", "SecurityError");
    }
  }
  const socket = new ReconnectingSocket("ws://example.test/ws", {
    WebSocket: Refusing as unknown as ReconnectingSocketOptions["WebSocket"],
    clock,
    window: null,
    document: null,
    backoff: { random: () => 0.5 },
  });
  const closes: boolean[] = [];
  socket.addEventListener("close", (event) => closes.push(event.detail.willReconnect));
  socket.addEventListener("error", () => socket.close());
  clock.advance(750); // the retry: fails the same way, and the listener closes
  assertEquals(attempts, 2);
  assertEquals(socket.readyState, ReconnectingSocket.CLOSED);
  assertEquals(clock.pending, 0, "a retry was scheduled after close()");
  clock.advance(60_000);
  assertEquals(attempts, 2);
  await microtasks();
  assertEquals(closes, [false]);
});

Deno.test("ReconnectingSocket: close() from inside any listener stays closed and leaves nothing", async () => {
  // Each case reaches the point where the named event fires.
  const cases: [string, (t: ReturnType<typeof setup>) => void][] = [
    ["open", (t) => t.last().welcome()],
    ["message", (t) => {
      t.last().welcome();
      follow(t.last());
      t.last().receive(pub(1));
      t.last().receive(pub(2)); // after close(): ignored
    }],
    ["heartbeat", (t) => {
      t.last().welcome();
      t.last().receive({ type: "heartbeat_ack", ts: 0 });
    }],
    ["error", (t) => {
      t.last().welcome();
      t.last().receive({ type: "error", reason: "no" });
    }],
    ["resume_failed", (t) => {
      t.last().welcome({ session: "s1" });
      t.last().serverClose(1006);
      t.clock.advance(750);
      t.last().open();
      t.last().receive({ type: "resume_failed", session: "s1", reason: "expired" });
      t.last().welcome({ session: "s2" }); // after close(): ignored
    }],
    ["reconnecting", (t) => t.last().serverClose(1006)],
    ["offline", (t) => {
      t.last().welcome();
      t.window.setOnline(false);
      t.last().serverClose(1006);
    }],
    ["online", (t) => {
      t.window.setOnline(false);
      t.last().serverClose(1006);
      t.window.setOnline(true);
    }],
  ];
  for (const [type, reach] of cases) {
    const t = setup();
    t.socket.addEventListener(type, () => t.socket.close(1000, "from " + type));
    reach(t);
    assertEquals(t.socket.readyState, ReconnectingSocket.CLOSED, type);
    assertNothingLeft(t);
    t.clock.advance(60_000);
    assertEquals(t.clock.pending, 0, type);
    await microtasks();
    const finals = t.of("close").filter((e) => !e.detail.willReconnect);
    assertEquals(finals.map((e) => e.detail.reason), ["from " + type], type);
    assertEquals(t.of("open").length <= 1 && t.of("message").length <= 1, true, type);
  }
});

Deno.test("ReconnectingSocket: an offset gap is not skipped: the client recovers from the last offset it has", () => {
  const t = setup();
  t.last().welcome({ session: "s1" });
  follow(t.last(), 0);
  t.last().receive(pub(1));
  t.last().receive(pub(3)); // 2 went missing on the way
  t.last().receive(pub(4)); // still missing: no second recovery
  assertEquals(t.of("message").map((e) => e.detail.offset), [1], "3 is not delivered before 2");
  assertEquals(t.of("error").map((e) => e.detail.reason), [
    'offset gap in "lobby": expected 2, got 3',
  ]);
  assertEquals(t.last().sentOfType("subscribe"), [
    { type: "subscribe", topic: "lobby", epoch: "e1", offset: 1 },
  ]);
  t.last().receive({ type: "subscribed", topic: "lobby", epoch: "e1", offset: 1, recovered: true });
  for (const offset of [2, 3, 4]) t.last().receive(pub(offset));
  assertEquals(t.of("message").map((e) => e.detail.offset), [1, 2, 3, 4]);
  assertEquals(t.socket.readyState, ReconnectingSocket.OPEN, "the connection stays");
  t.socket.close();
});

Deno.test("ReconnectingSocket: a heartbeat override left undefined keeps the server's timing", () => {
  const t = setup({ heartbeat: { interval: undefined, timeout: 300 } });
  t.last().welcome({ heartbeat: { interval: 1_000, timeout: 500 } });
  t.clock.advance(10);
  t.last().receive({ type: "heartbeat_ack" });
  t.clock.advance(990);
  assertEquals(t.last().sentOfType("heartbeat").length, 2, "no heartbeat at the server's interval");
  t.clock.advance(300); // the overridden timeout applies
  assertEquals(t.of("close")[0]?.detail.reason, "heartbeat timeout");
  t.socket.close();
});

Deno.test("ReconnectingSocket: no heartbeat or deadline of a lost connection carries over", () => {
  const t = setup();
  t.last().welcome({ session: "s1" });
  t.last().serverClose(1006); // heartbeat pending
  t.clock.advance(750);
  t.last().open(); // the next connection, not welcomed yet
  assertEquals(t.clock.pending, 1, "only the connect timeout");
  t.clock.advance(5_000); // many intervals and timeouts of the old heartbeat
  assertEquals(t.last().sent, [], "nothing goes out before the welcome");
  assertEquals(t.of("close").length, 1);
  t.last().welcome({ session: "s1", resumed: true });
  assertEquals(t.last().sent.map((m) => m.type), ["heartbeat"]);
  t.socket.close();
});

Deno.test("ReconnectingSocket: sends made in open and message listeners follow the outbox re-send", () => {
  const t = setup();
  t.last().welcome({ session: "s1" });
  t.socket.send({ type: "chat", text: "a" }); // never acked
  t.last().serverClose(1006);
  t.socket.send({ type: "chat", text: "b" }); // queued while reconnecting
  t.socket.addEventListener("open", () => t.socket.send({ type: "chat", text: "c" }), {
    once: true,
  });
  t.socket.addEventListener("message", () => t.socket.send({ type: "chat", text: "d" }), {
    once: true,
  });
  t.clock.advance(750);
  t.last().welcome({ session: "s1", resumed: true });
  follow(t.last());
  t.last().receive(pub(1, "recovered"));
  assertEquals(chats(t.last()), [[1, "a"], [2, "b"], [3, "c"], [4, "d"]]);
  t.socket.close();
});

Deno.test("ReconnectingSocket: an unusable timing, size or backoff option is a RangeError naming it", () => {
  const bad: [ReconnectingSocketOptions, string][] = [
    [{ heartbeat: { interval: 0 } }, "heartbeat.interval"],
    [{ heartbeat: { interval: -1_000 } }, "heartbeat.interval"],
    [{ heartbeat: { timeout: 0 } }, "heartbeat.timeout"],
    [{ heartbeat: { timeout: NaN } }, "heartbeat.timeout"],
    [{ connectTimeout: 0 }, "connectTimeout"],
    [{ connectTimeout: Infinity }, "connectTimeout"],
    [{ outboxBytes: 0 }, "outboxBytes"],
    [{ outboxBytes: Infinity }, "outboxBytes"],
    [{ outboxBytes: "1024" as unknown as number }, "outboxBytes"],
    [{ minUptime: -1 }, "minUptime"],
    [{ minUptime: NaN }, "minUptime"],
    [{ maxRetries: -1 }, "maxRetries"],
    [{ maxRetries: 2.5 }, "maxRetries"],
    [{ maxRetries: NaN }, "maxRetries"],
    [{ backoff: { minDelay: -1 } }, "backoff.minDelay"],
    [{ backoff: { initialDelay: 0 } }, "backoff.initialDelay"],
    [{ backoff: { maxDelay: 0 } }, "backoff.maxDelay"],
    [{ backoff: { maxDelay: Infinity } }, "backoff.maxDelay"],
    [{ backoff: { factor: 0 } }, "backoff.factor"],
    [{ backoff: { factor: NaN } }, "backoff.factor"],
  ];
  for (const [options, name] of bad) {
    const clock = new ManualClock(0);
    const { WebSocket, sockets } = fakeWebSocketClass();
    const window = new FakeWindow();
    const document = new FakeDocument();
    const make = () =>
      new ReconnectingSocket("ws://example.test/ws", {
        WebSocket,
        clock,
        window,
        document,
        ...options,
      });
    const error = thrown(make);
    assert(error instanceof RangeError, `${JSON.stringify(options)}: ${error}`);
    assertStringIncludes(error.message, name);
    // Refused before anything started.
    assertEquals([sockets.length, clock.pending, window.listeners, document.listeners], [
      0,
      0,
      0,
      0,
    ]);
  }
  // Where 0 (or no limit) means something, it is accepted.
  const t = setup({
    minUptime: 0,
    maxRetries: 0,
    backoff: { minDelay: 0, random: () => 0.5 },
    heartbeat: { interval: undefined },
  });
  t.last().welcome();
  assertEquals(t.socket.readyState, ReconnectingSocket.OPEN);
  t.socket.close();
  setup({ maxRetries: Infinity }).socket.close();
});

Deno.test("ReconnectingSocket: server delays beyond what a timer holds are waited out in steps, not a busy loop", () => {
  const t = setup();
  // Browsers, Deno and Node fire a timer at once if its delay passes 2^31 − 1 ms.
  const MAX = 2 ** 31 - 1;
  const delays: number[] = [];
  const setTimeout = t.clock.setTimeout.bind(t.clock);
  t.clock.setTimeout = (callback, delay) => {
    delays.push(delay);
    return setTimeout(callback, delay);
  };
  t.last().welcome({ heartbeat: { interval: 2 ** 40, timeout: 500 } });
  t.last().receive({ type: "heartbeat_ack" });
  t.clock.advance(MAX * 3);
  assertEquals(t.last().sentOfType("heartbeat").length, 1, "the interval is not over");
  assertEquals(t.socket.readyState, ReconnectingSocket.OPEN);
  t.last().receive({ type: "reconnect", delay: 2 ** 40 });
  t.clock.advance(MAX * 3);
  assertEquals(t.sockets.length, 1, "the server asked for 2^40 ms");
  assert(delays.length > 0);
  for (const delay of delays) assert(delay >= 0 && delay <= MAX, `timer of ${delay} ms`);
  t.socket.close();
});

/** What `fn` throws, or undefined. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
}
