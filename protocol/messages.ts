/**
 * The `/ws` application protocol: a JSON envelope `{"type": ..., ...}` on text
 * frames, shared by the server and the reconnecting client.
 *
 * ```text
 * client                                              server
 *   │ GET /ws?id=c1&session=s1&last_seq=7  (resume)     │
 *   │ ◀──── {"type":"welcome","session":"s1",...,"last_cseq":3}
 *   │ ◀──── {"type":"chat","seq":8,...}   (replay of what was missed)
 *   │ ────▶ {"type":"chat","cseq":4,"text":"hi"}   (outbox re-sent)
 *   │ ◀──── {"type":"ack","cseq":4}
 *   │ ────▶ {"type":"ack","seq":8}
 *
 *   │ GET /ws?id=c1&session=s1&last_seq=9  (s1 expired) │
 *   │ ◀──── {"type":"resume_failed","session":"s1",...,"last_cseq":5}
 *   │ ◀──── {"type":"welcome","session":"s2","resumed":false,...,"last_cseq":0}
 *   │ ────▶ {"type":"chat","cseq":6,...}   (only what s1 had not processed)
 * ```
 *
 * Server messages that carry a `seq` are application messages: numbered per
 * session, replayed after a resume, acknowledged by the client. The rest
 * (welcome, acks, errors, heartbeat answers) are protocol messages and are
 * never numbered. Client messages carry a `cseq` so the server can drop
 * re-sends it already processed; `cseq` only has to rise, so a client keeps
 * its numbering when it moves to a new session (whose `last_cseq` is 0).
 *
 * A `resume_failed` with `last_cseq` means the old session processed the
 * client messages up to it and no others, ever: the client drops those from
 * its outbox and re-sends only the rest, so none is done twice. Without it
 * the server does not know (the session is long gone, or the server
 * restarted), and re-sending is the client's choice between a duplicate and
 * a loss.
 *
 * Two close codes end a connection because of its session: 4000
 * ({@linkcode SESSION_TAKEN_OVER}, reason `last_cseq=N`) when a newer
 * connection resumed it — the client starts a new session and re-sends only
 * the messages after N — and 4001 ({@linkcode SESSION_ENDED}) when the server
 * removed it — the client resumes as usual and is told `last_cseq` in the
 * `resume_failed` that follows.
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
  /** True if the asked session was resumed; false for a new session (seq restarts at 1). */
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
  /** Why, for people: "unknown", "expired", "replay buffer overrun"... */
  reason: string;
  /**
   * Highest client `cseq` the failed session processed; it will process no
   * more. Present only when the server still knows it (and the session
   * belonged to the asking client id); absent means unknown.
   */
  last_cseq?: number;
}

/**
 * The server processed every client message up to `cseq` (cumulative).
 *
 * @example
 * ```ts
 * import type { ServerAck } from "@heartwire/heartwire/protocol";
 * const ack: ServerAck = { type: "ack", cseq: 4 };
 * ```
 */
export interface ServerAck {
  /** Always "ack". */
  type: "ack";
  /** Highest client sequence number processed. */
  cseq: number;
}

/**
 * The server could not handle a message; the connection stays usable.
 *
 * @example
 * ```ts
 * import type { ErrorMessage } from "@heartwire/heartwire/protocol";
 * const error: ErrorMessage = { type: "error", reason: "unknown message type" };
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
 * A numbered server message meant for the application (chat, subscribed,
 * presence...). `seq` rises by 1 per session, across resumed connections.
 *
 * @example
 * ```ts
 * import type { AppMessage } from "@heartwire/heartwire/protocol";
 * const message: AppMessage = { type: "subscribed", seq: 8, room: "x" };
 * ```
 */
export interface AppMessage {
  /** What kind of message this is. */
  type: string;
  /** Per-session sequence number, from 1. */
  seq: number;
  /** Fields that depend on the type. */
  [field: string]: unknown;
}

