/**
 * The `/ws` application protocol of the hub: a JSON envelope
 * `{"type": ..., ...}` on text frames, shared by the server (hub/) and the
 * reconnecting client (client/).
 *
 * ```text
 * client                                              server
 *   │ GET /ws?id=c1&session=s1             (resume)     │
 *   │ ◀──── {"type":"welcome","session":"s1","resumed":true,...,"last_cseq":3}
 *   │ ◀──── {"type":"subscribed","topic":"lobby","epoch":"e1","offset":9}
 *   │ ────▶ {"type":"subscribe","topic":"lobby","epoch":"e1","offset":7}  (recover)
 *   │ ◀──── {"type":"subscribed","topic":"lobby","epoch":"e1","offset":7,"recovered":true}
 *   │ ◀──── {"type":"chat","topic":"lobby","offset":8,...}   (history)
 *   │ ◀──── {"type":"chat","topic":"lobby","offset":9,...}
 *   │ ────▶ {"type":"move","cseq":4,"x":1}   (outbox re-sent)
 *   │ ◀──── {"type":"ack","cseq":4,"reply":{"ok":true}}
 * ```
 *
 * **Publications** are what topics carry: any server message whose type is
 * not a protocol type, with `topic` and `offset`. Each topic has a bounded
 * history with rising offsets and an `epoch` (a random string chosen when
 * the history was created; a restart or loss of history changes it). The
 * client keeps, per topic, the epoch and the last offset it delivered; it
 * accepts only `offset + 1`, drops what it has, and on a gap (or after any
 * reconnect) sends `subscribe {topic, epoch, offset}` to recover. The answer
 * `subscribed {recovered}` is followed by the missed publications; with
 * `recovered: false` (history trimmed, epoch changed) they are lost and the
 * client is told so — never a silent gap.
 *
 * After the welcome the server sends `subscribed {topic, epoch, offset}`
 * (no `recovered` field) for every topic the session is in: a client that
 * does not track the topic yet starts at that offset. Direct messages to one
 * session ride its own topic, named {@linkcode DIRECT_TOPIC} on the wire.
 *
 * **Client messages** of any type the server registered carry a `cseq`
 * (optional) so the server can drop re-sends it already processed. It is
 * answered with `ack {cseq, reply?}` (`reply` is the handler's return value)
 * or `error {cseq, reason}` followed by the ack; a refused message counts as
 * processed. A `cseq` more than the server's window above the last one
 * processed is refused without an ack and without being processed.
 *
 * A `resume_failed` with `last_cseq` means the old session processed the
 * client messages up to it and no others, ever: the client drops those from
 * its outbox, renumbers the rest from the new session's `last_cseq + 1` and
 * re-sends them, so none is done twice. Without it the server does not know
 * (the session is long gone, or the server restarted), and re-sending is the
 * client's choice between a duplicate and a loss.
 *
 * Two close codes end a connection because of its session: 4000
 * ({@linkcode SESSION_TAKEN_OVER}, reason `last_cseq=N`) when a newer
 * connection resumed it — the client starts a new session and re-sends only
 * the messages after N — and 4001 ({@linkcode SESSION_ENDED}) when the server
 * removed it — the client resumes as usual and is told `last_cseq` in the
 * `resume_failed` that follows.
 *
 * **Presence** of a topic (who is in it) is followed per connection:
 * `presence_subscribe {topic}` is answered with `presence_state {topic,
 * epoch, offset, members}`, then `presence_join` / `presence_leave {reason}` /
 * `presence_update {member}` with rising offsets. Presence is not history: a
 * client that sees a gap, an epoch it does not have, or reconnects, asks
 * for the state again (the same `presence_subscribe`).
 *
 * The parsers check field types and copy only the known fields of protocol
 * messages; they know nothing of sockets or timers.
 *
 * @module
 */
import {
  type Heartbeat,
  type HeartbeatAck,
  parseHeartbeat,
  parseHeartbeatAck,
} from "./heartbeat.ts";

