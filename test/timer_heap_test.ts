import {
  assert,
  assertEquals,
  assertFalse,
  assertInstanceOf,
  assertMatch,
  assertStrictEquals,
  assertThrows,
} from "@std/assert";
import { ManualClock } from "./_clock.ts";
import { Random } from "./_random.ts";
import { systemClock, type TimerEntry, TimerHeap } from "../server/timer_heap.ts";
import { sleep } from "./_wait.ts";

function setup(coalesceMs = 0) {
  const clock = new ManualClock(1_000);
  const heap = new TimerHeap({ clock, coalesceMs });
  const fired: number[] = [];
  /** Creates an entry that records `id` in `fired` when it runs. */
  const entry = (id: number): TimerEntry => heap.create(() => fired.push(id));
  return { clock, heap, fired, entry };
}

Deno.test("systemClock reads performance.now and runs real timers", async () => {
  const before = performance.now();
  const t = systemClock.now();
  assert(t >= before && t <= performance.now());
  let ran = false;
  await new Promise<void>((resolve) =>
    systemClock.setTimeout(() => {
      ran = true;
      resolve();
    }, 1)
  );
  assert(ran);
  let cleared = true;
  const handle = systemClock.setTimeout(() => cleared = false, 1);
  systemClock.clearTimeout(handle);
  await sleep(5);
  assert(cleared);
});

Deno.test("random deadlines fire in sorted order", () => {
  const { clock, heap, fired, entry } = setup();
  const random = new Random(1);
  const deadlines: number[] = [];
  for (let id = 0; id < 500; id++) {
    const at = clock.now() + random.below(10_000);
    deadlines.push(at);
    heap.schedule(entry(id), at);
    heap._check();
  }
  assertEquals(heap.size, 500);
  assertEquals(heap.peek(), Math.min(...deadlines));
  clock.advance(10_000);
  const expected = deadlines.map((at, id) => ({ at, id }))
    .sort((a, b) => a.at - b.at || a.id - b.id)
    .map((x) => x.id);
  assertEquals(fired, expected);
  assertEquals(heap.size, 0);
  assertEquals(heap.peek(), undefined);
});

Deno.test("equal deadlines fire in arming order; a re-arm goes to the back", () => {
  const { clock, heap, fired, entry } = setup();
  const entries = [0, 1, 2, 3, 4].map(entry);
  for (const e of entries) heap.schedule(e, 1_100);
  heap.schedule(entries[1], 1_100); // re-armed: now the last of the five
  clock.advance(100);
  assertEquals(fired, [0, 2, 3, 4, 1]);
});

Deno.test("cancel at the top, in the middle and at the bottom", () => {
  const { clock, heap, fired, entry } = setup();
  const entries = Array.from({ length: 50 }, (_, id) => entry(id));
  entries.forEach((e, id) => heap.schedule(e, 1_000 + 10 * (id + 1)));
  assert(heap.cancel(entries[0])); // top
  heap._check();
  assert(heap.cancel(entries[25])); // middle
  heap._check();
  assert(heap.cancel(entries[49])); // bottom (the last slot of the array)
  heap._check();
  assertFalse(heap.cancel(entries[25]), "second cancel reports false");
  assertFalse(entries[0].scheduled);
  assertEquals(heap.size, 47);
  assertEquals(heap.peek(), 1_020);
  clock.advance(1_000);
  assertEquals(fired, entries.map((_, id) => id).filter((id) => ![0, 25, 49].includes(id)));
});

Deno.test("reschedule earlier and later moves the entry", () => {
  const { clock, heap, fired, entry } = setup();
  const [a, b, c] = [entry(0), entry(1), entry(2)];
  heap.schedule(a, 1_100);
  heap.schedule(b, 1_200);
  heap.schedule(c, 1_300);
  heap.schedule(c, 1_050); // earlier: becomes the top
  assertEquals(heap.peek(), 1_050);
  assertEquals(c.at, 1_050);
  heap.schedule(a, 1_400); // later: sinks past b
  heap._check();
  clock.advance(500);
  assertEquals(fired, [2, 1, 0]);
});

