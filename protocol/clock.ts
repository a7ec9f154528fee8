/**
 * The one seam through which time enters heartwire.
 *
 * protocol/ never reads a clock or sets a timer itself; server/ and client/
 * take a {@linkcode Clock} so that tests can move time by hand instead of
 * sleeping.
 *
 * @module
 */

/**
 * A source of time and one-shot timers.
 *
 * @example
 * ```ts
 * import type { Clock } from "@heartwire/heartwire/protocol";
 * const clock: Clock = {
 *   now: () => performance.now(),
 *   setTimeout: (callback, delay) => setTimeout(callback, delay),
 *   clearTimeout: (handle) => clearTimeout(handle as number),
 * };
 * ```
 */
export interface Clock {
  /** Milliseconds since an arbitrary origin; never goes backwards within one clock. */
  now(): number;
  /** Calls `callback` once after `delay` ms; returns a handle for {@linkcode Clock.clearTimeout}. */
  setTimeout(callback: () => void, delay: number): unknown;
  /** Cancels a timer; a handle that already fired or was cleared is ignored. */
  clearTimeout(handle: unknown): void;
}
