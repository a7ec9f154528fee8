/**
 * Metrics in the Prometheus text format (0.0.4): counters, gauges, one-label
 * counter families and fixed-bucket histograms, plus {@linkcode HeartwireMetrics},
 * the set a heartwire server keeps.
 *
 * Updates on the hot path are plain number operations on objects made up
 * front (`counter.inc()`, `histogram.observe(ms)`): nothing is allocated per
 * message. Text is only built when someone scrapes `/metrics`.
 *
 * @example
 * ```ts
 * import { HeartwireMetrics } from "@heartwire/heartwire/server";
 * const metrics = new HeartwireMetrics();
 * metrics.connectionOpened();
 * metrics.messageIn();
 * metrics.pongReceived(3.5);
 * console.log(metrics.registry.expose());
 * ```
 *
 * @module
 */
import { backgroundClock } from "./_background_clock.ts";
import type { Clock } from "../protocol/clock.ts";

/** Something a {@linkcode Registry} can write in the text format. */
export interface Metric {
  /** The name without the registry's prefix. */
  readonly name: string;
  /** One line of help. */
  readonly help: string;
  /** The Prometheus type. */
  readonly type: "counter" | "gauge" | "histogram";
  /** Appends this metric's sample lines (not HELP/TYPE) for `fullName`. */
  write(out: string[], fullName: string): void;
}

/**
 * A number that only goes up (Prometheus `counter`; name it `…_total`).
 *
 * @example
 * ```ts
 * import { Counter } from "@heartwire/heartwire/server";
 * const sent = new Counter("pings_sent_total", "Pings sent.");
 * sent.inc();
 * console.log(sent.value); // 1
 * ```
 */
export class Counter implements Metric {
  /** Always "counter". */
  readonly type = "counter" as const;
  /** The current count. */
  value = 0;

  /** Makes a counter at 0. */
  constructor(readonly name: string, readonly help: string) {}

  /** Adds `n` (default 1). */
  inc(n = 1): void {
    this.value += n;
  }

  /** Writes the one sample line. */
  write(out: string[], fullName: string): void {
    out.push(`${fullName} ${formatValue(this.value)}`);
  }
}

/**
 * Options for {@linkcode Gauge}.
 *
 * @example
 * ```ts
 * import { Gauge, type GaugeOptions } from "@heartwire/heartwire/server";
 * const queue: number[] = [];
 * const options: GaugeOptions = { collect: () => queue.length };
 * const depth = new Gauge("queue_depth", "Items waiting.", options);
 * ```
 */
export interface GaugeOptions {
  /** Read the value at scrape time instead of keeping it (e.g. a sum over connections). */
  collect?: () => number;
  /**
   * The value is kept in another unit: it is divided by this when exposed
   * (1000 keeps milliseconds and exposes seconds). Default 1.
   */
  divisor?: number;
}

/**
 * A number that goes up and down (Prometheus `gauge`), kept or read at scrape time.
 *
 * @example
 * ```ts
 * import { Gauge } from "@heartwire/heartwire/server";
 * const active = new Gauge("connections_active", "Open WebSocket connections.");
 * active.inc();
 * active.dec();
 * const heap = new Gauge("heap_used_bytes", "V8 heap in use.", {
 *   collect: () => Deno.memoryUsage().heapUsed,
 * });
 * console.log(active.get(), heap.get() > 0);
 * ```
 */
export class Gauge implements Metric {
  /** Always "gauge". */
  readonly type = "gauge" as const;
  /** The kept value (ignored while {@linkcode Gauge.collect} is set). */
  value = 0;
  /** When set, the value is read from here at scrape time. */
  collect: (() => number) | undefined;
  readonly #divisor: number;

  /** Makes a gauge at 0, or one that reads `options.collect`. */
  constructor(readonly name: string, readonly help: string, options: GaugeOptions = {}) {
    this.collect = options.collect;
    this.#divisor = options.divisor ?? 1;
  }

  /** Sets the value. */
  set(value: number): void {
    this.value = value;
  }

  /** Adds `n` (default 1). */
  inc(n = 1): void {
    this.value += n;
  }

  /** Subtracts `n` (default 1). */
  dec(n = 1): void {
    this.value -= n;
  }

  /** The current value, in the unit it is kept in (a failing `collect` reads as NaN). */
  get(): number {
    if (!this.collect) return this.value;
    try {
      return this.collect();
    } catch {
      return NaN;
    }
  }

  /** Writes the one sample line. */
  write(out: string[], fullName: string): void {
    out.push(`${fullName} ${formatValue(this.get() / this.#divisor)}`);
  }
}

/**
 * Options for {@linkcode CounterFamily}.
 */
export interface CounterFamilyOptions {
  /** Label values made (and exposed at 0) up front, so `rate()` sees them from the start. */
  values?: readonly (string | number)[];
  /**
   * Most distinct values kept; later ones are counted under `other`. A close
   * code comes from the peer, and must not grow the scrape without bound.
   * Default 32.
   */
  maxValues?: number;
}