/**
 * The heartbeat timing a server announces in its welcome; the client adopts it.
 *
 * @example
 * ```ts
 * import type { HeartbeatTiming } from "@heartwire/heartwire/protocol";
 * const timing: HeartbeatTiming = { interval: 25_000, timeout: 10_000 };
 * ```
 */
export interface HeartbeatTiming {
  /** How often (ms) the client sends a heartbeat when the line is quiet. */
  interval: number;
  /** How long (ms) an unanswered heartbeat may wait before the connection counts as dead. */
  timeout: number;
}

/**
 * The first message on every connection.
 *
 * @example
 * ```ts
 * import type { Welcome } from "@heartwire/heartwire/protocol";
 * const welcome: Welcome = {
 *   type: "welcome",
 *   session: "s1",
 *   id: "c1",
 *   resumed: false,
 *   heartbeat: { interval: 25_000, timeout: 10_000 },
 *   last_cseq: 0,
 * };
 * ```
 */
export interface Welcome {
  /** Always "welcome". */
  type: "welcome";
  /** The session id to resume with after a disconnect. */
  session: string;
  /** The client id (the one asked for with `?id=`, or one the server made up). */
  id: string;
  /** True if the asked session was resumed; false for a new session. */
  resumed: boolean;
  /** The heartbeat timing the client must use on this connection. */
  heartbeat: HeartbeatTiming;
  /** Highest client `cseq` the server processed in this session (0 if new). */
  last_cseq: number;
}

/**
 * Sent before the welcome when a resume was asked for but cannot be honoured.
 *
 * @example
 * ```ts
 * import type { ResumeFailed } from "@heartwire/heartwire/protocol";
 * const failed: ResumeFailed = {
 *   type: "resume_failed",
 *   session: "s1",
 *   reason: "unknown or expired session",
 *   last_cseq: 5,
 * };
 * ```
 */
export interface ResumeFailed {
  /** Always "resume_failed". */
  type: "resume_failed";
  /** The session that could not be resumed. */
  session: string;
  /** Why, for people: "unknown or expired session", "invalid session id"... */
  reason: string;
  /**
   * Highest client `cseq` the failed session processed; it will process no
   * more. Present only when the server still knows it (and the session
   * belonged to the asking client id); absent means unknown.
   */
  last_cseq?: number;
}

/**
 * The server processed every client message up to `cseq` (cumulative); the
 * handler of message `cseq` returned `reply` (absent if it returned nothing).
 *
 * @example
 * ```ts
 * import type { ServerAck } from "@heartwire/heartwire/protocol";
 * const ack: ServerAck = { type: "ack", cseq: 4, reply: { score: 10 } };
 * ```
 */
export interface ServerAck {
  /** Always "ack". */
  type: "ack";
  /** Highest client sequence number processed. */
  cseq: number;
  /** What the handler of message `cseq` returned, if anything. */
  reply?: unknown;
}

/**
 * The server could not handle a message; the connection stays usable.
 *
 * @example
 * ```ts
 * import type { ErrorMessage } from "@heartwire/heartwire/protocol";
 * const error: ErrorMessage = { type: "error", reason: 'unknown message type "dance"' };
 * ```
 */
export interface ErrorMessage {
  /** Always "error". */
  type: "error";
  /** What was wrong, for people. */
  reason: string;
  /**
   * The `cseq` of the refused message, when it had one. The server also acks
   * that `cseq`: a refused message counts as processed and is not resent.
   */
  cseq?: number;
}

/**
 * The server asks the client to close and reconnect after about `delay` ms,
 * e.g. before a restart.
 *
 * @example
 * ```ts
 * import type { ReconnectRequest } from "@heartwire/heartwire/protocol";
 * const request: ReconnectRequest = { type: "reconnect", delay: 5_000 };
 * ```
 */
export interface ReconnectRequest {
  /** Always "reconnect". */
  type: "reconnect";
  /** The least time (ms) to wait before reconnecting. */
  delay: number;
}

/**
 * Where a topic's stream stands: its history's epoch and an offset in it.
 *
 * @example
 * ```ts
 * import type { TopicPosition } from "@heartwire/heartwire/protocol";
 * const position: TopicPosition = { epoch: "k3j9x0aa", offset: 41 };
 * ```
 */