Deno.test("heap invariant holds through a seeded random sequence of operations", () => {
  const { clock, heap, fired, entry } = setup();
  const random = new Random(42);
  const entries = Array.from({ length: 300 }, (_, id) => entry(id));
  const model = new Map<number, number>(); // id -> deadline, for the armed ones
  for (let step = 0; step < 5_000; step++) {
    const id = random.below(entries.length);
    const op = random.float();
    if (op < 0.6) {
      const at = clock.now() + random.below(1_000);
      heap.schedule(entries[id], at);
      model.set(id, at);
    } else if (op < 0.9) {
      assertEquals(heap.cancel(entries[id]), model.delete(id));
    } else {
      fired.length = 0;
      const now = clock.now() + random.below(200);
      const due = [...model].filter(([, at]) => at <= now).map(([id]) => id);
      assertEquals(heap.runDue(now), due.length);
      assertEquals(fired.sort((x, y) => x - y), due.sort((x, y) => x - y));
      for (const id of due) model.delete(id);
    }
    heap._check();
    assertEquals(heap.size, model.size);
    assertEquals(heap.peek(), model.size ? Math.min(...model.values()) : undefined);
    for (const [id, at] of model) assertEquals(entries[id].at, at);
  }
  heap.clear();
});

Deno.test("a callback can re-arm its own entry", () => {
  const { clock, heap } = setup();
  const times: number[] = [];
  const keepalive = heap.create(() => {
    times.push(clock.now());
    if (times.length < 4) heap.schedule(keepalive, clock.now() + 100);
  });
  heap.schedule(keepalive, 1_100);
  clock.advance(1_000);
  assertEquals(times, [1_100, 1_200, 1_300, 1_400]);
  assertFalse(keepalive.scheduled);
  assertEquals(clock.pending, 0);
});

Deno.test("an entry re-armed to <= now during runDue fires in the next run, not this one", () => {
  const { heap } = setup();
  let calls = 0;
  const e = heap.create(() => {
    calls++;
    heap.schedule(e, 0); // already past: would loop forever if fired in the same run
  });
  heap.schedule(e, 1_000);
  assertEquals(heap.runDue(1_000), 1);
  assertEquals(calls, 1);
  assert(e.scheduled);
  assertEquals(heap.runDue(1_000), 1);
  assertEquals(calls, 2);
  heap.clear();
});

Deno.test("callbacks can cancel or move entries due later in the same run", () => {
  const { heap, fired, entry } = setup();
  const b = entry(1);
  const c = entry(2);
  const a = heap.create(() => {
    fired.push(0);
    assert(heap.cancel(b)); // due in this run but not yet fired
    heap.schedule(c, 2_000); // likewise, moved to later
  });
  heap.schedule(a, 1_001);
  heap.schedule(b, 1_002);
  heap.schedule(c, 1_003);
  assertEquals(heap.runDue(1_010), 1);
  assertEquals(fired, [0]);
  assertFalse(b.scheduled);
  assert(c.scheduled);
  assertEquals(heap.size, 1);
  assertEquals(heap.runDue(2_000), 1);
  assertEquals(fired, [0, 2]);
});

Deno.test("one OS timer at most, none when empty", () => {
  const { clock, heap, entry } = setup();
  const random = new Random(7);
  assertEquals(clock.pending, 0);
  const entries = Array.from({ length: 100 }, (_, id) => entry(id));
  for (const e of entries) {
    heap.schedule(e, clock.now() + random.below(500));
    assertEquals(clock.pending, 1);
  }
  for (let i = 0; i < 5; i++) {
    clock.advance(50);
    assert(clock.pending <= 1);
  }
  for (const e of entries) {
    heap.cancel(e);
    assertEquals(clock.pending, heap.size > 0 ? 1 : 0);
  }
  heap.schedule(entries[0], clock.now() + 10);
  assertEquals(clock.pending, 1);
  clock.advance(10);
  assertEquals(heap.size, 0);
  assertEquals(clock.pending, 0, "firing the last entry leaves no OS timer");
  heap.schedule(entries[0], clock.now() + 10);
  heap.clear();
  assertEquals(clock.pending, 0, "clear() drops the OS timer");
});

