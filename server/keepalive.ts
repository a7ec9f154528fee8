/**
 * The keepalive policy: when to ping a peer and when to give up on it.
 *
 * This is pure logic. A connection keeps a {@linkcode KeepaliveState} (two
 * timestamps), updates `lastSeen` on every read — O(1), no timer touched — and
 * asks {@linkcode nextKeepaliveAction} what to do each time its single timer
 * heap entry fires. The timeline for a silent peer with interval I and timeout T:
 *
 * ```
 * lastSeen ──── I ────▶ ping ──── T ────▶ dead (drop TCP, no close frame)
 * ```
 *
 * Any inbound byte (a data frame, a pong, a peer's own ping) proves the peer is
 * alive, so an active connection is never pinged at all.
 *
 * Liveness never blames a peer for the server's own stall. A pong that came in
 * time can sit unread while the server is busy, so the verdict leans on what
 * the server knows of its own lateness:
 * - the timeout counts from when the ping was written to the kernel
 *   (`pingWrittenAt`), not from when it was queued behind other writes;
 * - when the server shows it is behind — the check runs late (`lateBy`: the
 *   timer fired after a long synchronous turn or a burst of work) by more
 *   than {@linkcode LATE_SLACK_MS}, or answers have lately been read so late
 *   that `lag` is at its cap (`interval + timeout`: the extension below may
 *   fall short of the real lag) — a passed deadline is not yet a verdict: it
 *   is looked at again once per ping (`grace`), after the reads that piled
 *   up have had half a timeout, or as long as the check was late, to be
 *   processed (at most a timeout). A lag below the cap gives no grace: the
 *   deadline already waited that long for the answer, and waiting again
 *   would count the same lag twice;
 * - the deadline is extended by `lag`, how late the server has lately been
 *   reading answers ({@linkcode LagMeter}: the round trip that the slowest
 *   {@linkcode LAG_QUANTILE} of recent pings on all connections reach, or
 *   past 640 answers their 32nd slowest, at most `interval + timeout`).
 *   Deno completes at most 128 socket reads per turn of its event loop
 *   while timers run every turn, so when more pongs arrive than it reads,
 *   they queue: at 18 000 connections with a 1 s heartbeat on 2 busy cores,
 *   single pongs were measured waiting 2–4 s to be read while the timers ran
 *   on time;
 * - a server whose lag is over a quarter of the timeout also pings later by
 *   that lag (at most a timeout): fewer answers to read until it has caught
 *   up, so a backlog drains instead of growing (a core taken by other work
 *   at 18 000 peers and a 1 s heartbeat: no false drop with pacing, a third
 *   of the peers dropped without).
 *
 * A silent peer is therefore dropped `interval + timeout` after it was last
 * heard from (plus the heap's 5 ms coalescing) on a server that keeps up.
 * On a server that is behind, add its recent read lag (at most
 * `interval + timeout`: a peer that answers late can stretch it only that
 * far) to the deadline, and again (at most a timeout) to the ping once it is
 * over a quarter of the timeout, and any time the check itself ran late;
 * and, when the check ran late or the lag is at its cap, one grace re-check
 * (half a timeout to a timeout).
 * `deno task bench:detect` measures it: 1 000 of 10 000 peers blackholed at
 * once.
 *
 * @module
 */

/**
 * Timing of the control-frame keepalive.
 */
export interface KeepaliveOptions {
  /** Silence (ms) after which the peer is pinged. */
  interval: number;
  /** Time (ms) a pinged peer has to show any sign of life. */
  timeout: number;
}

/**
 * What a connection remembers for its keepalive.
 */
export interface KeepaliveState {
  /** When we last read anything from the peer. */
  lastSeen: number;
  /** When the outstanding ping was queued, or -1 if none is outstanding. */
  pingSentAt: number;
  /**
   * When the outstanding ping reached the kernel, or -1 while it is still in
   * the server's write queue (a ping not yet written cannot have been
   * answered). Unset: `pingSentAt`.
   */
  pingWrittenAt?: number;
  /**
   * How late (ms) the server has lately been reading answers
   * ({@linkcode LagMeter}): it extends the deadline, and over a quarter of
   * the timeout it delays the next ping too. Default 0.
   */
  lag?: number;
  /** How late (ms) this check runs after the time it was due. Default 0. */
  lateBy?: number;
  /** The outstanding ping already had its one grace re-check (`grace`). */
  graced?: boolean;
  /**
   * Ms this connection pings ahead of `interval`: a per-connection random
   * offset, so 20 000 connections opened in one burst do not ping in one burst.
   */
  earlyBy?: number;
}