/**
 * Counters split by one label with a small set of values (close reason,
 * close code, refused status). Children are made once per value; holding one
 * (`family.get("timeout")`) makes an update a plain `inc()`.
 *
 * @example
 * ```ts
 * import { CounterFamily } from "@heartwire/heartwire/server";
 * const refused = new CounterFamily(
 *   "handshakes_refused_total",
 *   "Upgrades refused, by HTTP status.",
 *   "status",
 *   { values: [400, 429, 503] },
 * );
 * refused.inc(503);
 * console.log(refused.get(503).value); // 1
 * ```
 */
export class CounterFamily implements Metric {
  /** Always "counter". */
  readonly type = "counter" as const;
  readonly #children = new Map<string, Counter>();
  readonly #maxValues: number;

  /** Makes the family with `options.values` at 0. */
  constructor(
    readonly name: string,
    readonly help: string,
    readonly label: string,
    options: CounterFamilyOptions = {},
  ) {
    this.#maxValues = options.maxValues ?? 32;
    for (const value of options.values ?? []) this.get(value);
  }

  /** The counter for `value` (made on first use; past `maxValues`, the `other` one). */
  get(value: string | number): Counter {
    const key = String(value);
    let child = this.#children.get(key);
    if (child) return child;
    const name = this.#children.size < this.#maxValues ? key : "other";
    child = this.#children.get(name);
    if (!child) {
      child = new Counter(this.name, this.help);
      this.#children.set(name, child);
    }
    return child;
  }

  /** Adds `n` (default 1) to the counter for `value`. */
  inc(value: string | number, n = 1): void {
    this.get(value).value += n;
  }

  /** Every value and its count, in first-use order. */
  entries(): [string, number][] {
    return [...this.#children].map(([key, counter]) => [key, counter.value]);
  }

  /** The sum over every value. */
  total(): number {
    let sum = 0;
    for (const counter of this.#children.values()) sum += counter.value;
    return sum;
  }

  /** Writes one sample line per value. */
  write(out: string[], fullName: string): void {
    for (const [key, counter] of this.#children) {
      out.push(`${fullName}{${this.label}="${escapeLabel(key)}"} ${formatValue(counter.value)}`);
    }
  }
}

/**
 * Options for {@linkcode Histogram}.
 */
export interface HistogramOptions {
  /** Upper bounds, ascending, in the unit observed (`+Inf` is implied). Default {@linkcode RTT_BUCKETS_MS}. */
  buckets?: readonly number[];
  /** Divides bounds and sum when exposed (1000: observe ms, expose seconds). Default 1. */
  divisor?: number;
}

/**
 * Round-trip-time bucket bounds in ms: 1 ms to 10 s, roughly 1-2.5-5 per decade.
 *
 * @example
 * ```ts
 * import { Histogram, RTT_BUCKETS_MS } from "@heartwire/heartwire/server";
 * const rtt = new Histogram("rtt_seconds", "RTT.", { buckets: RTT_BUCKETS_MS, divisor: 1000 });
 * ```
 */
export const RTT_BUCKETS_MS: readonly number[] = [
  1,
  2.5,
  5,
  10,
  25,
  50,
  100,
  250,
  500,
  1_000,
  2_500,
  5_000,
  10_000,
];

/**
 * Counts of observations in fixed buckets (Prometheus `histogram`).
 * `observe()` is a short linear scan over a Float64Array and two additions.
 *
 * @example
 * ```ts
 * import { Histogram } from "@heartwire/heartwire/server";
 * const rtt = new Histogram("ping_rtt_seconds", "Ping RTT.", { divisor: 1000 });
 * rtt.observe(3); // ms
 * rtt.observe(40);
 * console.log(rtt.count, rtt.quantile(0.5));
 * ```
 */
export class Histogram implements Metric {
  /** Always "histogram". */
  readonly type = "histogram" as const;
  /** Upper bounds of the finite buckets, ascending. */
  readonly bounds: Float64Array;
  /** Observations per bucket (not cumulative); the last one is `+Inf`. */
  readonly counts: Float64Array;
  /** Sum of every observed value. */
  sum = 0;
  /** Number of observations. */
  count = 0;
  readonly #divisor: number;

  /**
   * Makes an empty histogram.
   *
   * @throws {RangeError} if the bounds are not finite and strictly ascending.
   */
  constructor(readonly name: string, readonly help: string, options: HistogramOptions = {}) {
    const buckets = options.buckets ?? RTT_BUCKETS_MS;
    for (let i = 0; i < buckets.length; i++) {
      if (!Number.isFinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
        throw new RangeError(`${name}: bucket bounds must be finite and ascending`);
      }
    }
    this.bounds = Float64Array.from(buckets);
    this.counts = new Float64Array(buckets.length + 1);
    this.#divisor = options.divisor ?? 1;
  }

  /** Records one value (in the unit the bounds are in). NaN is ignored. */
  observe(value: number): void {
    if (value !== value) return;
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }

  /** The estimated `q` quantile (0..1) of everything observed; NaN when empty. */
  quantile(q: number): number {
    return bucketQuantile(this.bounds, this.counts, q);
  }

  /** Writes the cumulative `_bucket` lines, `_sum` and `_count`. */
  write(out: string[], fullName: string): void {
    let cumulative = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += this.counts[i];
      const le = formatValue(this.bounds[i] / this.#divisor);
      out.push(`${fullName}_bucket{le="${le}"} ${cumulative}`);
    }
    out.push(`${fullName}_bucket{le="+Inf"} ${this.count}`);
    out.push(`${fullName}_sum ${formatValue(this.sum / this.#divisor)}`);
    out.push(`${fullName}_count ${this.count}`);
  }
}

/**
 * Estimates the `q` quantile from bucket counts the way PromQL's
 * `histogram_quantile` does: find the bucket holding the rank, interpolate
 * linearly inside it (the first bucket starts at 0; a rank in `+Inf` reads as
 * the highest finite bound). NaN when there are no observations.
 *
 * @example
 * ```ts
 * import { bucketQuantile } from "@heartwire/heartwire/server";
 * // 10 observations at or under 5 ms, 10 between 5 and 10 ms:
 * bucketQuantile([5, 10], [10, 10, 0], 0.5); // 5
 * ```
 */
export function bucketQuantile(
  bounds: ArrayLike<number>,
  counts: ArrayLike<number>,
  q: number,
): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i];
  if (total <= 0) return NaN;
  const rank = Math.min(Math.max(q, 0), 1) * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const inBucket = counts[i];
    if (inBucket > 0 && below + inBucket >= rank) {
      if (i >= bounds.length) return bounds.length > 0 ? bounds[bounds.length - 1] : NaN;
      const lower = i === 0 ? 0 : bounds[i - 1];
      return lower + (bounds[i] - lower) * ((rank - below) / inBucket);
    }
    below += inBucket;
  }
  return bounds.length > 0 ? bounds[bounds.length - 1] : NaN;
}

