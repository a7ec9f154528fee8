/**
 * One timer heap for every connection's keepalive, driven by one OS timer.
 *
 * Why a heap: a server holding 20 000 WebSockets re-arms a keepalive deadline
 * for each of them every interval. With one `setTimeout` per connection every
 * re-arm is a `clearTimeout` plus a `setTimeout`: two calls into the runtime's
 * timer machinery and a new timer record each time. Here a connection keeps one
 * {@linkcode TimerEntry} for its whole life, a re-arm is a few comparisons and
 * array writes in plain JavaScript (O(log n), no allocation), and the runtime
 * sees a single timer set to the earliest deadline.
 *
 * Layout: an indexed 4-ary min-heap in an array, ordered by `(at, seq)` where
 * `at` is the absolute deadline in clock milliseconds and `seq` the order in
 * which entries were armed, so equal deadlines fire first-armed-first
 * (deterministic). Each entry remembers its own position in the array, so
 * cancel and reschedule start at the right slot instead of searching for it.
 *
 * @module
 */
import type { Clock } from "../protocol/clock.ts";

/**
 * The real clock: {@linkcode performance.now} and the global timers.
 *
 * @example
 * ```ts
 * import { systemClock } from "@heartwire/heartwire/server";
 * const started = systemClock.now();
 * const handle = systemClock.setTimeout(() => console.log(systemClock.now() - started), 10);
 * systemClock.clearTimeout(handle);
 * ```
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (callback, delay) => setTimeout(callback, delay),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * Options for {@linkcode TimerHeap}.
 *
 * @example
 * ```ts
 * import { TimerHeap, type TimerHeapOptions } from "@heartwire/heartwire/server";
 * const options: TimerHeapOptions = { coalesceMs: 10, onError: (e) => console.error(e) };
 * const heap = new TimerHeap(options);
 * heap.clear();
 * ```
 */
export interface TimerHeapOptions {
  /** Source of time and of the one OS timer. Default {@linkcode systemClock}. */
  clock?: Clock;
  /**
   * How late (ms) a timer may fire so that it shares an OS-timer wake-up with
   * an earlier one. The OS timer is armed for `earliest + coalesceMs`, so every
   * deadline within `coalesceMs` of the earliest fires in the same wake-up, and
   * no timer ever fires early. Default {@linkcode DEFAULT_COALESCE_MS}.
   */
  coalesceMs?: number;
  /**
   * Receives every error thrown by a callback during {@linkcode TimerHeap.runDue}.
   * Without it, the run still completes and the heap re-arms, then the error is
   * rethrown (an `AggregateError` if several threw), just as a throwing
   * `setTimeout` callback would surface.
   */
  onError?: (error: unknown) => void;
}

/**
 * Default {@linkcode TimerHeapOptions.coalesceMs}: 5 ms.
 *
 * Keepalive deadlines are tens of seconds apart, so 5 ms of lateness is
 * invisible, while 20 000 connections armed over a second put ~100 deadlines
 * in each 5 ms window: one wake-up serves them all instead of one per ms.
 *
 * @example
 * ```ts
 * import { DEFAULT_COALESCE_MS } from "@heartwire/heartwire/server";
 * console.log(DEFAULT_COALESCE_MS); // 5
 * ```
 */
export const DEFAULT_COALESCE_MS = 5;

/**
 * A reusable timer handle from {@linkcode TimerHeap.create}. A connection keeps
 * one and re-arms it with {@linkcode TimerHeap.schedule}; re-arming allocates
 * nothing.
 *
 * @example
 * ```ts
 * import { TimerHeap } from "@heartwire/heartwire/server";
 * const heap = new TimerHeap();
 * const entry = heap.create(() => console.log("due"));
 * heap.schedule(entry, performance.now() + 30_000);
 * console.log(entry.scheduled, entry.at);
 * heap.cancel(entry);
 * ```
 */
export interface TimerEntry {
  /** The deadline (clock ms) it was last armed for; `NaN` if never armed. */
  readonly at: number;
  /** Whether it is armed: scheduled and neither fired nor cancelled since. */
  readonly scheduled: boolean;
}