export interface TopicPosition {
  /** Names one life of the topic's history; a new history gets a new epoch. */
  epoch: string;
  /** An offset in it: 0 before the first publication. */
  offset: number;
}

/**
 * The session is in `topic`; the next publication of it has `offset + 1`.
 *
 * The answer to a `subscribe` has `recovered`: true when every publication
 * after the asked offset follows (the history still held them), false when
 * they are lost (trimmed, or the epoch changed) and `offset` is the topic's
 * current one. Sent without `recovered` after a welcome, for the topics the
 * session is in.
 *
 * @example
 * ```ts
 * import type { SubscribedMessage } from "@heartwire/heartwire/protocol";
 * const subscribed: SubscribedMessage = {
 *   type: "subscribed",
 *   topic: "lobby",
 *   epoch: "k3j9x0aa",
 *   offset: 7,
 *   recovered: true,
 * };
 * ```
 */
export interface SubscribedMessage extends TopicPosition {
  /** Always "subscribed". */
  type: "subscribed";
  /** The topic. */
  topic: string;
  /** For an answer to a recovering `subscribe`: whether nothing was lost. */
  recovered?: boolean;
}

/**
 * The session left `topic` (the client asked, or the server removed it).
 *
 * @example
 * ```ts
 * import type { UnsubscribedMessage } from "@heartwire/heartwire/protocol";
 * const unsubscribed: UnsubscribedMessage = { type: "unsubscribed", topic: "x" };
 * ```
 */
export interface UnsubscribedMessage {
  /** Always "unsubscribed". */
  type: "unsubscribed";
  /** The topic. */
  topic: string;
}

/**
 * A message a topic carries: any type that is not a protocol type, with the
 * topic and its offset, and fields that depend on the type.
 *
 * @example
 * ```ts
 * import type { Publication } from "@heartwire/heartwire/protocol";
 * const chat: Publication = {
 *   type: "chat",
 *   topic: "lobby",
 *   offset: 8,
 *   from: "bob",
 *   text: "hi",
 *   ts: 1700000000000,
 * };
 * ```
 */
export interface Publication {
  /** What kind of message this is. */
  type: string;
  /** The topic it was published to ({@linkcode DIRECT_TOPIC} for direct messages). */
  topic: string;
  /** Its offset in the topic's history, from 1. */
  offset: number;
  /** Fields that depend on the type. */
  [field: string]: unknown;
}

/**
 * The topic name direct messages to one session arrive on. Every session is
 * in its own; names starting with `$` are the server's.
 *
 * @example
 * ```ts
 * import { DIRECT_TOPIC } from "@heartwire/heartwire/protocol";
 * console.log(DIRECT_TOPIC); // "$direct"
 * ```
 */
export const DIRECT_TOPIC = "$direct";

/**
 * The close code a server uses on a connection whose session was taken over
 * by a newer connection (a resume with the same session id), from the
 * private-use range of RFC 6455 §7.4.2. Only one connection per session is
 * ever live; the replaced one must not resume that session (it would take it
 * back, and two tabs would steal it from each other forever): it starts a new
 * one. The reason is `last_cseq=N` ({@linkcode takenOverReason}): the session
 * processed the replaced connection's messages up to N and will process none
 * of the others, so the client re-sends only the later ones.
 *
 * @example
 * ```ts
 * import { SESSION_TAKEN_OVER } from "@heartwire/heartwire/protocol";
 * console.log(SESSION_TAKEN_OVER); // 4000
 * ```
 */
export const SESSION_TAKEN_OVER = 4000;

/**
 * The close code a server uses on a connection whose session it removed
 * while the connection was live (another connection failed to resume it, or
 * the server removed it), from the private-use range of RFC 6455 §7.4.2.
 * Unlike a take-over nobody holds the session: the client resumes as after
 * any drop, and the server answers `resume_failed` with the session's final
 * `last_cseq`, so nothing is processed twice.
 *
 * @example
 * ```ts
 * import { SESSION_ENDED } from "@heartwire/heartwire/protocol";
 * console.log(SESSION_ENDED); // 4001
 * ```
 */
