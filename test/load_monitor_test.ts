/**
 * The load alert, fed an injected load sequence: one line on entering and
 * one on leaving, hysteresis against flapping, and the timer on a hand-driven
 * clock.
 */
import { assert, assertEquals, assertMatch, assertThrows } from "@std/assert";
import { LoadMonitor, systemLoadAverage } from "../server/load_monitor.ts";
import { ManualClock } from "./_clock.ts";

/** A monitor on 2 CPUs (threshold 4, clears below 3.2) reading `loads` in turn. */
function monitorOf(loads: (number | undefined)[], options = {}) {
  const lines: string[] = [];
  const changes: boolean[] = [];
  let i = 0;
  const monitor = new LoadMonitor({
    cpus: 2,
    loadSource: () => loads[i++],
    log: (line) => lines.push(line),
    onChange: (on) => changes.push(on),
    ...options,
  });
  return { monitor, lines, changes, run: () => loads.map(() => monitor.sample()) };
}

Deno.test("load monitor: overloaded at factor × CPUs, one line in, one line out", () => {
  const { monitor, lines, changes, run } = monitorOf([1, 3.9, 4, 6, 5, 3, 3, 3, 1]);
  assertEquals(monitor.threshold, 4);
  assertEquals(run(), [false, false, true, true, true, true, true, false, false]);
  assertEquals(changes, [true, false]);
  assertEquals(lines.length, 2);
  assertMatch(lines[0], /^heartwire: WARNING load 4\.00 ≥ 4\.00 \(2 × 2 CPUs\): overloaded$/);
  assertMatch(lines[1], /^heartwire: load 3\.00 < 3\.20: no longer overloaded/);
  assertEquals(monitor.alerts, 1);
  assertEquals(monitor.load, 1);
});

Deno.test("load monitor: a load hovering at the threshold does not flap", () => {
  // Between 3.2 and 4 the state holds, whichever it is; dips below 3.2 must
  // last three samples in a row to clear it.
  const hovering = [4.1, 3.9, 4.0, 3.5, 3.1, 4.2, 3.1, 3.0, 3.3, 3.1, 3.0, 2.9, 3.9, 3.5];
  const { lines, changes, run } = monitorOf(hovering);
  const states = run();
  assertEquals(changes, [true, false]);
  assertEquals(lines.length, 2);
  // Cleared only at the third low sample in a row (index 11), and stays cleared at 3.9.
  assertEquals(states.indexOf(false), 11);
  assertEquals(states.slice(11), [false, false, false]);
});

Deno.test("load monitor: factor, clear ratio and clear samples are options", () => {
  const { lines, run } = monitorOf([2.9, 3, 2.8, 2.3], {
    factor: 1.5,
    clearRatio: 0.9,
    clearSamples: 1,
    action: "refusing new connections",
  });
  assertEquals(run(), [false, true, true, false]);
  assertMatch(lines[0], /\(1\.5 × 2 CPUs\): overloaded; refusing new connections$/);
  assertMatch(lines[1], /load 2\.30 < 2\.70/);
});

Deno.test("load monitor: an unreadable load says so once and keeps the state", () => {
  const { monitor, lines, run } = monitorOf([undefined, undefined, NaN, 5, undefined]);
  assertEquals(run(), [false, false, false, true, true]);
  assertEquals(lines.length, 3); // unavailable, overloaded, unavailable again
  assertMatch(lines[0], /load average unavailable/);
  assert(Number.isNaN(monitor.load));
});

Deno.test("load monitor: samples every interval on its clock, until stopped", () => {
  const clock = new ManualClock();
  const loads = [1, 9, 9, 1, 1, 1, 9];
  const { monitor, lines } = monitorOf(loads, { clock, interval: 5_000 });
  monitor.start(); // the first sample at once
  assertEquals(monitor.overloaded, false);
  clock.advance(5_000);
  assertEquals(monitor.overloaded, true);
  clock.advance(20_000); // 9, 1, 1, 1: cleared after 15 s of calm
  assertEquals(monitor.overloaded, false);
  assertMatch(lines[1], /after 20 s\)$/);
  monitor.stop();
  clock.advance(50_000);
  assertEquals(clock.pending, 0);
  assertEquals(monitor.overloaded, false); // the last 9 was never read
  assertEquals(monitor.retryAfterSeconds, 5);
});

Deno.test("load monitor: bad options are refused", () => {
  assertThrows(() => new LoadMonitor({ factor: 0 }), RangeError);
  assertThrows(() => new LoadMonitor({ cpus: NaN }), RangeError);
  assertThrows(() => new LoadMonitor({ interval: -1 }), RangeError);
  assertThrows(() => new LoadMonitor({ clearRatio: 1.5 }), RangeError);
  assertThrows(() => new LoadMonitor({ clearSamples: 0 }), RangeError);
});

Deno.test("load monitor: the system source reads Deno.loadavg when permitted", () => {
  const load = systemLoadAverage(); // tests run with --allow-all
  assert(load !== undefined && load >= 0, `load ${load}`);
});
