/**
 * The clock of the server's own periodic work (the stats line, the
 * dashboard's feed, the load alert, the event-loop lag probe).
 *
 * @module
 */
import type { Clock } from "../protocol/clock.ts";

/**
 * `performance.now()` and the global timers, unref'd: a background timer
 * alone must not keep a process alive that has nothing else to do.
 */
export const backgroundClock: Clock = {
  now: () => performance.now(),
  setTimeout: (callback, delay) => {
    const id = setTimeout(callback, delay);
    Deno.unrefTimer(id);
    return id;
  },
  clearTimeout: (handle) => clearTimeout(handle as number),
};