export const SESSION_ENDED = 4001;

/**
 * One user as presence reports it, on `/ws` and in `GET /presence` answers.
 * Times are wall-clock epoch ms.
 *
 * @example
 * ```ts
 * import type { PresenceMember } from "@heartwire/heartwire/protocol";
 * const ann: PresenceMember = {
 *   id: "ann",
 *   status: "online",
 *   connected_at: 1700000000000,
 *   last_seen: 1700000042000,
 * };
 * ```
 */
export interface PresenceMember {
  /** The client id (`?id=`). */
  id: string;
  /** `online`, `away` (connected, no activity for a while) or `offline`. */
  status: "online" | "away" | "offline";
  /** When the user's earliest live connection opened; absent when offline. */
  connected_at?: number;
  /** Last heartbeat or message; for an offline user, when last seen. */
  last_seen?: number;
  /** Client metadata, when there is any. */
  meta?: { name?: string; status?: string };
}

/**
 * Who is in a topic now, and the position in its presence stream this
 * reflects: diffs with the same `epoch` and a higher `offset` follow.
 *
 * @example
 * ```ts
 * import type { PresenceStateMessage } from "@heartwire/heartwire/protocol";
 * const state: PresenceStateMessage = {
 *   type: "presence_state",
 *   topic: "lobby",
 *   epoch: "n1:4",
 *   offset: 12,
 *   members: [{ id: "ann", status: "online" }],
 * };
 * ```
 */
export interface PresenceStateMessage {
  /** Always "presence_state". */
  type: "presence_state";
  /** The topic. */
  topic: string;
  /** Names one run of the topic's presence offsets; another epoch means resync. */
  epoch: string;
  /** The last presence offset the members reflect (0: none yet). */
  offset: number;
  /** Online and away members. */
  members: PresenceMember[];
}

/**
 * One change to a topic's presence: a user's first connection joined
 * (`presence_join`), their last one left (`presence_leave`, with `reason`
 * closed / timeout / node-lost), or their status or metadata changed
 * (`presence_update`). Apply it only if `offset` is the next one of the
 * same `epoch`; otherwise ask for the state again.
 *
 * @example
 * ```ts
 * import type { PresenceDiffMessage } from "@heartwire/heartwire/protocol";
 * const left: PresenceDiffMessage = {
 *   type: "presence_leave",
 *   topic: "lobby",
 *   epoch: "n1:4",
 *   offset: 13,
 *   member: { id: "bob", status: "offline", last_seen: 1700000042000 },
 *   reason: "timeout",
 * };
 * ```
 */
export interface PresenceDiffMessage {
  /** Which change. */
  type: "presence_join" | "presence_leave" | "presence_update";
  /** The topic. */
  topic: string;
  /** The epoch of `offset`. */
  epoch: string;
  /** 1, 2, 3, … per topic and epoch. */
  offset: number;
  /** The user after the change (`offline` for a leave). */
  member: PresenceMember;
  /** Why the user left (`presence_leave` only). */
  reason?: string;
}

/**
 * Every server message the client library handles itself.
 *
 * @example
 * ```ts
 * import type { ProtocolMessage } from "@heartwire/heartwire/protocol";
 * const message: ProtocolMessage = { type: "ack", cseq: 3 };
 * ```
 */
export type ProtocolMessage =
  | Welcome
  | ResumeFailed
  | HeartbeatAck
  | ServerAck
  | ErrorMessage
  | ReconnectRequest
  | SubscribedMessage
  | UnsubscribedMessage
  | PresenceStateMessage
  | PresenceDiffMessage;

/**
 * Anything a server sends on `/ws`. Tell the two kinds apart with
 * {@linkcode isPublication}, then switch on `type`.
 *
 * @example
 * ```ts
 * import type { ServerMessage } from "@heartwire/heartwire/protocol";
 * const messages: ServerMessage[] = [
 *   { type: "ack", cseq: 1 },
 *   { type: "chat", topic: "lobby", offset: 1, text: "hi" },
 * ];
 * ```
 */
export type ServerMessage = ProtocolMessage | Publication;

