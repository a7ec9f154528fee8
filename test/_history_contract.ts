/**
 * What every {@linkcode HistoryStore} must do, as test steps run against
 * each implementation (MemoryHistory in hub_history_test.ts, RedisHistory in
 * hub_redis_test.ts).
 */
import { assert, assertEquals, assertNotEquals } from "@std/assert";
import type { HistoryStore } from "../hub/mod.ts";

/** Makes a store (empty, or at least without the topics a step uses) with these bounds. */
export type HistoryFactory = (
  bounds: { maxEntries?: number; maxBytes?: number },
) => HistoryStore | Promise<HistoryStore>;

const text = (n: number, pad = "") => (offset: number) => `{"n":${n},"offset":${offset}${pad}}`;

/** As the hub's encoders are: the text around the offset, told to the store. */
const templated = (n: number) => {
  const head = `{"n":${n},"offset":`;
  return Object.assign((offset: number) => head + offset + "}", { head, tail: "}" });
};

/** The contract, step by step: name → body. */
export const historyContract: Record<string, (make: HistoryFactory) => Promise<void>> = {
  "offsets rise from 1 per topic; since() recovers exactly what follows": async (make) => {
    const history = await make({});
    const start = await history.position("a");
    assertEquals(start.offset, 0);
    for (const n of [1, 2, 3]) await history.append("a", text(n));
    assertEquals((await history.append("b", text(9))).offset, 1, "each topic counts on its own");
    assertEquals(await history.since("a", { epoch: start.epoch, offset: 1 }), {
      recovered: true,
      position: { epoch: start.epoch, offset: 3 },
      texts: ['{"n":2,"offset":2}', '{"n":3,"offset":3}'],
    });
    assertEquals((await history.since("a", { epoch: start.epoch, offset: 3 })).texts, []);
    const ahead = await history.since("a", { epoch: start.epoch, offset: 4 });
    assertEquals(ahead.recovered, false, "ahead");
    const other = await history.since("a", { epoch: "other", offset: 0 });
    assertEquals([other.recovered, other.position], [false, { epoch: start.epoch, offset: 3 }]);
  },

  "an encoder that tells its template gets the same text and offset": async (make) => {
    const history = await make({});
    const first = await history.append("t", templated(1));
    assertEquals([first.offset, first.text], [1, '{"n":1,"offset":1}']);
    const second = await history.append("t", text(2));
    assertEquals([second.offset, second.text], [2, '{"n":2,"offset":2}']);
    const recovery = await history.since("t", { epoch: first.epoch, offset: 0 });
    assertEquals(recovery.texts, ['{"n":1,"offset":1}', '{"n":2,"offset":2}']);
  },

  "bounded in entries and bytes per topic; what was trimmed is not recovered": async (make) => {
    const history = await make({ maxEntries: 3, maxBytes: 100 });
    const { epoch } = await history.position("c");
    for (let n = 1; n <= 10; n++) await history.append("c", text(n));
    assertEquals((await history.since("c", { epoch, offset: 6 })).recovered, false, "7 went");
    assertEquals((await history.since("c", { epoch, offset: 7 })).texts.length, 3);
    await history.append("c", text(11, "x".repeat(80)));
    const recovery = await history.since("c", { epoch, offset: 10 });
    assertEquals(recovery.texts.length, 1, "bytes per topic");
    assertEquals((await history.since("c", { epoch, offset: 9 })).recovered, false);
  },

  "a removed history starts over under a new epoch": async (make) => {
    const history = await make({});
    const a = await history.append("d", text(1));
    await history.remove("d");
    const again = await history.position("d");
    assertEquals(again.offset, 0);
    assertNotEquals(again.epoch, a.epoch);
    assertEquals((await history.since("d", a)).recovered, false);
  },

  "appends at once never share an offset, and are kept in offset order": async (make) => {
    const history = await make({});
    const done = await Promise.all(
      Array.from({ length: 40 }, (_, n) => history.append("e", n % 2 ? text(n) : templated(n))),
    );
    const offsets = done.map((d) => d.offset).sort((x, y) => x - y);
    assertEquals(offsets, Array.from({ length: 40 }, (_, i) => i + 1));
    const recovery = await history.since("e", { epoch: done[0].epoch, offset: 0 });
    assertEquals(recovery.texts.length, 40);
    recovery.texts.forEach((t, i) => assert(t.endsWith(`"offset":${i + 1}}`), t));
  },
};