/**
 * Options for {@linkcode Registry}.
 *
 * @example
 * ```ts
 * import { Registry, type RegistryOptions } from "@heartwire/heartwire/server";
 * const options: RegistryOptions = { prefix: "myapp_" };
 * const registry = new Registry(options);
 * ```
 */
export interface RegistryOptions {
  /** Put before every name registered with {@linkcode Registry.add}. Default "". */
  prefix?: string;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * An ordered set of metrics and their text exposition.
 *
 * @example
 * ```ts
 * import { Counter, Registry } from "@heartwire/heartwire/server";
 * const registry = new Registry({ prefix: "demo_" });
 * const hits = registry.add(new Counter("hits_total", "Pages served."));
 * hits.inc();
 * console.log(registry.expose()); // # HELP demo_hits_total Pages served. …
 * ```
 */
export class Registry {
  /** The MIME type of {@linkcode Registry.expose}'s text. */
  static readonly contentType = "text/plain; version=0.0.4; charset=utf-8";
  readonly #prefix: string;
  readonly #metrics: { metric: Metric; fullName: string }[] = [];

  /** Makes an empty registry. */
  constructor(options: RegistryOptions = {}) {
    this.#prefix = options.prefix ?? "";
  }

  /**
   * Registers `metric` under the prefix and returns it.
   *
   * @throws {Error} if the name is not a valid metric name or is taken.
   */
  add<M extends Metric>(metric: M, options: { prefixed?: boolean } = {}): M {
    const fullName = (options.prefixed === false ? "" : this.#prefix) + metric.name;
    if (!NAME.test(fullName)) throw new Error(`invalid metric name ${fullName}`);
    if (this.#metrics.some((m) => m.fullName === fullName)) {
      throw new Error(`metric ${fullName} is registered twice`);
    }
    this.#metrics.push({ metric, fullName });
    return metric;
  }

  /** Every metric in the Prometheus text format 0.0.4. */
  expose(): string {
    const out: string[] = [];
    for (const { metric, fullName } of this.#metrics) {
      out.push(`# HELP ${fullName} ${escapeHelp(metric.help)}`);
      out.push(`# TYPE ${fullName} ${metric.type}`);
      metric.write(out, fullName);
    }
    out.push("");
    return out.join("\n");
  }
}

/** A sample value: integers as they are, `+Inf`, `-Inf` and `NaN` spelled as Prometheus does. */
function formatValue(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  if (value !== value) return "NaN";
  return String(value);
}

/** Text format 0.0.4: in HELP, backslash and line feed are escaped. */
function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

/** Text format 0.0.4: in a label value, backslash, double quote and line feed are escaped. */
function escapeLabel(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

// ---- heartwire's metric set -------------------------------------------------

/**
 * Why a connection ended, as `heartwire_connections_closed_total{reason}` counts it.
 *
 * @example
 * ```ts
 * import { CLOSE_REASONS } from "@heartwire/heartwire/server";
 * console.log(CLOSE_REASONS.includes("timeout")); // true
 * ```
 */
export const CLOSE_REASONS = [
  "normal",
  "timeout",
  "protocol_error",
  "slow_consumer",
  "shutdown",
  "taken_over",
  "error",
] as const;

/**
 * One of {@linkcode CLOSE_REASONS}.
 */
export type CloseReason = typeof CLOSE_REASONS[number];

/**
 * What {@linkcode closeReasonOf} needs to know about an ended connection: the
 * shape of the server's `CloseInfo`.
 */
export interface EndedConnection {
  /** The close code (1006 when no close frame was exchanged). */
  code: number;
  /** Who ended it: peer, local, protocol, timeout, slow or error. */
  cause: string;
}

/** The close code the `/ws` app uses when a newer connection resumes the session. */
const TAKEN_OVER = 4000;

/**
 * Sorts an ended connection into one {@linkcode CloseReason}: the server
 * closing with 1001 or 1012 is a shutdown, with 4000 a session taken over by a
 * newer connection; a missed pong is a timeout; a broken frame a protocol
 * error; a full write queue a slow consumer; a transport or handler failure
 * an error; anything else (either side's close frame, the peer dropping TCP)
 * is normal.
 *
 * @example
 * ```ts
 * import { closeReasonOf } from "@heartwire/heartwire/server";
 * closeReasonOf({ code: 1001, cause: "local" }); // "shutdown"
 * closeReasonOf({ code: 1006, cause: "timeout" }); // "timeout"
 * ```
 */
export function closeReasonOf(ended: EndedConnection): CloseReason {
  switch (ended.cause) {
    case "timeout":
      return "timeout";
    case "protocol":
      return "protocol_error";
    case "slow":
      return "slow_consumer";
    case "error":
      return "error";
    case "local":
      if (ended.code === 1001 || ended.code === 1012) return "shutdown";
      if (ended.code === TAKEN_OVER) return "taken_over";
      return "normal";
    default:
      return "normal";
  }
}

/** Close codes exposed at 0 from the start (RFC 6455 §7.4.1, and the app's 4000/4001). */
const KNOWN_CLOSE_CODES = [
  1000,
  1001,
  1002,
  1003,
  1006,
  1007,
  1008,
  1009,
  1011,
  1012,
  4000,
  4001,
];

/** Statuses an upgrade is refused with, exposed at 0 from the start. */
const KNOWN_REFUSALS = [400, 401, 403, 426, 429, 431, 500, 503];

/**
 * A histogram's figures in a {@linkcode MetricsSnapshot} (milliseconds).
 *
 * @example
 * ```ts
 * import { HeartwireMetrics } from "@heartwire/heartwire/server";
 * const metrics = new HeartwireMetrics();
 * metrics.pongReceived(4);
 * const rtt = metrics.snapshot().rtt.ping;
 * console.log(rtt.count, rtt.p50);
 * ```
 */
export interface HistogramSnapshot {
  /** Observations since start. */
  count: number;
  /** Their sum (ms). */
  sum: number;
  /** Bucket upper bounds (ms); the `+Inf` bucket is last in `counts`. */
  bounds: number[];
  /** Observations per bucket, not cumulative (`bounds.length + 1` entries). */
  counts: number[];
  /** Estimated median since start (ms), or null with no observations. */
  p50: number | null;
  /** Estimated 90th percentile since start (ms), or null. */
  p90: number | null;
  /** Estimated 99th percentile since start (ms), or null. */
  p99: number | null;
}

/**
 * Process figures in a {@linkcode MetricsSnapshot}; a figure the runtime or
 * the permissions cannot give is null.
 *
 * @example
 * ```ts
 * import { HeartwireMetrics } from "@heartwire/heartwire/server";
 * console.log(new HeartwireMetrics().snapshot().process.rssBytes);
 * ```
 */
export interface ProcessSnapshot {
  /** User + system CPU time since the process started (s). */
  cpuSeconds: number | null;
  /** Resident set size (bytes). */
  rssBytes: number;
  /** V8 heap in use (bytes). */
  heapUsedBytes: number;
  /** V8 heap reserved (bytes). */
  heapTotalBytes: number;
  /** Open file descriptors (Linux, with read access to /proc), or null. */
  openFds: number | null;
  /** When the process started (Unix seconds). */
  startTimeSeconds: number;
}

/**
 * Every figure of {@linkcode HeartwireMetrics} as plain JSON: the body of
 * `GET /stats`, what the dashboard feed pushes, and what the stats line
 * compares. Counters are totals since start; rates come from two snapshots.
 *
 * @example
 * ```ts
 * import { HeartwireMetrics } from "@heartwire/heartwire/server";
 * const snapshot = new HeartwireMetrics().snapshot();
 * console.log(JSON.stringify(snapshot).length > 0, snapshot.connections.active);
 * ```
 */
export interface MetricsSnapshot {
  /** Wall-clock time of the snapshot (Unix ms). */
  time: number;
  /** Seconds since the metrics were made. */
  uptimeSeconds: number;
  /** Connection counts. */
  connections: {
    /** Open now. */
    active: number;
    /** Opened since start. */
    opened: number;
    /** Ended since start. */
    closed: number;
    /** Ended since start, by {@linkcode CloseReason}. */
    closedByReason: Record<CloseReason, number>;
    /** Ended since start, by close code. */
    closedByCode: Record<string, number>;
  };
  /** Upgrades refused since start, by HTTP status. */
  handshakesRefused: Record<string, number>;
  /** Data messages since start. */
  messages: { in: number; out: number };
  /** Bytes read from and written to WebSocket sockets since start (framing included). */
  bytes: { in: number; out: number };
  /** Control-frame keepalive since start. */
  pings: { sent: number; pongs: number; missed: number };
  /** Application heartbeats answered since start. */
  appHeartbeats: number;
  /** Session resumes since start. */
  resumes: { ok: number; failed: number };
  /** Clients online in presence now. */
  presenceOnline: number;
  /** Bytes queued to peers and not yet written, now. */
  queuedBytes: number;
  /** How late the event loop ran the last lag probe (ms). */
  eventLoopLagMs: number;
  /** The load alert is on. */
  overloaded: boolean;
  /** The one-minute load average last sampled, or null when not sampled. */
  load1: number | null;
  /** Round-trip times. */
  rtt: { ping: HistogramSnapshot; appHeartbeat: HistogramSnapshot };
  /** The process. */
  process: ProcessSnapshot;
}

/**
 * Options for {@linkcode HeartwireMetrics}.
 *
 * @example
 * ```ts
 * import { HeartwireMetrics, type HeartwireMetricsOptions } from "@heartwire/heartwire/server";
 * const options: HeartwireMetricsOptions = { prefix: "chat_", processMetrics: false };
 * const metrics = new HeartwireMetrics(options);
 * ```
 */
export interface HeartwireMetricsOptions {
  /** Prefix of every name. Default "heartwire_". */
  prefix?: string;
  /** Also expose the standard `process_*` metrics (CPU, memory, fds, start time). Default true. */
  processMetrics?: boolean;
  /** RTT bucket bounds in ms. Default {@linkcode RTT_BUCKETS_MS}. */
  rttBuckets?: readonly number[];
  /** Wall clock for snapshots (Unix ms). Default `Date.now`. */
  now?: () => number;
}

/**
 * The metric set of a heartwire server. The server calls its methods (each a
 * couple of additions) and `/metrics`, `/stats` and the dashboard read it.
 * Values that live elsewhere (queued bytes, presence, the load alert) are
 * read at scrape time through the `collect` hook of their gauge.
 *
 * @example
 * ```ts
 * import { HeartwireMetrics } from "@heartwire/heartwire/server";
 * const metrics = new HeartwireMetrics();
 * metrics.connectionOpened();
 * metrics.messageIn();
 * metrics.bytesRead(11);
 * metrics.messageOut();
 * metrics.connectionClosed({ code: 1006, cause: "timeout" });
 * const text = metrics.registry.expose(); // for GET /metrics
 * const json = metrics.snapshot(); // for GET /stats
 * console.log(text.length > 0, json.connections.closedByReason.timeout); // true 1
 * ```
 */
export class HeartwireMetrics {
  /** Where every metric below is registered; `expose()` is the `/metrics` body. */
  readonly registry: Registry;

  /** `heartwire_connections_active`: open WebSocket connections. */
  readonly connectionsActive: Gauge;
  /** `heartwire_connections_opened_total`: upgrades completed. */
  readonly connectionsOpened: Counter;
  /** `heartwire_connections_closed_total{reason}`. */
  readonly closedByReason: CounterFamily;
  /** `heartwire_connections_closed_by_code_total{code}`. */
  readonly closedByCode: CounterFamily;
  /** `heartwire_handshakes_refused_total{status}`. */
  readonly handshakesRefused: CounterFamily;
  /** `heartwire_messages_received_total`. */
  readonly messagesIn: Counter;
  /** `heartwire_messages_sent_total`. */
  readonly messagesOut: Counter;
  /** `heartwire_bytes_received_total`: read from WebSocket sockets, framing included. */
  readonly bytesIn: Counter;
  /** `heartwire_bytes_sent_total`: written to WebSocket sockets, framing included. */
  readonly bytesOut: Counter;
  /** `heartwire_pings_sent_total`: keepalive pings. */
  readonly pingsSent: Counter;
  /** `heartwire_pongs_received_total`: answers to keepalive pings. */
  readonly pongsReceived: Counter;
  /** `heartwire_missed_pongs_total`: pings left unanswered. */
  readonly missedPongs: Counter;
  /** `heartwire_app_heartbeats_total`: `{"type":"heartbeat"}` answered. */
  readonly appHeartbeats: Counter;
  /** `heartwire_resumes_total{result="ok"|"failed"}`. */
  readonly resumes: CounterFamily;
  /** `heartwire_presence_online`: set `collect` to read presence. */
  readonly presenceOnline: Gauge;
  /** `heartwire_queued_bytes`: set `collect` to sum `bufferedAmount` over connections. */
  readonly queuedBytes: Gauge;
  /** `heartwire_event_loop_lag_seconds`: kept in ms (see {@linkcode EventLoopLagSampler}). */
  readonly eventLoopLag: Gauge;
  /** `heartwire_overloaded`: 1 while the load alert is on (set `collect`, see LoadMonitor). */
  readonly overloaded: Gauge;
  /** `heartwire_load1`: the one-minute load average last sampled (set `collect`). */
  readonly load1: Gauge;
  /** `heartwire_ping_rtt_seconds`: observed in ms, exposed in seconds. */
  readonly pingRtt: Histogram;
  /** `heartwire_app_heartbeat_rtt_seconds`: observed in ms, exposed in seconds. */
  readonly appHeartbeatRtt: Histogram;

  readonly #now: () => number;
  readonly #started: number;
  readonly #process: ProcessProbe;

  /** Makes every metric at 0. */
  constructor(options: HeartwireMetricsOptions = {}) {
    const registry = this.registry = new Registry({ prefix: options.prefix ?? "heartwire_" });
    this.#now = options.now ?? Date.now;
    this.#started = this.#now();
    const rtt = { buckets: options.rttBuckets ?? RTT_BUCKETS_MS, divisor: 1000 };
    const add = <M extends Metric>(metric: M) => registry.add(metric);

    this.connectionsActive = add(new Gauge("connections_active", "Open WebSocket connections."));
    this.connectionsOpened = add(
      new Counter("connections_opened_total", "WebSocket upgrades completed."),
    );
    this.closedByReason = add(
      new CounterFamily(
        "connections_closed_total",
        "WebSocket connections ended, by reason.",
        "reason",
        { values: CLOSE_REASONS },
      ),
    );
    this.closedByCode = add(
      new CounterFamily(
        "connections_closed_by_code_total",
        "WebSocket connections ended, by close code (1006: no close frame).",
        "code",
        { values: KNOWN_CLOSE_CODES, maxValues: 40 },
      ),
    );
    this.handshakesRefused = add(
      new CounterFamily(
        "handshakes_refused_total",
        "Upgrades and requests the server refused itself (limits, handshake checks, load shedding), by HTTP status.",
        "status",
        { values: KNOWN_REFUSALS },
      ),
    );
    this.messagesIn = add(new Counter("messages_received_total", "Data messages received."));
    this.messagesOut = add(new Counter("messages_sent_total", "Data messages sent."));
    this.bytesIn = add(
      new Counter(
        "bytes_received_total",
        "Bytes read from WebSocket connections, framing included.",
      ),
    );
    this.bytesOut = add(
      new Counter("bytes_sent_total", "Bytes written to WebSocket connections, framing included."),
    );
    this.pingsSent = add(new Counter("pings_sent_total", "Keepalive pings sent."));
    this.pongsReceived = add(
      new Counter("pongs_received_total", "Pongs received for keepalive pings."),
    );
    this.missedPongs = add(
      new Counter("missed_pongs_total", "Keepalive pings left unanswered."),
    );
    this.appHeartbeats = add(
      new Counter("app_heartbeats_total", "Application heartbeats answered."),
    );
    this.resumes = add(
      new CounterFamily("resumes_total", "Session resumes, by result.", "result", {
        values: ["ok", "failed"],
        maxValues: 2,
      }),
    );
    this.presenceOnline = add(new Gauge("presence_online", "Clients online in presence."));
    this.queuedBytes = add(
      new Gauge("queued_bytes", "Bytes queued to peers and not yet written."),
    );
    this.eventLoopLag = add(
      new Gauge("event_loop_lag_seconds", "How late the event loop ran the last lag probe.", {
        divisor: 1000,
      }),
    );
    this.overloaded = add(
      new Gauge("overloaded", "1 while the load average is over the alert threshold."),
    );
    this.load1 = add(new Gauge("load1", "One-minute load average at the last sample."));
    this.pingRtt = add(
      new Histogram("ping_rtt_seconds", "Round-trip time of keepalive pings.", rtt),
    );
    this.appHeartbeatRtt = add(
      new Histogram("app_heartbeat_rtt_seconds", "Round-trip time of app heartbeats.", rtt),
    );

    this.#process = new ProcessProbe();
    if (options.processMetrics ?? true) this.#process.register(registry);
  }

  /** A connection completed its upgrade. */
  connectionOpened(): void {
    this.connectionsOpened.value++;
    this.connectionsActive.value++;
  }

  /** A connection ended (pass the server's `CloseInfo`). */
  connectionClosed(ended: EndedConnection): void {
    this.connectionsActive.value--;
    this.closedByReason.get(closeReasonOf(ended)).value++;
    this.closedByCode.get(ended.code).value++;
  }

  /** An upgrade was refused with `status`. */
  handshakeRefused(status: number): void {
    this.handshakesRefused.get(status).value++;
  }

  /** A data message (text or binary, however fragmented) arrived. */
  messageIn(): void {
    this.messagesIn.value++;
  }

  /** A data message was queued for a peer (a broadcast counts once per recipient). */
  messageOut(): void {
    this.messagesOut.value++;
  }

  /** `n` bytes were read from a WebSocket connection's socket (frames as on the wire). */
  bytesRead(n: number): void {
    this.bytesIn.value += n;
  }

  /** `n` bytes were written to a WebSocket connection's socket. */
  bytesWritten(n: number): void {
    this.bytesOut.value += n;
  }

  /** A keepalive ping was sent. */
  pingSent(): void {
    this.pingsSent.value++;
  }

  /** A keepalive pong came back after `rttMs`. */
  pongReceived(rttMs: number): void {
    this.pongsReceived.value++;
    this.pingRtt.observe(rttMs);
  }

  /** A keepalive ping went unanswered. */
  missedPong(): void {
    this.missedPongs.value++;
  }

  /** An app heartbeat was answered; pass its round trip when known. */
  appHeartbeat(rttMs?: number): void {
    this.appHeartbeats.value++;
    if (rttMs !== undefined) this.appHeartbeatRtt.observe(rttMs);
  }

  /** A session resume succeeded or failed. */
  resume(ok: boolean): void {
    this.resumes.get(ok ? "ok" : "failed").value++;
  }

  /**
   * Reads `heartwire_overloaded` and `heartwire_load1` from a load monitor
   * (a `LoadMonitor`) at scrape time.
   */
  watchLoad(monitor: { readonly overloaded: boolean; readonly load: number }): void {
    this.overloaded.collect = () => monitor.overloaded ? 1 : 0;
    this.load1.collect = () => monitor.load;
  }

  /** Reads `heartwire_presence_online` from `online` (users online in presence) at scrape time. */
  watchPresence(online: () => number): void {
    this.presenceOnline.collect = online;
  }

  /** Every figure as JSON (the `/stats` body). */
  snapshot(): MetricsSnapshot {
    const byReason = {} as Record<CloseReason, number>;
    for (const reason of CLOSE_REASONS) byReason[reason] = this.closedByReason.get(reason).value;
    const load = this.load1.get();
    return {
      time: this.#now(),
      uptimeSeconds: (this.#now() - this.#started) / 1000,
      connections: {
        active: this.connectionsActive.get(),
        opened: this.connectionsOpened.value,
        closed: this.closedByReason.total(),
        closedByReason: byReason,
        closedByCode: nonZero(this.closedByCode),
      },
      handshakesRefused: nonZero(this.handshakesRefused),
      messages: { in: this.messagesIn.value, out: this.messagesOut.value },
      bytes: { in: this.bytesIn.value, out: this.bytesOut.value },
      pings: {
        sent: this.pingsSent.value,
        pongs: this.pongsReceived.value,
        missed: this.missedPongs.value,
      },
      appHeartbeats: this.appHeartbeats.value,
      resumes: { ok: this.resumes.get("ok").value, failed: this.resumes.get("failed").value },
      presenceOnline: this.presenceOnline.get(),
      queuedBytes: this.queuedBytes.get(),
      eventLoopLagMs: this.eventLoopLag.get(),
      overloaded: this.overloaded.get() >= 1,
      load1: this.load1.collect && Number.isFinite(load) ? load : null,
      rtt: {
        ping: histogramSnapshot(this.pingRtt),
        appHeartbeat: histogramSnapshot(this.appHeartbeatRtt),
      },
      process: this.#process.snapshot(),
    };
  }
}

function nonZero(family: CounterFamily): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of family.entries()) if (value > 0) out[key] = value;
  return out;
}

function histogramSnapshot(histogram: Histogram): HistogramSnapshot {
  const q = (p: number) => {
    const value = histogram.quantile(p);
    return Number.isNaN(value) ? null : value;
  };
  return {
    count: histogram.count,
    sum: histogram.sum,
    bounds: [...histogram.bounds],
    counts: [...histogram.counts],
    p50: q(0.5),
    p90: q(0.9),
    p99: q(0.99),
  };
}

// ---- process metrics ----------------------------------------------------------

/** A counter kept elsewhere and read at scrape time (CPU seconds). */
class CollectedCounter implements Metric {
  readonly type = "counter" as const;
  constructor(readonly name: string, readonly help: string, readonly collect: () => number) {}
  write(out: string[], fullName: string): void {
    out.push(`${fullName} ${formatValue(this.collect())}`);
  }
}

interface CpuUsage {
  user: number;
  system: number;
}

/**
 * CPU time in µs: `Deno.cpuUsage` where the runtime has it (not yet in its
 * types), else Node's `process.cpuUsage`, which Deno also provides.
 */
function cpuUsage(): CpuUsage | undefined {
  const deno = Deno as unknown as { cpuUsage?: () => CpuUsage };
  if (typeof deno.cpuUsage === "function") return deno.cpuUsage();
  const process = (globalThis as { process?: { cpuUsage?: () => CpuUsage } }).process;
  return process?.cpuUsage?.();
}

/**
 * Reads process figures. Open fds come from /proc/self/fd, only when read
 * access was granted already: asking would block the server on a permission
 * prompt in the middle of a scrape.
 */
class ProcessProbe {
  readonly #startTimeSeconds: number;
  #fdsReadable: boolean | undefined;
  /** Listing 10 000 fds takes milliseconds: one count serves every read within a second. */
  #fds = NaN;
  #fdsAt = -Infinity;