/**
 * The next step for a connection whose keepalive timer fired.
 *
 * - `wait`: the peer was heard from recently; re-arm the timer for `at`.
 * - `ping`: send a ping now and re-arm for `at` (now + timeout).
 * - `grace`: the deadline passed while the server itself was behind (`lateBy`
 *   above {@linkcode LATE_SLACK_MS}, or `lag` at its cap, `interval + timeout`):
 *   re-check once at `at`, after the reads that piled up were processed.
 * - `dead`: a ping went unanswered, with nothing else heard, for `timeout` ms.
 */
export type KeepaliveAction =
  | { kind: "wait"; at: number }
  | { kind: "ping"; at: number }
  | { kind: "grace"; at: number }
  | { kind: "dead" };

/**
 * Decides what a connection's keepalive does at time `now`.
 *
 * @example
 * ```ts
 * import { nextKeepaliveAction } from "@heartwire/heartwire/server";
 * const options = { interval: 25_000, timeout: 10_000 };
 * nextKeepaliveAction({ lastSeen: 0, pingSentAt: -1 }, 10_000, options);
 * // { kind: "wait", at: 25_000 }
 * nextKeepaliveAction({ lastSeen: 0, pingSentAt: -1 }, 25_000, options);
 * // { kind: "ping", at: 35_000 }
 * nextKeepaliveAction({ lastSeen: 0, pingSentAt: 25_000 }, 35_000, options);
 * // { kind: "dead" }
 * // The same check, run 3 s late (the server was stalled): look again later.
 * nextKeepaliveAction({ lastSeen: 0, pingSentAt: 25_000, lateBy: 3_000 }, 38_000, options);
 * // { kind: "grace", at: 43_000 }: half a timeout for the reads that piled up
 * ```
 */
export function nextKeepaliveAction(
  state: KeepaliveState,
  now: number,
  options: KeepaliveOptions,
): KeepaliveAction {
  const heardSincePing = state.pingSentAt < 0 || state.lastSeen >= state.pingSentAt;
  const lag = state.lag ?? 0;
  if (heardSincePing) {
    // A server behind on its reads paces its pings by its lag: each ping
    // brings an answer to read, and pinging on while answers queue lets the
    // sockets the runtime serves last fall further behind until they miss
    // their deadlines (measured: 18 000 peers, a core taken by other work).
    // A lag within a quarter of the timeout is ordinary and paces nothing;
    // at most a timeout, so a quiet connection still carries a ping at least
    // every `interval + timeout` (proxies cut silent connections).
    const pace = lag > options.timeout / 4 ? Math.min(lag, options.timeout) : 0;
    const due = state.lastSeen + options.interval - (state.earlyBy ?? 0) + pace;
    return due > now ? { kind: "wait", at: due } : { kind: "ping", at: now + options.timeout };
  }
  const written = state.pingWrittenAt ?? state.pingSentAt;
  // Still queued behind the server's own writes: the peer has not seen it.
  if (written < 0) return { kind: "wait", at: now + options.timeout };
  const deadline = written + options.timeout + lag;
  if (deadline > now) return { kind: "wait", at: deadline };
  const lateBy = state.lateBy ?? 0;
  const lagCapped = lag >= options.interval + options.timeout;
  if (!state.graced && (lateBy > LATE_SLACK_MS || lagCapped)) {
    // The server is behind (this check ran late, or answers have lately been
    // read later than the lag extension reaches): what the peer sent may
    // still be unread. Give the reads time first, once: as long as the check
    // was late, at least half a timeout, at most a timeout.
    return {
      kind: "grace",
      at: now + Math.min(options.timeout, Math.max(lateBy, options.timeout / 2)),
    };
  }
  return { kind: "dead" };
}

/**
 * How late (ms) a keepalive check may run and still judge a passed deadline
 * at once: well above the timer heap's coalescing (5 ms) and an ordinary busy
 * turn. (Answers read late move the deadline itself, by the measured lag.)
 *
 * @example
 * ```ts
 * import { LATE_SLACK_MS } from "@heartwire/heartwire/server";
 * console.log(LATE_SLACK_MS); // 50
 * ```
 */
export const LATE_SLACK_MS = 50;

