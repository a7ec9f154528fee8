/**
 * RedisBroker's ordering rules, without Redis: a stand-in history (a
 * MemoryHistory whose reads can be held back) and a stand-in subscriber
 * whose channel messages the test sends, drops or replays at will.
 */
import { assertEquals } from "@std/assert";
import type { TopicPosition } from "../protocol/messages.ts";
import { MemoryHistory } from "../hub/mod.ts";
import { type BrokerHistory, RedisBroker } from "../hub/redis/mod.ts";

class FakeHistory implements BrokerHistory {
  readonly memory: MemoryHistory;
  /** While set, `since` and `held` wait for it: a fetch under way. */
  gate: Promise<void> | undefined;
  #epochs = 0;

  constructor(maxEntries = 100) {
    this.memory = new MemoryHistory({ maxEntries, createEpoch: () => `e${++this.#epochs}` });
  }

  channel(key: string): string {
    return `p:${key}`;
  }

  append(key: string, encode: (offset: number) => string) {
    return Promise.resolve(this.memory.append(key, encode));
  }

  position(key: string): Promise<TopicPosition> {
    return Promise.resolve(this.memory.position(key));
  }

  async since(key: string, from: TopicPosition) {
    await this.gate;
    return this.memory.since(key, from);
  }

  async held(key: string) {
    await this.gate;
    const position = this.memory.position(key);
    const floor = position.offset - this.memory.entries(key);
    const { texts } = this.memory.since(key, { epoch: position.epoch, offset: floor });
    return { ...position, texts };
  }
}

class FakeSubscriber {
  readonly listeners = new Map<string, (message: string) => void>();

  subscribe(channel: string, listener: (message: string) => void): Promise<void> {
    this.listeners.set(channel, listener);
    return Promise.resolve();
  }

  unsubscribe(channel: string): Promise<void> {
    this.listeners.delete(channel);
    return Promise.resolve();
  }

  /** What the append script PUBLISHes. */
  emit(channel: string, position: TopicPosition & { text: string }): void {
    this.listeners.get(channel)?.(`${position.epoch} ${position.offset} ${position.text}`);
  }
}

/** A broker on stand-ins, and what it delivered: "e1:3" for a publication, "lost e1:4". */
function setup(
  options: { maxEntries?: number; maxPending?: number; maxDeliveryWait?: number } = {},
) {
  const history = new FakeHistory(options.maxEntries);
  const subscriber = new FakeSubscriber();
  const broker = new RedisBroker(history, subscriber, options);
  const got: string[] = [];
  broker.listener = {
    publication: (_key, { epoch, offset }, text) => {
      assertEquals(JSON.parse(text).offset, offset, "the text is the offset's");
      got.push(`${epoch}:${offset}`);
    },
    lost: (_key, { epoch, offset }) => got.push(`lost ${epoch}:${offset}`),
  };
  /** Appends one publication; `emit` false is a message pub/sub dropped. */
  const publish = async (emit = true) => {
    const appended = await history.append("t", (offset) => JSON.stringify({ offset }));
    if (emit) subscriber.emit("p:t", appended);
    return appended;
  };
  return { history, subscriber, broker, got, publish };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("broker: publications in offset order; one delivered already is dropped", async () => {
  const { broker, subscriber, got, publish } = setup();
  assertEquals(await broker.subscribe("t"), { epoch: "e1", offset: 0 });
  await publish();
  const second = await publish();
  subscriber.emit("p:t", second); // twice
  assertEquals(got, ["e1:1", "e1:2"]);
  assertEquals(await broker.subscribe("t"), { epoch: "e1", offset: 2 }, "where it stands now");
});

Deno.test("broker: a gap is filled from the history first; what arrives meanwhile follows", async () => {
  const { history, broker, got, publish } = setup();
  await broker.subscribe("t");
  await publish();
  await publish(false); // pub/sub lost offset 2
  let open!: () => void;
  history.gate = new Promise((resolve) => open = resolve);
  await publish(); // 3: a gap, the fetch waits at the gate
  await publish(); // 4 arrives while it waits
  assertEquals(got, ["e1:1"]);
  open();
  await settle();
  assertEquals(got, ["e1:1", "e1:2", "e1:3", "e1:4"]);
});

Deno.test("broker: trimmed past what was delivered: lost, then what the history holds", async () => {
  const { broker, got, publish } = setup({ maxEntries: 2 });
  await broker.subscribe("t");
  for (let i = 0; i < 5; i++) await publish(false);
  await publish(); // 6: the history holds 5 and 6
  await settle();
  assertEquals(got, ["lost e1:4", "e1:5", "e1:6"]);
});

Deno.test("broker: an epoch change is taken from the history; a late old-epoch message is not", async () => {
  const { history, subscriber, broker, got, publish } = setup();
  await broker.subscribe("t");
  const old = await publish();
  const stale = await history.append("t", (offset) => JSON.stringify({ offset }));
  history.memory.remove("t"); // the history is lost; the next one is e2
  await publish(); // e2:1
  await settle();
  subscriber.emit("p:t", stale); // e1:2, late
  await settle();
  assertEquals(old.epoch, "e1");
  assertEquals(got, ["e1:1", "e2:1"]);
  await publish();
  assertEquals(got, ["e1:1", "e2:1", "e2:2"], "and it goes on in e2");
});

Deno.test("broker: past maxPending, what waited is dropped and fetched again, once each", async () => {
  const { history, broker, got, publish } = setup({ maxPending: 2 });
  await broker.subscribe("t");
  await publish(false);
  let open!: () => void;
  history.gate = new Promise((resolve) => open = resolve);
  for (let i = 0; i < 6; i++) await publish(); // 2..7 while the fetch for 1 waits
  open();
  await settle();
  assertEquals(got, ["e1:1", "e1:2", "e1:3", "e1:4", "e1:5", "e1:6", "e1:7"]);
});

Deno.test("broker: resync delivers what the channel missed while its connection was down", async () => {
  const { broker, got, publish } = setup();
  await broker.subscribe("t");
  await publish(false);
  await publish(false);
  broker.resync();
  await settle();
  assertEquals(got, ["e1:1", "e1:2"]);
  await broker.unsubscribe("t");
  await publish();
  assertEquals(got, ["e1:1", "e1:2"], "nothing after unsubscribe");
});

Deno.test("broker: delivered() waits until this node delivered the offset, bounded in time", async () => {
  const { subscriber, broker, got, publish } = setup({ maxDeliveryWait: 50 });
  await broker.subscribe("t");
  const first = await publish(false); // the reply came, the channel message not yet
  let done = false;
  const waiting = broker.delivered("t", first).then(() => done = true);
  await settle();
  assertEquals(done, false);
  subscriber.emit("p:t", first);
  await waiting;
  assertEquals(got, ["e1:1"]);
  const lost = await publish(false); // never comes: the wait ends anyway
  const start = Date.now();
  await broker.delivered("t", lost);
  assertEquals(Date.now() - start >= 40, true);
  await broker.delivered("other", lost); // not subscribed here: nothing to wait for
});
