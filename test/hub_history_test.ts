import { assertEquals, assertNotEquals } from "@std/assert";
import { MemoryHistory } from "../hub/history.ts";
import { historyContract } from "./_history_contract.ts";

for (const [name, step] of Object.entries(historyContract)) {
  Deno.test(`history contract (memory): ${name}`, () =>
    step((bounds) => new MemoryHistory(bounds)));
}

const text = (n: number, pad = "") => (offset: number) => `{"n":${n},"offset":${offset}${pad}}`;

Deno.test("history: offsets rise from 1 per topic; since() recovers exactly what follows", () => {
  const history = new MemoryHistory();
  const start = history.position("a");
  assertEquals(start.offset, 0);
  for (const n of [1, 2, 3]) history.append("a", text(n));
  assertEquals(history.append("b", text(9)).offset, 1, "each topic counts on its own");
  assertEquals(history.since("a", { epoch: start.epoch, offset: 1 }), {
    recovered: true,
    position: { epoch: start.epoch, offset: 3 },
    texts: ['{"n":2,"offset":2}', '{"n":3,"offset":3}'],
  });
  assertEquals(history.since("a", { epoch: start.epoch, offset: 3 }).texts, []);
  assertEquals(history.since("a", { epoch: start.epoch, offset: 4 }).recovered, false, "ahead");
  assertEquals(history.since("a", { epoch: "other", offset: 0 }).recovered, false, "epoch");
});

Deno.test("history: bounded in entries, bytes per topic and bytes in total; trimming is told", () => {
  const history = new MemoryHistory({ maxEntries: 3, maxBytes: 100, maxTotalBytes: 150 });
  const { epoch } = history.position("a");
  for (let n = 1; n <= 10; n++) history.append("a", text(n));
  assertEquals(history.entries("a"), 3);
  assertEquals(history.since("a", { epoch, offset: 6 }).recovered, false, "7 was trimmed");
  assertEquals(history.since("a", { epoch, offset: 7 }).texts.length, 3);
  history.append("a", text(11, "x".repeat(80)));
  assertEquals(history.entries("a"), 1, "bytes per topic");
  for (let n = 1; n <= 5; n++) history.append("b", text(n, "y".repeat(20)));
  assert(history.bytes <= 150, `total ${history.bytes}`);
});

Deno.test("history: at the topic cap the least recently published is forgotten; a new one has a new epoch", () => {
  const history = new MemoryHistory({ maxTopics: 2 });
  const a = history.append("a", text(1));
  history.append("b", text(1));
  history.append("a", text(2)); // a is now the most recent
  history.append("c", text(1)); // b goes
  assertEquals(history.topics, 2);
  assertEquals(history.entries("b"), 0);
  assertEquals(history.since("a", { epoch: a.epoch, offset: 0 }).texts.length, 2);
  const b = history.position("b");
  assertEquals(b.offset, 0);
  history.remove("a");
  assertNotEquals(history.position("a").epoch, a.epoch);
});

function assert(condition: boolean, message: string): void {
  if (!condition) throw new Error(message);
}
