import { assert, assertEquals, assertMatch, assertNotEquals, assertThrows } from "@std/assert";
import type { WebSocketConnection } from "../server/connection.ts";
import {
  MAX_SESSION_ID_LENGTH,
  serve,
  type ServeOptions,
  type Server,
  WsApp,
  type WsAppOptions,
} from "../server/mod.ts";
import { ManualClock } from "./_clock.ts";
import { waitFor } from "./_wait.ts";

type Json = Record<string, unknown>;

/** Deno's WebSocket with a queue of parsed messages. */
class Client {
  readonly ws: WebSocket;
  readonly closed: Promise<CloseEvent>;
  #queue: Json[] = [];
  #waiting: ((message: Json) => void) | undefined;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.addEventListener("message", (event) => {
      const message = JSON.parse(event.data as string) as Json;
      if (this.#waiting) {
        const resolve = this.#waiting;
        this.#waiting = undefined;
        resolve(message);
      } else this.#queue.push(message);
    });
    this.closed = new Promise((resolve) => ws.addEventListener("close", resolve, { once: true }));
  }

  static open(port: number, query = ""): Promise<Client> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws${query}`);
      const client = new Client(ws);
      ws.addEventListener("open", () => resolve(client), { once: true });
      ws.addEventListener("error", () => reject(new Error("WebSocket error")), { once: true });
    });
  }

  /** The next message; fails after `timeout` ms. */
  next(timeout = 1_000): Promise<Json> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting = undefined;
        reject(new Error("no message within " + timeout + " ms"));
      }, timeout);
      this.#waiting = (message) => {
        clearTimeout(timer);
        resolve(message);
      };
    });
  }

  send(message: Json): void {
    this.ws.send(JSON.stringify(message));
  }

  /**
   * Proves nothing else is on its way: the server answers a heartbeat at once,
   * in order, so anything sent before it would arrive first.
   */
  async expectQuiet(): Promise<void> {
    this.send({ type: "heartbeat", id: "quiet" });
    assertEquals(await this.next(), { type: "heartbeat_ack", id: "quiet", server_ts: 42 });
  }

  async close(): Promise<void> {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.close(1000);
    await this.closed;
  }
}

async function withApp(
  options: WsAppOptions & { serve?: ServeOptions },
  body: (port: number, app: WsApp, server: Server) => Promise<void>,
): Promise<void> {
  const app = new WsApp({ wallClock: () => 42, ...options });
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    routes: { "/ws": app },
    ...options.serve,
  });
  try {
    await body(server.addr.port, app, server);
  } finally {
    await server.shutdown({ timeout: 1_000 });
    app.dispose();
  }
}

/** Opens a client and reads its welcome. */
async function join(port: number, query = ""): Promise<[Client, Json]> {
  const client = await Client.open(port, query);
  return [client, await client.next()];
}

Deno.test("the default /ws route welcomes with the server's ping timing; /echo stays", async () => {
  const server = serve({ port: 0, hostname: "127.0.0.1", pingInterval: 7_000, pingTimeout: 3_000 });
  try {
    const [client, welcome] = await join(server.addr.port, "?id=alice");
    assertEquals(welcome.type, "welcome");
    assertEquals(welcome.id, "alice");
    assertEquals(welcome.resumed, false);
    assertEquals(welcome.last_cseq, 0);
    assertEquals(welcome.heartbeat, { interval: 7_000, timeout: 3_000 });
    assertMatch(welcome.session as string, /^[0-9a-f-]{36}$/);
    await client.close();
    const echo = new WebSocket(`ws://127.0.0.1:${server.addr.port}/echo`);
    await new Promise((resolve) => echo.onopen = resolve);
    echo.send("still here");
    assertEquals(
      await new Promise((resolve) => echo.onmessage = (e) => resolve(e.data)),
      "still here",
    );
    const closed = new Promise((resolve) => echo.onclose = resolve);
    echo.close();
    await closed;
  } finally {
    await server.shutdown({ timeout: 1_000 });
  }
});

Deno.test("welcome: made-up id without ?id, heartbeat timing from the options", async () => {
  await withApp({ heartbeat: { interval: 1_500, timeout: 500 } }, async (port) => {
    const [a, welcomeA] = await join(port);
    const [b, welcomeB] = await join(port, "?id=" + encodeURIComponent("bad\nid"));
    assertMatch(welcomeA.id as string, /^anon-[0-9a-f]{8}$/);
    assertMatch(welcomeB.id as string, /^anon-/, "a control character makes the id invalid");
    assertEquals(welcomeA.heartbeat, { interval: 1_500, timeout: 500 });
    assertNotEquals(welcomeA.session, welcomeB.session);
    await a.close();
    await b.close();
  });
});

