/**
 * The heartwire client: a reconnecting, resuming WebSocket for the `/ws`
 * protocol, on the standard WebSocket API only (browsers, Deno, Node ≥ 22).
 * `deno task bundle` builds it for browsers into `dist/` (ESM and an IIFE
 * global `Heartwire`).
 *
 * - {@linkcode ReconnectingSocket}: the socket (reconnect, heartbeat, resume, outbox).
 * - {@linkcode PresenceView}: a topic's live members (`socket.presence(topic)`).
 * - {@linkcode Backoff}, {@linkcode HeartbeatMonitor}, {@linkcode Outbox}: its
 *   parts, usable on their own.
 *
 * @example
 * ```ts ignore
 * import { ReconnectingSocket } from "@heartwire/heartwire/client";
 * const socket = new ReconnectingSocket("ws://localhost:8080/ws");
 * socket.addEventListener("message", (event) => console.log(event.data));
 * socket.send({ type: "chat", text: "hello" });
 * ```
 *
 * @module
 */
export * from "./backoff.ts";
export * from "./heartbeat_monitor.ts";
export * from "./outbox.ts";
export * from "./presence_view.ts";
export * from "./reconnecting_socket.ts";
// The protocol types the client's API mentions, so it documents itself (type-only: no bundle cost).
export type { Clock } from "../protocol/clock.ts";
export type { Heartbeat, HeartbeatAck } from "../protocol/heartbeat.ts";
export type {
  HeartbeatTiming,
  PresenceDiffMessage,
  PresenceMember,
  PresenceStateMessage,
  Publication,
  ResumeFailed,
  TopicPosition,
} from "../protocol/messages.ts";
export * from "./typed_event_target.ts";
