/**
 * The hub: an open application layer on one WebSocket route — sessions that
 * survive reconnects, topics with recoverable history, and the
 * application's own message types with request–response.
 *
 * A connection opens with `GET /ws?id=CLIENT&session=S` (both optional) and
 * is told, in this order:
 *
 * 1. `resume_failed` — only if `session` was asked for and cannot be resumed,
 *    with the session's last processed `cseq` when the server still knows it;
 * 2. `welcome` — the session (resumed or new), the client id, the heartbeat
 *    timing and the last client `cseq` processed;
 * 3. `subscribed {topic, epoch, offset}` for every topic of the session and
 *    for its direct topic (`$direct`); publications follow from `offset + 1`.
 *
 * Then:
 *
 * | client sends | server answers |
 * |---|---|
 * | `heartbeat {id?, ts?}` | `heartbeat_ack` at once, before anything queued (never numbered) |
 * | `subscribe {topic, cseq?}` | `subscribed {topic, epoch, offset}`, then `ack {cseq}` |
 * | `subscribe {topic, epoch, offset}` | `subscribed {…, recovered}`, then every publication after `offset` if recovered |
 * | `unsubscribe {topic, cseq?}` | `unsubscribed {topic}`, then `ack {cseq}` |
 * | `presence_subscribe {topic, cseq?}` | `presence_state {topic, epoch, offset, members}`, then `presence_join` / `presence_leave` / `presence_update` diffs (with a `presence` tracker) |
 * | `presence_unsubscribe {topic, cseq?}` | no more presence diffs of `topic` (then `ack {cseq}`) |
 * | `{type, cseq?, …}` of a registered type | the handler runs; `ack {cseq, reply?}` with its return value |
 * | a handler throws or rejects | `error {reason, cseq?}`, then `ack {cseq}`; the connection stays |
 * | a shared store (Redis) is unreachable for it | `error {reason, cseq}`, no `ack`, close 1013 `retry-after`: neither it nor what follows is processed; the client resumes and re-sends |
 * | a `cseq` already processed | `ack {cseq}` only: a re-send is never processed twice |
 * | a `cseq` more than `maxCseqJump` above the last processed | `error {reason}`; nothing processed, no ack |
 * | invalid JSON, unknown or reserved type, bad field | `error {reason, cseq?}` (+ `ack` with a cseq) |
 * | a binary frame | close 1003 (RFC 6455 §7.4.1) |
 * | a message while `maxPendingMessages` wait their turn | close 1013 `retry-after`: it is not processed; the client resumes and re-sends what was not acked |
 * | a `subscribe` with an offset or a `presence_subscribe` once `maxReplayBytes` were replayed (but the first of each topic's on a connection) | `error {reason, cseq?}`, no `ack`, close 1013 `retry-after`: neither it nor what follows is processed; the client resumes (with a new budget) and asks again |
 *
 * Messages of one connection are handled one at a time, in order, so a
 * handler's promise holds back the next message of that connection only.
 *
 * With a `presence` tracker, every welcomed connection is a presence
 * connection of its client id (online at once, no further message), a
 * member of its session's topics; heartbeats keep it alive, other messages
 * count as activity (not `away`), and its close is a `leave` with reason
 * `timeout` when keepalive dropped it, else `closed`.
 *
 * With a `broker` (several nodes, e.g. `hub/redis/`), `publish` appends
 * through it and each node delivers what the broker hands back, in offset
 * order; a connection that meets an unreachable store on opening is closed
 * with 1013 and a retry hint.
 *
 * @module
 */
import { CloseCode } from "../protocol/close.ts";
import type { Clock } from "../protocol/clock.ts";
import { type Heartbeat, heartbeatAck } from "../protocol/heartbeat.ts";
import {
  type ClientMessage,
  DIRECT_TOPIC,
  type ErrorMessage,
  type HeartbeatTiming,
  MessageError,
  parseClientMessage,
  type ReconnectRequest,
  RESERVED_TYPES,
  type ResumeFailed,
  retryAfterReason,
  SESSION_ENDED,
  SESSION_TAKEN_OVER,
  type SubscribedMessage,
  type SubscribeMessage,
  takenOverReason,
  type TopicPosition,
  type UserMessage,
  type Welcome,
} from "../protocol/messages.ts";
import {
  type CloseInfo,
  ipLimitKey,
  systemClock,
  type WebSocketConnection,
  type WebSocketHandler,
} from "../server/mod.ts";
import { type PresenceConn, PresenceLink } from "./_presence_link.ts";
import { PreparedMessage } from "../protocol/frame_encoder.ts";
import { type Broker, UnavailableError } from "./broker.ts";
import { type HistoryStore, MemoryHistory } from "./history.ts";
import type { Presence } from "./presence/presence.ts";
import { ReplayBudget } from "./_replay_budget.ts";
import { utf8Length } from "../protocol/utf8.ts";
import { MemorySessionStore, type Session, type SessionStore } from "./sessions.ts";

/**
 * What a handler is given besides the message.
 *
 * @example
 * ```ts
 * import { Hub } from "@heartwire/heartwire/hub";
 * const hub = new Hub();
 * hub.on("whoami", (ctx) => ({ id: ctx.clientId, session: ctx.session.id }));
 * hub.dispose();
 * ```
 */
export interface HubContext {
  /** The hub. */
  readonly hub: Hub;
  /** The sender's session. */
  readonly session: Session;
  /** The sender's client id. */
  readonly clientId: string;
  /** The connection the message came on. */
  readonly connection: WebSocketConnection;
  /** Sends a direct message to the sender's session (recoverable, like any publication). */
  send(type: string, fields?: Record<string, unknown>): Promise<TopicPosition | undefined>;
}

/**
 * A message handler: its return value (or what its promise resolves to)
 * becomes the `reply` of the message's ack; a throw or rejection becomes an
 * `error` with the error's message.
 *
 * @example
 * ```ts
 * import type { HubHandler } from "@heartwire/heartwire/hub";
 * const add: HubHandler<{ a: number; b: number }> = (_ctx, m) => ({ sum: m.a + m.b });
 * ```
 */
export type HubHandler<M = Record<string, unknown>> = (
  ctx: HubContext,
  message: M & { type: string; cseq?: number },
) => unknown;

/**
 * Decides whether a session may join a topic: `true` allows; `false` or a
 * reason (a string) refuses with an `error`.
 *
 * @example
 * ```ts
 * import type { Authorize } from "@heartwire/heartwire/hub";
 * const authorize: Authorize = (session, topic) =>
 *   !topic.startsWith("admin:") || session.clientId === "root" || "admins only";
 * ```
 */