Deno.test("heartbeat is answered at once, echoing id and ts, never numbered", async () => {
  await withApp({}, async (port) => {
    const [client] = await join(port);
    client.send({ type: "heartbeat", id: 7, ts: 1_700_000_000_123.5, extra: "ignored" });
    assertEquals(await client.next(), {
      type: "heartbeat_ack",
      id: 7,
      ts: 1_700_000_000_123.5,
      server_ts: 42,
    });
    client.send({ type: "heartbeat" });
    assertEquals(await client.next(), { type: "heartbeat_ack", server_ts: 42 });
    client.send({ type: "heartbeat", id: "uuid-1" });
    assertEquals(await client.next(), { type: "heartbeat_ack", id: "uuid-1", server_ts: 42 });
    client.send({ type: "heartbeat", ts: "yesterday" });
    const error = await client.next();
    assertEquals(error.type, "error");
    assertMatch(error.reason as string, /heartbeat field "ts"/);
    await client.close();
  });
});

Deno.test("chat reaches every session in the lobby, the sender included, each with its own seq", async () => {
  await withApp({}, async (port) => {
    const [a] = await join(port, "?id=alice");
    const [b] = await join(port, "?id=bob");
    b.send({ type: "subscribe", room: "side" }); // gives bob's seq a head start
    assertEquals(await b.next(), { type: "subscribed", seq: 1, room: "side" });
    a.send({ type: "chat", text: "hi all ✓", cseq: 1 });
    const expected = { type: "chat", from: "alice", text: "hi all ✓", room: "lobby", ts: 42 };
    assertEquals(await a.next(), { ...expected, seq: 1 });
    assertEquals(await a.next(), { type: "ack", cseq: 1 });
    assertEquals(await b.next(), { ...expected, seq: 2 });
    b.send({ type: "chat", text: "hello alice" }); // no cseq: processed, not acked
    assertEquals((await b.next()).seq, 3);
    assertEquals(await a.next(), {
      type: "chat",
      seq: 2,
      from: "bob",
      text: "hello alice",
      room: "lobby",
      ts: 42,
    });
    await a.expectQuiet();
    await b.expectQuiet();
    await a.close();
    await b.close();
  });
});

Deno.test("rooms: only subscribers (and the sender) get a room's messages", async () => {
  await withApp({ maxRoomsPerConnection: 2 }, async (port, app) => {
    const [a] = await join(port, "?id=a");
    const [b] = await join(port, "?id=b");
    const [c] = await join(port, "?id=c");
    b.send({ type: "subscribe", room: "news", cseq: 1 });
    assertEquals(await b.next(), { type: "subscribed", seq: 1, room: "news" });
    assertEquals(await b.next(), { type: "ack", cseq: 1 });
    assertEquals(app.rooms.get("news")?.size, 1);
    a.send({ type: "chat", text: "extra!", room: "news" });
    assertEquals((await a.next()).room, "news", "the sender sees its own message");
    const got = await b.next();
    assertEquals([got.seq, got.from, got.text, got.room], [2, "a", "extra!", "news"]);
    await c.expectQuiet(); // c is only in the lobby
    b.send({ type: "subscribe", room: "third", cseq: 2 });
    const refused = await b.next();
    assertEquals(refused, { type: "error", reason: "already in 2 rooms", cseq: 2 });
    assertEquals(await b.next(), { type: "ack", cseq: 2 }, "a refusal counts as processed");
    b.send({ type: "unsubscribe", room: "news", cseq: 3 });
    assertEquals(await b.next(), { type: "unsubscribed", seq: 3, room: "news" });
    assertEquals(await b.next(), { type: "ack", cseq: 3 });
    assertEquals(app.rooms.has("news"), false, "an empty room is forgotten");
    a.send({ type: "chat", text: "anyone?", room: "news" });
    assertEquals((await a.next()).text, "anyone?");
    await b.expectQuiet();
    for (const client of [a, b, c]) await client.close();
  });
});