/**
 * The message types of the protocol itself, in either direction: an
 * application may not register or publish them.
 *
 * @example
 * ```ts
 * import { RESERVED_TYPES } from "@heartwire/heartwire/protocol";
 * RESERVED_TYPES.has("ack"); // true
 * RESERVED_TYPES.has("move"); // false
 * ```
 */
export const RESERVED_TYPES: ReadonlySet<string> = new Set([
  "welcome",
  "resume_failed",
  "heartbeat",
  "heartbeat_ack",
  "ack",
  "error",
  "reconnect",
  "subscribe",
  "subscribed",
  "unsubscribe",
  "unsubscribed",
  "presence_subscribe",
  "presence_unsubscribe",
  "presence_state",
  "presence_join",
  "presence_leave",
  "presence_update",
]);

/**
 * Asks to receive a topic's publications; with `epoch` and `offset`, to
 * recover every publication after `offset` too.
 *
 * @example
 * ```ts
 * import type { SubscribeMessage } from "@heartwire/heartwire/protocol";
 * const subscribe: SubscribeMessage = { type: "subscribe", topic: "x", epoch: "k3", offset: 4 };
 * ```
 */
export interface SubscribeMessage {
  /** Always "subscribe". */
  type: "subscribe";
  /** Client sequence number; recovering subscribes go without one. */
  cseq?: number;
  /** The topic. */
  topic: string;
  /** The epoch the client's `offset` belongs to. */
  epoch?: string;
  /** The last offset the client has. */
  offset?: number;
}

/**
 * Stops receiving a topic's publications.
 *
 * @example
 * ```ts
 * import type { UnsubscribeMessage } from "@heartwire/heartwire/protocol";
 * const unsubscribe: UnsubscribeMessage = { type: "unsubscribe", cseq: 5, topic: "x" };
 * ```
 */
export interface UnsubscribeMessage {
  /** Always "unsubscribe". */
  type: "unsubscribe";
  /** Client sequence number. */
  cseq?: number;
  /** The topic. */
  topic: string;
}

/**
 * Asks for the presence of a topic: `presence_state`, then its diffs on this
 * connection (until `presence_unsubscribe` or the connection ends). Sent
 * again, it answers with the state again: how a client resyncs.
 *
 * @example
 * ```ts
 * import type { PresenceSubscribeMessage } from "@heartwire/heartwire/protocol";
 * const ask: PresenceSubscribeMessage = { type: "presence_subscribe", topic: "lobby" };
 * ```
 */
export interface PresenceSubscribeMessage {
  /** "presence_subscribe", or "presence_unsubscribe" to stop the diffs. */
  type: "presence_subscribe" | "presence_unsubscribe";
  /** Client sequence number (optional: both are idempotent). */
  cseq?: number;
  /** The topic. */
  topic: string;
}

/**
 * A message of a type the application registered: anything not reserved.
 *
 * @example
 * ```ts
 * import type { UserMessage } from "@heartwire/heartwire/protocol";
 * const move: UserMessage = { type: "move", cseq: 3, x: 1, y: 2 };
 * ```
 */
export interface UserMessage {
  /** The application's type. */
  type: string;
  /** Client sequence number; a message without one is processed without dedupe or ack. */
  cseq?: number;
  /** Fields that depend on the type. */
  [field: string]: unknown;
}

/**
 * Anything a client sends on `/ws`.
 *
 * @example
 * ```ts
 * import type { ClientMessage } from "@heartwire/heartwire/protocol";
 * const message: ClientMessage = { type: "subscribe", cseq: 1, topic: "lobby" };
 * ```
 */
export type ClientMessage =
  | Heartbeat
  | SubscribeMessage
  | UnsubscribeMessage
  | PresenceSubscribeMessage
  | UserMessage;

/**
 * A text frame that is not a valid message. The message says what is wrong
 * (never echoing the content), fit to send back as `{"type":"error","reason"}`.
 *
 * @example
 * ```ts
 * import { MessageError, parseServerMessage } from "@heartwire/heartwire/protocol";
 * try {
 *   parseServerMessage('{"type":"ack"}');
 * } catch (error) {
 *   if (error instanceof MessageError) console.log(error.message);
 *   // ack field "cseq" must be a whole number >= 0
 * }
 * ```
 */
