/**
 * The counted window the load generators share (bench/load/client.ts,
 * bench/churn/client.ts, bench/fanout/client.ts): run for a warm-up, then
 * count for a duration, telling the runner when the count starts and ends so
 * it samples CPU over the same span.
 *
 * @module
 */

/**
 * The window's options, part of each generator's options.
 *
 * @example
 * ```ts
 * import type { WindowOptions } from "./_window.ts";
 * const quick: WindowOptions = { warmup: 200, duration: 500 };
 * ```
 */
export interface WindowOptions {
  /** Time (ms) running before the count starts. Default 1 000. */
  warmup?: number;
  /** Time (ms) counted. Default 3 000. */
  duration?: number;
  /** Told when the counted window starts and ends (the runner samples CPU then). */
  onPhase?: (phase: "measuring" | "measured") => void;
}

/**
 * Resolves after `ms` milliseconds.
 *
 * @example
 * ```ts
 * import { sleep } from "./_window.ts";
 * await sleep(1);
 * ```
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Waits out the warm-up, then takes `snapshot()` at the start and the end of
 * the counted window; `durationMs` is the window as it really was.
 *
 * @example
 * ```ts
 * import { countWindow } from "./_window.ts";
 * let sent = 0;
 * const timer = setInterval(() => sent++, 1);
 * const { before, after, durationMs } = await countWindow({ warmup: 5, duration: 20 }, () => sent);
 * clearInterval(timer);
 * console.log((after - before) / (durationMs / 1000), "per second");
 * ```
 */
export async function countWindow<T>(
  options: WindowOptions,
  snapshot: () => T,
): Promise<{ before: T; after: T; durationMs: number }> {
  await sleep(options.warmup ?? 1_000);
  const before = snapshot();
  const start = performance.now();
  options.onPhase?.("measuring");
  await sleep(options.duration ?? 3_000);
  const after = snapshot();
  const durationMs = performance.now() - start;
  options.onPhase?.("measured");
  return { before, after, durationMs };
}