Deno.test("bad messages get an error reply and the connection stays usable", async () => {
  await withApp({ maxTextLength: 10 }, async (port) => {
    const [client] = await join(port);
    const cases: [string, RegExp][] = [
      ["{oops", /not valid JSON/],
      ['["chat"]', /JSON object with a string "type"/],
      ['{"type":"dance"}', /unknown message type "dance"/],
      ['{"type":"chat","text":7}', /chat field "text" must be a string/],
      ['{"type":"subscribe","room":""}', /room name must have 1 to 64 characters/],
      ['{"type":"chat","text":"far too long a text"}', /longer than 10 characters/],
    ];
    for (const [text, reason] of cases) {
      client.ws.send(text);
      const reply = await client.next();
      assertEquals(reply.type, "error", text);
      assertMatch(reply.reason as string, reason);
    }
    client.send({ type: "chat", text: "ok now" });
    assertEquals((await client.next()).text, "ok now");
    await client.close();
  });
});

Deno.test("a binary frame on /ws closes with 1003", async () => {
  await withApp({}, async (port) => {
    const [client] = await join(port);
    client.ws.send(new Uint8Array([1, 2, 3]));
    const event = await client.closed;
    assertEquals(event.code, 1003);
    assertEquals(event.reason, "binary messages are not supported on /ws");
  });
});

Deno.test("resume with last_seq replays exactly the missed messages, once, in order", async () => {
  await withApp({}, async (port, app) => {
    const [a] = await join(port, "?id=a");
    const [b, welcome] = await join(port, "?id=b");
    for (const text of ["one", "two"]) {
      a.send({ type: "chat", text });
      await a.next();
      assertEquals((await b.next()).text, text);
    }
    b.send({ type: "ack", seq: 1 });
    await b.close();
    await waitFor(() => app.sessions.live === 1);
    for (const text of ["three", "four", "five"]) {
      a.send({ type: "chat", text });
      await a.next();
    }
    // b saw seq 2 but did not ack it: it resumes from there.
    const [b2, again] = await join(port, `?id=b&session=${welcome.session}&last_seq=2`);
    assertEquals(again.type, "welcome");
    assertEquals(again.session, welcome.session);
    assertEquals(again.resumed, true);
    assertEquals(again.id, "b");
    const replayed = [await b2.next(), await b2.next(), await b2.next()];
    assertEquals(replayed.map((m) => [m.seq, m.text]), [[3, "three"], [4, "four"], [5, "five"]]);
    await b2.expectQuiet();
    a.send({ type: "chat", text: "six" });
    assertEquals((await b2.next()).seq, 6, "live messages continue the numbering");
    assertEquals(app.sessions.size, 2);
    await a.close();
    await b2.close();
  });
});

Deno.test("a resume takes the session over from a connection still open: 4000 with last_cseq", async () => {
  await withApp({}, async (port, app) => {
    const [old, welcome] = await join(port);
    for (const cseq of [1, 2]) old.send({ type: "chat", text: `m${cseq}`, cseq });
    const answers = [await old.next(), await old.next(), await old.next(), await old.next()];
    assertEquals(answers.map((m) => [m.type, m.seq ?? m.cseq]), [
      ["chat", 1],
      ["ack", 1],
      ["chat", 2],
      ["ack", 2],
    ]);
    const [fresh, again] = await join(port, `?session=${welcome.session}&last_seq=0`);
    assertEquals(again.resumed, true);
    const event = await old.closed;
    assertEquals(event.code, 4000);
    // What the replaced client needs to start a new session without doing anything twice.
    assertEquals(event.reason, "last_cseq=2");
    assertEquals(app.sessions.live, 1);
    assertEquals(app.sessions.size, 1);
    fresh.send({ type: "chat", text: "mine" });
    assertEquals((await fresh.next()).seq, 1);
    await fresh.close();
  });
});

Deno.test("resume_failed comes first when the grace period is over, then a fresh session", async () => {
  const clock = new ManualClock();
  await withApp({ clock, grace: 1_000, serve: { clock } }, async (port, app) => {
    const [a] = await join(port);
    const [b, welcome] = await join(port, "?id=b");
    a.send({ type: "chat", text: "before" });
    await a.next();
    await b.next();
    await b.close();
    await waitFor(() => app.sessions.detached === 1);
    clock.advance(1_000);
    await waitFor(() => app.sessions.size === 1, 1_000); // swept by the store's timer
    const [b2, failed] = await join(port, `?id=b&session=${welcome.session}&last_seq=1`);
    assertEquals(failed, {
      type: "resume_failed",
      session: welcome.session,
      reason: "unknown or expired session",
      last_cseq: 0, // b sent nothing numbered
    });
    const fresh = await b2.next();
    assertEquals(fresh.type, "welcome");
    assertEquals(fresh.resumed, false);
    assertNotEquals(fresh.session, welcome.session);
    a.send({ type: "chat", text: "after" });
    await a.next();
    assertEquals((await b2.next()).seq, 1, "a new session numbers from 1");
    await a.close();
    await b2.close();
  });
});

