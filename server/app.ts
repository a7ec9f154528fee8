/**
 * The `/ws` application endpoint: JSON heartbeat, rooms, broadcast chat and
 * sessions that survive reconnects without losing or repeating a message.
 *
 * A connection opens with `GET /ws?id=CLIENT&session=S&last_seq=N` (every
 * parameter optional) and is told, in this order:
 *
 * 1. `resume_failed` — only if `session` was asked for and cannot be resumed
 *    (unknown, expired, replay buffer overrun, bad `last_seq`, an id longer
 *    than {@linkcode MAX_SESSION_ID_LENGTH}), with the session's last
 *    processed `cseq` when the server still knows it (see below);
 * 2. `welcome` — the session (resumed or new), the client id, the heartbeat
 *    timing to use and the last client `cseq` processed;
 * 3. on a resume, every application message after `last_seq`, in order, once.
 *
 * Then:
 *
 * | client sends | server answers |
 * |---|---|
 * | `heartbeat {id?, ts?}` | `heartbeat_ack` at once, echoing `id` and `ts` (never numbered) |
 * | `chat {text, room?, cseq?}` | `chat {seq, from, text, room, ts}` to every session in the room and to the sender, then `ack {cseq}` |
 * | `subscribe {room, cseq?}` | `subscribed {seq, room}`, then `ack {cseq}` |
 * | `unsubscribe {room, cseq?}` | `unsubscribed {seq, room}`, then `ack {cseq}` |
 * | `ack {seq}` | nothing: the replay buffer forgets messages up to `seq` |
 * | a `cseq` already processed | `ack {cseq}` only: a re-send is never processed twice |
 * | invalid JSON, unknown type, bad field | `error {reason}`; the connection stays usable |
 * | a refused message with a `cseq` (invalid, text too long, too many rooms) | `error {reason, cseq}`, then `ack {cseq}` |
 * | a binary frame | close 1003 (RFC 6455 §7.4.1) |
 *
 * Application messages are numbered per session (`seq` from 1) and buffered
 * while unacknowledged, also while the session is detached within its grace
 * period, so a client that comes back receives what it missed.
 *
 * A client that comes back too late still must not have a message processed
 * twice: its outbox holds messages whose ack was lost with the connection.
 * So a removed session leaves a tombstone (see {@linkcode SessionStore}), and
 * `resume_failed` carries `last_cseq`, the last client message the old
 * session processed; the client re-sends only the later ones. It is told
 * only if the `?id` asking is the session's or absent (the rule a resume
 * follows), never for a bad `last_seq`, and it is final: a session that
 * fails to resume is removed, and a connection still attached to it is
 * closed before anything more is processed.
 *
 * One connection per session is live. Two close codes end one because of
 * its session (RFC 6455 §7.4.2 private use; {@linkcode SESSION_TAKEN_OVER},
 * {@linkcode SESSION_ENDED}):
 *
 * | close | when | the client |
 * |---|---|---|
 * | 4000, reason `last_cseq=N` | a newer connection resumed the session | must not resume it (two tabs would take it from each other forever): drops its messages up to N, starts a new session, re-sends the rest |
 * | 4001 `session ended` | the session was removed (a failed resume by another connection, `sessions.remove()`) | resumes as after any drop; `resume_failed` tells it `last_cseq` (the tombstone is written before the close) |
 *
 * @module
 */
import { CloseCode } from "../protocol/close.ts";
import type { Clock } from "../protocol/clock.ts";
import { heartbeatAck } from "../protocol/heartbeat.ts";
import {
  type ChatMessage,
  type ClientMessage,
  type ErrorMessage,
  type HeartbeatTiming,
  MessageError,
  parseClientMessage,
  type ReconnectRequest,
  type ResumeFailed,
  retryAfterReason,
  SESSION_ENDED,
  SESSION_TAKEN_OVER,
  type SubscribeMessage,
  takenOverReason,
  type UnsubscribeMessage,
  type Welcome,
} from "../protocol/messages.ts";
import type { WebSocketConnection, WebSocketHandler } from "./connection.ts";
import { PreparedMessage, type Session, SessionStore } from "./sessions.ts";
import { systemClock } from "./timer_heap.ts";

/**
 * Options for {@linkcode WsApp}. Every field has a default.
 *
 * @example
 * ```ts
 * import { type WsAppOptions, createAppHandler } from "@heartwire/heartwire/server";
 * const options: WsAppOptions = { heartbeat: { interval: 25_000, timeout: 10_000 }, grace: 60_000 };
 * const app = createAppHandler(options);
 * app.dispose();
 * ```
 */