export class MessageError extends Error {
  /**
   * Set by {@linkcode parseClientMessage}: the `cseq` of the invalid message,
   * when it had a valid one. The server refuses the message by that number
   * and acks it, so the client stops re-sending it.
   */
  cseq?: number;

  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "MessageError";
  }
}

type Fields = Record<string, unknown>;

function envelope(text: string): Fields {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new MessageError("message is not valid JSON");
  }
  if (
    typeof value !== "object" || value === null || Array.isArray(value) ||
    typeof (value as Fields).type !== "string"
  ) {
    throw new MessageError('message must be a JSON object with a string "type"');
  }
  return value as Fields;
}

function string(value: Fields, field: string): string {
  const found = value[field];
  if (typeof found === "string") return found;
  throw new MessageError(`${shortType(value)} field "${field}" must be a string`);
}

/** A sequence number, offset or delay: a safe integer >= `least`. */
function whole(value: Fields, field: string, least = 0): number {
  const found = value[field];
  if (Number.isSafeInteger(found) && (found as number) >= least) return found as number;
  throw new MessageError(`${shortType(value)} field "${field}" must be a whole number >= ${least}`);
}

/** The type, bounded: error reasons never echo much of what a peer sent. */
function shortType(value: Fields): string {
  return String(value.type).slice(0, 32);
}

/** Runs a heartbeat.ts parser, reporting its error as a MessageError. */
function heartbeatField<T>(parse: (value: unknown) => T | undefined, value: Fields): T {
  try {
    return parse(value)!;
  } catch (error) {
    throw new MessageError((error as Error).message);
  }
}

/** A presence member: an object with a string `id` and `status`; taken as is otherwise. */
function member(value: unknown): PresenceMember {
  const found = value as Fields;
  if (
    typeof found !== "object" || found === null || typeof found.id !== "string" ||
    typeof found.status !== "string"
  ) {
    throw new MessageError('presence member must be an object with a string "id" and "status"');
  }
  return found as unknown as PresenceMember;
}

/**
 * Whether a server message is a publication (of a topic, with an offset).
 *
 * @example
 * ```ts
 * import { isPublication, parseServerMessage } from "@heartwire/heartwire/protocol";
 * isPublication(parseServerMessage('{"type":"chat","topic":"a","offset":1}')); // true
 * isPublication(parseServerMessage('{"type":"ack","cseq":1}')); // false
 * ```
 */
export function isPublication(message: ServerMessage): message is Publication {
  return !RESERVED_TYPES.has(message.type);
}

/**
 * Parses one text frame from the server.
 *
 * Protocol messages come back with only their known fields, checked;
 * publications come back whole once their `topic` (a string) and `offset`
 * (a whole number >= 1) are checked.
 *
 * @throws {MessageError} if the text is not JSON, not an object with a string
 * `type`, or a field has the wrong type.
 *
 * @example
 * ```ts
 * import { parseServerMessage } from "@heartwire/heartwire/protocol";
 * parseServerMessage('{"type":"ack","cseq":4,"extra":1}'); // { type: "ack", cseq: 4 }
 * parseServerMessage('{"type":"chat","topic":"lobby","offset":7,"text":"hi"}'); // as is
 * ```
 */