Deno.test("resume_failed on replay buffer overrun and on a bad last_seq", async () => {
  await withApp({ replayBytes: 300 }, async (port, app) => {
    const [a] = await join(port);
    const [b, welcome] = await join(port);
    await b.close();
    await waitFor(() => app.sessions.live === 1);
    for (let i = 0; i < 10; i++) {
      a.send({ type: "chat", text: "a message long enough to fill the buffer " + i });
      await a.next();
    }
    const [c, failed] = await join(port, `?session=${welcome.session}&last_seq=0`);
    assertEquals(failed.reason, "replay buffer overrun");
    assertEquals(failed.last_cseq, 0);
    assertEquals((await c.next()).resumed, false);
    const [d, bad] = await join(port, `?session=${welcome.session}&last_seq=-1`);
    assertEquals(bad.reason, "invalid last_seq");
    assertEquals("last_cseq" in bad, false, "no resume was tried: nothing to tell");
    assertEquals((await d.next()).type, "welcome");
    for (const client of [a, c, d]) await client.close();
  });
});

Deno.test("an expired session's last cseq comes in resume_failed; the new session takes cseq 4 on", async () => {
  const clock = new ManualClock();
  await withApp({ clock, grace: 1_000, serve: { clock } }, async (port, app) => {
    const [a] = await join(port, "?id=a");
    const [b, welcome] = await join(port, "?id=b");
    for (const cseq of [1, 2, 3]) b.send({ type: "chat", text: `m${cseq}`, cseq });
    for (const cseq of [1, 2, 3]) assertEquals((await a.next()).text, `m${cseq}`);
    await b.close(); // b's chats were processed, but b never read the acks: lost
    await waitFor(() => app.sessions.detached === 1);
    clock.advance(1_000);
    await waitFor(() => app.sessions.size === 1, 1_000);
    assertEquals(app.sessions.tombstones, 1);

    const [other, hidden] = await join(port, `?id=mallory&session=${welcome.session}&last_seq=3`);
    assertEquals(hidden, {
      type: "resume_failed",
      session: welcome.session,
      reason: "unknown or expired session",
    }, "another client id is told nothing");
    await other.close();

    const [b2, failed] = await join(port, `?id=b&session=${welcome.session}&last_seq=3`);
    assertEquals(failed, {
      type: "resume_failed",
      session: welcome.session,
      reason: "unknown or expired session",
      last_cseq: 3,
    });
    const fresh = await b2.next();
    assertEquals([fresh.type, fresh.resumed, fresh.last_cseq], ["welcome", false, 0]);
    // The client drops 1..3 and goes on numbering: a new session takes any rising cseq.
    b2.send({ type: "chat", text: "m4", cseq: 4 });
    assertEquals((await b2.next()).seq, 1);
    assertEquals(await b2.next(), { type: "ack", cseq: 4 });
    assertEquals((await a.next()).text, "m4");
    await a.expectQuiet(); // each chat reached a once
    await a.close();
    await b2.close();
  });
});

Deno.test("a resume that overruns a session still attached closes the old connection (4001) first", async () => {
  await withApp({ replayBytes: 300 }, async (port, app) => {
    const [a] = await join(port, "?id=a");
    const [old, welcome] = await join(port, "?id=b");
    old.send({ type: "chat", text: "one", cseq: 1 });
    assertEquals((await a.next()).text, "one");
    for (let i = 0; i < 10; i++) app.publish("lobby", "note", { text: "filling the buffer " + i });
    // The server still thinks `old` is live (half-open), but its client came back.
    const [b2, failed] = await join(port, `?id=b&session=${welcome.session}&last_seq=0`);
    assertEquals([failed.reason, failed.last_cseq], ["replay buffer overrun", 1]);
    assertEquals((await b2.next()).resumed, false);
    await waitFor(() => old.ws.readyState === WebSocket.CLOSED, 2_000);
    const event = await old.closed;
    assertEquals(
      [event.code, event.reason],
      [4001, "session ended"],
      "not a takeover: its client resumes and is told last_cseq",
    );
    assertEquals([app.sessions.size, app.sessions.live], [2, 2]);
    for (let i = 0; i < 10; i++) assertEquals((await a.next()).type, "note");
    await a.expectQuiet();
    await a.close();
    await b2.close();
  });
});