Deno.test("OS timer moves earlier for an earlier entry, stays put for a later one", () => {
  const { clock, heap, fired, entry } = setup();
  const setTimeoutCalls: number[] = [];
  const realSetTimeout = clock.setTimeout.bind(clock);
  clock.setTimeout = (callback, delay) => {
    setTimeoutCalls.push(delay);
    return realSetTimeout(callback, delay);
  };
  const [a, b] = [entry(0), entry(1)];
  heap.schedule(a, 1_500);
  heap.schedule(b, 1_200); // earlier: re-armed
  assertEquals(setTimeoutCalls, [500, 200]);
  assertEquals(clock.pending, 1);
  heap.schedule(b, 1_300); // the earliest moved later: lazily kept
  heap.schedule(a, 1_900); // later: kept
  assertEquals(setTimeoutCalls, [500, 200]);
  clock.advance(200); // the stale wake-up at 1 200 runs nothing and re-arms for 1 300
  assertEquals(fired, []);
  assertEquals(setTimeoutCalls, [500, 200, 100]);
  clock.advance(100);
  assertEquals(fired, [1]);
  clock.advance(600);
  assertEquals(fired, [1, 0]);
  assertEquals(clock.pending, 0);
});

Deno.test("coalescing fires deadlines within coalesceMs of the earliest in one wake-up", () => {
  const { clock, heap } = setup(10);
  let wakeUps = 0;
  const realSetTimeout = clock.setTimeout.bind(clock);
  clock.setTimeout = (callback, delay) => realSetTimeout(() => (wakeUps++, callback()), delay);
  const firedAt: number[] = [];
  for (const at of [1_100, 1_104, 1_110, 1_111, 1_125]) {
    const e = heap.create(() => firedAt.push(clock.now()));
    heap.schedule(e, at);
  }
  clock.advance(1_000);
  // 1 100…1 110 fire together at 1 110; 1 111 waits until 1 121; 1 125 until 1 135.
  assertEquals(firedAt, [1_110, 1_110, 1_110, 1_121, 1_135]);
  assertEquals(wakeUps, 3);
});

Deno.test("coalesceMs 0 fires each deadline at its exact time", () => {
  const { clock, heap } = setup(0);
  const times: number[] = [];
  for (const at of [1_100, 1_104]) heap.schedule(heap.create(() => times.push(clock.now())), at);
  clock.advance(200);
  assertEquals(times, [1_100, 1_104]);
});

Deno.test("default coalescing is a few ms and never fires early", () => {
  const clock = new ManualClock(0);
  const heap = new TimerHeap({ clock });
  const times: number[] = [];
  heap.schedule(heap.create(() => times.push(clock.now())), 100);
  heap.schedule(heap.create(() => times.push(clock.now())), 103);
  clock.advance(200);
  assertEquals(times.length, 2);
  assert(times[0] >= 103 && times[0] <= 110, `fired at ${times[0]}`);
  assertEquals(times[0], times[1]);
});

Deno.test("a throwing callback does not stop the others; the error is rethrown after the run", () => {
  const { clock, heap, fired, entry } = setup();
  heap.schedule(entry(0), 1_010);
  heap.schedule(
    heap.create(() => {
      throw new Error("boom");
    }),
    1_020,
  );
  heap.schedule(entry(2), 1_030);
  heap.schedule(entry(3), 5_000);
  const error = assertThrows(() => heap.runDue(1_030), Error, "boom");
  assertEquals(error.message, "boom");
  assertEquals(fired, [0, 2]);
  heap._check();
  assertEquals(heap.size, 1);
  assertEquals(clock.pending, 1, "the OS timer is re-armed even though the run threw");
  clock.advance(4_000);
  assertEquals(fired, [0, 2, 3]);
});

