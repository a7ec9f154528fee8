/**
 * The metrics registry: counters, gauges, families and histograms move as
 * expected, and `/metrics` text is read back with a real Prometheus
 * text-format parser (npm `parse-prometheus-text-format`), not by string
 * comparison. Event-loop lag runs on a hand-driven clock.
 */
import { assert, assertAlmostEquals, assertEquals, assertMatch, assertThrows } from "@std/assert";
import {
  bucketQuantile,
  CLOSE_REASONS,
  closeReasonOf,
  Counter,
  CounterFamily,
  EventLoopLagSampler,
  Gauge,
  HeartwireMetrics,
  Histogram,
  Registry,
} from "../server/metrics.ts";
import { ManualClock } from "./_clock.ts";
import { parseFamilies, type PrometheusFamily, sampleValue as value } from "./_prometheus.ts";

/** Parses exposition text, and also checks every line against the 0.0.4 grammar. */
function parse(text: string): Map<string, PrometheusFamily> {
  assert(text.endsWith("\n"), "exposition ends with a line feed");
  for (const line of text.slice(0, -1).split("\n")) {
    assertMatch(
      line,
      /^(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*|[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*",?)*\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN))$/,
    );
  }
  return parseFamilies(text);
}

Deno.test("metrics: counters, gauges and families expose HELP, TYPE and escaped labels", () => {
  const registry = new Registry({ prefix: "t_" });
  const hits = registry.add(
    new Counter("hits_total", 'Hits, with a \\ and a\nline feed and "quotes".'),
  );
  const depth = registry.add(new Gauge("depth", "Queue depth."));
  let collected = 7;
  registry.add(new Gauge("collected", "Read at scrape time.", { collect: () => collected }));
  registry.add(
    new Gauge("broken", "A collect that throws.", {
      collect: () => {
        throw new Error("no");
      },
    }),
  );
  registry.add(new Gauge("lag_seconds", "Kept in ms.", { collect: () => 1500, divisor: 1000 }));
  const reasons = registry.add(
    new CounterFamily("closed_total", "By reason.", "reason", { values: ["a", "b"] }),
  );
  hits.inc();
  hits.inc(2);
  depth.inc(5);
  depth.dec(2);
  reasons.inc('we"ird\\\nvalue');
  reasons.inc("a", 4);

  let families = parse(registry.expose());
  assertEquals(families.get("t_hits_total")?.type, "COUNTER");
  assertEquals(
    families.get("t_hits_total")?.help,
    'Hits, with a \\ and a\nline feed and "quotes".',
  );
  assertEquals(value(families, "t_hits_total"), 3);
  assertEquals(families.get("t_depth")?.type, "GAUGE");
  assertEquals(value(families, "t_depth"), 3);
  assertEquals(value(families, "t_collected"), 7);
  assert(Number.isNaN(value(families, "t_broken")));
  assertEquals(value(families, "t_lag_seconds"), 1.5);
  assertEquals(value(families, "t_closed_total", { reason: "a" }), 4);
  assertEquals(value(families, "t_closed_total", { reason: "b" }), 0); // made up front
  assertEquals(value(families, "t_closed_total", { reason: 'we"ird\\\nvalue' }), 1);

  collected = 9;
  families = parse(registry.expose());
  assertEquals(value(families, "t_collected"), 9);
});

Deno.test("metrics: a family keeps at most maxValues label values, then counts under other", () => {
  const family = new CounterFamily("codes_total", "By code.", "code", { maxValues: 3 });
  for (const code of [3000, 3001, 3002, 3003, 3004, 3001]) family.inc(code);
  assertEquals(family.entries(), [["3000", 1], ["3001", 2], ["3002", 1], ["other", 2]]);
  assertEquals(family.total(), 6);
  // Holding the child makes the update a plain increment.
  const child = family.get(3000);
  child.inc();
  assertEquals(family.get("3000").value, 2);
});

Deno.test("metrics: histogram buckets, sum and count parse, cumulative with +Inf", () => {
  const registry = new Registry({ prefix: "t_" });
  const rtt = registry.add(
    new Histogram("rtt_seconds", "RTT.", { buckets: [1, 2.5, 10], divisor: 1000 }),
  );
  for (const ms of [0.5, 1, 2, 3, 9, 11, 5000]) rtt.observe(ms);
  rtt.observe(NaN); // ignored
  const family = parse(registry.expose()).get("t_rtt_seconds");
  assertEquals(family?.type, "HISTOGRAM");
  const sample = family!.metrics[0];
  // Bounds are exposed in seconds; 1 ms is exactly "0.001", not 0.0010000000000000002.
  assertEquals(sample.buckets, { "0.001": "2", "0.0025": "3", "0.01": "5", "+Inf": "7" });
  assertEquals(Number(sample.count), 7);
  assertAlmostEquals(Number(sample.sum), 5026.5 / 1000, 1e-12);
  assertEquals([...rtt.counts], [2, 1, 2, 2]);
  assertThrows(() => new Histogram("bad", "Unsorted.", { buckets: [5, 1] }), RangeError);
});

Deno.test("metrics: bucketQuantile interpolates like histogram_quantile", () => {
  assertEquals(bucketQuantile([5, 10], [10, 10, 0], 0.5), 5);
  assertEquals(bucketQuantile([5, 10], [10, 10, 0], 0.75), 7.5);
  assertEquals(bucketQuantile([5, 10], [0, 0, 4], 0.5), 10); // in +Inf: the top bound
  assertEquals(bucketQuantile([5, 10], [4, 0, 0], 0.5), 2.5); // the first bucket starts at 0
  assert(Number.isNaN(bucketQuantile([5, 10], [0, 0, 0], 0.5)));
  const h = new Histogram("h", "H.");
  for (let i = 0; i < 99; i++) h.observe(3); // (2.5, 5]
  h.observe(400); // (250, 500]
  assert(h.quantile(0.5) > 2.5 && h.quantile(0.5) <= 5, `p50 ${h.quantile(0.5)}`);
  assert(h.quantile(0.999) > 250, `p99.9 ${h.quantile(0.999)}`);
});

Deno.test("metrics: a registry refuses invalid and duplicate names", () => {
  const registry = new Registry();
  registry.add(new Counter("ok_total", "Fine."));
  assertThrows(() => registry.add(new Counter("ok_total", "Again.")), Error, "twice");
  assertThrows(() => registry.add(new Counter("bad-name", "Dash.")), Error, "invalid");
});

Deno.test("metrics: closeReasonOf sorts every cause", () => {
  assertEquals(closeReasonOf({ code: 1000, cause: "peer" }), "normal");
  assertEquals(closeReasonOf({ code: 1001, cause: "peer" }), "normal"); // a tab closing
  assertEquals(closeReasonOf({ code: 1006, cause: "peer" }), "normal"); // TCP dropped
  assertEquals(closeReasonOf({ code: 1000, cause: "local" }), "normal");
  assertEquals(closeReasonOf({ code: 1001, cause: "local" }), "shutdown");
  assertEquals(closeReasonOf({ code: 1012, cause: "local" }), "shutdown");
  assertEquals(closeReasonOf({ code: 4000, cause: "local" }), "taken_over");
  assertEquals(closeReasonOf({ code: 1006, cause: "timeout" }), "timeout");
  assertEquals(closeReasonOf({ code: 1002, cause: "protocol" }), "protocol_error");
  assertEquals(closeReasonOf({ code: 1008, cause: "slow" }), "slow_consumer");
  assertEquals(closeReasonOf({ code: 1011, cause: "error" }), "error");
});

Deno.test("metrics: HeartwireMetrics in a scripted session, read back from /metrics and snapshot", () => {
  let wall = 1_000_000;
  const metrics = new HeartwireMetrics({ now: () => wall });
  let queued = 0;
  metrics.queuedBytes.collect = () => queued;
  metrics.presenceOnline.collect = () => 2;

  for (let i = 0; i < 5; i++) metrics.connectionOpened();
  for (let i = 0; i < 10; i++) metrics.messageIn();
  metrics.bytesRead(1000);
  metrics.messageOut();
  metrics.bytesWritten(7);
  metrics.pingSent();
  metrics.pingSent();
  metrics.pongReceived(3);
  metrics.missedPong();
  metrics.appHeartbeat(12);
  metrics.appHeartbeat();
  metrics.resume(true);
  metrics.resume(false);
  metrics.handshakeRefused(503);
  metrics.handshakeRefused(429);
  metrics.connectionClosed({ code: 1006, cause: "timeout" });
  metrics.connectionClosed({ code: 1002, cause: "protocol" });
  metrics.connectionClosed({ code: 1008, cause: "slow" });
  metrics.connectionClosed({ code: 1000, cause: "peer" });
  metrics.eventLoopLag.set(25);
  queued = 4096;
  wall += 10_000;

  const f = parse(metrics.registry.expose());
  assertEquals(value(f, "heartwire_connections_active"), 1);
  assertEquals(value(f, "heartwire_connections_opened_total"), 5);
  assertEquals(value(f, "heartwire_connections_closed_total", { reason: "timeout" }), 1);
  assertEquals(
    value(f, "heartwire_connections_closed_total", { reason: "protocol_error" }),
    1,
  );
  assertEquals(
    value(f, "heartwire_connections_closed_total", { reason: "slow_consumer" }),
    1,
  );
  assertEquals(value(f, "heartwire_connections_closed_total", { reason: "normal" }), 1);
  assertEquals(value(f, "heartwire_connections_closed_total", { reason: "shutdown" }), 0);
  assertEquals(value(f, "heartwire_connections_closed_by_code_total", { code: "1006" }), 1);
  assertEquals(value(f, "heartwire_handshakes_refused_total", { status: "503" }), 1);
  assertEquals(value(f, "heartwire_handshakes_refused_total", { status: "429" }), 1);
  assertEquals(value(f, "heartwire_messages_received_total"), 10);
  assertEquals(value(f, "heartwire_bytes_received_total"), 1000);
  assertEquals(value(f, "heartwire_messages_sent_total"), 1);
  assertEquals(value(f, "heartwire_bytes_sent_total"), 7);
  assertEquals(value(f, "heartwire_pings_sent_total"), 2);
  assertEquals(value(f, "heartwire_pongs_received_total"), 1);
  assertEquals(value(f, "heartwire_missed_pongs_total"), 1);
  assertEquals(value(f, "heartwire_app_heartbeats_total"), 2);
  assertEquals(value(f, "heartwire_resumes_total", { result: "ok" }), 1);
  assertEquals(value(f, "heartwire_resumes_total", { result: "failed" }), 1);
  assertEquals(value(f, "heartwire_presence_online"), 2);
  assertEquals(value(f, "heartwire_queued_bytes"), 4096);
  assertEquals(value(f, "heartwire_event_loop_lag_seconds"), 0.025);
  assertEquals(value(f, "heartwire_overloaded"), 0);
  assertEquals(Number(f.get("heartwire_ping_rtt_seconds")!.metrics[0].count), 1);
  assertEquals(Number(f.get("heartwire_app_heartbeat_rtt_seconds")!.metrics[0].count), 1);
  // Process metrics, under their standard names.
  assert(value(f, "process_resident_memory_bytes") > 0);
  assert(value(f, "process_cpu_seconds_total") > 0);
  assert(value(f, "process_start_time_seconds") > 1_600_000_000);
  assert(value(f, "process_open_fds") > 0); // tests run with --allow-all
  assert(value(f, "heartwire_heap_used_bytes") > 0);
  // Every family has help text.
  for (const family of f.values()) assert(family.help.length > 0, `${family.name} has HELP`);

  const s = metrics.snapshot();
  assertEquals(s.time, wall);
  assertEquals(s.uptimeSeconds, 10);
  assertEquals(s.connections.active, 1);
  assertEquals(s.connections.opened, 5);
  assertEquals(s.connections.closed, 4);
  assertEquals(Object.keys(s.connections.closedByReason), [...CLOSE_REASONS]);
  assertEquals(s.connections.closedByCode, { "1000": 1, "1002": 1, "1006": 1, "1008": 1 });
  assertEquals(s.handshakesRefused, { "429": 1, "503": 1 });
  assertEquals(s.messages, { in: 10, out: 1 });
  assertEquals(s.pings, { sent: 2, pongs: 1, missed: 1 });
  assertEquals(s.resumes, { ok: 1, failed: 1 });
  assertEquals(s.queuedBytes, 4096);
  assertEquals(s.eventLoopLagMs, 25);
  assertEquals(s.overloaded, false);
  assertEquals(s.load1, null);
  assertEquals(s.rtt.ping.count, 1);
  assert(s.rtt.ping.p50! > 2.5 && s.rtt.ping.p50! <= 5);
  assertEquals(s.rtt.ping.counts.length, s.rtt.ping.bounds.length + 1);
  assert(s.process.rssBytes > 0);
  // The snapshot is plain JSON: it survives a round trip.
  assertEquals(JSON.parse(JSON.stringify(s)), s);
});

Deno.test("metrics: processMetrics false leaves out the process_* families", () => {
  const f = parse(new HeartwireMetrics({ processMetrics: false, prefix: "x_" }).registry.expose());
  assert(!f.has("process_resident_memory_bytes"));
  assert(f.has("x_connections_active"));
});

Deno.test("metrics: the event-loop lag sampler measures how late its timer fires", () => {
  const clock = new ManualClock();
  const lags: number[] = [];
  const sampler = new EventLoopLagSampler((ms) => lags.push(ms), { interval: 100, clock });
  sampler.start();
  sampler.start(); // a second start does not add a timer
  assertEquals(clock.pending, 1);
  clock.advance(100); // on time
  // A 70 ms stall: the clock moves on before the due timer may run.
  clock.jump(170);
  clock.advance(0);
  clock.advance(100);
  assertEquals(lags, [0, 70, 0]);
  assertEquals(sampler.last, 0);
  assertEquals(sampler.max, 70);
  sampler.stop();
  assertEquals(clock.pending, 0);
  assertThrows(() => new EventLoopLagSampler(() => {}, { interval: 0 }), RangeError);
});

Deno.test("metrics: watchLoad reads overloaded and load1 from a load monitor at scrape time", () => {
  const metrics = new HeartwireMetrics({ processMetrics: false });
  const monitor = { overloaded: false, load: 1.25 };
  metrics.watchLoad(monitor);
  let f = parse(metrics.registry.expose());
  assertEquals(value(f, "heartwire_overloaded"), 0);
  assertEquals(value(f, "heartwire_load1"), 1.25);
  monitor.overloaded = true;
  monitor.load = 4.5;
  f = parse(metrics.registry.expose());
  assertEquals(value(f, "heartwire_overloaded"), 1);
  assertEquals(metrics.snapshot().overloaded, true);
  assertEquals(metrics.snapshot().load1, 4.5);
});