Deno.test("a re-sent cseq is acked again but never processed twice", async () => {
  await withApp({}, async (port, app) => {
    const [a, welcome] = await join(port, "?id=a");
    const [b] = await join(port, "?id=b");
    a.send({ type: "chat", text: "once", cseq: 1 });
    assertEquals((await a.next()).text, "once");
    assertEquals(await a.next(), { type: "ack", cseq: 1 });
    a.send({ type: "chat", text: "once", cseq: 1 }); // same connection
    assertEquals(await a.next(), { type: "ack", cseq: 1 });
    await a.close();
    await waitFor(() => app.sessions.live === 1);
    const [a2, again] = await join(port, `?id=a&session=${welcome.session}&last_seq=1`);
    assertEquals(again.last_cseq, 1, "the client learns what need not be re-sent");
    a2.send({ type: "chat", text: "once", cseq: 1 }); // an outbox flush after the reconnect
    a2.send({ type: "chat", text: "twice?", cseq: 2 });
    assertEquals(await a2.next(), { type: "ack", cseq: 1 });
    assertEquals((await a2.next()).text, "twice?");
    assertEquals(await a2.next(), { type: "ack", cseq: 2 });
    assertEquals((await b.next()).text, "once");
    assertEquals((await b.next()).text, "twice?");
    await b.expectQuiet();
    await a2.close();
    await b.close();
  });
});

Deno.test("requestReconnect and restart tell clients when to come back", async () => {
  await withApp({}, async (port, app) => {
    const [a] = await join(port);
    const [b] = await join(port);
    assertEquals(app.requestReconnect(2_500), 2);
    assertEquals(await a.next(), { type: "reconnect", delay: 2_500 });
    assertEquals(await b.next(), { type: "reconnect", delay: 2_500 });
    assertEquals(app.restart(4_000), 2);
    for (const client of [a, b]) {
      const event = await client.closed;
      assertEquals(event.code, 1012);
      assertEquals(event.reason, "retry-after=4000");
    }
    await waitFor(() => app.sessions.live === 0);
    assertEquals(app.sessions.detached, 2, "sessions stay resumable after a restart close");
  });
});

Deno.test("when every session slot is live, a new connection is told to retry later", async () => {
  await withApp({ maxSessions: 1 }, async (port) => {
    const [a] = await join(port);
    const b = await Client.open(port);
    const event = await b.closed;
    assertEquals(event.code, 1013);
    assert(event.reason.startsWith("retry-after="));
    await a.close();
  });
});

/** A connection stand-in that drives WsApp's callbacks directly: no sockets, no timing. */
class FakeConnection {
  data: unknown = undefined;
  readonly request: { target: string };
  readonly sent: Json[] = [];
  closedWith: [number, string] | undefined;

  constructor(target: string) {
    this.request = { target };
  }

  send(text: string | Uint8Array): boolean {
    if (this.closedWith) return false; // as a closing connection does
    this.sent.push(JSON.parse(text as string));
    return true;
  }

  close(code: number, reason: string): void {
    this.closedWith ??= [code, reason];
  }

  /** Every message sent since the last call. */
  take(): Json[] {
    return this.sent.splice(0);
  }
}

/** Opens a fake connection on `app` and returns it with its first messages taken. */
function connect(app: WsApp, query = ""): [FakeConnection, Json[]] {
  const ws = new FakeConnection("/ws" + query);
  app.open(ws as unknown as WebSocketConnection);
  return [ws, ws.take()];
}

function say(app: WsApp, ws: FakeConnection, message: Json | string): Json[] {
  app.message(
    ws as unknown as WebSocketConnection,
    typeof message === "string" ? message : JSON.stringify(message),
  );
  return ws.take();
}