Deno.test("several throwing callbacks give an AggregateError; onError receives each instead", () => {
  const { heap } = setup();
  const thrower = (message: string) =>
    heap.create(() => {
      throw new Error(message);
    });
  heap.schedule(thrower("a"), 1_001);
  heap.schedule(thrower("b"), 1_002);
  const error = assertThrows(() => heap.runDue(1_002), AggregateError);
  assertEquals(error.errors.map((e: Error) => e.message), ["a", "b"]);

  const clock = new ManualClock(0);
  const seen: unknown[] = [];
  const quiet = new TimerHeap({ clock, coalesceMs: 0, onError: (e) => seen.push(e) });
  let after = false;
  quiet.schedule(
    quiet.create(() => {
      throw new Error("c");
    }),
    1,
  );
  quiet.schedule(quiet.create(() => after = true), 2);
  clock.advance(5);
  assert(after);
  assertEquals(seen.length, 1);
  assertInstanceOf(seen[0], Error);
  assertEquals((seen[0] as Error).message, "c");
});

Deno.test("runDue called from a callback is refused without breaking the run", () => {
  const clock = new ManualClock(0);
  const seen: unknown[] = [];
  const heap = new TimerHeap({ clock, coalesceMs: 0, onError: (e) => seen.push(e) });
  let after = false;
  heap.schedule(heap.create(() => heap.runDue()), 1);
  heap.schedule(heap.create(() => after = true), 1);
  assertEquals(heap.runDue(1), 2);
  assert(after);
  assertEquals(seen.length, 1);
  assertInstanceOf(seen[0], Error);
  assertMatch((seen[0] as Error).message, /called from a timer callback/);
});

Deno.test("clear() from a callback stops the rest of the run", () => {
  const { clock, heap, fired, entry } = setup();
  heap.schedule(heap.create(() => heap.clear()), 1_001);
  const later = entry(1);
  heap.schedule(later, 1_002);
  assertEquals(heap.runDue(1_005), 1);
  assertEquals(fired, []);
  assertFalse(later.scheduled);
  assertEquals(heap.size, 0);
  assertEquals(clock.pending, 0);
});

Deno.test("entries are bound to their heap; deadlines must be finite", () => {
  const { heap } = setup();
  const other = new TimerHeap({ clock: new ManualClock() });
  const foreign = other.create(() => {});
  assertThrows(() => heap.schedule(foreign, 1), TypeError);
  assertThrows(() => heap.cancel(foreign), TypeError);
  assertThrows(() => heap.cancel({ at: 0, scheduled: true }), TypeError);
  const e = heap.create(() => {});
  assertThrows(() => heap.schedule(e, NaN), RangeError);
  assertThrows(() => heap.schedule(e, Infinity), RangeError);
  assertFalse(e.scheduled);
  assert(Number.isNaN(e.at));
  assertStrictEquals(heap.size, 0);
});

Deno.test("with the system clock an empty heap lets the process exit (no leaked timer)", async () => {
  const heap = new TimerHeap({ coalesceMs: 0 });
  const done = Promise.withResolvers<number>();
  const e = heap.create(() => done.resolve(performance.now()));
  const start = performance.now();
  heap.schedule(e, start + 5);
  const firedAt = await done.promise;
  assert(firedAt >= start + 5, "never fires early");
  assertEquals(heap.size, 0);
  // The Deno test sanitizer fails this test if an OS timer were still pending.
});

Deno.test("asClock: setTimeout is a one-shot heap entry on the heap's OS timer; clearTimeout cancels it", () => {
  const clock = new ManualClock();
  const heap = new TimerHeap({ clock, coalesceMs: 0 });
  const asClock = heap.asClock();
  const fired: string[] = [];
  asClock.setTimeout(() => fired.push("a"), 100);
  const b = asClock.setTimeout(() => fired.push("b"), 50);
  assertEquals(heap.size, 2);
  assertEquals(clock.pending, 1); // one OS timer for both
  asClock.clearTimeout(b);
  asClock.clearTimeout("not a handle"); // ignored, like clearTimeout(undefined)
  assertEquals(heap.size, 1);
  assertEquals(asClock.now(), clock.now());
  clock.advance(100);
  assertEquals(fired, ["a"]);
  assertEquals(heap.size, 0);
  assertEquals(clock.pending, 0);
});