export interface WsAppOptions {
  /**
   * The heartbeat timing announced in `welcome`. Default 25 000 / 10 000;
   * {@linkcode serve} passes its `pingInterval` / `pingTimeout`.
   */
  heartbeat?: HeartbeatTiming;
  /** How long (ms) a disconnected session can be resumed. Default 60 000. */
  grace?: number;
  /** Bytes of JSON kept per session for replay. Default 64 KiB. */
  replayBytes?: number;
  /** Sessions kept at once, live and in grace. Default 10 000. */
  maxSessions?: number;
  /**
   * Removed sessions whose last `cseq` is remembered for `resume_failed`
   * (oldest forgotten first; about 200 bytes each). Default 4 × `maxSessions`.
   */
  maxTombstones?: number;
  /** The room every new session is in. Default "lobby". */
  defaultRoom?: string;
  /** Rooms one session may be in, the default room included. Default 16. */
  maxRoomsPerConnection?: number;
  /**
   * Rooms that may exist at once (a room exists while it has members); the
   * default room can always be created. Default 10 000.
   */
  maxRooms?: number;
  /** Longest room name, in UTF-16 code units. Default 64. */
  maxRoomNameLength?: number;
  /** Longest chat text, in UTF-16 code units. Default 4 096. */
  maxTextLength?: number;
  /** Monotonic time for grace periods, and the sweep timer. Default the system clock. */
  clock?: Clock;
  /** Wall-clock ms for `ts` of chat messages and `server_ts` of heartbeat acks. Default `Date.now`. */
  wallClock?: () => number;
  /**
   * Makes session ids; they must be unguessable (whoever holds one can
   * resume the session) and 1 to {@linkcode MAX_SESSION_ID_LENGTH} (256)
   * UTF-16 code units long, the most a `?session=` resume is accepted with.
   * A longer or empty id could never be resumed, so making a session with
   * one throws a `RangeError` (the connection fails with 1011). Default
   * `crypto.randomUUID` (36).
   */
  createId?: () => string;
}

/**
 * The longest session id, in UTF-16 code units, that `?session=` resumes: a
 * longer one is refused with `resume_failed` "invalid session id" (never cut
 * short, which could name another session), and
 * {@linkcode WsAppOptions.createId} may not make one.
 *
 * @example
 * ```ts
 * import { MAX_SESSION_ID_LENGTH, WsApp } from "@heartwire/heartwire/server";
 * const createId = () => `eu-1.${crypto.randomUUID()}`; // 41 characters
 * console.log(createId().length <= MAX_SESSION_ID_LENGTH); // true
 * const app = new WsApp({ createId });
 * app.dispose();
 * ```
 */
export const MAX_SESSION_ID_LENGTH = 256;

/** What a `/ws` connection carries in `ws.data`. */
interface Attachment {
  session: Session<WebSocketConnection>;
  /** The session was taken over or removed: ignore this one from now on. */
  replaced: boolean;
}

/** The client messages that carry a `cseq` and are processed once each. */
type NumberedMessage = ChatMessage | SubscribeMessage | UnsubscribeMessage;

/** The parameters of the `/ws` request target. */
interface WsQuery {
  id?: string;
  session?: string;
  lastSeq: string | null;
}

/** A client id must be printable and short: it is echoed to every member of a room. */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CLIENT_ID = /^[^\x00-\x1f\x7f]{1,64}$/;
/** `last_seq`: a whole number that fits a double exactly. */
const LAST_SEQ = /^\d{1,15}$/;
/** The retry hint given when every session slot is taken by a live connection. */
const FULL_RETRY_AFTER = 5_000;

function parseQuery(target: string): WsQuery {
  const mark = target.indexOf("?");
  if (mark < 0) return { lastSeq: null };
  const params = new URLSearchParams(target.slice(mark + 1));
  const query: WsQuery = { lastSeq: params.get("last_seq") };
  const id = params.get("id");
  if (id !== null && CLIENT_ID.test(id)) query.id = id;
  const session = params.get("session");
  if (session) query.session = session;
  return query;
}

/** A `createId` wrapped so that an id no client could resume with is an error, not a trap. */
function checkedCreateId(createId: () => string): () => string {
  return () => {
    const id = createId();
    if (typeof id !== "string" || id.length === 0 || id.length > MAX_SESSION_ID_LENGTH) {
      const what = typeof id === "string" ? `a session id of ${id.length} characters` : typeof id;
      throw new RangeError(
        `WsAppOptions.createId returned ${what}; session ids must have 1 to ${MAX_SESSION_ID_LENGTH}`,
      );
    }
    return id;
  };
}