/**
 * A chat message as the server broadcasts it.
 *
 * @example
 * ```ts
 * import type { ChatBroadcast } from "@heartwire/heartwire/protocol";
 * const chat: ChatBroadcast = {
 *   type: "chat",
 *   seq: 7,
 *   from: "c1",
 *   text: "hi",
 *   room: "lobby",
 *   ts: 1700000000000,
 * };
 * ```
 */
export interface ChatBroadcast extends AppMessage {
  /** Always "chat". */
  type: "chat";
  /** The sender's client id. */
  from: string;
  /** The message text. */
  text: string;
  /** The room it was sent to. */
  room: string;
  /** Server time (ms) when it was accepted. */
  ts: number;
}

/**
 * Confirms a subscription to a room.
 *
 * @example
 * ```ts
 * import type { SubscribedMessage } from "@heartwire/heartwire/protocol";
 * const subscribed: SubscribedMessage = { type: "subscribed", seq: 8, room: "x" };
 * ```
 */
export interface SubscribedMessage extends AppMessage {
  /** Always "subscribed". */
  type: "subscribed";
  /** The room now subscribed to. */
  room: string;
}

/**
 * Confirms that a room was left.
 *
 * @example
 * ```ts
 * import type { UnsubscribedMessage } from "@heartwire/heartwire/protocol";
 * const unsubscribed: UnsubscribedMessage = { type: "unsubscribed", seq: 9, room: "x" };
 * ```
 */
export interface UnsubscribedMessage extends AppMessage {
  /** Always "unsubscribed". */
  type: "unsubscribed";
  /** The room no longer subscribed to. */
  room: string;
}

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
 * Every unnumbered server message: handled by the client library itself.
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
  | ReconnectRequest;

/**
 * Anything a server sends on `/ws`. Tell the two kinds apart with
 * {@linkcode isAppMessage}, then switch on `type`.
 *
 * @example
 * ```ts
 * import type { ServerMessage } from "@heartwire/heartwire/protocol";
 * const messages: ServerMessage[] = [{ type: "ack", cseq: 1 }, { type: "chat", seq: 1 }];
 * ```
 */
export type ServerMessage = ProtocolMessage | AppMessage;

/**
 * The client processed every server message up to `seq` (cumulative).
 *
 * @example
 * ```ts
 * import type { ClientAck } from "@heartwire/heartwire/protocol";
 * const ack: ClientAck = { type: "ack", seq: 8 };
 * ```
 */
export interface ClientAck {
  /** Always "ack". */
  type: "ack";
  /** Highest server sequence number processed. */
  seq: number;
}

/**
 * A chat message as a client sends it.
 *
 * @example
 * ```ts
 * import type { ChatMessage } from "@heartwire/heartwire/protocol";
 * const chat: ChatMessage = { type: "chat", cseq: 3, text: "hi", room: "lobby" };
 * ```
 */
export interface ChatMessage {
  /** Always "chat". */
  type: "chat";
  /** Client sequence number; a message without one is processed without dedupe. */
  cseq?: number;
  /** The message text. */
  text: string;
  /** The room; the server's default room if absent. */
  room?: string;
}

/**
 * Asks to receive a room's messages.
 *
 * @example
 * ```ts
 * import type { SubscribeMessage } from "@heartwire/heartwire/protocol";
 * const subscribe: SubscribeMessage = { type: "subscribe", cseq: 4, room: "x" };
 * ```
 */
export interface SubscribeMessage {
  /** Always "subscribe". */
  type: "subscribe";
  /** Client sequence number. */
  cseq?: number;
  /** The room. */
  room: string;
}

/**
 * Stops receiving a room's messages.
 *
 * @example
 * ```ts
 * import type { UnsubscribeMessage } from "@heartwire/heartwire/protocol";
 * const unsubscribe: UnsubscribeMessage = { type: "unsubscribe", cseq: 5, room: "x" };
 * ```
 */
export interface UnsubscribeMessage {
  /** Always "unsubscribe". */
  type: "unsubscribe";
  /** Client sequence number. */
  cseq?: number;
  /** The room. */
  room: string;
}

