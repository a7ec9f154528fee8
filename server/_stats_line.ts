/**
 * The stats line `deno task start` prints every `--stats-interval` ms:
 *
 * ```
 * heartwire: 812 active, 10 233 total, +40 opened, -35 closed, 2 timeouts, rtt p50 3 ms p99 18 ms
 * ```
 *
 * Opened, closed, timeouts and the RTT percentiles cover the time since the
 * previous line (the percentiles from the ping-RTT histogram's buckets added
 * in that time), so a burst shows when it happens, not averaged into the
 * whole uptime.
 *
 * @module
 */
import { backgroundClock } from "./_background_clock.ts";
import type { Clock } from "../protocol/clock.ts";
import { bucketQuantile, type HistogramSnapshot, type MetricsSnapshot } from "./metrics.ts";

/** Groups thousands with a space, as in `10 233` (no locale involved). */
export function groupThousands(n: number): string {
  const digits = String(Math.round(Math.abs(n)));
  let out = "";
  for (let i = 0; i < digits.length; i++) {
    if (i > 0 && (digits.length - i) % 3 === 0) out += " ";
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

/** A round trip in ms, short: `0.4 ms`, `3 ms`, `1 250 ms`. */
function ms(value: number): string {
  return value < 10 ? `${Math.round(value * 10) / 10} ms` : `${groupThousands(value)} ms`;
}

/** The histogram of the observations between two snapshots of it. */
function window(prev: HistogramSnapshot | undefined, now: HistogramSnapshot): number[] {
  if (!prev || prev.counts.length !== now.counts.length) return now.counts;
  return now.counts.map((count, i) => count - prev.counts[i]);
}

/**
 * The stats line for the time between `prev` (undefined for the first line:
 * then since start) and `now`.
 *
 * @example
 * ```ts ignore
 * const line = formatStatsLine(previous, metrics.snapshot());
 * ```
 */
export function formatStatsLine(prev: MetricsSnapshot | undefined, now: MetricsSnapshot): string {
  const c = now.connections;
  const opened = c.opened - (prev?.connections.opened ?? 0);
  const closed = c.closed - (prev?.connections.closed ?? 0);
  const timeouts = c.closedByReason.timeout - (prev?.connections.closedByReason.timeout ?? 0);
  const parts = [
    `${groupThousands(c.active)} active`,
    `${groupThousands(c.opened)} total`,
    `+${groupThousands(opened)} opened`,
    `-${groupThousands(closed)} closed`,
    `${groupThousands(timeouts)} timeout${timeouts === 1 ? "" : "s"}`,
  ];
  const counts = window(prev?.rtt.ping, now.rtt.ping);
  const p50 = bucketQuantile(now.rtt.ping.bounds, counts, 0.5);
  if (Number.isNaN(p50)) {
    parts.push("rtt -");
  } else {
    const p99 = bucketQuantile(now.rtt.ping.bounds, counts, 0.99);
    parts.push(`rtt p50 ${ms(p50)} p99 ${ms(p99)}`);
  }
  if (now.overloaded) parts.push(`OVERLOADED (load ${now.load1?.toFixed(2) ?? "?"})`);
  return `heartwire: ${parts.join(", ")}`;
}

/** Options for {@linkcode StatsLine}. */
export interface StatsLineOptions {
  /** Time between lines (ms); 0 turns the line off. Default 5 000. */
  interval?: number;
  /** Where lines go. Default `console.log`. */
  log?: (line: string) => void;
  /** Source of the one timer. Default the global timers (unref'd). */
  clock?: Clock;
}

/**
 * Prints {@linkcode formatStatsLine} every `interval` ms from snapshots taken
 * by `snapshot` (e.g. `() => metrics.snapshot()`).
 *
 * @example
 * ```ts ignore
 * const stats = new StatsLine(() => metrics.snapshot(), { interval: cli.statsInterval });
 * stats.start();
 * // at shutdown:
 * stats.stop();
 * ```
 */
export class StatsLine {
  readonly #snapshot: () => MetricsSnapshot;
  readonly #interval: number;
  readonly #log: (line: string) => void;
  readonly #clock: Clock;
  #prev: MetricsSnapshot | undefined;
  #handle: unknown = undefined;

  /** @throws {RangeError} if `interval` is negative or not finite. */
  constructor(snapshot: () => MetricsSnapshot, options: StatsLineOptions = {}) {
    this.#snapshot = snapshot;
    this.#interval = options.interval ?? 5_000;
    if (!(Number.isFinite(this.#interval) && this.#interval >= 0)) {
      throw new RangeError(`stats interval must be ≥ 0 ms; got ${options.interval}`);
    }
    this.#log = options.log ?? console.log;
    this.#clock = options.clock ?? backgroundClock;
  }

  /** Starts printing (the first line after one interval); a 0 interval prints nothing. */
  start(): void {
    if (this.#interval === 0 || this.#handle !== undefined) return;
    this.#prev = this.#snapshot();
    this.#arm();
  }

  /** Stops printing. */
  stop(): void {
    if (this.#handle === undefined) return;
    this.#clock.clearTimeout(this.#handle);
    this.#handle = undefined;
  }

  /** Prints one line now (covering the time since the last one) and returns it. */
  tick(): string {
    const now = this.#snapshot();
    const line = formatStatsLine(this.#prev, now);
    this.#prev = now;
    this.#log(line);
    return line;
  }

  #arm(): void {
    this.#handle = this.#clock.setTimeout(() => {
      this.tick();
      // tick() may have led to stop(): then stay stopped.
      if (this.#handle !== undefined) this.#arm();
    }, this.#interval);
  }
}