/**
 * The `/ws` endpoint as a route handler for {@linkcode serve}. One instance
 * holds the sessions and rooms of every connection it serves.
 *
 * @example
 * ```ts
 * import { echoHandler, serve, WsApp } from "@heartwire/heartwire/server";
 * const app = new WsApp({ heartbeat: { interval: 25_000, timeout: 10_000 } });
 * const server = serve({ port: 0, routes: { "/ws": app, "/echo": echoHandler } });
 * app.publish("lobby", "notice", { text: "hello, everyone" });
 * await server.shutdown();
 * app.dispose();
 * ```
 */
export class WsApp implements WebSocketHandler {
  /** The sessions, live and in grace. */
  readonly sessions: SessionStore<WebSocketConnection>;
  /** The heartbeat timing announced in every `welcome`. */
  readonly heartbeat: HeartbeatTiming;

  readonly #defaultRoom: string;
  readonly #maxRoomsPerConnection: number;
  readonly #maxRooms: number;
  readonly #maxRoomNameLength: number;
  readonly #maxTextLength: number;
  readonly #wallClock: () => number;
  readonly #rooms = new Map<string, Set<Session<WebSocketConnection>>>();
  /** Connections attached to a session (open, not replaced). */
  readonly #live = new Set<WebSocketConnection>();