export function parseServerMessage(text: string): ServerMessage {
  const value = envelope(text);
  switch (value.type) {
    case "welcome": {
      const timing = value.heartbeat;
      if (typeof timing !== "object" || timing === null) {
        throw new MessageError('welcome field "heartbeat" must be an object');
      }
      // Checked as an object of its own, so errors read `welcome.heartbeat field "interval"`.
      const beat = { type: "welcome.heartbeat", ...timing } as Fields;
      if (typeof value.resumed !== "boolean") {
        throw new MessageError('welcome field "resumed" must be a boolean');
      }
      return {
        type: "welcome",
        session: string(value, "session"),
        id: string(value, "id"),
        resumed: value.resumed,
        heartbeat: { interval: whole(beat, "interval", 1), timeout: whole(beat, "timeout", 1) },
        last_cseq: whole(value, "last_cseq"),
      };
    }
    case "resume_failed": {
      const failed: ResumeFailed = {
        type: "resume_failed",
        session: string(value, "session"),
        reason: string(value, "reason"),
      };
      if (value.last_cseq !== undefined) failed.last_cseq = whole(value, "last_cseq");
      return failed;
    }
    case "heartbeat_ack":
      return heartbeatField(parseHeartbeatAck, value);
    case "ack": {
      const ack: ServerAck = { type: "ack", cseq: whole(value, "cseq") };
      if (value.reply !== undefined) ack.reply = value.reply;
      return ack;
    }
    case "error": {
      const error: ErrorMessage = { type: "error", reason: string(value, "reason") };
      if (value.cseq !== undefined) error.cseq = whole(value, "cseq", 1);
      return error;
    }
    case "reconnect":
      return { type: "reconnect", delay: whole(value, "delay") };
    case "subscribed": {
      const subscribed: SubscribedMessage = {
        type: "subscribed",
        topic: string(value, "topic"),
        epoch: string(value, "epoch"),
        offset: whole(value, "offset"),
      };
      if (value.recovered !== undefined) {
        if (typeof value.recovered !== "boolean") {
          throw new MessageError('subscribed field "recovered" must be a boolean');
        }
        subscribed.recovered = value.recovered;
      }
      return subscribed;
    }
    case "unsubscribed":
      return { type: "unsubscribed", topic: string(value, "topic") };
    case "presence_state": {
      const members = value.members;
      if (!Array.isArray(members)) {
        throw new MessageError('presence_state field "members" must be an array');
      }
      return {
        type: "presence_state",
        topic: string(value, "topic"),
        epoch: string(value, "epoch"),
        offset: whole(value, "offset"),
        members: members.map(member),
      };
    }
    case "presence_join":
    case "presence_leave":
    case "presence_update": {
      const diff: PresenceDiffMessage = {
        type: value.type,
        topic: string(value, "topic"),
        epoch: string(value, "epoch"),
        offset: whole(value, "offset", 1),
        member: member(value.member),
      };
      if (value.reason !== undefined) diff.reason = string(value, "reason");
      return diff;
    }
    case "heartbeat":
    case "subscribe":
    case "unsubscribe":
    case "presence_subscribe":
    case "presence_unsubscribe":
      throw new MessageError(`"${value.type}" is a client message`);
    default:
      string(value, "topic");
      whole(value, "offset", 1);
      return value as Publication;
  }
}

/**
 * Parses one text frame from a client: what the server calls on `/ws`.
 *
 * Protocol messages come back with only their known fields, checked; a
 * message of any other type that is not reserved comes back whole (its type
 * is the application's to know). A `cseq` is optional and must be a whole
 * number >= 1.
 *
 * @throws {MessageError} if the text is not JSON, not an object with a string
 * `type`, the type is reserved for server messages, or a field has the wrong
 * type. Its `cseq` is the message's, if that one is valid.
 *
 * @example
 * ```ts
 * import { parseClientMessage } from "@heartwire/heartwire/protocol";
 * parseClientMessage('{"type":"move","cseq":3,"x":1}'); // { type: "move", cseq: 3, x: 1 }
 * parseClientMessage('{"type":"heartbeat","id":1}'); // { type: "heartbeat", id: 1 }
 * ```
 */
export function parseClientMessage(text: string): ClientMessage {
  const value = envelope(text);
  try {
    return clientMessage(value);
  } catch (error) {
    const cseq = value.cseq;
    if (error instanceof MessageError && Number.isSafeInteger(cseq) && (cseq as number) >= 1) {
      error.cseq = cseq as number;
    }
    throw error;
  }
}