/** `Entry.index` when the entry is not armed. */
const IDLE = -1;
/** `Entry.index` when the entry left the heap because it is due in the current run. */
const DUE = -2;
/**
 * Children per node. A 4-ary heap is half as deep as a binary one: sifting up
 * (arming) visits half the levels, sifting down (re-arming later, cancelling)
 * visits half the levels doing the same number of comparisons, and the four
 * children sit next to each other in the array. Measured on the keepalive churn
 * of bench/timer_heap_bench.ts (20 000 entries): ~1.2× faster than binary
 * (11.3 ms vs 13.6 ms per iteration).
 */
const ARITY = 4;
/** setTimeout takes a signed 32-bit delay; longer ones would fire at once. */
const MAX_OS_DELAY = 2 ** 31 - 1;

/** The implementation behind {@linkcode TimerEntry}; only this module sees its fields. */
class Entry implements TimerEntry {
  at = NaN;
  /** Arming order, the tie-breaker for equal `at`. */
  seq = 0;
  /** Position in the heap array, or {@linkcode IDLE} / {@linkcode DUE}. */
  index = IDLE;
  readonly owner: TimerHeap;
  readonly callback: () => void;

  constructor(owner: TimerHeap, callback: () => void) {
    this.owner = owner;
    this.callback = callback;
  }

  get scheduled(): boolean {
    return this.index !== IDLE;
  }
}