Deno.test("an invalid message with a cseq is refused by number: error and ack, never re-sent forever", () => {
  const app = new WsApp({ wallClock: () => 42 });
  try {
    const [ws, [welcome]] = connect(app, "?id=a");
    // What ReconnectingSocket.send() lets through: a message the server cannot read.
    assertEquals(say(app, ws, { type: "chat", text: 7, cseq: 1 }), [
      { type: "error", reason: 'chat field "text" must be a string', cseq: 1 },
      { type: "ack", cseq: 1 },
    ]);
    assertEquals(say(app, ws, { type: "dance", cseq: 2 }), [
      { type: "error", reason: 'unknown message type "dance"', cseq: 2 },
      { type: "ack", cseq: 2 },
    ]);
    // The acks were lost; the outbox re-sends after a resume: acked, not refused again.
    app.close(ws as unknown as WebSocketConnection);
    const [again, [resumed]] = connect(app, `?id=a&session=${welcome.session}&last_seq=0`);
    assertEquals([resumed.type, resumed.last_cseq], ["welcome", 2]);
    assertEquals(say(app, again, { type: "dance", cseq: 2 }), [{ type: "ack", cseq: 2 }]);
    // Without a (valid) cseq there is nothing to ack.
    assertEquals(say(app, again, '{"type":"dance","cseq":0}'), [
      { type: "error", reason: 'unknown message type "dance"' },
    ]);
    assertEquals(say(app, again, "{oops"), [{
      type: "error",
      reason: "message is not valid JSON",
    }]);
    assertEquals(app.sessions.get(welcome.session as string)!.lastCseq, 2);
  } finally {
    app.dispose();
  }
});

Deno.test("the default room can always be joined, even when maxRooms is reached", () => {
  const app = new WsApp({ maxRooms: 2, wallClock: () => 42 });
  try {
    const [a] = connect(app, "?id=a");
    say(app, a, { type: "subscribe", room: "x" });
    say(app, a, { type: "unsubscribe", room: "lobby" }); // the lobby is empty: forgotten
    say(app, a, { type: "subscribe", room: "y" }); // x and y: the cap
    assertEquals([...app.rooms.keys()], ["x", "y"]);
    const [b] = connect(app, "?id=b");
    const [c] = connect(app, "?id=c");
    assertEquals(app.rooms.get("lobby")?.size, 2, "new sessions are in the default room");
    say(app, b, { type: "chat", text: "hi" });
    assertEquals(c.take().map((m) => [m.from, m.text]), [["b", "hi"]]);
    // Other rooms still obey the cap (lobby, x, y are three: the default room does not count).
    assertEquals(say(app, b, { type: "subscribe", room: "z", cseq: 1 })[0], {
      type: "error",
      reason: "too many rooms on this server",
      cseq: 1,
    });
  } finally {
    app.dispose();
  }
});

Deno.test("takeover: the replaced connection's late messages and close change nothing", () => {
  const app = new WsApp({ wallClock: () => 42 });
  try {
    const [a, [welcome]] = connect(app, "?id=a");
    const [watcher] = connect(app, "?id=w");
    say(app, a, { type: "chat", text: "one", cseq: 1 });
    const [b, [resumed]] = connect(app, `?id=a&session=${welcome.session}&last_seq=1`);
    assertEquals([resumed.resumed, resumed.last_cseq], [true, 1]);
    assertEquals(a.closedWith, [4000, "last_cseq=1"]);
    // Still in flight from the old connection: processed by nobody.
    a.closedWith = undefined; // even if the old socket could still send
    assertEquals(say(app, a, { type: "chat", text: "late", cseq: 2 }), []);
    say(app, a, { type: "ack", seq: 99 });
    app.close(a as unknown as WebSocketConnection);
    const session = app.sessions.get(welcome.session as string)!;
    assertEquals([session.lastCseq, session.connection], [1, b as unknown as WebSocketConnection]);
    assertEquals([app.sessions.live, app.sessions.detached], [2, 0]);
    assertEquals(watcher.take().map((m) => m.text), ["one"]);
    // The client re-sends cseq 2 on the new connection: processed there, once.
    assertEquals(say(app, b, { type: "chat", text: "late", cseq: 2 }).map((m) => m.type), [
      "chat",
      "ack",
    ]);
    assertEquals(watcher.take().map((m) => m.text), ["late"]);
  } finally {
    app.dispose();
  }
});

