/**
 * Checks of the client's numeric options, and the timer delay cap.
 *
 * @module
 */

/**
 * The longest delay a timer keeps: browsers, Deno and Node fire a timer
 * whose delay passes 2^31 − 1 ms (about 24.8 days) at once, which would turn
 * a long wait into a busy loop. Longer waits are taken in steps.
 */
export const MAX_TIMER_DELAY = 2_147_483_647;

/**
 * Throws a RangeError naming `name` unless `value` is undefined or a finite
 * number above 0 (at least 0 with `zero`). NaN, ±Infinity and non-numbers
 * would otherwise end as a timer that fires at once, again and again, or as
 * a bound that never holds.
 */
export function checkOption(name: string, value: unknown, zero = false): void {
  if (
    value !== undefined &&
    !(typeof value === "number" && Number.isFinite(value) && (zero ? value >= 0 : value > 0))
  ) {
    throw new RangeError(`${name} must be a finite number ${zero ? ">= 0" : "> 0"}, not ${value}`);
  }
}
