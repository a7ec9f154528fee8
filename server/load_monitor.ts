/**
 * The load alert: samples the one-minute load average and calls the machine
 * overloaded when it reaches `factor` × CPUs (2 × by default, as the people
 * who run heartwire asked), with hysteresis so the alert does not flap.
 *
 * @module
 */
import { backgroundClock } from "./_background_clock.ts";
import type { Clock } from "../protocol/clock.ts";

/**
 * Options for {@linkcode LoadMonitor}.
 */
export interface LoadMonitorOptions {
  /** Overloaded when the load average reaches `factor` × `cpus`. Default 2. */
  factor?: number;
  /** CPUs the threshold is scaled by. Default `navigator.hardwareConcurrency`. */
  cpus?: number;
  /** Time between samples (ms). Default 5 000. */
  interval?: number;
  /**
   * The one-minute load average, or undefined when it cannot be read.
   * Default {@linkcode systemLoadAverage}.
   */
  loadSource?: () => number | undefined;
  /**
   * Hysteresis: the alert clears only once the load is below
   * `clearRatio` × threshold. Default 0.8.
   */
  clearRatio?: number;
  /** Hysteresis: …for this many samples in a row. Default 3. */
  clearSamples?: number;
  /** Where the alert's lines go. Default `console.warn`. */
  log?: (line: string) => void;
  /** Told when the alert turns on or off (after the line is logged). */
  onChange?: (overloaded: boolean) => void;
  /** Added to the lines, e.g. "refusing new connections". Default none. */
  action?: string;
  /** Source of time and the one timer. Default: `performance.now()` and the global timers. */
  clock?: Clock;
}

/**
 * The one-minute load average from `Deno.loadavg()`, or undefined where it is
 * not available (Windows reports zeros) or not permitted: it needs
 * `--allow-sys=loadavg`, and permission is checked first so that a server is
 * never stopped by a permission prompt.
 *
 * @example
 * ```ts
 * import { systemLoadAverage } from "@heartwire/heartwire/server";
 * const load = systemLoadAverage();
 * console.log(load === undefined ? "no load average here" : `load ${load}`);
 * ```
 */
export function systemLoadAverage(): number | undefined {
  try {
    if (Deno.build.os === "windows") return undefined;
    const state = Deno.permissions.querySync({ name: "sys", kind: "loadavg" }).state;
    if (state !== "granted") return undefined;
    return Deno.loadavg()[0];
  } catch {
    return undefined;
  }
}

/**
 * Samples the load average every `interval` ms. Enters the overloaded state
 * at the first sample ≥ `factor` × `cpus` (one warning line), and leaves it
 * only after `clearSamples` samples in a row below `clearRatio` × that
 * threshold (one line). The load average is itself a moving average, so
 * without this band a load hovering at the threshold would alert every few
 * seconds.
 *
 * @example
 * ```ts
 * import { LoadMonitor } from "@heartwire/heartwire/server";
 * const loads = [1, 5, 5, 2, 2, 2];
 * const monitor = new LoadMonitor({ cpus: 2, loadSource: () => loads.shift() });
 * for (let i = 0; i < 6; i++) monitor.sample();
 * console.log(monitor.overloaded, monitor.alerts); // false 1
 * ```
 */
export class LoadMonitor {
  /** True while the alert is on. */
  overloaded = false;
  /** The last load average read, or NaN if none could be. */
  load: number = NaN;
  /** Times the alert turned on since start. */
  alerts = 0;
  /** The load average at which the alert turns on. */
  readonly threshold: number;
  /** Time between samples (ms). */
  readonly interval: number;

  readonly #source: () => number | undefined;
  readonly #clearBelow: number;
  readonly #clearSamples: number;
  readonly #log: (line: string) => void;
  readonly #onChange: ((overloaded: boolean) => void) | undefined;
  readonly #describe: string;
  readonly #action: string;
  readonly #clock: Clock;
  #calm = 0;
  #since = 0;
  #handle: unknown = undefined;
  #unavailable = false;