  /** Creates the endpoint; it serves once passed as a route to {@linkcode serve}. */
  constructor(options: WsAppOptions = {}) {
    this.heartbeat = {
      interval: options.heartbeat?.interval ?? 25_000,
      timeout: options.heartbeat?.timeout ?? 10_000,
    };
    this.#defaultRoom = options.defaultRoom ?? "lobby";
    this.#maxRoomsPerConnection = Math.max(1, options.maxRoomsPerConnection ?? 16);
    this.#maxRooms = Math.max(1, options.maxRooms ?? 10_000);
    this.#maxRoomNameLength = options.maxRoomNameLength ?? 64;
    this.#maxTextLength = options.maxTextLength ?? 4_096;
    this.#wallClock = options.wallClock ?? Date.now;
    this.sessions = new SessionStore<WebSocketConnection>({
      clock: options.clock ?? systemClock,
      grace: options.grace,
      replayBytes: options.replayBytes,
      maxSessions: options.maxSessions,
      maxTombstones: options.maxTombstones,
      createId: options.createId && checkedCreateId(options.createId),
      onRemove: (session) => {
        for (const room of session.rooms) this.#leave(session, room);
        // Still attached (a failed resume, or remove()): nothing more may be processed for
        // it. Its tombstone is written already: the client resumes and learns last_cseq.
        const ws = session.connection;
        if (ws && this.#live.has(ws)) this.#retire(ws, SESSION_ENDED, "session ended");
      },
    });
  }

  /** Rooms with at least one member, and their sessions. */
  get rooms(): ReadonlyMap<string, ReadonlySet<Session<WebSocketConnection>>> {
    return this.#rooms;
  }

  /** The session a connection of this endpoint is attached to, if any. */
  sessionOf(ws: WebSocketConnection): Session<WebSocketConnection> | undefined {
    const attachment = ws.data as Attachment | undefined;
    return attachment && !attachment.replaced ? attachment.session : undefined;
  }

  /** Handler callback: resumes or starts the session and sends the welcome. */
  open(ws: WebSocketConnection): void {
    const query = parseQuery(ws.request.target);
    let session: Session<WebSocketConnection> | undefined;
    let replay: string[] = [];
    if (query.session !== undefined) {
      const lastSeq = query.lastSeq ?? "0";
      const result = query.session.length > MAX_SESSION_ID_LENGTH
        ? { ok: false as const, reason: "invalid session id" }
        : LAST_SEQ.test(lastSeq)
        ? this.sessions.resume(query.session, Number(lastSeq), query.id)
        : { ok: false as const, reason: "invalid last_seq" };
      if (result.ok) {
        session = result.session;
        replay = result.replay;
      } else {
        const failed: ResumeFailed = {
          type: "resume_failed",
          // Bounded: the echo of an over-long id is cut (it was not looked up).
          session: query.session.slice(0, MAX_SESSION_ID_LENGTH),
          reason: result.reason,
        };
        if (result.lastCseq !== undefined) failed.last_cseq = result.lastCseq;
        ws.send(JSON.stringify(failed));
      }
    }
    const resumed = session !== undefined;
    if (!session) {
      session = this.sessions.create(query.id ?? `anon-${crypto.randomUUID().slice(0, 8)}`);
      if (!session) {
        ws.close(CloseCode.TryAgainLater, retryAfterReason(FULL_RETRY_AFTER));
        return;
      }
      this.#join(session, this.#defaultRoom);
    }
    const previous = session.connection;
    // One live socket per session: the newer connection wins. The older one's client
    // starts a new session, so it is told the session's lastCseq (final: see #retire).
    if (previous) {
      this.#retire(previous, SESSION_TAKEN_OVER, takenOverReason(session.lastCseq));
    }
    this.sessions.attach(session, ws);
    ws.data = { session, replaced: false } satisfies Attachment;
    this.#live.add(ws);
    const welcome: Welcome = {
      type: "welcome",
      session: session.id,
      id: session.clientId,
      resumed,
      heartbeat: this.heartbeat,
      last_cseq: session.lastCseq,
    };
    ws.send(JSON.stringify(welcome));
    for (const text of replay) ws.send(text);
  }

  /** Handler callback: one client message. */
  message(ws: WebSocketConnection, data: string | Uint8Array): void {
    const attachment = ws.data as Attachment | undefined;
    if (!attachment || attachment.replaced) return;
    if (typeof data !== "string") {
      ws.close(CloseCode.UnsupportedData, "binary messages are not supported on /ws");
      return;
    }
    const session = attachment.session;
    let message: ClientMessage;
    try {
      message = parseClientMessage(data);
    } catch (error) {
      if (!(error instanceof MessageError)) throw error;
      // Refused by its cseq, if it has one, like any refused message: else
      // the client's outbox would re-send it after every reconnect.
      this.#process(ws, session, error);
      return;
    }
    switch (message.type) {
      case "heartbeat":
        // Answered before anything else, so the client's RTT measures the network only.
        ws.send(JSON.stringify(heartbeatAck(message, { serverTs: this.#wallClock() })));
        return;
      case "ack":
        session.ack(message.seq);
        return;
    }
    this.#process(ws, session, message);
  }

  /** Handler callback: the connection ended; its session's grace period starts. */
  close(ws: WebSocketConnection): void {
    const attachment = ws.data as Attachment | undefined;
    if (!attachment || attachment.replaced) return;
    this.#live.delete(ws);
    if (attachment.session.connection === ws) this.sessions.detach(attachment.session);
  }

  /**
   * Sends a numbered application message `{type, seq, ...fields}` to every
   * session in `room` (buffered for the detached ones); returns how many.
   * `fields` must not hold `type` or `seq`.
   */
  publish(room: string, type: string, fields: Record<string, unknown> = {}): number {
    return this.#broadcast(room, new PreparedMessage(type, fields));
  }

  /**
   * Asks every connected client to close and come back after `delay` ms
   * (`{"type":"reconnect","delay"}`), e.g. before this server goes away.
   * Returns how many were asked.
   */
  requestReconnect(delay: number): number {
    const request: ReconnectRequest = { type: "reconnect", delay: Math.max(0, Math.round(delay)) };
    const text = JSON.stringify(request);
    for (const ws of this.#live) ws.send(text);
    return this.#live.size;
  }

  /**
   * Closes every connection with 1012 (service restart, RFC 6455 §7.4.1) and
   * the hint `retry-after=MS`; sessions stay resumable for their grace period.
   * To restart a whole server use
   * `server.shutdown({ code: 1012, reason: retryAfterReason(ms) })`.
   * Returns how many connections were closed.
   */
  restart(retryAfter: number): number {
    const count = this.#live.size;
    const reason = retryAfterReason(retryAfter);
    for (const ws of [...this.#live]) ws.close(CloseCode.ServiceRestart, reason);
    return count;
  }

  /** Closes every connection with 1001 and forgets every session and room. */
  dispose(): void {
    const live = [...this.#live];
    this.#live.clear();
    for (const ws of live) {
      (ws.data as Attachment).replaced = true;
      ws.close(CloseCode.GoingAway, "going away");
    }
    this.sessions.dispose();
    this.#rooms.clear();
  }

  /**
   * Detaches a live connection from its session for good and closes it with
   * `code` (4000 or 4001). Its messages are ignored from now on, so the
   * session's `lastCseq` is final for it.
   */
  #retire(ws: WebSocketConnection, code: number, reason: string): void {
    (ws.data as Attachment).replaced = true;
    this.#live.delete(ws);
    ws.close(code, reason);
  }

  /**
   * Carries out a numbered message, or refuses an invalid one, once per
   * `cseq`; then acks the `cseq`.
   */
  #process(
    ws: WebSocketConnection,
    session: Session<WebSocketConnection>,
    message: NumberedMessage | MessageError,
  ): void {
    const cseq = message.cseq;
    if (cseq !== undefined && cseq <= session.lastCseq) {
      this.#sendAck(ws, cseq); // a re-send after a reconnect: done already
      return;
    }
    const refused = message instanceof MessageError
      ? message.message
      : this.#apply(session, message);
    if (cseq !== undefined) session.lastCseq = cseq;
    if (refused !== undefined) this.#sendError(ws, refused, cseq);
    if (cseq !== undefined) this.#sendAck(ws, cseq);
  }

  /** Carries out a chat, subscribe or unsubscribe; returns why it was refused, if it was. */
  #apply(session: Session<WebSocketConnection>, message: NumberedMessage): string | undefined {
    switch (message.type) {
      case "chat": {
        if (message.text.length > this.#maxTextLength) {
          return `chat text is longer than ${this.#maxTextLength} characters`;
        }
        const room = message.room ?? this.#defaultRoom;
        const bad = this.#checkRoomName(room);
        if (bad) return bad;
        const chat = new PreparedMessage("chat", {
          from: session.clientId,
          text: message.text,
          room,
          ts: this.#wallClock(),
        });
        this.#broadcast(room, chat, session);
        return undefined;
      }
      case "subscribe": {
        const refused = this.#checkRoomName(message.room) ?? this.#join(session, message.room);
        if (refused) return refused;
        this.#deliver(session, new PreparedMessage("subscribed", { room: message.room }));
        return undefined;
      }
      case "unsubscribe": {
        const refused = this.#checkRoomName(message.room);
        if (refused) return refused;
        this.#leave(session, message.room);
        this.#deliver(session, new PreparedMessage("unsubscribed", { room: message.room }));
        return undefined;
      }
    }
  }

  #checkRoomName(room: string): string | undefined {
    if (room.length === 0 || room.length > this.#maxRoomNameLength) {
      return `room name must have 1 to ${this.#maxRoomNameLength} characters`;
    }
    return undefined;
  }

  /** Adds `session` to `room`; returns why not if a bound is reached. */
  #join(session: Session<WebSocketConnection>, room: string): string | undefined {
    if (session.rooms.has(room)) return undefined;
    if (session.rooms.size >= this.#maxRoomsPerConnection) {
      return `already in ${this.#maxRoomsPerConnection} rooms`;
    }
    let members = this.#rooms.get(room);
    if (!members) {
      // Exempt from the cap, or a full server would leave new sessions in no room.
      if (room !== this.#defaultRoom && this.#rooms.size >= this.#maxRooms) {
        return "too many rooms on this server";
      }
      members = new Set();
      this.#rooms.set(room, members);
    }
    members.add(session);
    session.rooms.add(room);
    return undefined;
  }

  #leave(session: Session<WebSocketConnection>, room: string): void {
    session.rooms.delete(room);
    const members = this.#rooms.get(room);
    if (!members) return;
    members.delete(session);
    if (members.size === 0) this.#rooms.delete(room);
  }

  /** Delivers to every member of `room`, and to `sender` even if not a member. */
  #broadcast(
    room: string,
    message: PreparedMessage,
    sender?: Session<WebSocketConnection>,
  ): number {
    const members = this.#rooms.get(room);
    let count = 0;
    if (members) {
      for (const session of members) this.#deliver(session, message);
      count = members.size;
    }
    if (sender && !members?.has(sender)) {
      this.#deliver(sender, message);
      count++;
    }
    return count;
  }

  /** Numbers and buffers `message` for `session`, and sends it if it is connected. */
  #deliver(session: Session<WebSocketConnection>, message: PreparedMessage): void {
    const text = session.push(message);
    session.connection?.send(text);
  }

  #sendAck(ws: WebSocketConnection, cseq: number): void {
    ws.send(`{"type":"ack","cseq":${cseq}}`);
  }

  #sendError(ws: WebSocketConnection, reason: string, cseq?: number): void {
    const error: ErrorMessage = { type: "error", reason };
    if (cseq !== undefined) error.cseq = cseq;
    ws.send(JSON.stringify(error));
  }
}

/**
 * Creates the `/ws` endpoint handler: `new WsApp(options)`.
 *
 * @example
 * ```ts
 * import { createAppHandler, serve } from "@heartwire/heartwire/server";
 * const app = createAppHandler({ grace: 30_000, defaultRoom: "lobby" });
 * const server = serve({ port: 0, routes: { "/ws": app } });
 * await server.shutdown();
 * app.dispose();
 * ```
 */
export function createAppHandler(options: WsAppOptions = {}): WsApp {
  return new WsApp(options);
}