Deno.test("a live session removed by the server closes with 4001; its client resumes and is told the final last_cseq", () => {
  const app = new WsApp({ wallClock: () => 42 });
  try {
    const [a, [welcome]] = connect(app, "?id=a");
    const [watcher] = connect(app, "?id=w");
    say(app, a, { type: "chat", text: "one", cseq: 1 });
    say(app, a, { type: "chat", text: "two", cseq: 2 });
    app.sessions.remove(app.sessionOf(a as unknown as WebSocketConnection)!);
    assertEquals(a.closedWith, [4001, "session ended"]);
    // In flight from the removed connection: processed by nobody, so last_cseq 2 is final.
    a.closedWith = undefined;
    assertEquals(say(app, a, { type: "chat", text: "late", cseq: 3 }), []);
    app.close(a as unknown as WebSocketConnection);
    assertEquals(watcher.take().map((m) => m.text), ["one", "two"]);
    // The client resumes as after any drop (4001 is no takeover) and learns what was done.
    const [, messages] = connect(app, `?id=a&session=${welcome.session}&last_seq=2`);
    assertEquals(messages.slice(0, 1), [{
      type: "resume_failed",
      session: welcome.session,
      reason: "unknown or expired session",
      last_cseq: 2,
    }]);
    assertEquals([messages[1].type, messages[1].resumed], ["welcome", false]);
  } finally {
    app.dispose();
  }
});

Deno.test("a detached session keeps its rooms: their messages are buffered and replayed on resume", () => {
  const app = new WsApp({ wallClock: () => 42 });
  try {
    const [a, [welcome]] = connect(app, "?id=a");
    say(app, a, { type: "subscribe", room: "news" }); // seq 1
    app.close(a as unknown as WebSocketConnection);
    assertEquals(app.rooms.get("news")?.size, 1, "membership outlives the connection");
    const [b] = connect(app, "?id=b");
    say(app, b, { type: "chat", text: "extra", room: "news" });
    assertEquals(app.publish("lobby", "note", { n: 1 }), 2);
    const [a2, messages] = connect(app, `?id=a&session=${welcome.session}&last_seq=1`);
    assertEquals(messages.map((m) => [m.type, m.seq]), [["welcome", undefined], ["chat", 2], [
      "note",
      3,
    ]]);
    say(app, b, { type: "chat", text: "live", room: "news" });
    assertEquals(a2.take().map((m) => [m.seq, m.text]), [[4, "live"]]);
  } finally {
    app.dispose();
  }
});

Deno.test("session ids up to MAX_SESSION_ID_LENGTH resume; a longer session parameter is refused, never cut", () => {
  assertEquals(MAX_SESSION_ID_LENGTH, 256);
  let n = 0;
  const createId = () => String(++n).padStart(MAX_SESSION_ID_LENGTH, "k");
  const app = new WsApp({ wallClock: () => 42, createId });
  try {
    const [a, [welcome]] = connect(app, "?id=a");
    const id = welcome.session as string;
    assertEquals(id, "1".padStart(MAX_SESSION_ID_LENGTH, "k"), "the custom id is the session's");
    assertEquals(id.length, MAX_SESSION_ID_LENGTH);
    app.close(a as unknown as WebSocketConnection);
    const [a2, [resumed]] = connect(app, `?id=a&session=${id}&last_seq=0`);
    assertEquals([resumed.type, resumed.session, resumed.resumed], ["welcome", id, true]);
    // One character more: cut to the limit it would name the live session above (and take it
    // over); it is refused instead, and the live connection is left alone.
    const [, messages] = connect(app, `?id=a&session=${id}x&last_seq=0`);
    assertEquals(messages[0], {
      type: "resume_failed",
      session: id, // echoed up to the limit only
      reason: "invalid session id",
    });
    assertEquals([messages[1].type, messages[1].resumed], ["welcome", false]);
    assertNotEquals(messages[1].session, id);
    assertEquals(a2.closedWith, undefined, "the live session was not taken over");
    assertEquals(app.sessions.get(id)?.connection, a2 as unknown as WebSocketConnection);
  } finally {
    app.dispose();
  }
});

Deno.test("a createId result that could never be resumed is rejected when the session is made", () => {
  for (const bad of ["k".repeat(MAX_SESSION_ID_LENGTH + 1), ""]) {
    const app = new WsApp({ wallClock: () => 42, createId: () => bad });
    try {
      const ws = new FakeConnection("/ws?id=a");
      assertThrows(
        () => app.open(ws as unknown as WebSocketConnection),
        RangeError,
        `createId returned a session id of ${bad.length} characters`,
      );
      assertEquals(app.sessions.size, 0, "no session was made");
      assertEquals(ws.sent, [], "no welcome was sent");
    } finally {
      app.dispose();
    }
  }
});
