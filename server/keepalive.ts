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
 * @module
 */

/**
 * Timing of the control-frame keepalive.
 *
 * @example
 * ```ts
 * import type { KeepaliveOptions } from "@heartwire/heartwire/server";
 * const options: KeepaliveOptions = { interval: 25_000, timeout: 10_000 };
 * ```
 */
export interface KeepaliveOptions {
  /** Silence (ms) after which the peer is pinged. */
  interval: number;
  /** Time (ms) a pinged peer has to show any sign of life. */
  timeout: number;
}

/**
 * What a connection remembers for its keepalive.
 *
 * @example
 * ```ts
 * import type { KeepaliveState } from "@heartwire/heartwire/server";
 * const state: KeepaliveState = { lastSeen: 0, pingSentAt: -1 };
 * ```
 */
export interface KeepaliveState {
  /** When we last read anything from the peer. */
  lastSeen: number;
  /** When the outstanding ping went out, or -1 if none is outstanding. */
  pingSentAt: number;
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
 * - `dead`: a ping went unanswered, with nothing else heard, for `timeout` ms.
 *
 * @example
 * ```ts
 * import type { KeepaliveAction } from "@heartwire/heartwire/server";
 * const action: KeepaliveAction = { kind: "wait", at: 25_000 };
 * ```
 */
export type KeepaliveAction =
  | { kind: "wait"; at: number }
  | { kind: "ping"; at: number }
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
 * ```
 */
export function nextKeepaliveAction(
  state: KeepaliveState,
  now: number,
  options: KeepaliveOptions,
): KeepaliveAction {
  const heardSincePing = state.pingSentAt < 0 || state.lastSeen >= state.pingSentAt;
  if (heardSincePing) {
    const due = state.lastSeen + options.interval - (state.earlyBy ?? 0);
    return due > now ? { kind: "wait", at: due } : { kind: "ping", at: now + options.timeout };
  }
  const deadline = state.pingSentAt + options.timeout;
  return deadline > now ? { kind: "wait", at: deadline } : { kind: "dead" };
}