/**
 * Anything a client sends on `/ws`.
 *
 * @example
 * ```ts
 * import type { ClientMessage } from "@heartwire/heartwire/protocol";
 * const message: ClientMessage = { type: "subscribe", cseq: 1, room: "lobby" };
 * ```
 */
export type ClientMessage =
  | Heartbeat
  | ClientAck
  | ChatMessage
  | SubscribeMessage
  | UnsubscribeMessage;

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
  throw new MessageError(`${value.type} field "${field}" must be a string`);
}

/** A sequence number or delay: a safe integer >= `least`. */
function whole(value: Fields, field: string, least = 0): number {
  const found = value[field];
  if (Number.isSafeInteger(found) && (found as number) >= least) return found as number;
  throw new MessageError(`${value.type} field "${field}" must be a whole number >= ${least}`);
}

/** Runs a heartbeat.ts parser, reporting its error as a MessageError. */
function heartbeatField<T>(parse: (value: unknown) => T | undefined, value: Fields): T {
  try {
    return parse(value)!;
  } catch (error) {
    throw new MessageError((error as Error).message);
  }
}

/**
 * Whether a server message is an application message (it has a `seq`).
 *
 * @example
 * ```ts
 * import { isAppMessage, parseServerMessage } from "@heartwire/heartwire/protocol";
 * isAppMessage(parseServerMessage('{"type":"chat","seq":1,"text":"hi"}')); // true
 * isAppMessage(parseServerMessage('{"type":"ack","cseq":1}')); // false
 * ```
 */
export function isAppMessage(message: ServerMessage): message is AppMessage {
  return typeof (message as { seq?: unknown }).seq === "number";
}

/**
 * Parses one text frame from the server.
 *
 * Protocol messages come back with only their known fields, checked;
 * application messages come back whole once their `seq` (a whole number
 * >= 1) is checked. Any other message is an error, because every message that
 * is not a protocol message must be numbered.
 *
 * @throws {MessageError} if the text is not JSON, not an object with a string
 * `type`, or a field has the wrong type.
 *
 * @example
 * ```ts
 * import { parseServerMessage } from "@heartwire/heartwire/protocol";
 * parseServerMessage('{"type":"ack","cseq":4,"extra":1}'); // { type: "ack", cseq: 4 }
 * parseServerMessage('{"type":"chat","seq":7,"text":"hi"}'); // returned as is
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
    case "ack":
      return { type: "ack", cseq: whole(value, "cseq") };
    case "error": {
      const error: ErrorMessage = { type: "error", reason: string(value, "reason") };
      if (value.cseq !== undefined) error.cseq = whole(value, "cseq", 1);
      return error;
    }
    case "reconnect":
      return { type: "reconnect", delay: whole(value, "delay") };
    default:
      whole(value, "seq", 1);
      return value as AppMessage;
  }
}

/**
 * Parses one text frame from a client: what the server calls on `/ws`.
 *
 * Known messages come back with only their known fields, checked. A `cseq`,
 * where allowed, is optional and must be a whole number >= 1.
 *
 * @throws {MessageError} if the text is not JSON, not an object with a string
 * `type`, the type is unknown, or a field has the wrong type. Its `cseq` is
 * the message's, if that one is valid.
 *
 * @example
 * ```ts
 * import { parseClientMessage } from "@heartwire/heartwire/protocol";
 * parseClientMessage('{"type":"chat","cseq":3,"text":"hi"}'); // { type: "chat", cseq: 3, text: "hi" }
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
  let message: ChatMessage | SubscribeMessage | UnsubscribeMessage;
  switch (value.type) {
    case "heartbeat":
      return heartbeatField(parseHeartbeat, value);
    case "ack":
      return { type: "ack", seq: whole(value, "seq") };
    case "chat":
      message = { type: "chat", text: string(value, "text") };
      if (value.room !== undefined) message.room = string(value, "room");
      break;
    case "subscribe":
    case "unsubscribe":
      message = { type: value.type, room: string(value, "room") };
      break;
    default:
      throw new MessageError(`unknown message type "${String(value.type).slice(0, 32)}"`);
  }
  if (value.cseq !== undefined) message.cseq = whole(value, "cseq", 1);
  return message;
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