export type Authorize = (
  session: Session,
  topic: string,
) => boolean | string | Promise<boolean | string>;

/**
 * What the hub counts, if given {@linkcode HubOptions.metrics}: the
 * server's `HeartwireMetrics` has these methods, so the program passes the
 * same object to `serve()` and to the hub.
 *
 * @example
 * ```ts
 * import { Hub, type HubMetrics } from "@heartwire/heartwire/hub";
 * let beats = 0;
 * const metrics: HubMetrics = { appHeartbeat: () => beats++, resume: () => {} };
 * const hub = new Hub({ metrics });
 * hub.dispose();
 * ```
 */
export interface HubMetrics {
  /** An app heartbeat was answered (its round trip is the client's to measure). */
  appHeartbeat(): void;
  /** A `?session=` resume succeeded or failed. */
  resume(ok: boolean): void;
  /**
   * Reads the number of users online in presence at scrape time (the hub
   * calls it once, when it has a presence tracker).
   */
  watchPresence?(online: () => number): void;
}

/**
 * Options for {@linkcode Hub}. Every field has a default.
 *
 * @example
 * ```ts
 * import { Hub, type HubOptions } from "@heartwire/heartwire/hub";
 * const options: HubOptions = { grace: 30_000, maxTopicsPerSession: 8 };
 * const hub = new Hub(options);
 * hub.dispose();
 * ```
 */
export interface HubOptions {
  /** The heartbeat timing announced in `welcome`. Default 25 000 / 10 000. */
  heartbeat?: HeartbeatTiming;
  /** Where sessions live. Default a {@linkcode MemorySessionStore} with `grace`, `maxSessions`, `clock`, `createId`. */
  sessions?: SessionStore;
  /** Where topic histories live. Default a {@linkcode MemoryHistory}. */
  history?: HistoryStore;
  /**
   * Carries publications to the other nodes (e.g. Redis): with one,
   * `publish` goes through it and this hub delivers what it hands back, in
   * offset order. Default none: one node.
   */
  broker?: Broker;
  /** For the default session store: how long (ms) a detached session can be resumed. Default 60 000. */
  grace?: number;
  /** For the default session store: sessions kept at once. Default 10 000. */
  maxSessions?: number;
  /** For the default session store: makes session ids (1 to 256 characters, unguessable). */
  createId?: () => string;
  /** Decides joins; default: every topic whose name is valid. */
  authorize?: Authorize;
  /** Topics one session may be in, default topics included. Default 16. */
  maxTopicsPerSession?: number;
  /** Topics with members on this hub at once; default topics may always be joined. Default 10 000. */
  maxTopics?: number;
  /** Longest topic name, in UTF-16 code units. Default 64. */
  maxTopicNameLength?: number;
  /**
   * How far above the last processed `cseq` a message's `cseq` may be; a
   * bigger jump is refused unprocessed (a `cseq` of 2^53−1 would otherwise
   * make every later message "done already"). Default 1 000.
   */
  maxCseqJump?: number;
  /** Publications held back per topic while a connection recovers it. Default 10 000. */
  maxRecoveryBuffer?: number;
  /**
   * Messages of one connection waiting their turn (behind a slow handler or
   * store) before it is closed with 1013: the socket is read on regardless,
   * so without a bound a fast sender would queue without limit. Default 1 000.
   */
  maxPendingMessages?: number;
  /**
   * Bytes one connection may make the hub send again — history recoveries
   * (`subscribe` with an offset) and presence states (`presence_subscribe`)
   * — as a bucket that refills in a minute: a loop of such requests would
   * otherwise turn a few bytes each into whole histories read and sent. A
   * replay starts while anything is left and always completes (the last may
   * overdraw); one asked for with nothing left is refused unprocessed with
   * close 1013 and a retry hint, and the client resumes on a new connection
   * with a full bucket and asks again, losing nothing. The first replay of
   * each topic's history and presence on a connection (as many as a
   * reconnect asks for: `2 × maxTopicsPerSession + 1`) starts even with
   * nothing left, so a client whose presence states alone outweigh the
   * bucket is not shed at the same one on every reconnect; it is charged all
   * the same. Size it for what one reconnect asks for: the history of every
   * topic a session may be in, and the state of every topic whose presence
   * it follows (asked for afresh on every reconnect). `Infinity` turns it
   * off. Default 512 KiB per topic of
   * `maxTopicsPerSession` and one more for `$direct` (8.5 MiB): a full
   * default history (256 KiB) of each, and as much again for presence.
   */
  maxReplayBytes?: number;
  /** Monotonic time for grace periods and the sweep timer. Default the system clock. */
  clock?: Clock;
  /** Wall-clock ms for `server_ts` of heartbeat acks. Default `Date.now`. */
  wallClock?: () => number;
  /**
   * Who is online: each welcomed connection joins it under its client id,
   * and clients may follow a topic's presence (`presence_subscribe`). The
   * caller starts and closes it. Its `presenceTimeout` should exceed the
   * heartbeat interval + timeout, or quiet clients flicker offline. Default none.
   */
  presence?: Presence;
  /**
   * Told about an unexpected error (a store failing, a bad `createId`); the
   * connection it happened on is closed with 1011. Handler errors are not
   * unexpected: they go back to the client as `error`. Default `console.error`.
   */
  onError?: (error: unknown) => void;
  /** Counts app heartbeats and resumes (e.g. the server's `HeartwireMetrics`). Default none. */
  metrics?: HubMetrics;
}

/**
 * The longest session id, in UTF-16 code units, that `?session=` resumes: a
 * longer one is refused with `resume_failed` "invalid session id" (never cut
 * short, which could name another session).
 *
 * @example
 * ```ts
 * import { MAX_SESSION_ID_LENGTH } from "@heartwire/heartwire/hub";
 * const createId = () => `eu-1.${crypto.randomUUID()}`; // 41 characters
 * console.log(createId().length <= MAX_SESSION_ID_LENGTH); // true
 * ```
 */
export const MAX_SESSION_ID_LENGTH = 256;

/** What a `/ws` connection carries in `ws.data`. */
interface Attachment {
  ws: WebSocketConnection;
  /** Set once the welcome is on its way. */
  session: Session | undefined;
  /** Taken over, removed or closed: ignore this connection from now on. */
  replaced: boolean;
  /** Where the next message of this connection waits its turn. */
  chain: Promise<void>;
  /** Messages queued on `chain` and not yet handled (`maxPendingMessages`). */
  pending: number;
  /** Topics being recovered: their live publications wait here, in offset order. */
  recovering: Map<string, { offset: number; text: string }[]>;
  /** This connection in presence, once welcomed (with a `presence` tracker). */
  presence?: PresenceConn;
  /** What it may still make the hub replay (none with `maxReplayBytes: Infinity`). */
  budget?: ReplayBudget;
}

