/**
 * Client-side liveness over the application heartbeat, on one timer.
 *
 * A dead network (Wi-Fi gone, laptop asleep, a proxy that silently forgot the
 * connection) fires no `close` for minutes, and a browser cannot see control
 * frame pongs. So the client sends `{"type":"heartbeat"}` every `interval`,
 * and if nothing at all arrives within `timeout` of a heartbeat it calls the
 * connection dead. Any message counts as a sign of life, not just the ack,
 * and hearing one costs a field write: the timer is never re-armed per
 * message (seed 001 restarts two timers on every message).
 *
 * Detection bound: if the network dies at t, the next heartbeat leaves by
 * t + interval and its deadline is t + interval + timeout.
 *
 * Timers that fire very late mean the machine slept or the tab was throttled
 * in the background; the deadline measured across that gap says nothing about
 * the peer. Such a wake-up sends a fresh heartbeat and waits `timeout` for it
 * (an immediate liveness check) instead of declaring the connection dead;
 * only one such grace is given until something arrives, so a throttled tab on
 * a dead network is still found out on the next wake-up.
 *
 * @module
 */
import type { Clock } from "../protocol/clock.ts";
import type { Heartbeat, HeartbeatAck } from "../protocol/heartbeat.ts";
import { MAX_TIMER_DELAY } from "./_options.ts";

/**
 * What {@linkcode HeartbeatMonitor} needs.
 */
export interface HeartbeatMonitorOptions {
  /** Time (ms) between heartbeats. */
  interval: number;
  /** Time (ms) a heartbeat may go without anything arriving before the connection is dead. */
  timeout: number;
  /** Sends one heartbeat on the connection. */
  send: (heartbeat: Heartbeat) => void;
  /** Called once when the connection is found dead; the monitor has stopped. */
  onDead: () => void;
  /** Time source. Default: `Date.now` and the global timers (wall time, which counts sleep). */
  clock?: Clock;
  /** How late (ms) a timer may fire before it counts as a sleep. Default `max(timeout, 1000)`. */
  gap?: number;
}

/**
 * The default client clock: wall time, because a monotonic clock may stop
 * while the machine sleeps (Linux CLOCK_MONOTONIC does), hiding the gap.
 *
 * @example
 * ```ts
 * import { wallClock } from "@heartwire/heartwire/client";
 * const handle = wallClock.setTimeout(() => console.log(wallClock.now()), 10);
 * wallClock.clearTimeout(handle);
 * ```
 */
export const wallClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, delay) => setTimeout(callback, delay),
  clearTimeout: (handle) => clearTimeout(handle as number),
};

/**
 * Sends heartbeats and decides when a connection is dead. One per connection:
 * {@linkcode HeartbeatMonitor.start} it once the connection is up, feed it
 * {@linkcode HeartbeatMonitor.received} for every message, stop it when the
 * connection ends.
 *
 * @example
 * ```ts
 * import { HeartbeatMonitor } from "@heartwire/heartwire/client";
 * const ws = new WebSocket("ws://localhost:8080/ws");
 * const monitor = new HeartbeatMonitor({
 *   interval: 25_000,
 *   timeout: 10_000,
 *   send: (heartbeat) => ws.send(JSON.stringify(heartbeat)),
 *   onDead: () => ws.close(),
 * });
 * ws.onopen = () => monitor.start();
 * ws.onmessage = () => monitor.received();
 * ws.onclose = () => monitor.stop();
 * ```
 */
export class HeartbeatMonitor {
  #options: HeartbeatMonitorOptions;
  #clock: Clock;
  #gap: number;
  #timer: unknown;
  #running = false;
  /** When the armed timer should fire. */
  #due = 0;
  #nextSend = 0;
  /** Send time of the oldest heartbeat not followed by any message. */
  #pending: number | undefined;
  #graced = false;
  #id = 0;

  /** Creates a stopped monitor. */
  constructor(options: HeartbeatMonitorOptions) {
    this.#options = options;
    this.#clock = options.clock ?? wallClock;
    this.#gap = options.gap ?? Math.max(options.timeout, 1_000);
  }

  /** Whether the monitor is watching (started, not stopped, not dead). */
  get running(): boolean {
    return this.#running;
  }

  /** Sends the first heartbeat at once (the first RTT sample) and starts the cadence. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#beat(this.#clock.now());
    this.#arm();
  }

  /** Something arrived: the connection is alive. O(1); no timer is touched. */
  received(): void {
    this.#pending = undefined;
    this.#graced = false;
  }

  /**
   * Reads a heartbeat ack: counts as {@linkcode received} and returns the
   * round-trip time in ms (undefined if the ack has no `ts`).
   */
  acked(ack: HeartbeatAck): number | undefined {
    this.received();
    return ack.ts === undefined ? undefined : Math.max(0, this.#clock.now() - ack.ts);
  }

  /**
   * Checks liveness now (tab visible again, network back): sends a heartbeat
   * unless one is already waiting, so a dead connection is found within
   * `timeout`.
   */
  check(): void {
    if (!this.#running) return;
    if (this.#pending === undefined) this.#beat(this.#clock.now());
    this.#arm();
  }

  /** Stops for good: clears the timer. */
  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #beat(now: number): void {
    this.#pending ??= now;
    this.#nextSend = now + this.#options.interval;
    this.#options.send({ type: "heartbeat", id: ++this.#id, ts: now });
  }

  #arm(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    const { timeout } = this.#options;
    this.#due = this.#pending === undefined
      ? this.#nextSend
      : Math.min(this.#nextSend, this.#pending + timeout);
    // A due time past the timer cap (a huge interval from a server) fires early and re-arms.
    const delay = Math.min(MAX_TIMER_DELAY, Math.max(0, this.#due - this.#clock.now()));
    this.#timer = this.#clock.setTimeout(this.#fire, delay);
  }

  #fire = (): void => {
    this.#timer = undefined;
    if (!this.#running) return;
    const now = this.#clock.now();
    if (now - this.#due > this.#gap && !this.#graced) {
      // Slept or throttled: what happened meanwhile proves nothing; ask afresh.
      this.#graced = true;
      this.#pending = undefined;
      this.#beat(now);
    } else if (this.#pending !== undefined && now >= this.#pending + this.#options.timeout) {
      this.stop();
      this.#options.onDead();
      return;
    } else if (now >= this.#nextSend) {
      this.#beat(now);
    }
    this.#arm();
  };
}