  constructor() {
    // The process began before these metrics: performance.timeOrigin is its start.
    this.#startTimeSeconds = Math.floor(performance.timeOrigin / 1000);
  }

  cpuSeconds(): number {
    const usage = cpuUsage();
    return usage ? (usage.user + usage.system) / 1e6 : NaN;
  }

  openFds(): number {
    if (this.#fdsReadable === undefined) {
      try {
        this.#fdsReadable = Deno.build.os === "linux" &&
          Deno.permissions.querySync({ name: "read", path: "/proc/self/fd" }).state === "granted";
      } catch {
        this.#fdsReadable = false;
      }
    }
    if (!this.#fdsReadable) return NaN;
    const now = performance.now();
    if (now - this.#fdsAt < 1_000) return this.#fds;
    let n = 0;
    try {
      for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
      n--; // the directory handle being read is one of them
    } catch {
      n = NaN;
      this.#fdsReadable = false; // it will not get better: stop trying
    }
    this.#fds = n;
    this.#fdsAt = now;
    return n;
  }

  register(registry: Registry): void {
    const unprefixed = { prefixed: false };
    registry.add(
      new CollectedCounter(
        "process_cpu_seconds_total",
        "User and system CPU time spent (s).",
        () => this.cpuSeconds(),
      ),
      unprefixed,
    );
    registry.add(
      new Gauge("process_resident_memory_bytes", "Resident memory size (bytes).", {
        collect: () => Deno.memoryUsage().rss,
      }),
      unprefixed,
    );
    registry.add(
      new Gauge("process_start_time_seconds", "Start time of the process (Unix s).", {
        collect: () => this.#startTimeSeconds,
      }),
      unprefixed,
    );
    // Left out, rather than NaN forever, where /proc cannot be read (Deno asks
    // for --allow-all to list /proc/self/fd).
    if (!Number.isNaN(this.openFds())) {
      registry.add(
        new Gauge("process_open_fds", "Open file descriptors.", {
          collect: () => this.openFds(),
        }),
        unprefixed,
      );
    }
    registry.add(
      new Gauge("heap_used_bytes", "V8 heap in use (bytes).", {
        collect: () => Deno.memoryUsage().heapUsed,
      }),
    );
    registry.add(
      new Gauge("heap_total_bytes", "V8 heap reserved (bytes).", {
        collect: () => Deno.memoryUsage().heapTotal,
      }),
    );
  }

  snapshot(): ProcessSnapshot {
    const memory = Deno.memoryUsage();
    const cpu = this.cpuSeconds();
    const fds = this.openFds();
    return {
      cpuSeconds: Number.isNaN(cpu) ? null : cpu,
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
      heapTotalBytes: memory.heapTotal,
      openFds: Number.isNaN(fds) ? null : fds,
      startTimeSeconds: this.#startTimeSeconds,
    };
  }
}

// ---- event-loop lag -------------------------------------------------------------

/**
 * Options for {@linkcode EventLoopLagSampler}.
 */
export interface EventLoopLagOptions {
  /** Time between probes (ms). Default 500. */
  interval?: number;
  /** Time source and timer. Default: `performance.now()` and the global timers. */
  clock?: Clock;
}

/**
 * Measures event-loop lag with one timer: each probe is armed for `interval`
 * ms, and how much later than that it runs is the lag (a long synchronous
 * task, GC, an overloaded machine). Each result goes to `record` (ms).
 *
 * @example
 * ```ts
 * import { EventLoopLagSampler, HeartwireMetrics } from "@heartwire/heartwire/server";
 * const metrics = new HeartwireMetrics();
 * const lag = new EventLoopLagSampler((ms) => metrics.eventLoopLag.set(ms));
 * lag.start();
 * lag.stop();
 * ```
 */
export class EventLoopLagSampler {
  /** The last lag measured (ms). */
  last = 0;
  /** The largest lag measured since start (ms). */
  max = 0;
  readonly #record: (ms: number) => void;
  readonly #interval: number;
  readonly #clock: Clock;
  #handle: unknown = undefined;
  #due = 0;

  /**
   * Makes a stopped sampler that hands each lag (ms) to `record`.
   *
   * @throws {RangeError} if `interval` is not a positive finite number.
   */
  constructor(record: (ms: number) => void, options: EventLoopLagOptions = {}) {
    this.#record = record;
    this.#interval = options.interval ?? 500;
    if (!(Number.isFinite(this.#interval) && this.#interval > 0)) {
      throw new RangeError(`interval must be a positive number of ms; got ${options.interval}`);
    }
    this.#clock = options.clock ?? backgroundClock;
  }

  /** Starts probing (again); does nothing if already running. */
  start(): void {
    if (this.#handle !== undefined) return;
    this.#arm();
  }

  /** Stops probing. */
  stop(): void {
    if (this.#handle === undefined) return;
    this.#clock.clearTimeout(this.#handle);
    this.#handle = undefined;
  }

  #arm(): void {
    this.#due = this.#clock.now() + this.#interval;
    this.#handle = this.#clock.setTimeout(() => this.#fire(), this.#interval);
  }

  #fire(): void {
    const lag = Math.max(0, this.#clock.now() - this.#due);
    this.last = lag;
    if (lag > this.max) this.max = lag;
    this.#arm();
    this.#record(lag);
  }
}
