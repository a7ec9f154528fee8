import { assert, assertEquals } from "@std/assert";
import { HeartbeatMonitor, type HeartbeatMonitorOptions } from "../client/heartbeat_monitor.ts";
import type { Heartbeat } from "../protocol/heartbeat.ts";
import { ManualClock } from "./_clock.ts";

function setup(options: Partial<HeartbeatMonitorOptions> = {}) {
  const clock = new ManualClock(0);
  const sent: { at: number; heartbeat: Heartbeat }[] = [];
  let deadAt: number | undefined;
  const monitor = new HeartbeatMonitor({
    interval: 1_000,
    timeout: 500,
    clock,
    send: (heartbeat) => sent.push({ at: clock.now(), heartbeat }),
    onDead: () => {
      assertEquals(deadAt, undefined, "onDead called twice");
      deadAt = clock.now();
    },
    ...options,
  });
  return { clock, sent, monitor, deadAt: () => deadAt };
}

Deno.test("HeartbeatMonitor: first heartbeat at start, then one per interval, with id and ts", () => {
  const { clock, sent, monitor } = setup();
  monitor.start();
  // The server answers each heartbeat after 20 ms.
  for (let i = 0; i < 4; i++) {
    clock.advance(20);
    monitor.received();
    clock.advance(980);
  }
  assertEquals(sent.map((s) => s.at), [0, 1_000, 2_000, 3_000, 4_000]);
  assertEquals(sent[1].heartbeat, { type: "heartbeat", id: 2, ts: 1_000 });
  assert(monitor.running);
  monitor.stop();
  assertEquals(clock.pending, 0);
});

Deno.test("HeartbeatMonitor: dead when nothing arrives within timeout of a heartbeat", () => {
  const { clock, monitor, deadAt } = setup();
  monitor.start();
  clock.advance(499);
  assertEquals(deadAt(), undefined);
  clock.advance(1);
  assertEquals(deadAt(), 500);
  assertEquals([monitor.running, clock.pending], [false, 0]);
});

Deno.test("HeartbeatMonitor: any message counts as life; received() arms no timer", () => {
  const { clock, monitor, deadAt } = setup();
  monitor.start();
  const pending = clock.pending;
  for (let t = 0; t < 5_000; t += 100) {
    clock.advance(100);
    monitor.received(); // e.g. chat messages, never a heartbeat_ack
    assertEquals(clock.pending, pending);
  }
  assertEquals(deadAt(), undefined);
});

Deno.test("HeartbeatMonitor: detection within interval + timeout of the network dying", () => {
  for (const [interval, timeout] of [[1_000, 500], [200, 300], [25_000, 10_000]]) {
    for (let death = 0; death < 3 * interval; death += interval / 7) {
      const { clock, monitor, deadAt } = setup({ interval, timeout });
      monitor.start();
      // Alive (answers within 1 ms) until `death`, then silence.
      while (clock.now() + 1 <= death) {
        clock.advance(1);
        monitor.received();
      }
      clock.advance(death - clock.now());
      clock.advance(interval + timeout + 10);
      const at = deadAt();
      assert(at !== undefined, `not dead, interval ${interval} death ${death}`);
      assert(at - death <= interval + timeout, `${at - death} > ${interval + timeout}`);
      assert(at - death >= Math.min(timeout, interval) - 1, `too early: ${at - death}`);
      monitor.stop();
    }
  }
});

Deno.test("HeartbeatMonitor: timeout longer than interval keeps beating, measures from the oldest", () => {
  const { clock, sent, monitor, deadAt } = setup({ interval: 200, timeout: 500 });
  monitor.start();
  clock.advance(499);
  assertEquals(sent.map((s) => s.at), [0, 200, 400]);
  assertEquals(deadAt(), undefined);
  clock.advance(1);
  assertEquals(deadAt(), 500);
});

Deno.test("HeartbeatMonitor: acked() gives the RTT from the echoed ts", () => {
  const { clock, sent, monitor } = setup();
  monitor.start();
  clock.advance(37);
  const { id, ts } = sent[0].heartbeat;
  assertEquals(monitor.acked({ type: "heartbeat_ack", id, ts }), 37);
  assertEquals(monitor.acked({ type: "heartbeat_ack" }), undefined);
});

Deno.test("HeartbeatMonitor: check() asks at once; a dead line is found within timeout", () => {
  const { clock, sent, monitor, deadAt } = setup({ interval: 25_000, timeout: 500 });
  monitor.start();
  clock.advance(1);
  monitor.received();
  clock.advance(5_000);
  monitor.check(); // e.g. the tab became visible
  assertEquals(sent.map((s) => s.at), [0, 5_001]);
  monitor.check(); // one already waiting: no second heartbeat
  assertEquals(sent.length, 2);
  clock.advance(500);
  assertEquals(deadAt(), 5_501);
});

Deno.test("HeartbeatMonitor: a long timer gap (sleep) checks afresh instead of declaring death", () => {
  const { clock, sent, monitor, deadAt } = setup();
  monitor.start();
  clock.advance(10);
  monitor.received();
  clock.jump(60 * 60_000); // an hour asleep: the timer is an hour late
  clock.advance(0);
  assertEquals(deadAt(), undefined);
  assertEquals(sent.at(-1)!.at, clock.now()); // an immediate liveness check
  clock.advance(100);
  monitor.received(); // the server answered: alive, and its answer cleared the grace
  clock.advance(1_399); // the regular cadence resumed: a heartbeat at +1000 is due by +1500
  assertEquals(deadAt(), undefined);
  clock.advance(1);
  assertEquals(deadAt(), clock.now()); // that one went unanswered: the normal rule applies again
});

Deno.test("HeartbeatMonitor: after a gap, a dead line is found within timeout", () => {
  const { clock, monitor, deadAt } = setup();
  monitor.start();
  clock.advance(10);
  monitor.received();
  clock.jump(60_000);
  clock.advance(0);
  const woke = clock.now();
  clock.advance(500);
  assertEquals(deadAt(), woke + 500);
});

Deno.test("HeartbeatMonitor: only one grace per silence (throttled background tab on a dead line)", () => {
  const { clock, monitor, deadAt } = setup();
  monitor.start();
  clock.jump(60_000); // throttled: the timer runs a minute late
  clock.advance(0);
  assertEquals(deadAt(), undefined);
  clock.jump(60_000); // late again, and still nothing arrived
  clock.advance(0);
  assertEquals(deadAt(), clock.now());
});

Deno.test("HeartbeatMonitor: stop() clears its one timer; start() after stop is ignored by a dead one", () => {
  const { clock, monitor, sent } = setup();
  monitor.start();
  monitor.start(); // idempotent
  assertEquals([sent.length, clock.pending], [1, 1]);
  monitor.stop();
  assertEquals(clock.pending, 0);
  monitor.check();
  assertEquals([sent.length, clock.pending], [1, 0]);
});
