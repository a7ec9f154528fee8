/**
 * Reconnect delays: exponential backoff with full jitter.
 *
 * A fixed reconnect delay makes every client of a restarted server come back
 * in the same instant (seed 003's five-second storm). Full jitter draws each
 * delay uniformly between a floor and an exponentially growing ceiling, so
 * the herd spreads over the whole window (the "Full Jitter" scheme in AWS's
 * "Exponential Backoff And Jitter" article); the floor keeps even an unlucky
 * draw from hammering a server that just refused us.
 *
 * @module
 */
import { checkOption } from "./_options.ts";

/**
 * Tuning of {@linkcode Backoff}. Every field has a default.
 */
export interface BackoffOptions {
  /** Shortest delay (ms) ever returned. Default 500. */
  minDelay?: number;
  /** Ceiling (ms) of the first delay; the first retry waits `minDelay`..`initialDelay`. Default 1 000. */
  initialDelay?: number;
  /** Ceiling (ms) that growth stops at. Default 30 000. */
  maxDelay?: number;
  /** Growth of the ceiling per attempt. Default 2. */
  factor?: number;
  /** Uniform random numbers in [0, 1). Default `Math.random`; inject one for tests. */
  random?: () => number;
}

/**
 * The delay before retry number `attempt` (from 0): uniform in
 * `[minDelay, min(maxDelay, initialDelay × factor^attempt)]`.
 *
 * @example
 * ```ts
 * import { backoffDelay } from "@heartwire/heartwire/client";
 * backoffDelay(0, { random: () => 0.5 }); // 750: halfway between 500 and 1 000
 * backoffDelay(10, { random: () => 0.999 }); // just under 30 000: the ceiling stopped growing
 * ```
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const min = options.minDelay ?? 500;
  const max = Math.max(min, options.maxDelay ?? 30_000);
  // Math.min before the power would be wrong for factor < 1; cap after, and
  // Infinity from a huge attempt count caps too.
  const ceiling = Math.min(max, (options.initialDelay ?? 1_000) * (options.factor ?? 2) ** attempt);
  const top = Math.max(min, ceiling);
  return Math.round(min + (options.random ?? Math.random)() * (top - min));
}

/**
 * A backoff sequence: {@linkcode Backoff.next} gives the next delay and counts
 * the attempt, {@linkcode Backoff.reset} starts over (after a connection that
 * stayed up long enough).
 *
 * @example
 * ```ts
 * import { Backoff } from "@heartwire/heartwire/client";
 * const backoff = new Backoff({ random: () => 1 });
 * backoff.next(); // 1 000
 * backoff.next(); // 2 000
 * backoff.reset();
 * backoff.next(); // 1 000
 * ```
 */
export class Backoff {
  /** How many delays were handed out since the last reset. */
  attempt = 0;
  #options: BackoffOptions;

  /**
   * Creates a sequence at attempt 0.
   *
   * @throws {RangeError} if `minDelay` is not a finite number >= 0, or
   * `initialDelay`, `maxDelay` or `factor` not one > 0 (named
   * `backoff.<option>`, as in `ReconnectingSocketOptions`).
   */
  constructor(options: BackoffOptions = {}) {
    checkOption("backoff.minDelay", options.minDelay, true);
    checkOption("backoff.initialDelay", options.initialDelay);
    checkOption("backoff.maxDelay", options.maxDelay);
    checkOption("backoff.factor", options.factor);
    this.#options = options;
  }

  /** The delay (ms) before the next retry. */
  next(): number {
    return backoffDelay(this.attempt++, this.#options);
  }

  /** Starts over at attempt 0. */
  reset(): void {
    this.attempt = 0;
  }
}