/** A client id must be printable and short: it is echoed to every member of a topic. */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CLIENT_ID = /^[^\x00-\x1f\x7f]{1,64}$/;
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CONTROL = /[\x00-\x1f\x7f]/;
/** The retry hint given when no session can be made. */
const FULL_RETRY_AFTER = 5_000;

/** Where a direct topic's history is kept. */
function directKey(session: Session): string {
  return `$direct:${session.id}`;
}

/**
 * If a message asks for data sent before (a history recovery, a presence
 * state), what `maxReplayBytes` bounds, which: `h` or `p` and the topic.
 * One for a topic followed, from an offset this connection was sent already,
 * is answered in full all the same: the contract is "every publication after
 * `offset`", and a client may have lost what it was sent; the budget bounds
 * it, not a dedupe.
 */
function replayOf(message: ClientMessage | MessageError): string | undefined {
  if (message instanceof MessageError) return undefined;
  const { topic, epoch, offset } = message as Partial<SubscribeMessage>;
  if (message.type === "presence_subscribe") return `p ${topic}`;
  const recovers = message.type === "subscribe" && epoch !== undefined && offset !== undefined;
  return recovers ? `h ${topic}` : undefined;
}

/** Just the epoch and offset (not the text of an append). */
function positionOf({ epoch, offset }: TopicPosition): TopicPosition {
  return { epoch, offset };
}

/** The query of the upgrade request, whatever shape the server gives the request in. */
function queryOf(ws: WebSocketConnection): URLSearchParams {
  const request = ws.request as unknown as { target?: string; url?: string };
  const target = request.target ?? request.url ?? "";
  const mark = target.indexOf("?");
  return new URLSearchParams(mark < 0 ? "" : target.slice(mark + 1));
}

/**
 * Serialises a publication once, around its offset: `{"type","topic","offset",…fields}`.
 *
 * @throws {TypeError} if the type is reserved or `fields` holds `type`, `topic` or `offset`.
 */
function encoder(type: string, topic: string, fields: Record<string, unknown>) {
  if (RESERVED_TYPES.has(type)) throw new TypeError(`"${type}" is a reserved message type`);
  if ("type" in fields || "topic" in fields || "offset" in fields) {
    throw new TypeError('publication fields must not hold "type", "topic" or "offset"');
  }
  const head = `{"type":${JSON.stringify(type)},"topic":${JSON.stringify(topic)},"offset":`;
  const rest = JSON.stringify(fields);
  const tail = rest === "{}" ? "}" : "," + rest.slice(1);
  // The parts let a shared store make the text where it decides the offset (in one step).
  return Object.assign((offset: number) => head + offset + tail, { head, tail });
}

/**
 * An open application layer for a WebSocket route: pass it as the route's
 * handler (`serve({ routes: { "/ws": hub } })`). One instance holds the
 * sessions and topics of every connection it serves.
 *
 * @example
 * ```ts
 * import { Hub } from "@heartwire/heartwire/hub";
 * import { serve } from "@heartwire/heartwire/server";
 * const hub = new Hub({ authorize: (_session, topic) => topic !== "secret" });
 * hub.on<{ x: number; y: number }>("move", async (ctx, move) => {
 *   await hub.publish("board", "moved", { by: ctx.clientId, x: move.x, y: move.y });
 *   return { ok: true }; // the reply in the ack
 * });
 * const server = serve({ port: 0, routes: { "/ws": hub } });
 * await server.shutdown();
 * hub.dispose();
 * ```
 */
export class Hub implements WebSocketHandler {
  /** The sessions, live and in grace. */
  readonly sessions: SessionStore;
  /** The topic histories. */
  readonly history: HistoryStore;
  /** What carries publications between nodes, if any. */
  readonly broker: Broker | undefined;
  /** The heartbeat timing announced in every `welcome`. */
  readonly heartbeat: HeartbeatTiming;
  /** Topics every new session is put in (exempt from `authorize` and `maxTopics`). */
  readonly defaultTopics: Set<string> = new Set();
  /** The presence tracker the hub reports to, if any. */
  readonly presence: Presence | undefined;

  readonly #handlers = new Map<string, HubHandler<never>>();
  readonly #authorize: Authorize;
  readonly #maxTopicsPerSession: number;
  readonly #maxTopics: number;
  readonly #maxTopicNameLength: number;
  readonly #maxCseqJump: number;
  readonly #maxRecoveryBuffer: number;
  readonly #maxPendingMessages: number;
  readonly #maxReplayBytes: number;
  readonly #clock: Clock;
  readonly #wallClock: () => number;
  readonly #onError: (error: unknown) => void;
  readonly #metrics: HubMetrics | undefined;
  /** Sessions of this hub by id, attached or in grace. */
  readonly #known = new Map<string, Session>();
  /** The live connection of each attached session. */
  readonly #live = new Map<string, Attachment>();
  /** Client messages received and not yet carried out (see {@linkcode Hub.drain}). */
  readonly #inflight = new Set<Promise<void>>();
  /** Members of each topic on this hub. */
  readonly #members = new Map<string, Set<Session>>();
  /**
   * The epoch this hub last told members of each topic (by history key). A
   * history that was lost and made anew restarts its offsets under a new
   * epoch; members are told before its first publication, or they would take
   * the new offsets for ones they have.
   */
  readonly #epochs = new Map<string, string>();
  readonly #presence: PresenceLink | undefined;

