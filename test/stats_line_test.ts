/**
 * The periodic stats line: the pure formatter over two snapshots, and the
 * scheduler on a hand-driven clock.
 */
import { assertEquals, assertMatch, assertThrows } from "@std/assert";
import { formatStatsLine, groupThousands, StatsLine } from "../server/_stats_line.ts";
import { HeartwireMetrics } from "../server/metrics.ts";
import { ManualClock } from "./_clock.ts";

Deno.test("stats line: groups thousands with a space", () => {
  assertEquals(groupThousands(0), "0");
  assertEquals(groupThousands(812), "812");
  assertEquals(groupThousands(10_233), "10 233");
  assertEquals(groupThousands(1_234_567), "1 234 567");
  assertEquals(groupThousands(-4_000), "-4 000");
});

Deno.test("stats line: active, total, opened/closed and timeouts since the last line, p50/p99", () => {
  const metrics = new HeartwireMetrics({ processMetrics: false });
  for (let i = 0; i < 10_200; i++) metrics.connectionOpened();
  for (let i = 0; i < 9_400; i++) metrics.connectionClosed({ code: 1000, cause: "peer" });
  for (let i = 0; i < 100; i++) metrics.pongReceived(200); // before the window: not counted
  const prev = metrics.snapshot();
  assertEquals(
    formatStatsLine(undefined, prev),
    "heartwire: 800 active, 10 200 total, +10 200 opened, -9 400 closed, 0 timeouts, " +
      "rtt p50 175 ms p99 249 ms",
  );

  for (let i = 0; i < 40; i++) metrics.connectionOpened();
  for (let i = 0; i < 33; i++) metrics.connectionClosed({ code: 1000, cause: "peer" });
  metrics.connectionClosed({ code: 1006, cause: "timeout" });
  metrics.connectionClosed({ code: 1006, cause: "timeout" });
  for (let i = 0; i < 98; i++) metrics.pongReceived(3); // (2.5, 5]
  metrics.pongReceived(15); // (10, 25]
  metrics.pongReceived(15);
  assertEquals(
    formatStatsLine(prev, metrics.snapshot()),
    "heartwire: 805 active, 10 240 total, +40 opened, -35 closed, 2 timeouts, " +
      "rtt p50 3.8 ms p99 18 ms",
  );
});

Deno.test("stats line: no pongs in the window, one timeout, overloaded", () => {
  const metrics = new HeartwireMetrics({ processMetrics: false });
  metrics.pongReceived(5);
  const prev = metrics.snapshot();
  metrics.connectionOpened();
  metrics.connectionOpened();
  metrics.connectionClosed({ code: 1006, cause: "timeout" });
  metrics.overloaded.set(1);
  metrics.load1.collect = () => 4.5;
  assertEquals(
    formatStatsLine(prev, metrics.snapshot()),
    "heartwire: 1 active, 2 total, +2 opened, -1 closed, 1 timeout, rtt -, OVERLOADED (load 4.50)",
  );
});

Deno.test("stats line: one line per interval, covering the time since the last", () => {
  const clock = new ManualClock();
  const metrics = new HeartwireMetrics({ processMetrics: false });
  const lines: string[] = [];
  const stats = new StatsLine(() => metrics.snapshot(), {
    interval: 5_000,
    clock,
    log: (line) => lines.push(line),
  });
  stats.start();
  metrics.connectionOpened();
  clock.advance(4_999);
  assertEquals(lines.length, 0);
  clock.advance(1);
  metrics.connectionOpened();
  clock.advance(5_000);
  assertEquals(lines.length, 2);
  assertMatch(lines[0], /^heartwire: 1 active, 1 total, \+1 opened, -0 closed/);
  assertMatch(lines[1], /^heartwire: 2 active, 2 total, \+1 opened, -0 closed/);
  stats.stop();
  clock.advance(60_000);
  assertEquals(lines.length, 2);
  assertEquals(clock.pending, 0);
});

Deno.test("stats line: interval 0 is off; a negative one is refused", () => {
  const clock = new ManualClock();
  const lines: string[] = [];
  const metrics = new HeartwireMetrics({ processMetrics: false });
  const stats = new StatsLine(() => metrics.snapshot(), {
    interval: 0,
    clock,
    log: (line) => lines.push(line),
  });
  stats.start();
  assertEquals(clock.pending, 0);
  clock.advance(60_000);
  assertEquals(lines, []);
  assertThrows(() => new StatsLine(() => metrics.snapshot(), { interval: -1 }), RangeError);
});