/**
 * The server's recent read lag: how late ping answers have been read (ping
 * round trips, in ms) over the last one to two `window`s, capped at `max`.
 * Pure: time is passed in. One meter serves every connection of a server.
 *
 * When the server itself falls behind, every connection's answers are read
 * late together, so a high quantile of the round trips shows it. A few slow
 * peers must not stretch everyone else's deadline, so the meter reads the
 * delay that the slowest {@linkcode LAG_QUANTILE} of the window's answers
 * reach rather than the very largest, counting at most the 32 slowest: past
 * 640 answers a window it is the 32nd slowest, a higher quantile, which errs
 * towards waiting (with 1 000 connections answering every second in a 2 s
 * window, 32 would have to answer late together). With fewer than 20 answers
 * in a window it is the largest one. Noting is O(1) once the window's top
 * delays are known.
 *
 * @example
 * ```ts
 * import { LagMeter } from "@heartwire/heartwire/server";
 * const meter = new LagMeter({ window: 2_000, max: 1_000 });
 * meter.note(0, 300);
 * meter.note(100, 20);
 * console.log(meter.value(500)); // 300
 * console.log(meter.value(5_000)); // 0: nothing noted lately
 * ```
 */
export class LagMeter {
  readonly #window: number;
  readonly #max: number;
  #start = -Infinity;
  #current = new LagWindow();
  #previous = new LagWindow();

  /** `window`: ms a noted delay counts for (at least); `max`: the cap of {@linkcode LagMeter.value}. */
  constructor(options: { window: number; max: number }) {
    this.#window = options.window;
    this.#max = options.max;
  }

  /** Notes a delay of `ms` observed at time `now`. */
  note(now: number, ms: number): void {
    this.#roll(now);
    this.#current.note(ms);
  }

  /** The lag of the current and the previous window (the larger), at most `max`. */
  value(now: number): number {
    this.#roll(now);
    return Math.min(this.#max, Math.max(this.#current.value(), this.#previous.value()));
  }

  #roll(now: number): void {
    if (now - this.#start < this.#window) return;
    // One window on: the current becomes the previous; two or more: both are stale.
    const stale = this.#previous;
    stale.clear();
    if (now - this.#start < 2 * this.#window) {
      this.#previous = this.#current;
      this.#current = stale;
    } else {
      this.#current.clear();
    }
    this.#start = now;
  }
}

/**
 * The share of a window's answers allowed to be slower than the lag the
 * {@linkcode LagMeter} reports (5 %).
 */
export const LAG_QUANTILE = 0.05;

/** Delays kept per window: the quantile is exact up to this many outliers, then the last of them. */
const LAG_TOP = 32;

/** One window of a {@linkcode LagMeter}: how many delays, and the largest few, descending. */
class LagWindow {
  count = 0;
  top: number[] = [];

  note(ms: number): void {
    this.count++;
    const top = this.top;
    if (top.length === LAG_TOP && ms <= top[LAG_TOP - 1]) return;
    let i = Math.min(top.length, LAG_TOP - 1);
    top[i] = ms;
    for (; i > 0 && top[i - 1] < ms; i--) [top[i - 1], top[i]] = [ms, top[i - 1]];
  }

  value(): number {
    if (this.top.length === 0) return 0;
    const rank = Math.floor(this.count * LAG_QUANTILE);
    return this.top[Math.min(rank, this.top.length - 1)];
  }

  clear(): void {
    this.count = 0;
    this.top.length = 0;
  }
}

const meters = new WeakMap<object, LagMeter>();

/**
 * The one {@linkcode LagMeter} for `owner` (e.g. a server's timer heap), made
 * on first use with a window and a cap of `interval + timeout`.
 *
 * @example
 * ```ts
 * import { lagMeterFor, TimerHeap } from "@heartwire/heartwire/server";
 * const heap = new TimerHeap();
 * const meter = lagMeterFor(heap, { interval: 25_000, timeout: 10_000 });
 * console.log(meter === lagMeterFor(heap, { interval: 25_000, timeout: 10_000 })); // true
 * ```
 */
export function lagMeterFor(owner: object, options: KeepaliveOptions): LagMeter {
  let meter = meters.get(owner);
  if (meter === undefined) {
    const span = options.interval + options.timeout;
    meter = new LagMeter({ window: span, max: span });
    meters.set(owner, meter);
  }
  return meter;
}