  /** Creates the hub; it serves once passed as a route to `serve`. */
  constructor(options: HubOptions = {}) {
    this.heartbeat = {
      interval: options.heartbeat?.interval ?? 25_000,
      timeout: options.heartbeat?.timeout ?? 10_000,
    };
    this.#authorize = options.authorize ?? (() => true);
    this.#maxTopicsPerSession = Math.max(1, options.maxTopicsPerSession ?? 16);
    this.#maxTopics = Math.max(1, options.maxTopics ?? 10_000);
    this.#maxTopicNameLength = options.maxTopicNameLength ?? 64;
    this.#maxCseqJump = Math.max(1, options.maxCseqJump ?? 1_000);
    this.#maxRecoveryBuffer = Math.max(1, options.maxRecoveryBuffer ?? 10_000);
    this.#maxPendingMessages = Math.max(1, options.maxPendingMessages ?? 1_000);
    this.#maxReplayBytes = Math.max(
      1,
      options.maxReplayBytes ?? (this.#maxTopicsPerSession + 1) * 512 * 1024,
    );
    this.#clock = options.clock ?? systemClock;
    this.#wallClock = options.wallClock ?? Date.now;
    this.#onError = options.onError ?? ((error) => console.error("heartwire hub:", error));
    this.history = options.history ?? new MemoryHistory();
    this.broker = options.broker;
    if (this.broker) {
      this.broker.listener = {
        publication: (key, position, text) => this.#published(key, position, text),
        lost: (key, position) => this.#lost(key, position),
      };
    }
    const createId = options.createId;
    this.sessions = options.sessions ?? new MemorySessionStore({
      grace: options.grace,
      maxSessions: options.maxSessions,
      clock: options.clock,
      createId: createId && (() => {
        const id = createId();
        if (typeof id !== "string" || id.length === 0 || id.length > MAX_SESSION_ID_LENGTH) {
          throw new RangeError(
            `HubOptions.createId must return 1 to ${MAX_SESSION_ID_LENGTH} characters`,
          );
        }
        return id;
      }),
    });
    this.sessions.onRemove = (session) => this.#removed(session);
    this.sessions.onMove = (session) => this.#moved(session);
    this.presence = options.presence;
    this.#presence = options.presence && new PresenceLink(options.presence, {
      maxFollows: this.#maxTopicsPerSession,
      maxHeld: this.#maxRecoveryBuffer,
      onError: this.#onError,
      shed: (ws) => ws.close(CloseCode.TryAgainLater, retryAfterReason(1_000)),
    });
    this.#metrics = options.metrics;
    // Users online on this node (presence across nodes is the store's to count).
    const presence = options.presence;
    if (presence) this.#metrics?.watchPresence?.(() => presence.localUsers);
  }

  /**
   * Registers the handler of a client message type. Reserved types
   * (`heartbeat`, `ack`, `subscribe`…) cannot be taken; registering a type
   * again replaces its handler.
   *
   * @throws {TypeError} for a reserved or empty type.
   */
  on<M = Record<string, unknown>>(type: string, handler: HubHandler<M>): this {
    if (RESERVED_TYPES.has(type) || type === "") {
      throw new TypeError(`"${type}" is a reserved message type`);
    }
    this.#handlers.set(type, handler as HubHandler<never>);
    return this;
  }

  /** Topics with members on this hub, and their sessions. */
  get topics(): ReadonlyMap<string, ReadonlySet<Session>> {
    return this.#members;
  }

  /** Connections attached to a session. */
  get connections(): number {
    return this.#live.size;
  }

  /** The session a connection of this hub is attached to, if any. */
  sessionOf(ws: WebSocketConnection): Session | undefined {
    const attachment = ws.data as Attachment | undefined;
    return attachment && !attachment.replaced ? attachment.session : undefined;
  }

  /**
   * Publishes `{type, topic, offset, …fields}` to a topic: appended to its
   * history, then sent — one string for every member — to the members
   * connected now (with a broker: on every node, once the broker hands it
   * back; this node's members have it when this resolves). Resolves to its
   * epoch and offset.
   *
   * @throws {TypeError} for a reserved type, an invalid topic name, or fields holding `type`, `topic` or `offset`.
   * @throws {UnavailableError} when a shared store cannot be reached.
   */
  async publish(
    topic: string,
    type: string,
    fields: Record<string, unknown> = {},
  ): Promise<TopicPosition> {
    const bad = this.#checkTopic(topic);
    if (bad) throw new TypeError(bad);
    const encode = encoder(type, topic, fields);
    // With a broker, this hub delivers when the broker hands the publication back.
    if (this.broker) {
      const appended = await this.broker.publish(topic, encode);
      if (this.#members.has(topic)) await this.broker.delivered?.(topic, appended);
      return positionOf(appended);
    }
    const { epoch, offset, text } = await this.history.append(topic, encode);
    const members = this.#members.get(topic);
    if (members) {
      this.#checkEpoch(topic, topic, { epoch, offset: offset - 1 }, members);
      // Encoded into a frame once: every member's connection queues the same bytes.
      const prepared: { message?: PreparedMessage } = {};
      for (const session of members) this.#deliver(session, topic, offset, text, prepared);
    }
    return { epoch, offset };
  }

  /**
   * Sends a direct message to one session, on its topic `$direct`; resolves
   * to its position, or undefined if the session is unknown (to this hub,
   * or with a broker to the shared session store: the session may be on
   * another node).
   *
   * @throws {TypeError} for a reserved type or fields holding `type`, `topic` or `offset`.
   * @throws {UnavailableError} when a shared store cannot be reached.
   */
  async send(
    sessionId: string,
    type: string,
    fields: Record<string, unknown> = {},
  ): Promise<TopicPosition | undefined> {
    const encode = encoder(type, DIRECT_TOPIC, fields);
    const session = this.#known.get(sessionId);
    if (this.broker) {
      if (!session && !(await this.sessions.exists?.(sessionId))) return undefined;
      const key = `$direct:${sessionId}`;
      const appended = await this.broker.publish(key, encode);
      if (this.#live.has(sessionId)) await this.broker.delivered?.(key, appended);
      return positionOf(appended);
    }
    if (!session) return undefined;
    const { epoch, offset, text } = await this.history.append(directKey(session), encode);
    if (this.#known.get(sessionId) === session) {
      this.#checkEpoch(directKey(session), DIRECT_TOPIC, { epoch, offset: offset - 1 }, [session]);
      this.#deliver(session, DIRECT_TOPIC, offset, text);
    }
    return { epoch, offset };
  }

  /**
   * Puts a session in a topic from the server (no `authorize`; the
   * per-session and total bounds apply). Its client is told where the topic
   * stands, now or after its next welcome. Resolves to why not, or undefined.
   *
   * @throws {TypeError} for an invalid topic name.
   */
  async subscribe(sessionId: string, topic: string): Promise<string | undefined> {
    const bad = this.#checkTopic(topic);
    if (bad) throw new TypeError(bad);
    const session = this.#known.get(sessionId);
    if (!session) return "unknown session";
    if (session.topics.has(topic)) return undefined;
    const refused = this.#join(session, topic);
    if (refused) return refused;
    await this.sessions.update(session);
    const attachment = this.#live.get(session.id);
    if (attachment) await this.#recover(attachment, session, topic);
    return undefined;
  }

  /**
   * Takes a session out of a topic from the server; its client is told
   * `unsubscribed` if connected.
   */
  async unsubscribe(sessionId: string, topic: string): Promise<void> {
    const session = this.#known.get(sessionId);
    if (!session || !session.topics.has(topic)) return;
    this.#leave(session, topic);
    await this.sessions.update(session);
    this.#live.get(session.id)?.ws.send(JSON.stringify({ type: "unsubscribed", topic }));
  }

  /**
   * Asks every connected client to close and come back after `delay` ms
   * (`{"type":"reconnect","delay"}`), e.g. before this server goes away.
   * Returns how many were asked.
   */
  requestReconnect(delay: number): number {
    const request: ReconnectRequest = { type: "reconnect", delay: Math.max(0, Math.round(delay)) };
    const text = JSON.stringify(request);
    for (const attachment of this.#live.values()) attachment.ws.send(text);
    return this.#live.size;
  }

  /**
   * Closes every connection with 1012 (service restart, RFC 6455 §7.4.1) and
   * the hint `retry-after=MS`; sessions stay resumable for their grace period.
   * Returns how many connections were closed.
   */
  restart(retryAfter: number): number {
    const live = [...this.#live.values()];
    const reason = retryAfterReason(retryAfter);
    for (const attachment of live) attachment.ws.close(CloseCode.ServiceRestart, reason);
    return live.length;
  }

  /** Closes every connection with 1001 and forgets every session and topic member. */
  dispose(): void {
    const live = [...this.#live.values()];
    this.#live.clear();
    for (const attachment of live) {
      attachment.replaced = true;
      if (attachment.presence) this.#presence!.detach(attachment.presence, "closed");
      attachment.ws.close(CloseCode.GoingAway, "going away");
    }
    this.#presence?.dispose();
    this.sessions.dispose();
    this.#members.clear();
    this.#epochs.clear();
    this.#known.clear();
  }

  /** Handler callback: resumes or starts the session, sends the welcome and topic positions. */
  open(ws: WebSocketConnection): Promise<void> {
    const attachment: Attachment = {
      ws,
      session: undefined,
      replaced: false,
      chain: Promise.resolve(),
      pending: 0,
      recovering: new Map(),
    };
    if (Number.isFinite(this.#maxReplayBytes)) {
      // What a reconnect asks for: every topic's history and $direct's, and
      // the presence of as many topics (maxFollows).
      const firsts = 2 * this.#maxTopicsPerSession + 1;
      attachment.budget = new ReplayBudget(this.#maxReplayBytes, () => this.#clock.now(), {
        firsts,
      });
    }
    ws.data = attachment;
    return this.#queue(attachment, () => this.#open(attachment));
  }

  /**
   * Handler callback: one client message. Heartbeats are answered at once;
   * the rest wait their turn. Resolves once this message was handled.
   */
  message(ws: WebSocketConnection, data: string | Uint8Array): Promise<void> | void {
    const attachment = ws.data as Attachment | undefined;
    if (!attachment || attachment.replaced) return;
    if (typeof data !== "string") {
      ws.close(CloseCode.UnsupportedData, "binary messages are not supported on /ws");
      return;
    }
    let message: ClientMessage | MessageError;
    try {
      message = parseClientMessage(data);
    } catch (error) {
      if (!(error instanceof MessageError)) throw error;
      message = error;
    }
    const beat = !(message instanceof MessageError) && message.type === "heartbeat";
    if (attachment.presence) this.#presence!.touch(attachment.presence, !beat);
    if (beat) {
      // Answered before anything queued, so the client's RTT measures the network only.
      ws.send(JSON.stringify(heartbeatAck(message as Heartbeat, { serverTs: this.#wallClock() })));
      this.#metrics?.appHeartbeat();
      return;
    }
    if (attachment.pending >= this.#maxPendingMessages) {
      // Unacked, so the client re-sends it after resuming, once the backlog is gone.
      ws.close(CloseCode.TryAgainLater, retryAfterReason(1_000));
      return;
    }
    attachment.pending++;
    const parsed = message;
    const done = this.#queue(attachment, () => this.#process(attachment, parsed));
    this.#inflight.add(done);
    done.finally(() => {
      this.#inflight.delete(done);
      attachment.pending--;
    });
    return done;
  }

  /**
   * Resolves once every client message already received has been carried
   * out (or after `timeout` ms). A node that shuts down waits for this
   * before it closes its stores: a message whose `cseq` was recorded is
   * acked as a duplicate on the next node, so it must not be cut short.
   */
  async drain(timeout = 5_000): Promise<void> {
    if (this.#inflight.size === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled([...this.#inflight]),
      new Promise((resolve) => timer = setTimeout(resolve, timeout)),
    ]);
    clearTimeout(timer);
  }

  /**
   * Handler callback: the connection ended; its session's grace period
   * starts, and presence hears of it (`timeout` when keepalive dropped it).
   */
  close(ws: WebSocketConnection, info?: CloseInfo): Promise<void> | void {
    const attachment = ws.data as Attachment | undefined;
    const reason = info?.cause === "timeout" ? "timeout" : "closed";
    if (attachment?.presence) this.#presence!.detach(attachment.presence, reason);
    if (!attachment || attachment.replaced) return;
    // After what this connection sent before it closed: that is still processed.
    return this.#queue(attachment, async () => {
      attachment.replaced = true;
      // Welcomed while the close waited its turn: it is gone all the same.
      if (attachment.presence) this.#presence!.detach(attachment.presence, reason);
      const session = attachment.session;
      if (!session || this.#live.get(session.id) !== attachment) return;
      this.#live.delete(session.id);
      await this.sessions.detach(session);
    }, true);
  }

  /** Runs `work` after everything queued for this connection; errors close it with 1011. */
  #queue(attachment: Attachment, work: () => Promise<void> | void, always = false): Promise<void> {
    const next = attachment.chain.then(async () => {
      if (attachment.replaced && !always) return;
      try {
        await work();
      } catch (error) {
        if (error instanceof UnavailableError) {
          // A shared store is down (its backend says so once): come back later.
          if (!always) attachment.ws.close(CloseCode.TryAgainLater, retryAfterReason(1_000));
          return;
        }
        if (!always) attachment.ws.close(CloseCode.InternalError, "internal error");
        this.#onError(error);
      }
    });
    attachment.chain = next;
    return next;
  }

  async #open(attachment: Attachment): Promise<void> {
    const ws = attachment.ws;
    const query = queryOf(ws);
    const rawId = query.get("id");
    const clientId = rawId !== null && CLIENT_ID.test(rawId) ? rawId : undefined;
    const asked = query.get("session");
    let session: Session | undefined;
    if (asked) {
      const result = asked.length > MAX_SESSION_ID_LENGTH
        ? { ok: false as const, reason: "invalid session id", lastCseq: undefined }
        : await this.sessions.resume(asked, clientId);
      this.#metrics?.resume(result.ok);
      if (result.ok) session = result.session;
      else {
        const failed: ResumeFailed = {
          type: "resume_failed",
          // Bounded: the echo of an over-long id is cut (it was not looked up).
          session: asked.slice(0, MAX_SESSION_ID_LENGTH),
          reason: result.reason,
        };
        if (result.lastCseq !== undefined) failed.last_cseq = result.lastCseq;
        ws.send(JSON.stringify(failed));
      }
    }
    const resumed = session !== undefined;
    if (!session) {
      // An IPv6 client by its /64, which it may take any address of (ipLimitKey).
      const owner = ipLimitKey(ws.clientAddress ?? ws.remoteAddr?.hostname ?? "");
      session = await this.sessions.create(
        clientId ?? `anon-${crypto.randomUUID().slice(0, 8)}`,
        owner,
      );
      if (!session) {
        attachment.replaced = true;
        ws.close(CloseCode.TryAgainLater, retryAfterReason(FULL_RETRY_AFTER));
        return;
      }
      for (const topic of this.defaultTopics) this.#join(session, topic);
      await this.sessions.update(session);
    }
    // Closed while the store was asked: a new session waits in grace (made detached).
    if (attachment.replaced) return;
    const stale = this.#known.get(session.id);
    if (resumed && stale !== session) {
      // A record this hub has not seen (a shared store's, resumed from another node).
      for (const topic of session.topics) {
        let members = this.#members.get(topic);
        if (!members) this.#members.set(topic, members = new Set());
        members.add(session);
      }
      if (stale) { for (const topic of stale.topics) this.#forgetMember(stale, topic); }
    }
    this.#known.set(session.id, session);
    // One live socket per session: the newer connection wins. The older one's client
    // starts a new session, so it is told the session's lastCseq (final: see #retire).
    // Online before the older connection goes, so a take-over is no leave and join.
    attachment.presence = this.#presence?.attach(ws, session.clientId, session.topics);
    const previous = this.#live.get(session.id);
    if (previous) this.#retire(previous, SESSION_TAKEN_OVER, takenOverReason(session.lastCseq));
    attachment.session = session;
    this.#live.set(session.id, attachment);
    await this.sessions.attach(session);
    if (attachment.replaced) return; // taken over meanwhile, here or on another node
    const welcome: Welcome = {
      type: "welcome",
      session: session.id,
      id: session.clientId,
      resumed,
      heartbeat: this.heartbeat,
      last_cseq: session.lastCseq,
    };
    ws.send(JSON.stringify(welcome));
    // Where each topic stands; publications that race these answers wait behind them.
    for (const topic of [...session.topics, DIRECT_TOPIC]) {
      await this.#recover(attachment, session, topic);
    }
  }

  /**
   * Sends `subscribed` for `topic` and, given a position, every publication
   * after it. Live publications meanwhile wait in `recovering` and follow
   * in order, so none slips in before the recovered ones or is skipped.
   */
  async #recover(
    attachment: Attachment,
    session: Session,
    topic: string,
    from?: TopicPosition,
  ): Promise<void> {
    const held: { offset: number; text: string }[] = [];
    attachment.recovering.set(topic, held);
    try {
      const key = topic === DIRECT_TOPIC ? directKey(session) : topic;
      const subscribed: SubscribedMessage = { type: "subscribed", topic, epoch: "", offset: 0 };
      let texts: string[] = [];
      let top: number;
      // With a broker, every publication after `live` reaches #deliver (held here
      // meanwhile), so the history serves only what comes up to it.
      const live = this.broker && await this.broker.subscribe(key);
      if (live) {
        subscribed.epoch = live.epoch;
        subscribed.offset = top = live.offset;
        if (from) {
          const recovery = await this.history.since(key, from);
          subscribed.recovered = recovery.recovered && recovery.position.epoch === live.epoch;
          if (subscribed.recovered) {
            texts = recovery.texts.slice(0, Math.max(0, live.offset - from.offset));
            subscribed.offset = from.offset;
            top = Math.max(from.offset, live.offset);
          }
        }
      } else if (from) {
        const recovery = await this.history.since(key, from);
        subscribed.epoch = recovery.position.epoch;
        subscribed.offset = recovery.recovered ? from.offset : recovery.position.offset;
        subscribed.recovered = recovery.recovered;
        texts = recovery.texts;
        top = recovery.position.offset;
      } else {
        const position = await this.history.position(key);
        subscribed.epoch = position.epoch;
        subscribed.offset = top = position.offset;
      }
      if (attachment.replaced) return;
      const ws = attachment.ws;
      const members = topic === DIRECT_TOPIC ? [session] : this.#members.get(topic) ?? [];
      this.#checkEpoch(key, topic, { epoch: subscribed.epoch, offset: top }, members, session);
      const head = JSON.stringify(subscribed);
      ws.send(head);
      for (const text of texts) ws.send(text);
      if (from && attachment.budget) {
        // A replay: what it sent counts against the connection's budget (live ones below do not).
        let bytes = utf8Length(head);
        for (const text of texts) bytes += utf8Length(text);
        attachment.budget.spend(bytes);
      }
      for (const { offset, text } of held) if (offset > top) ws.send(text);
    } finally {
      if (attachment.recovering.get(topic) === held) attachment.recovering.delete(topic);
    }
  }

  /**
   * Notes the epoch of a topic's history; if it changed since members were
   * told, tells each live member (but `except`) that what came before
   * `position.offset` is lost: `subscribed {recovered: false}`.
   */
  #checkEpoch(
    key: string,
    topic: string,
    position: TopicPosition,
    members: Iterable<Session>,
    except?: Session,
  ): void {
    const known = this.#epochs.get(key);
    this.#epochs.set(key, position.epoch);
    if (known === undefined || known === position.epoch) return;
    const text = JSON.stringify(
      { type: "subscribed", topic, ...position, recovered: false } satisfies SubscribedMessage,
    );
    for (const session of members) {
      if (session !== except) this.#deliver(session, topic, position.offset, text);
    }
  }

  /** The broker's next publication of `key`: delivered to this hub's members. */
  #published(key: string, position: TopicPosition, text: string): void {
    const { topic, members } = this.#membersOf(key);
    if (members.length === 0) return;
    this.#checkEpoch(key, topic, { epoch: position.epoch, offset: position.offset - 1 }, members);
    const prepared: { message?: PreparedMessage } = {};
    for (const session of members) this.#deliver(session, topic, position.offset, text, prepared);
  }

  /** The broker lost publications of `key`: its members learn `recovered: false`. */
  #lost(key: string, position: TopicPosition): void {
    const { topic, members } = this.#membersOf(key);
    this.#epochs.set(key, position.epoch);
    const text = JSON.stringify(
      { type: "subscribed", topic, ...position, recovered: false } satisfies SubscribedMessage,
    );
    for (const session of members) this.#deliver(session, topic, position.offset, text);
  }

  /** The topic a history key names, and this hub's members of it. */
  #membersOf(key: string): { topic: string; members: Session[] } {
    if (!key.startsWith("$direct:")) {
      return { topic: key, members: [...this.#members.get(key) ?? []] };
    }
    const session = this.#known.get(key.slice("$direct:".length));
    return { topic: DIRECT_TOPIC, members: session ? [session] : [] };
  }

  /**
   * Sends one publication to a session's connection, if it has one; with
   * `prepared`, as a frame encoded once for all of a broadcast's members.
   */
  #deliver(
    session: Session,
    topic: string,
    offset: number,
    text: string,
    prepared?: { message?: PreparedMessage },
  ): void {
    const attachment = this.#live.get(session.id);
    if (!attachment) return;
    const held = attachment.recovering.get(topic);
    if (!held) {
      if (prepared) attachment.ws.sendPrepared(prepared.message ??= new PreparedMessage(text));
      else attachment.ws.send(text);
      return;
    }
    if (held.length >= this.#maxRecoveryBuffer) {
      // The store fell far behind: start over rather than hold without bound.
      attachment.ws.close(CloseCode.TryAgainLater, retryAfterReason(1_000));
      return;
    }
    held.push({ offset, text });
  }

  /**
   * Carries out a client message, or refuses an invalid one, once per
   * `cseq`; then acks the `cseq`. A message counts as processed when its
   * handler starts (at most once), so a take-over meanwhile reports it.
   */
  async #process(attachment: Attachment, message: ClientMessage | MessageError): Promise<void> {
    const session = attachment.session;
    if (!session) return;
    const ws = attachment.ws;
    const cseq = (message as { cseq?: number }).cseq;
    if (cseq !== undefined) {
      if (cseq <= session.lastCseq) {
        this.#sendAck(ws, cseq); // a re-send after a reconnect: done already
        return;
      }
      if (cseq - session.lastCseq > this.#maxCseqJump) {
        this.#sendError(
          ws,
          `cseq ${cseq} is more than ${this.#maxCseqJump} above the last processed (${session.lastCseq})`,
        );
        return;
      }
    }
    const replay = attachment.budget && replayOf(message);
    if (replay && !attachment.budget!.admit(replay)) {
      // Refused before its cseq is recorded: the client asks again on its next connection.
      return this.#shed(attachment, session, "replay budget spent: resume and ask again", cseq);
    }
    const previous = session.lastCseq;
    if (cseq !== undefined) {
      session.lastCseq = cseq;
      let stored: boolean | void;
      try {
        stored = await this.sessions.update(session);
      } catch (error) {
        if (!(error instanceof UnavailableError)) throw error;
        return this.#unprocessed(attachment, session, previous, error, cseq);
      }
      // Another node owned the session before this cseq was recorded: it
      // processes the re-send. Once recorded here, this node must carry the
      // message out even if the session moves meanwhile, since the new owner
      // will take the re-send for a duplicate.
      if (stored === false) return;
    }
    let reply: unknown;
    let refused: string | undefined;
    if (message instanceof MessageError) refused = message.message;
    else {
      try {
        reply = await this.#dispatch(attachment, session, message);
      } catch (error) {
        if (error instanceof UnavailableError && cseq !== undefined) {
          return this.#unprocessed(attachment, session, previous, error, cseq);
        }
        refused = error instanceof Error ? error.message : "the handler failed";
      }
    }
    if (attachment.replaced) return; // the session moved on; its new connection is told
    if (refused !== undefined) this.#sendError(ws, refused, cseq);
    if (cseq !== undefined) this.#sendAck(ws, cseq, reply);
  }

  /**
   * A store was unreachable: the message counts as not processed (its
   * `cseq` is given back) and gets an `error` and no `ack`. Acks are
   * cumulative, so nothing after it may be processed before it: the
   * connection is closed (1013, retry hint) and what it queued meanwhile is
   * dropped; the client resumes later and re-sends from this message on.
   */
  #unprocessed(
    attachment: Attachment,
    session: Session,
    previous: number,
    error: UnavailableError,
    cseq: number,
  ): Promise<void> {
    if (session.lastCseq === cseq) session.lastCseq = previous;
    // The store writes the given-back cseq once it can, when the grace starts.
    return this.#shed(attachment, session, error.message, cseq);
  }

  /**
   * Refuses a message unprocessed: `error`, no `ack`, close 1013 with a
   * retry hint. What the connection queued after it is dropped (acks are
   * cumulative); the session's grace starts and its client resumes.
   */
  async #shed(
    attachment: Attachment,
    session: Session,
    reason: string,
    cseq: number | undefined,
  ): Promise<void> {
    if (attachment.replaced) return;
    this.#sendError(attachment.ws, reason, cseq);
    this.#retire(attachment, CloseCode.TryAgainLater, retryAfterReason(1_000));
    await this.sessions.detach(session);
  }

  async #dispatch(
    attachment: Attachment,
    session: Session,
    message: ClientMessage,
  ): Promise<unknown> {
    switch (message.type) {
      case "subscribe": {
        const { topic, epoch, offset } = message as SubscribeMessage;
        if (topic !== DIRECT_TOPIC) {
          const bad = this.#checkTopic(topic);
          if (bad) throw new Error(bad);
          if (!session.topics.has(topic)) {
            const verdict = await this.#authorize(session, topic);
            if (verdict !== true) {
              throw new Error(typeof verdict === "string" ? verdict : `not allowed in "${topic}"`);
            }
            const refused = this.#join(session, topic);
            if (refused) throw new Error(refused);
            await this.sessions.update(session);
          }
        }
        const from = epoch !== undefined && offset !== undefined ? { epoch, offset } : undefined;
        await this.#recover(attachment, session, topic, from);
        return undefined;
      }
      case "unsubscribe": {
        const topic = (message as { topic: string }).topic;
        if (topic === DIRECT_TOPIC) throw new Error(`"${DIRECT_TOPIC}" cannot be left`);
        const bad = this.#checkTopic(topic);
        if (bad) throw new Error(bad);
        this.#leave(session, topic);
        await this.sessions.update(session);
        attachment.ws.send(JSON.stringify({ type: "unsubscribed", topic }));
        return undefined;
      }
      case "presence_subscribe":
      case "presence_unsubscribe": {
        const topic = (message as { topic: string }).topic;
        const link = this.#presence;
        if (!link || !attachment.presence) {
          throw new Error("presence is not enabled on this server");
        }
        const bad = this.#checkTopic(topic);
        if (bad) throw new Error(bad);
        if (message.type === "presence_unsubscribe") {
          link.unfollow(attachment.presence, topic);
          return undefined;
        }
        const full = link.refuse(attachment.presence, topic);
        if (full) throw new Error(full);
        // Who is in a topic is for those who may join it.
        if (!session.topics.has(topic)) {
          const verdict = await this.#authorize(session, topic);
          if (verdict !== true) {
            throw new Error(typeof verdict === "string" ? verdict : `not allowed in "${topic}"`);
          }
        }
        attachment.budget?.spend(await link.follow(attachment.presence, topic));
        return undefined;
      }
    }
    const handler = this.#handlers.get(message.type) as HubHandler | undefined;
    if (!handler) throw new Error(`unknown message type "${message.type.slice(0, 32)}"`);
    const context: HubContext = {
      hub: this,
      session,
      clientId: session.clientId,
      connection: attachment.ws,
      send: (type, fields) => this.send(session.id, type, fields),
    };
    return await handler(context, message as UserMessage);
  }

  /** Why `topic` is not a name a client may use, or undefined. */
  #checkTopic(topic: string): string | undefined {
    if (
      typeof topic !== "string" || topic.length === 0 || topic.length > this.#maxTopicNameLength
    ) {
      return `topic name must have 1 to ${this.#maxTopicNameLength} characters`;
    }
    if (topic.startsWith("$") || CONTROL.test(topic)) {
      return "topic name must not start with $ or hold control characters";
    }
    return undefined;
  }

  /** Adds `session` to `topic`; returns why not if a bound is reached. */
  #join(session: Session, topic: string): string | undefined {
    if (session.topics.has(topic)) return undefined;
    if (session.topics.size >= this.#maxTopicsPerSession) {
      return `already in ${this.#maxTopicsPerSession} topics`;
    }
    let members = this.#members.get(topic);
    if (!members) {
      // Exempt from the cap, or a full hub would leave new sessions in no topic.
      if (!this.defaultTopics.has(topic) && this.#members.size >= this.#maxTopics) {
        return "too many topics on this server";
      }
      members = new Set();
      this.#members.set(topic, members);
    }
    members.add(session);
    session.topics.add(topic);
    const conn = this.#live.get(session.id)?.presence;
    if (conn) this.#presence!.join(conn, topic);
    return undefined;
  }

  #leave(session: Session, topic: string): void {
    session.topics.delete(topic);
    const conn = this.#live.get(session.id)?.presence;
    if (conn) this.#presence!.leave(conn, topic);
    this.#forgetMember(session, topic);
  }

  /** Takes `session` out of this hub's members of `topic`, dropping the topic when none are left. */
  #forgetMember(session: Session, topic: string): void {
    const members = this.#members.get(topic);
    if (!members) return;
    members.delete(session);
    if (members.size === 0) {
      this.#members.delete(topic);
      this.#epochs.delete(topic);
      this.#unsubscribe(topic);
    }
  }

  /** Tells the broker (if any) this hub no longer needs `key`. */
  #unsubscribe(key: string): void {
    if (!this.broker) return;
    this.#background(() => this.broker!.unsubscribe(key));
  }

  /**
   * Starts store work nobody waits for, now (so a later subscribe comes after
   * an unsubscribe); a failure is reported, never left unhandled.
   */
  #background(work: () => unknown): void {
    const report = (error: unknown) => {
      if (!(error instanceof UnavailableError)) this.#onError(error);
    };
    try {
      Promise.resolve(work()).catch(report);
    } catch (error) {
      report(error);
    }
  }

  /** The store removed a session: forget it here, and end its connection if it has one. */
  #removed(session: Session): void {
    if (!this.#forget(session)) return;
    this.#background(() => this.history.remove(directKey(session)));
    // Its tombstone is written already: the client resumes and learns last_cseq.
    const attachment = this.#live.get(session.id);
    if (attachment) this.#retire(attachment, SESSION_ENDED, "session ended");
  }

  /**
   * The session was resumed on another node: forget it here, keeping its
   * direct history (the other node serves it now).
   */
  #moved(session: Session): void {
    if (!this.#forget(session)) return;
    const attachment = this.#live.get(session.id);
    if (attachment) {
      this.#retire(attachment, SESSION_TAKEN_OVER, takenOverReason(session.lastCseq));
    }
  }

  /** Drops a session from this hub's maps; false if this hub holds another record of it. */
  #forget(session: Session): boolean {
    for (const topic of session.topics) this.#forgetMember(session, topic);
    const known = this.#known.get(session.id);
    if (known !== undefined && known !== session) return false;
    this.#known.delete(session.id);
    this.#epochs.delete(directKey(session));
    this.#unsubscribe(directKey(session));
    return true;
  }

  /**
   * Detaches a live connection from its session for good and closes it with
   * `code` (4000, 4001, or 1013 to shed it). Its messages are ignored from now on, so the
   * session's `lastCseq` is final for it.
   */
  #retire(attachment: Attachment, code: number, reason: string): void {
    attachment.replaced = true;
    if (attachment.presence) this.#presence!.detach(attachment.presence, "closed");
    const session = attachment.session;
    if (session && this.#live.get(session.id) === attachment) this.#live.delete(session.id);
    attachment.ws.close(code, reason);
  }

  #sendAck(ws: WebSocketConnection, cseq: number, reply?: unknown): void {
    ws.send(
      reply === undefined
        ? `{"type":"ack","cseq":${cseq}}`
        : JSON.stringify({ type: "ack", cseq, reply }),
    );
  }

  #sendError(ws: WebSocketConnection, reason: string, cseq?: number): void {
    const error: ErrorMessage = { type: "error", reason };
    if (cseq !== undefined) error.cseq = cseq;
    ws.send(JSON.stringify(error));
  }
}
