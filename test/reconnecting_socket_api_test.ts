import { assertEquals, assertRejects } from "@std/assert";
import { ReconnectingSocket, type StorageLike } from "../client/reconnecting_socket.ts";
import { ManualClock } from "./_clock.ts";
import { fakeWebSocketClass } from "./_fake_websocket.ts";

function setup(storage?: StorageLike) {
  const clock = new ManualClock(0);
  const { WebSocket, sockets } = fakeWebSocketClass();
  const socket = new ReconnectingSocket("ws://example.test/ws", {
    WebSocket,
    clock,
    window: null,
    document: null,
    backoff: { random: () => 0.5 },
    persist: storage ? { storage, key: "test" } : undefined,
  });
  return { clock, sockets, socket, last: () => sockets.at(-1)! };
}

class MemoryStorage implements StorageLike {
  readonly items = new Map<string, string>();
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }
}

const microtasks = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

Deno.test("client API: send(type, payload) takes the cseq path; send({type}) still works", () => {
  const t = setup();
  t.last().welcome();
  assertEquals(t.socket.send("move", { x: 1, y: 2 }), 1);
  assertEquals(t.socket.send({ type: "move", x: 3 }), 2);
  assertEquals(t.socket.send("ping"), 3);
  assertEquals(t.last().sentOfType("move"), [
    { x: 1, y: 2, type: "move", cseq: 1 },
    { type: "move", x: 3, cseq: 2 },
  ]);
  assertEquals(t.last().sentOfType("ping"), [{ type: "ping", cseq: 3 }]);
  t.socket.close();
});

Deno.test("client API: on(type) gets that type's publications until unsubscribed", () => {
  const t = setup();
  t.last().welcome();
  t.last().receive({ type: "subscribed", topic: "board", epoch: "e", offset: 0 });
  const moves: number[] = [];
  const stop = t.socket.on<{ x: number }>("moved", (move) => moves.push(move.x));
  t.last().receive({ type: "moved", topic: "board", offset: 1, x: 10 });
  t.last().receive({ type: "other", topic: "board", offset: 2 });
  stop();
  t.last().receive({ type: "moved", topic: "board", offset: 3, x: 30 });
  assertEquals(moves, [10]);
  t.socket.close();
});

Deno.test("client API: request() resolves to the ack's reply, rejects on error or close", async () => {
  const t = setup();
  t.last().welcome();
  const sum = t.socket.request("add", { a: 1, b: 2 });
  const bad = t.socket.request("add", { a: "x" });
  t.last().receive({ type: "ack", cseq: 1, reply: { sum: 3 } });
  t.last().receive({ type: "error", cseq: 2, reason: "a must be a number" });
  t.last().receive({ type: "ack", cseq: 2 });
  assertEquals(await sum, { sum: 3 });
  await assertRejects(() => bad, Error, "a must be a number");
  const never = t.socket.request("slow");
  t.socket.close();
  await assertRejects(() => never, Error, "closed");
});

Deno.test("client API: a request whose reply was lost with a connection resolves undefined", async () => {
  const t = setup();
  t.last().welcome({ session: "s1" });
  const lost = t.socket.request("add", { a: 1, b: 2 });
  t.last().serverClose(1006);
  t.clock.advance(750);
  t.last().welcome({ session: "s1", resumed: true, last_cseq: 1 });
  assertEquals(await lost, undefined);
  t.socket.close();
});

Deno.test("client API: subscribe and unsubscribe are reliable messages; topics track positions", () => {
  const t = setup();
  t.last().welcome();
  assertEquals(t.socket.subscribe("board"), 1);
  assertEquals(t.last().sentOfType("subscribe"), [{ type: "subscribe", topic: "board", cseq: 1 }]);
  t.last().receive({ type: "subscribed", topic: "board", epoch: "e", offset: 4 });
  t.last().receive({ type: "ack", cseq: 1 });
  assertEquals([...t.socket.topics.keys()], ["board"]);
  assertEquals(t.socket.topics.get("board")?.offset, 4);
  t.socket.unsubscribe("board");
  t.last().receive({ type: "unsubscribed", topic: "board" });
  assertEquals(t.socket.topics.size, 0);
  t.socket.close();
});

Deno.test("client API: persist keeps the session, topic positions and unacked outbox across a reload", async () => {
  const storage = new MemoryStorage();
  const first = setup(storage);
  first.last().welcome({ id: "ann", session: "s1" });
  first.last().receive({ type: "subscribed", topic: "lobby", epoch: "e1", offset: 0 });
  first.last().receive({ type: "chat", topic: "lobby", offset: 1, text: "seen" });
  first.socket.send("chat", { text: "acked" });
  first.socket.send("chat", { text: "pending" });
  first.last().receive({ type: "ack", cseq: 1 });
  await microtasks();
  // The page goes away without a goodbye.
  const saved = JSON.parse(storage.getItem("test")!);
  assertEquals(saved.session, "s1");
  first.socket.close();

  storage.setItem("test", JSON.stringify(saved));
  const second = setup(storage);
  assertEquals(second.last().query.get("session"), "s1");
  assertEquals(second.last().query.get("id"), "ann");
  assertEquals(second.socket.bufferedAmount > 0, true);
  second.last().welcome({ id: "ann", session: "s1", resumed: true, last_cseq: 1 });
  assertEquals(second.last().sentOfType("subscribe"), [
    { type: "subscribe", topic: "lobby", epoch: "e1", offset: 1 },
  ]);
  assertEquals(second.last().sentOfType("chat"), [{ text: "pending", type: "chat", cseq: 2 }]);
  assertEquals(second.socket.send("chat", { text: "next" }), 3);
  second.socket.close();

  // Unreadable storage: a fresh start, not a crash.
  storage.setItem("test", "{oops");
  const third = setup(storage);
  assertEquals(third.last().query.get("session"), null);
  third.socket.close();
});