function clientMessage(value: Fields): ClientMessage {
  switch (value.type) {
    case "heartbeat":
      return heartbeatField(parseHeartbeat, value);
    case "subscribe": {
      const message: SubscribeMessage = { type: "subscribe", topic: string(value, "topic") };
      if (value.cseq !== undefined) message.cseq = whole(value, "cseq", 1);
      if (value.offset !== undefined || value.epoch !== undefined) {
        message.epoch = string(value, "epoch");
        message.offset = whole(value, "offset");
      }
      return message;
    }
    case "unsubscribe": {
      const message: UnsubscribeMessage = { type: "unsubscribe", topic: string(value, "topic") };
      if (value.cseq !== undefined) message.cseq = whole(value, "cseq", 1);
      return message;
    }
    case "presence_subscribe":
    case "presence_unsubscribe": {
      const message: PresenceSubscribeMessage = { type: value.type, topic: string(value, "topic") };
      if (value.cseq !== undefined) message.cseq = whole(value, "cseq", 1);
      return message;
    }
  }
  if (RESERVED_TYPES.has(value.type as string)) {
    throw new MessageError(`"${value.type}" is a server message type`);
  }
  if (value.cseq !== undefined) whole(value, "cseq", 1);
  return value as UserMessage;
}

/**
 * Reads a server's retry hint from a close frame: code 1012 (service restart)
 * or 1013 (try again later) with the reason `retry-after=MS`. The client
 * waits at least that long before its next attempt.
 *
 * @example
 * ```ts
 * import { parseRetryAfter } from "@heartwire/heartwire/protocol";
 * parseRetryAfter(1013, "retry-after=5000"); // 5000
 * parseRetryAfter(1000, "retry-after=5000"); // undefined: only 1012 and 1013 carry hints
 * ```
 */
export function parseRetryAfter(code: number, reason: string): number | undefined {
  if (code !== 1012 && code !== 1013) return undefined;
  const match = /^retry-after=(\d{1,9})$/.exec(reason);
  return match ? Number(match[1]) : undefined;
}

/**
 * Builds the close reason that {@linkcode parseRetryAfter} reads (it fits the
 * 123-byte limit of RFC 6455 §5.5).
 *
 * @example
 * ```ts
 * import { retryAfterReason } from "@heartwire/heartwire/protocol";
 * retryAfterReason(5000); // "retry-after=5000"
 * ```
 */
export function retryAfterReason(ms: number): string {
  return `retry-after=${Math.max(0, Math.round(ms))}`;
}

/**
 * Builds the reason of a {@linkcode SESSION_TAKEN_OVER} close: `last_cseq=N`,
 * the last client message the session processed before the take-over. At
 * most 26 bytes, well within the 123 of RFC 6455 §5.5.
 *
 * @throws {RangeError} if `lastCseq` is not a whole number >= 0 that fits a
 * double exactly (rounding could claim an unprocessed message: a loss).
 *
 * @example
 * ```ts
 * import { takenOverReason } from "@heartwire/heartwire/protocol";
 * takenOverReason(7); // "last_cseq=7"
 * ```
 */
export function takenOverReason(lastCseq: number): string {
  if (!Number.isSafeInteger(lastCseq) || lastCseq < 0) {
    throw new RangeError(`last_cseq must be a whole number >= 0, not ${lastCseq}`);
  }
  return `last_cseq=${lastCseq}`;
}

/**
 * Reads what {@linkcode takenOverReason} wrote: the `last_cseq` of a
 * {@linkcode SESSION_TAKEN_OVER} close. Undefined for any other code or
 * reason (a server that does not say), meaning unknown.
 *
 * @example
 * ```ts
 * import { parseLastCseq } from "@heartwire/heartwire/protocol";
 * parseLastCseq(4000, "last_cseq=7"); // 7
 * parseLastCseq(4000, "session taken over"); // undefined: unknown
 * parseLastCseq(1000, "last_cseq=7"); // undefined: only 4000 carries it
 * ```
 */
export function parseLastCseq(code: number, reason: string): number | undefined {
  if (code !== SESSION_TAKEN_OVER) return undefined;
  const match = /^last_cseq=(\d{1,16})$/.exec(reason);
  const lastCseq = match ? Number(match[1]) : NaN;
  return Number.isSafeInteger(lastCseq) ? lastCseq : undefined;
}