  /**
   * Makes a stopped monitor (see {@linkcode LoadMonitor.start}).
   *
   * @throws {RangeError} if `factor`, `cpus` or `interval` is not a positive
   * number, `clearRatio` is not in (0, 1], or `clearSamples` is below 1.
   */
  constructor(options: LoadMonitorOptions = {}) {
    const factor = options.factor ?? 2;
    const cpus = options.cpus ?? navigator.hardwareConcurrency ?? 1;
    const interval = options.interval ?? 5_000;
    const clearRatio = options.clearRatio ?? 0.8;
    const clearSamples = options.clearSamples ?? 3;
    for (const [name, value] of [["factor", factor], ["cpus", cpus], ["interval", interval]]) {
      if (!(typeof value === "number" && Number.isFinite(value) && value > 0)) {
        throw new RangeError(`${name} must be a positive number; got ${value}`);
      }
    }
    if (!(clearRatio > 0 && clearRatio <= 1)) {
      throw new RangeError(`clearRatio must be in (0, 1]; got ${clearRatio}`);
    }
    if (!(Number.isInteger(clearSamples) && clearSamples >= 1)) {
      throw new RangeError(`clearSamples must be a whole number ≥ 1; got ${clearSamples}`);
    }
    this.threshold = factor * cpus;
    this.interval = interval;
    this.#clearBelow = clearRatio * this.threshold;
    this.#clearSamples = clearSamples;
    this.#source = options.loadSource ?? systemLoadAverage;
    this.#log = options.log ?? console.warn;
    this.#onChange = options.onChange;
    this.#describe = `${trim(factor)} × ${cpus} CPU${cpus === 1 ? "" : "s"}`;
    this.#action = options.action ? `; ${options.action}` : "";
    this.#clock = options.clock ?? backgroundClock;
  }

  /** Seconds a refused client should wait (`Retry-After`): one sampling interval, at least 1. */
  get retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.interval / 1000));
  }

  /** Takes the first sample now, then one every `interval`; does nothing if running. */
  start(): void {
    if (this.#handle !== undefined) return;
    this.sample();
    this.#arm();
  }

  /** Stops sampling (the state stays as it was). */
  stop(): void {
    if (this.#handle === undefined) return;
    this.#clock.clearTimeout(this.#handle);
    this.#handle = undefined;
  }

  /** Reads the load once and updates the state; returns `overloaded`. */
  sample(): boolean {
    const load = this.#source();
    if (load === undefined || !Number.isFinite(load)) {
      this.load = NaN;
      if (!this.#unavailable) {
        this.#unavailable = true;
        this.#log(
          "heartwire: load average unavailable (needs --allow-sys=loadavg); load alert off",
        );
      }
      return this.overloaded;
    }
    this.#unavailable = false;
    this.load = load;
    const now = this.#clock.now();
    if (!this.overloaded) {
      if (load >= this.threshold) {
        this.overloaded = true;
        this.alerts++;
        this.#calm = 0;
        this.#since = now;
        this.#log(
          `heartwire: WARNING load ${fixed(load)} ≥ ${fixed(this.threshold)} ` +
            `(${this.#describe}): overloaded${this.#action}`,
        );
        this.#onChange?.(true);
      }
    } else if (load < this.#clearBelow) {
      if (++this.#calm >= this.#clearSamples) {
        this.overloaded = false;
        this.#calm = 0;
        const seconds = Math.round((now - this.#since) / 1000);
        this.#log(
          `heartwire: load ${fixed(load)} < ${fixed(this.#clearBelow)}: ` +
            `no longer overloaded (after ${seconds} s)`,
        );
        this.#onChange?.(false);
      }
    } else {
      this.#calm = 0;
    }
    return this.overloaded;
  }

  #arm(): void {
    this.#handle = this.#clock.setTimeout(() => {
      this.sample();
      if (this.#handle !== undefined) this.#arm();
    }, this.interval);
  }
}

function fixed(n: number): string {
  return n.toFixed(2);
}

function trim(n: number): string {
  return String(Math.round(n * 100) / 100);
}