/** Heap order: earlier deadline first, then earlier arming. */
function before(a: Entry, b: Entry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * Many one-shot timers on one OS timer: an indexed 4-ary min-heap of deadlines.
 *
 * The OS timer is re-armed lazily. schedule() moves it only when the new
 * deadline is earlier than the wake-up already armed; when the earliest
 * deadline moves later (the top entry re-armed or cancelled) the armed timer
 * is left alone: it wakes early, finds nothing (or less) due, and re-arms for
 * the new earliest. A keepalive re-arm, which always moves a deadline later,
 * therefore never touches the OS timer. An empty heap holds no OS timer, so it
 * never keeps a process alive.
 *
 * @example
 * ```ts
 * import { TimerHeap } from "@heartwire/heartwire/server";
 * const heap = new TimerHeap();
 * const keepalive = heap.create(() => {
 *   console.log("ping the peer, then wait for the pong");
 *   heap.schedule(keepalive, performance.now() + 30_000); // re-arm the same entry
 * });
 * heap.schedule(keepalive, performance.now() + 30_000);
 * heap.clear(); // on shutdown
 * ```
 */
export class TimerHeap {
  readonly #clock: Clock;
  readonly #coalesceMs: number;
  readonly #onError: ((error: unknown) => void) | undefined;
  /** The heap: `#heap[0]` is the earliest; the children of `i` are `ARITY*i+1 … ARITY*i+ARITY`. */
  #heap: Entry[] = [];
  /** Next arming order number. */
  #seq = 0;
  /** Entries taken out of the heap by the current runDue(), fired in this order. */
  #due: Entry[] = [];
  /** How many entries in `#due` still have index DUE (not yet fired or cancelled). */
  #dueCount = 0;
  #running = false;
  /** Handle of the OS timer, or undefined when none is armed. */
  #osTimer: unknown = undefined;
  /** Clock time the OS timer is armed for (`Infinity` when none). */
  #wakeAt = Infinity;
  readonly #onWake = (): void => {
    this.#osTimer = undefined;
    this.#wakeAt = Infinity;
    this.runDue(this.#clock.now());
  };

  /** Creates an empty heap; it arms no OS timer until something is scheduled. */
  constructor(options: TimerHeapOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#coalesceMs = Math.max(0, options.coalesceMs ?? DEFAULT_COALESCE_MS);
    this.#onError = options.onError;
  }

  /** How many entries are armed. */
  get size(): number {
    return this.#heap.length + this.#dueCount;
  }

  /**
   * The earliest armed deadline, or undefined when none. During runDue() the
   * entries already taken for the current run are not counted.
   */
  peek(): number | undefined {
    return this.#heap.length > 0 ? this.#heap[0].at : undefined;
  }

  /** Creates an unarmed entry whose `callback` runs each time it falls due. */
  create(callback: () => void): TimerEntry {
    return new Entry(this, callback);
  }

  /**
   * Arms `entry` to fire at absolute clock time `at`: inserts it, or moves it
   * if it is already armed. O(log n). Re-arming counts as new for ties: among
   * equal deadlines, the entry armed last fires last.
   */
  schedule(entry: TimerEntry, at: number): void {
    const e = this.#own(entry);
    if (!Number.isFinite(at)) throw new RangeError(`Timer deadline must be finite, got ${at}`);
    const wasEarlier = e.index >= 0 && (at < e.at);
    e.at = at;
    e.seq = this.#seq++;
    if (e.index >= 0) {
      // Already in the heap: a new key only moves it towards one end.
      if (wasEarlier) this.#siftUp(e.index);
      else this.#siftDown(e.index);
    } else {
      if (e.index === DUE) this.#dueCount--; // was due in this run; now re-armed instead
      this.#heap.push(e);
      this.#siftUp(this.#heap.length - 1);
    }
    if (!this.#running) this.#armOsTimer();
  }

  /** Disarms `entry`; returns whether it was armed. O(log n). */
  cancel(entry: TimerEntry): boolean {
    const e = this.#own(entry);
    if (e.index === IDLE) return false;
    if (e.index === DUE) {
      // runDue() skips entries that are no longer DUE.
      e.index = IDLE;
      this.#dueCount--;
      return true;
    }
    this.#removeAt(e.index);
    // Lazy: a later earliest deadline keeps the armed OS timer; only an empty
    // heap drops it, so that nothing holds the process open.
    if (!this.#running && this.#heap.length === 0) this.#disarmOsTimer();
    return true;
  }

  /**
   * Fires every entry due at `now` (default `clock.now()`) in deadline order,
   * earliest first, equal deadlines in arming order; returns how many fired.
   *
   * Callbacks may schedule or cancel any entry, themselves included. The set
   * of entries to fire is taken when the run starts, so an entry armed during
   * the run fires in a later run even if its deadline is already past: a
   * callback that re-arms itself for "now" cannot loop forever. A throwing
   * callback does not stop the others; see {@linkcode TimerHeapOptions.onError}.
   * Afterwards the OS timer is armed for the new earliest deadline. Not
   * reentrant: calling it from a callback throws.
   */
  runDue(now: number = this.#clock.now()): number {
    if (this.#running) throw new Error("TimerHeap.runDue() called from a timer callback");
    this.#running = true;
    const heap = this.#heap;
    const due = this.#due;
    let fired = 0;
    let errors: unknown[] | undefined;
    try {
      // Take the due entries out first (in order), then fire them.
      while (heap.length > 0 && heap[0].at <= now) {
        const e = heap[0];
        this.#removeAt(0);
        e.index = DUE;
        due.push(e);
      }
      this.#dueCount = due.length;
      for (let i = 0; i < due.length; i++) {
        const e = due[i];
        if (e.index !== DUE) continue; // cancelled or re-armed by an earlier callback
        e.index = IDLE;
        this.#dueCount--;
        fired++;
        try {
          e.callback();
        } catch (error) {
          (errors ??= []).push(error);
        }
      }
    } finally {
      due.length = 0;
      this.#dueCount = 0;
      this.#running = false;
      this.#armOsTimer();
    }
    if (errors !== undefined) this.#report(errors);
    return fired;
  }

  /**
   * A {@linkcode Clock} whose timers are one-shot entries of this heap, for
   * code written against the Clock interface (e.g. the `/ws` session sweep)
   * that should share the heap's one OS timer rather than arm its own.
   *
   * @example
   * ```ts
   * import { TimerHeap } from "@heartwire/heartwire/server";
   * const heap = new TimerHeap();
   * const clock = heap.asClock();
   * const handle = clock.setTimeout(() => console.log("fired"), 1_000);
   * clock.clearTimeout(handle); // cancels the entry
   * ```
   */
  asClock(): Clock {
    const clock = this.#clock;
    return {
      now: () => clock.now(),
      setTimeout: (callback, delay) => {
        const entry = this.create(callback);
        this.schedule(entry, clock.now() + Math.max(0, delay));
        return entry;
      },
      clearTimeout: (handle) => {
        if (handle instanceof Entry && handle.owner === this) this.cancel(handle);
      },
    };
  }

  /** Disarms every entry and drops the OS timer. */
  clear(): void {
    for (const e of this.#heap) e.index = IDLE;
    for (const e of this.#due) e.index = IDLE;
    this.#heap.length = 0;
    this.#dueCount = 0;
    this.#disarmOsTimer();
  }

  /**
   * Throws if the heap order or an entry's stored index is wrong. For tests.
   *
   * @internal
   */
  _check(): void {
    const heap = this.#heap;
    for (let i = 0; i < heap.length; i++) {
      if (heap[i].index !== i) throw new Error(`entry at ${i} thinks it is at ${heap[i].index}`);
      if (i > 0 && before(heap[i], heap[((i - 1) / ARITY) | 0])) {
        throw new Error(`entry at ${i} is earlier than its parent`);
      }
    }
    if (heap.length === 0 && this.#osTimer !== undefined && !this.#running) {
      throw new Error("empty heap holds an OS timer");
    }
  }

  #own(entry: TimerEntry): Entry {
    if (!(entry instanceof Entry) || entry.owner !== this) {
      throw new TypeError("Timer entry was not created by this TimerHeap");
    }
    return entry;
  }

  /**
   * Moves the entry at `i` up while it is earlier than its parent. Instead of
   * swapping at each level, parents slide down into the hole and the entry is
   * written once, at its final slot; every moved entry learns its new index.
   */
  #siftUp(i: number): void {
    const heap = this.#heap;
    const e = heap[i];
    while (i > 0) {
      const parentIndex = ((i - 1) / ARITY) | 0;
      const parent = heap[parentIndex];
      if (!before(e, parent)) break;
      heap[i] = parent;
      parent.index = i;
      i = parentIndex;
    }
    heap[i] = e;
    e.index = i;
  }

  /** Moves the entry at `i` down while one of its children is earlier (hole technique too). */
  #siftDown(i: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const e = heap[i];
    for (;;) {
      const first = i * ARITY + 1;
      if (first >= n) break;
      // The earliest of up to ARITY children.
      let best = first;
      const last = Math.min(first + ARITY, n);
      for (let c = first + 1; c < last; c++) {
        if (before(heap[c], heap[best])) best = c;
      }
      const child = heap[best];
      if (!before(child, e)) break;
      heap[i] = child;
      child.index = i;
      i = best;
    }
    heap[i] = e;
    e.index = i;
  }

  /** Removes the entry at `i`: the last entry fills the hole and sifts whichever way it must. */
  #removeAt(i: number): void {
    const heap = this.#heap;
    const removed = heap[i];
    const last = heap.pop()!;
    removed.index = IDLE;
    if (last === removed) return;
    heap[i] = last;
    last.index = i;
    if (i > 0 && before(last, heap[((i - 1) / ARITY) | 0])) this.#siftUp(i);
    else this.#siftDown(i);
  }

  /**
   * Ensures one OS timer wakes us no later than `earliest + coalesceMs`, and
   * none when the heap is empty. A timer already armed early enough is kept.
   */
  #armOsTimer(): void {
    if (this.#heap.length === 0) {
      this.#disarmOsTimer();
      return;
    }
    const wakeAt = this.#heap[0].at + this.#coalesceMs;
    if (this.#osTimer !== undefined && this.#wakeAt <= wakeAt) return;
    this.#disarmOsTimer();
    // Round up: timers take whole milliseconds, and waking a fraction early
    // would only find nothing due and re-arm.
    const delay = Math.min(MAX_OS_DELAY, Math.max(0, Math.ceil(wakeAt - this.#clock.now())));
    this.#wakeAt = wakeAt;
    this.#osTimer = this.#clock.setTimeout(this.#onWake, delay);
  }

  #disarmOsTimer(): void {
    if (this.#osTimer === undefined) return;
    this.#clock.clearTimeout(this.#osTimer);
    this.#osTimer = undefined;
    this.#wakeAt = Infinity;
  }

  #report(errors: unknown[]): void {
    const onError = this.#onError;
    if (onError) {
      for (const error of errors) onError(error);
      return;
    }
    if (errors.length === 1) throw errors[0];
    throw new AggregateError(errors, `${errors.length} timer callbacks threw`);
  }
}
