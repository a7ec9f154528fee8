/**
 * `ReconnectingSocket`: a WebSocket for the `/ws` protocol that stays up.
 *
 * It looks like a WebSocket (`send`, `close`, `readyState`, events) but one
 * object outlives many connections: it reconnects with jittered backoff,
 * finds dead connections with the app heartbeat, resumes the server session,
 * recovers every topic it follows from its last offset so that publications
 * are delivered once and in order (or a loss is reported), and keeps client
 * messages in an outbox until the server acknowledged them.
 *
 * ```text
 *  new ──▶ CONNECTING ──welcome──▶ OPEN ──drop / dead / retry hint──▶ CONNECTING (after backoff)
 *              │  ▲                                                    │
 *              │  └── online (at once, hint kept) ◀── offline: waits ──┘
 *              └── close() or maxRetries ──▶ CLOSED (final: no timers, no listeners)
 * ```
 *
 * @module
 */
import type { Clock } from "../protocol/clock.ts";
import {
  type HeartbeatTiming,
  isPublication,
  parseLastCseq,
  parseRetryAfter,
  parseServerMessage,
  type Publication,
  RESERVED_TYPES,
  type ResumeFailed,
  SESSION_TAKEN_OVER,
  type SubscribedMessage,
  type TopicPosition,
  type Welcome,
} from "../protocol/messages.ts";
import { checkOption, MAX_TIMER_DELAY } from "./_options.ts";
import { Backoff, type BackoffOptions } from "./backoff.ts";
import { HeartbeatMonitor, wallClock } from "./heartbeat_monitor.ts";
import { Outbox } from "./outbox.ts";
import { PresenceView } from "./presence_view.ts";
import { TypedEventTarget } from "./typed_event_target.ts";

/**
 * The part of the standard WebSocket the client uses. The browser's, Deno's
 * and Node's (≥ 22) `WebSocket` fit; tests pass a fake.
 *
 * @example
 * ```ts
 * import type { WebSocketLike } from "@heartwire/heartwire/client";
 * const ws: WebSocketLike = new WebSocket("ws://localhost:8080/ws");
 * ws.close();
 * ```
 */
export interface WebSocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  // Handlers are typed `(event: never)` so that any WebSocket's own handler
  // types are assignable; the client reads `data`, `code`, `reason`, `wasClean`.
  /** Set by the client to receive messages (`event.data`). */
  onmessage: ((event: never) => void) | null;
  /** Set by the client to learn of the close (`event.code`, `.reason`, `.wasClean`). */
  onclose: ((event: never) => void) | null;
  /** Set by the client to learn of errors. */
  onerror: ((event: never) => void) | null;
  /** Sends a text frame. */
  send(data: string): void;
  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void;
}

/**
 * A WebSocket constructor, such as `globalThis.WebSocket`.
 */
export type WebSocketConstructor = new (
  url: string,
  protocols?: string | string[],
) => WebSocketLike;

/**
 * Where `online`/`offline` events fire and `navigator.onLine` is read: the
 * browser's `window`.
 *
 * @example
 * ```ts
 * import type { WindowLike } from "@heartwire/heartwire/client";
 * const fake: WindowLike = Object.assign(new EventTarget(), { navigator: { onLine: true } });
 * ```
 */
export interface WindowLike {
  /** Adds an `online`/`offline` listener. */
  addEventListener(type: string, listener: () => void): void;
  /** Removes it again. */
  removeEventListener(type: string, listener: () => void): void;
  /** `onLine === false` means offline; absent means online. */
  navigator?: { onLine?: boolean };
}

/**
 * Where `visibilitychange` fires: the browser's `document`.
 *
 * @example
 * ```ts
 * import type { DocumentLike } from "@heartwire/heartwire/client";
 * const fake: DocumentLike = Object.assign(new EventTarget(), { visibilityState: "visible" });
 * ```
 */
export interface DocumentLike {
  /** "visible" or "hidden". */
  readonly visibilityState: string;
  /** Adds a `visibilitychange` listener. */
  addEventListener(type: string, listener: () => void): void;
  /** Removes it again. */
  removeEventListener(type: string, listener: () => void): void;
}

/**
 * Everything a {@linkcode ReconnectingSocket} can be told. Every field has a default.
 */
export interface ReconnectingSocketOptions {
  /** Client id sent as `?id=`; the server makes one up if absent (then it is kept). */
  id?: string;
  /** Subprotocols, passed to the WebSocket constructor. */
  protocols?: string | string[];
  /** The WebSocket class. Default `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** Time source and timers. Default: wall time ({@linkcode wallClock}). */
  clock?: Clock;
  /** Reconnect delays. Default full jitter, 500 ms..1 s first, ×2, at most 30 s. */
  backoff?: BackoffOptions;
  /** Time (ms) from starting a connection to the server's welcome. Default 10 000. */
  connectTimeout?: number;
  /** Retries in a row without a stable connection before giving up (final `close`); 0 never retries. Default: no limit. */
  maxRetries?: number;
  /** Time (ms) a connection must stay up for the backoff and retry count to reset. Default 5 000. */
  minUptime?: number;
  /** Byte bound of unacknowledged client messages. Default 1 MiB. */
  outboxBytes?: number;
  /**
   * Keeps the session (client and session id, topic positions, unacked
   * outbox) across a page reload: `true` for `sessionStorage` under the key
   * "heartwire", or where and under which key. Default off.
   */
  persist?: boolean | { storage?: StorageLike; key?: string };
  /** Overrides the heartbeat timing the server announces. */
  heartbeat?: Partial<HeartbeatTiming>;
  /** For `online`/`offline`. Default `globalThis.window` if there is one; `null` for none. */
  window?: WindowLike | null;
  /** For `visibilitychange`. Default `globalThis.document` if there is one; `null` for none. */
  document?: DocumentLike | null;
}

/**
 * Where {@linkcode ReconnectingSocketOptions.persist} keeps the session: the
 * part of the Web Storage API it uses (`sessionStorage` fits).
 *
 * @example
 * ```ts
 * import type { StorageLike } from "@heartwire/heartwire/client";
 * const memory = new Map<string, string>();
 * const storage: StorageLike = {
 *   getItem: (key) => memory.get(key) ?? null,
 *   setItem: (key, value) => void memory.set(key, value),
 * };
 * ```
 */
export interface StorageLike {
  /** The value under `key`, or null. */
  getItem(key: string): string | null;
  /** Stores `value` under `key`. */
  setItem(key: string, value: string): void;
}

/**
 * `detail` of the `subscribed` event: where a followed topic stands. With
 * `recovered: false` publications were lost (the history was trimmed, or
 * its epoch changed) and the topic goes on from `offset`.
 */
export interface SubscribedDetail {
  /** The topic. */
  topic: string;
  /** Its history's epoch. */
  epoch: string;
  /** The last offset delivered, or to be delivered next minus one. */
  offset: number;
  /** For a recovery: whether nothing was lost. Absent when the client starts following. */
  recovered?: boolean;
}

/**
 * `detail` of the `open` event: a connection was welcomed.
 */
export interface OpenDetail {
  /** The session id. */
  session: string;
  /** The client id. */
  id: string;
  /** True if the previous session continued (nothing was lost). */
  resumed: boolean;
}

/**
 * `detail` of the `close` event.
 */
export interface CloseDetail {
  /** The close code; 1006 when the client gave the connection up (heartbeat or connect timeout). */
  code: number;
  /** The close reason. */
  reason: string;
  /** Whether the closing handshake completed. */
  wasClean: boolean;
  /** False only for the last `close` (after `close()` or `maxRetries`). */
  willReconnect: boolean;
}

/**
 * `detail` of the `reconnecting` event: the next attempt is scheduled.
 */
export interface ReconnectingDetail {
  /** Which retry this is since the last stable connection (from 1). */
  attempt: number;
  /** Milliseconds until the attempt. */
  delay: number;
}

/**
 * `detail` of the `heartbeat` event: an ack came back.
 */
export interface HeartbeatDetail {
  /** Round-trip time in ms. */
  rtt: number;
}

/**
 * `detail` of the `error` event.
 */
export interface ErrorDetail {
  /** What went wrong: a server `error` message, an unreadable message, an offset gap, a socket error. */
  reason: string;
  /** The `cseq` of the message the server refused (it is acked: not resent). */
  cseq?: number;
}

/**
 * `detail` of the `resume_failed` event: the session could not be resumed
 * (or was taken over by another connection: close 4000) and a new one
 * follows. Topics are recovered from their offsets as after any reconnect
 * (direct messages to the old session are reported lost: its `$direct`
 * topic comes back `recovered: false`); client messages are sorted out as below.
 *
 * @example
 * ```ts
 * import type { ResumeFailedDetail } from "@heartwire/heartwire/client";
 * const detail: ResumeFailedDetail = {
 *   session: "s1",
 *   reason: "unknown or expired session",
 *   lastCseq: 3,
 *   dropped: 1, // cseq 3: processed, its ack lost with the connection
 *   resent: 2, // cseq 4 and 5: sent before, never processed; they go to the new session
 * };
 * ```
 */
export interface ResumeFailedDetail {
  /** The session that could not be resumed. */
  session: string;
  /** The server's reason, for people; "session taken over" after a close 4000. */
  reason: string;
  /**
   * The last `cseq` the old session processed, as the server said; absent if
   * the server did not know (it restarted, or forgot the session, or its
   * take-over close did not say).
   */
  lastCseq?: number;
  /** Unacknowledged messages dropped from the outbox: the old session processed them. */
  dropped: number;
  /**
   * Messages sent on an earlier connection that go to the new session again.
   * With `lastCseq` known none of them was processed; without it each may be
   * processed twice (at-least-once).
   */
  resent: number;
}

/**
 * The events of a {@linkcode ReconnectingSocket} and their types.
 *
 * @example
 * ```ts
 * import type { ReconnectingSocketEventMap } from "@heartwire/heartwire/client";
 * const onMessage = (event: ReconnectingSocketEventMap["message"]) => console.log(event.data.offset);
 * ```
 */
export interface ReconnectingSocketEventMap {
  /** A connection was welcomed; sending goes straight out. */
  open: CustomEvent<OpenDetail>;
  /** A publication (`data` is the parsed object), once each, in `offset` order per topic. */
  message: MessageEvent<Publication>;
  /** A followed topic's position: it started, or was recovered (`recovered`). */
  subscribed: CustomEvent<SubscribedDetail>;
  /** The server took the session out of a topic (or the client asked). */
  unsubscribed: CustomEvent<{ topic: string }>;
  /** A connection ended (`willReconnect`), or the socket is done for good. */
  close: CustomEvent<CloseDetail>;
  /** Something went wrong that does not end the socket. */
  error: CustomEvent<ErrorDetail>;
  /** A reconnect attempt is scheduled (again, with a shorter delay, when the browser comes online). */
  reconnecting: CustomEvent<ReconnectingDetail>;
  /**
   * The browser is online again; a reconnect starts at once, skipping the
   * backoff but never a server retry hint (1012/1013 `retry-after`, a
   * `reconnect` delay): until that is over, a `reconnecting` event follows.
   */
  online: Event;
  /** The browser went offline; no attempts until it is back. */
  offline: Event;
  /** A heartbeat was answered. */
  heartbeat: CustomEvent<HeartbeatDetail>;
  /** The session could not be resumed, or was taken over: a new session follows. */
  resume_failed: CustomEvent<ResumeFailedDetail>;
}

/** What a client may not send: the protocol's own types. */
const OWN_TYPES = "heartbeat, ack and other reserved types";

/** A followed topic: its epoch, the last offset delivered, and whether a recovery is on its way. */
interface Followed extends TopicPosition {
  syncing: boolean;
}

/** A request waiting for its ack. */
interface Pending {
  resolve(reply: unknown): void;
  reject(error: Error): void;
}

/** What `persist` stores. */
interface Saved {
  id?: string;
  session?: string;
  topics: [string, string, number][];
  outbox: [number, string][];
  next: number;
}

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 3;
/** RFC 6455 §7.1.5: 1006 is what an endpoint reports when no close frame came. */
const ABNORMAL = 1006;

/**
 * A reconnecting, resuming client for the heartwire `/ws` protocol.
 *
 * - `send("move", payload)` (or `send({type, …})`, or its JSON text) numbers
 *   a message of any type the server registered with a `cseq` and returns
 *   that number. It is queued in the outbox and goes out at once when open,
 *   after the next welcome otherwise; it is re-sent after reconnects until
 *   the server acks it, and the server processes it at most once.
 *   `request()` does the same and resolves to the handler's reply. Throws
 *   `OutboxFullError` when the outbox is full, an `Error` after close.
 * - `message` events (and `on(type, …)`) carry publications of the topics
 *   the session is in (`event.data`, parsed, with `topic` and `offset`),
 *   once each and in order per topic across reconnects. A gap in a topic's
 *   offsets is never skipped: the client asks the server to recover from the
 *   last offset it has; after every reconnect it does so for each topic.
 *   When the server cannot (history trimmed, epoch changed) a `subscribed`
 *   event with `recovered: false` says publications were lost.
 * - `close()` is final: every timer and listener is gone when it returns; the
 *   last `close` event follows in a microtask.
 *
 * If a session cannot be resumed (`resume_failed`), a new session starts;
 * its topics are recovered from their offsets as after any reconnect (direct
 * messages of the old session are reported lost). Client messages are still
 * processed once: the server tells the last `cseq` the old session processed
 * (`detail.lastCseq`, final), those leave the outbox, and only the rest go to
 * the new session, renumbered from its `last_cseq + 1`. If the
 * server does not know it (it restarted, or its record of the session was
 * overwritten), every unacknowledged message is re-sent: the one case where
 * a message may be processed twice (`detail.resent` counts the ones at
 * risk). Dropping them instead would lose messages silently, which no
 * listener could repair; a possible duplicate is at least reported.
 *
 * Two server closes are about the session. 4000 (taken over: another
 * connection, say another tab, resumed it) is never resumed, or the two
 * would take the session from each other forever: a `resume_failed` event
 * (reason "session taken over", fired after that `close`) reports it, with
 * `lastCseq` from the close reason `last_cseq=N`, and a new session starts as
 * above (a server that leaves N out gets the re-send-all case). 4001 (the
 * server removed the session) is resumed like any drop; the server answers
 * `resume_failed` with `last_cseq`.
 *
 * @example
 * ```ts ignore
 * import { ReconnectingSocket } from "@heartwire/heartwire/client";
 * const socket = new ReconnectingSocket("ws://localhost:8080/ws", { id: "alice" });
 * socket.addEventListener("open", (event) => console.log("open, resumed:", event.detail.resumed));
 * socket.on<{ from: string; text: string }>("chat", (chat) => console.log(chat.from, chat.text));
 * socket.addEventListener("heartbeat", (event) => console.log(`rtt ${event.detail.rtt} ms`));
 * socket.send("chat", { text: "hello" }); // queued until the welcome
 * const reply = await socket.request("add", { a: 1, b: 2 }); // the handler's return value
 * socket.close();
 * ```
 */
export class ReconnectingSocket extends TypedEventTarget<ReconnectingSocketEventMap> {
  /** `readyState` while connecting or waiting to reconnect. */
  static readonly CONNECTING: 0 = CONNECTING;
  /** `readyState` while welcomed. */
  static readonly OPEN: 1 = OPEN;
  /** `readyState` after `close()` or giving up. */
  static readonly CLOSED: 3 = CLOSED;

  #state = CONNECTING;
  #session: string | undefined;
  #id: string | undefined;
  #topics = new Map<string, Followed>();
  #presence = new Map<string, PresenceView>();
  #pending = new Map<number, Pending>();
  #storage: StorageLike | undefined;
  #storageKey = "heartwire";
  #saving = false;
  #url: URL;
  #options: ReconnectingSocketOptions;
  #WebSocket: WebSocketConstructor;
  #clock: Clock;
  #backoff: Backoff;
  #outbox: Outbox;
  #window: WindowLike | null | undefined;
  #document: DocumentLike | null | undefined;
  #ws: WebSocketLike | undefined;
  #monitor: HeartbeatMonitor | undefined;
  #retryTimer: unknown;
  #connectTimer: unknown;
  /** Retries scheduled since the last stable connection. */
  #retries = 0;
  #openedAt = 0;
  /** Highest `cseq` ever written to a socket: the outbox entries up to it were sent. */
  #sentCseq = 0;
  #hint: number | undefined;
  /** Earliest time the server's retry hint allows the next attempt at (coming online keeps it). */
  #notBefore = 0;
  /** Whether the scheduled attempt counts as a retry (the one made on coming back online does not). */
  #retryCounted = false;

  /**
   * Creates the socket and starts connecting (unless offline).
   *
   * @throws {TypeError} for a URL that does not parse, or if there is no WebSocket class.
   * @throws {RangeError} naming the option, for a `heartbeat.interval`,
   * `heartbeat.timeout`, `connectTimeout`, `outboxBytes`, `backoff.initialDelay`,
   * `backoff.maxDelay` or `backoff.factor` that is not a finite number > 0, a
   * `minUptime` or `backoff.minDelay` that is not one >= 0, or a
   * `maxRetries` that is not a whole number >= 0 or `Infinity`.
   */
  constructor(url: string | URL, options: ReconnectingSocketOptions = {}) {
    super();
    const location = (globalThis as { location?: { href: string } }).location;
    this.#url = new URL(url, location?.href);
    // Checked before anything starts: a 0 or NaN delay would be a busy timer loop.
    checkOption("heartbeat.interval", options.heartbeat?.interval);
    checkOption("heartbeat.timeout", options.heartbeat?.timeout);
    checkOption("connectTimeout", options.connectTimeout);
    checkOption("outboxBytes", options.outboxBytes);
    checkOption("minUptime", options.minUptime, true);
    const maxRetries = options.maxRetries;
    if (
      maxRetries !== undefined && maxRetries !== Infinity &&
      !(Number.isInteger(maxRetries) && maxRetries >= 0)
    ) {
      throw new RangeError(`maxRetries must be a whole number >= 0 or Infinity, not ${maxRetries}`);
    }
    this.#options = options;
    const Ctor = options.WebSocket ??
      (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Ctor) throw new TypeError("no WebSocket class: pass options.WebSocket");
    this.#WebSocket = Ctor;
    this.#clock = options.clock ?? wallClock;
    this.#backoff = new Backoff(options.backoff);
    this.#outbox = new Outbox({ maxBytes: options.outboxBytes });
    this.#id = options.id;
    const persist = options.persist;
    if (persist) {
      const where = persist === true ? {} : persist;
      this.#storage = where.storage ??
        (globalThis as { sessionStorage?: StorageLike }).sessionStorage;
      this.#storageKey = where.key ?? this.#storageKey;
      this.#restore();
    }
    const g = globalThis as { window?: WindowLike; document?: DocumentLike };
    this.#window = options.window === undefined ? g.window : options.window;
    this.#document = options.document === undefined ? g.document : options.document;
    this.#window?.addEventListener("online", this.#onOnline);
    this.#window?.addEventListener("offline", this.#onOffline);
    this.#document?.addEventListener("visibilitychange", this.#onVisible);
    this.#connect();
  }

  /** `CONNECTING` (0: connecting or waiting to reconnect), `OPEN` (1) or `CLOSED` (3). */
  get readyState(): number {
    return this.#state;
  }

  /** The session id (after the first welcome). */
  get session(): string | undefined {
    return this.#session;
  }

  /** The client id (given, or the server's after the first welcome). */
  get id(): string | undefined {
    return this.#id;
  }

  /** The topics followed and the last offset delivered of each. */
  get topics(): ReadonlyMap<string, TopicPosition> {
    return this.#topics;
  }

  /** The endpoint URL (without the resume query the client adds). */
  get url(): string {
    return this.#url.href;
  }

  /** UTF-8 bytes of client messages sent or queued but not yet acknowledged. */
  get bufferedAmount(): number {
    return this.#outbox.bytes;
  }

  /**
   * Sends a message of a type the server registered (see the class notes):
   * numbered, queued until acknowledged, re-sent after reconnects, processed
   * at most once. Returns its `cseq`.
   *
   * @throws {TypeError} if it is not an object with a string `type`, or the
   * type is one of the protocol's own (`heartbeat`, `ack`…; subscribe with
   * {@linkcode subscribe}).
   * @throws {SyntaxError} if a string message is not JSON.
   * @throws {OutboxFullError} if the outbox is full.
   * @throws {Error} after `close()`.
   */
  send(type: string, payload?: Record<string, unknown>): number;
  /** Sends `{type, …}` (or its JSON text) as above. */
  send(message: { type: string; [field: string]: unknown } | string): number;
  send(
    message: { type: string; [field: string]: unknown } | string,
    payload?: Record<string, unknown>,
  ): number {
    let value = message;
    if (typeof message === "string") {
      // JSON text (an object, or something else that is refused below) or a type.
      value = payload !== undefined || !/^\s*[[{]/.test(message)
        ? { ...payload, type: message }
        : JSON.parse(message);
    }
    const type = (value as { type?: unknown })?.type;
    if (typeof type !== "string" || RESERVED_TYPES.has(type)) {
      throw new TypeError(`message must be an object with a string "type" (not ${OWN_TYPES})`);
    }
    return this.#push(value as { type: string; [field: string]: unknown });
  }

  /**
   * Sends like {@linkcode send} and resolves to the server handler's return
   * value (the `reply` of the ack); rejects with the server's `error`
   * reason, or if the socket closes first. Resolves undefined when the reply
   * was lost with a connection (the message was processed).
   */
  request(type: string, payload?: Record<string, unknown>): Promise<unknown> {
    const cseq = this.send(type, payload);
    return new Promise((resolve, reject) => this.#pending.set(cseq, { resolve, reject }));
  }

  /** Follows a topic (reliably, as a numbered message); returns the `cseq`. */
  subscribe(topic: string): number {
    return this.#push({ type: "subscribe", topic });
  }

  /** Stops following a topic; returns the `cseq`. */
  unsubscribe(topic: string): number {
    return this.#push({ type: "unsubscribe", topic });
  }

  /**
   * The live members of `topic` (the same view for the same topic until its
   * `close()`): the server sends the state, then diffs; the view asks again
   * after a gap and after every reconnect. Following a topic's presence
   * does not join it.
   */
  presence(topic: string): PresenceView {
    let view = this.#presence.get(topic);
    if (view) return view;
    const send = (type: string) => {
      if (this.#state === OPEN) this.#sendText(JSON.stringify({ type, topic }));
    };
    view = new PresenceView(topic, () => send("presence_subscribe"), () => {
      if (this.#presence.get(topic) !== view) return;
      this.#presence.delete(topic);
      send("presence_unsubscribe");
    });
    this.#presence.set(topic, view);
    view.resync();
    return view;
  }

  /**
   * Calls `handler` with every publication of `type` (any topic); returns
   * the function that stops it.
   */
  on<T = Record<string, unknown>>(
    type: string,
    handler: (message: Publication & T) => void,
  ): () => void {
    const listener = (event: Event) => {
      const data = (event as MessageEvent<Publication>).data;
      if (data.type === type) handler(data as Publication & T);
    };
    this.addEventListener("message", listener);
    return () => this.removeEventListener("message", listener);
  }

  #push(value: { type: string; [field: string]: unknown }): number {
    if (this.#state === CLOSED) throw new Error("ReconnectingSocket is closed");
    const entry = this.#outbox.push(value);
    if (this.#state === OPEN) {
      this.#sendText(entry.text);
      this.#sentCseq = entry.cseq;
    }
    this.#save();
    return entry.cseq;
  }

  /**
   * Closes for good. Every timer and listener is released before it
   * returns; the final `close` event follows; pending requests reject. What
   * the outbox still holds (`bufferedAmount`) is not sent again (unless
   * `persist` restores it on the next page): messages queued while
   * disconnected are never sent.
   *
   * @throws {RangeError} for a code a client may not send (RFC 6455 §7.4: 1000 or 3000..4999).
   */
  close(code = 1000, reason = ""): void {
    if (code !== 1000 && (code < 3000 || code > 4999)) {
      throw new RangeError(`close code ${code}: use 1000 or 3000..4999`);
    }
    if (this.#state === CLOSED) return;
    this.#finish(code, reason, true);
  }

  /** A timer on the clock; delays past what timers hold (a server's hint may be) are capped. */
  #later(callback: () => void, delay: number): unknown {
    return this.#clock.setTimeout(callback, Math.min(delay, MAX_TIMER_DELAY));
  }

  #emit(type: string, detail?: unknown): void {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #online(): boolean {
    return this.#window?.navigator?.onLine !== false;
  }

  #connect = (): void => {
    this.#retryTimer = undefined;
    if (this.#state === CLOSED || this.#ws || !this.#online()) return;
    // A retry timer capped at MAX_TIMER_DELAY fires before a longer retry hint ends: wait on.
    const wait = this.#notBefore - this.#clock.now();
    if (wait > 0) {
      this.#retryTimer = this.#later(this.#connect, wait);
      return;
    }
    const url = new URL(this.#url);
    const query = url.searchParams;
    if (this.#id !== undefined) query.set("id", this.#id);
    if (this.#session !== undefined) query.set("session", this.#session);
    let ws: WebSocketLike;
    try {
      ws = new this.#WebSocket(url.href, this.#options.protocols);
    } catch (error) {
      this.#emit("error", { reason: String(error) });
      this.#lost(ABNORMAL, "connect failed", false);
      return;
    }
    this.#ws = ws;
    ws.onmessage = (event: { data: unknown }) => this.#onMessage(event.data);
    ws.onclose = (event: { code: number; reason: string; wasClean: boolean }) => {
      this.#detach();
      if (event.code === SESSION_TAKEN_OVER) return this.#takenOver(event.reason, event.wasClean);
      // 4001 (session ended) is resumed like any drop: the server answers
      // resume_failed with the old session's last_cseq.
      // Deno reports a dropped TCP connection as code 0; browsers say 1006 (RFC 6455 §7.1.5).
      this.#lost(event.code || ABNORMAL, event.reason, event.wasClean);
    };
    ws.onerror = () => this.#emit("error", { reason: "socket error" });
    this.#connectTimer = this.#later(
      () => this.#drop("connect timeout"),
      this.#options.connectTimeout ?? 10_000,
    );
  };

  /** Stops listening to the current WebSocket and lets it go (never two live sockets). */
  #detach(code?: number, reason?: string): void {
    const ws = this.#ws;
    if (!ws) return;
    this.#ws = undefined;
    ws.onmessage = ws.onclose = ws.onerror = null;
    if (code !== undefined) {
      try {
        ws.close(code, reason);
      } catch {
        // A reason over 123 bytes (RFC 6455 §5.5) throws: close without one.
        ws.close(code);
      }
    }
  }

  /**
   * Gives up on the current connection without waiting for its close event
   * (on a dead line it may take minutes). Reported as 1006 unless `clean`.
   */
  #drop(reason: string, clean = false): void {
    this.#detach(1000, reason);
    this.#lost(clean ? 1000 : ABNORMAL, reason, clean);
  }

  #stopConnectionTimers(): void {
    const clock = this.#clock;
    clock.clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#monitor?.stop();
    this.#monitor = undefined;
  }

  /** The current connection is gone: tell, then retry, wait for online, or give up. */
  #lost(code: number, reason: string, wasClean: boolean): void {
    // A listener of the event that led here (an `error`) may have closed us: stay closed.
    if (this.#state === CLOSED) return;
    this.#stopConnectionTimers();
    const wasOpen = this.#state === OPEN;
    if (wasOpen && this.#clock.now() - this.#openedAt >= (this.#options.minUptime ?? 5_000)) {
      this.#backoff.reset();
      this.#retries = 0;
    }
    this.#state = CONNECTING;
    const hint = parseRetryAfter(code, reason) ?? this.#hint ?? 0;
    this.#hint = undefined;
    // Kept apart from the backoff: coming back online skips the backoff, never the hint.
    this.#notBefore = this.#clock.now() + hint;
    const online = this.#online();
    if (online && this.#retries >= (this.#options.maxRetries ?? Infinity)) {
      this.#finish(code, reason, wasClean);
      return;
    }
    if (wasOpen) this.#emit("close", { code, reason, wasClean, willReconnect: true });
    // A listener may have closed us; offline waits for the online event.
    if (this.#state === CLOSED || !online || this.#retryTimer !== undefined || this.#ws) {
      return;
    }
    const delay = this.#backoff.next() + hint;
    this.#retryCounted = true;
    this.#retryTimer = this.#later(this.#connect, delay);
    this.#emit("reconnecting", { attempt: ++this.#retries, delay });
  }

  /** Final: release everything, then tell. */
  #finish(code: number, reason: string, wasClean: boolean): void {
    this.#state = CLOSED;
    this.#detach(code === ABNORMAL ? 1000 : code, reason);
    this.#stopConnectionTimers();
    this.#clock.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#window?.removeEventListener("online", this.#onOnline);
    this.#window?.removeEventListener("offline", this.#onOffline);
    this.#document?.removeEventListener("visibilitychange", this.#onVisible);
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const request of pending) request.reject(new Error("ReconnectingSocket closed"));
    queueMicrotask(() => this.#emit("close", { code, reason, wasClean, willReconnect: false }));
  }

  #sendText(text: string): void {
    try {
      this.#ws?.send(text);
    } catch {
      // Closing underneath us: the close event follows, and the outbox still holds app messages.
    }
  }

  #onMessage(data: unknown): void {
    if (typeof data !== "string") return; // the protocol is text-only
    this.#monitor?.received();
    let message;
    try {
      message = parseServerMessage(data);
    } catch (error) {
      this.#emit("error", { reason: (error as Error).message });
      return;
    }
    if (isPublication(message)) return this.#publication(message);
    switch (message.type) {
      case "welcome":
        return this.#welcome(message);
      case "heartbeat_ack": {
        const rtt = this.#monitor?.acked(message);
        if (rtt !== undefined) this.#emit("heartbeat", { rtt });
        return;
      }
      case "ack":
        this.#outbox.ack(message.cseq);
        this.#settle(message.cseq, message.reply);
        this.#save();
        return;
      case "subscribed":
        return this.#subscribed(message);
      case "presence_state":
      case "presence_join":
      case "presence_leave":
      case "presence_update":
        return this.#presence.get(message.topic)?.apply(message);
      case "unsubscribed":
        this.#topics.delete(message.topic);
        this.#save();
        return this.#emit("unsubscribed", { topic: message.topic });
      case "resume_failed":
        return this.#resumeFailed(message);
      case "error": {
        const { type: _, ...detail } = message; // { reason, cseq? }
        const request = detail.cseq === undefined ? undefined : this.#pending.get(detail.cseq);
        if (request) {
          this.#pending.delete(detail.cseq!);
          request.reject(new Error(detail.reason));
        }
        return this.#emit("error", detail);
      }
      case "reconnect":
        // Close cleanly and come back after at least the asked delay.
        this.#hint = message.delay;
        return this.#drop("reconnect requested", true);
    }
  }

  #welcome(welcome: Welcome): void {
    this.#stopConnectionTimers();
    this.#session = welcome.session;
    this.#id = welcome.id;
    this.#outbox.ack(welcome.last_cseq);
    this.#settle(welcome.last_cseq);
    if (!welcome.resumed) {
      // A new session counts from its last_cseq: the rest go on from there, renumbered.
      for (const [from, to] of this.#outbox.renumber(welcome.last_cseq + 1)) {
        const request = this.#pending.get(from);
        if (request) {
          this.#pending.delete(from);
          this.#pending.set(to, request);
        }
      }
      this.#sentCseq = 0;
    }
    this.#state = OPEN;
    this.#openedAt = this.#clock.now();
    // Every topic followed is recovered from the last offset delivered.
    for (const topic of this.#topics.keys()) this.#resync(topic);
    // Presence is state, not history: ask for it afresh.
    for (const view of this.#presence.values()) view.resync();
    // Oldest first: the server processes client messages in cseq order.
    for (const entry of this.#outbox.entries) this.#sendText(entry.text);
    this.#sentCseq = Math.max(this.#sentCseq, this.#outbox.entries.at(-1)?.cseq ?? 0);
    const timing = this.#options.heartbeat;
    this.#monitor = new HeartbeatMonitor({
      interval: timing?.interval ?? welcome.heartbeat.interval,
      timeout: timing?.timeout ?? welcome.heartbeat.timeout,
      clock: this.#clock,
      send: (heartbeat) => this.#sendText(JSON.stringify(heartbeat)),
      onDead: () => this.#drop("heartbeat timeout"),
    });
    this.#monitor.start();
    this.#save();
    this.#emit("open", { session: welcome.session, id: welcome.id, resumed: welcome.resumed });
  }

  /**
   * The old session is gone; the welcome of a new one follows. What it
   * processed must not reach the new one: drop it from the outbox now, the
   * welcome re-sends the rest.
   */
  #resumeFailed(message: ResumeFailed, ours = message.session === this.#session): void {
    // Only our own session's count applies (the server echoes the id we asked for).
    const lastCseq = ours ? message.last_cseq : undefined;
    const dropped = lastCseq === undefined ? 0 : this.#outbox.ack(lastCseq);
    if (lastCseq !== undefined) this.#settle(lastCseq);
    let resent = 0;
    for (const entry of this.#outbox.entries) {
      if (entry.cseq > this.#sentCseq) break; // queued while away: never sent
      resent++;
    }
    const detail: ResumeFailedDetail = {
      session: message.session,
      reason: message.reason,
      dropped,
      resent,
    };
    if (lastCseq !== undefined) detail.lastCseq = lastCseq;
    this.#emit("resume_failed", detail);
  }

  /**
   * Another connection resumed our session: it is theirs now. Resuming it
   * would take it back (two tabs would ping-pong), so a new session starts;
   * the close reason says what the old one processed, as a `resume_failed`
   * would, and is handled as one.
   */
  #takenOver(reason: string, wasClean: boolean): void {
    const session = this.#session ?? "";
    this.#session = undefined;
    this.#lost(SESSION_TAKEN_OVER, reason, wasClean);
    if (this.#state === CLOSED) return; // a listener closed us, or we gave up: no new session
    const failed: ResumeFailed = { type: "resume_failed", session, reason: "session taken over" };
    const lastCseq = parseLastCseq(SESSION_TAKEN_OVER, reason);
    if (lastCseq !== undefined) failed.last_cseq = lastCseq;
    // Said on our own connection about our own session: it applies.
    this.#resumeFailed(failed, true);
  }

  /** Resolves requests up to `cseq`: `reply` for `cseq` itself, undefined (lost) for earlier ones. */
  #settle(cseq: number, reply?: unknown): void {
    if (this.#pending.size === 0) return;
    for (const [number, request] of this.#pending) {
      if (number > cseq) continue;
      this.#pending.delete(number);
      request.resolve(number === cseq ? reply : undefined);
    }
  }

  /** A publication: delivered if it is the next of its topic; a gap starts a recovery. */
  #publication(message: Publication): void {
    const topic = this.#topics.get(message.topic);
    // Not followed (yet, or any more), or had already: drop, never deliver twice.
    if (!topic || message.offset <= topic.offset) return;
    if (message.offset !== topic.offset + 1) {
      if (!topic.syncing) {
        this.#emit("error", {
          reason: `offset gap in "${message.topic}": expected ${
            topic.offset + 1
          }, got ${message.offset}`,
        });
        // Never skip: the server sends what is missing, or says it cannot.
        this.#resync(message.topic);
      }
      return;
    }
    topic.offset = message.offset;
    this.#save();
    this.dispatchEvent(new MessageEvent("message", { data: message }));
  }

  /** Asks the server for every publication of `topic` after the last one delivered. */
  #resync(name: string): void {
    const topic = this.#topics.get(name)!;
    topic.syncing = true;
    this.#sendText(
      JSON.stringify({ type: "subscribe", topic: name, epoch: topic.epoch, offset: topic.offset }),
    );
  }

  #subscribed(message: SubscribedMessage): void {
    const { topic: name, epoch, offset, recovered } = message;
    const topic = this.#topics.get(name);
    if (recovered === undefined && topic) {
      // Where the topic stands, for a topic followed already: a recovery says the rest.
      if (!topic.syncing && topic.epoch !== epoch) this.#resync(name);
      return;
    }
    if (!topic) this.#topics.set(name, { epoch, offset, syncing: false });
    else {
      topic.syncing = false;
      if (!recovered || topic.epoch !== epoch) {
        topic.epoch = epoch;
        topic.offset = offset;
      }
    }
    this.#save();
    const detail: SubscribedDetail = { topic: name, epoch, offset };
    if (recovered !== undefined) detail.recovered = recovered;
    this.#emit("subscribed", detail);
  }

  /** Stores the session for `persist`, once per turn however much changed. */
  #save(): void {
    if (!this.#storage || this.#saving) return;
    this.#saving = true;
    queueMicrotask(() => {
      this.#saving = false;
      const saved: Saved = {
        id: this.#id,
        session: this.#session,
        topics: [...this.#topics].map(([name, t]) => [name, t.epoch, t.offset]),
        outbox: this.#outbox.entries.map((entry) => [entry.cseq, entry.text]),
        next: this.#outbox.nextCseq,
      };
      try {
        this.#storage!.setItem(this.#storageKey, JSON.stringify(saved));
      } catch {
        // Storage full or denied: the session just does not survive a reload.
      }
    });
  }

  #restore(): void {
    let saved: Saved;
    try {
      saved = JSON.parse(this.#storage!.getItem(this.#storageKey) ?? "null");
      if (!saved || !Array.isArray(saved.topics) || !Array.isArray(saved.outbox)) return;
      this.#outbox.restore(saved.outbox, saved.next);
    } catch {
      return; // unreadable: start afresh
    }
    this.#id ??= saved.id;
    this.#session = saved.session;
    for (const [name, epoch, offset] of saved.topics) {
      this.#topics.set(name, { epoch, offset, syncing: false });
    }
    // They may have been sent by the last page: count them as sent.
    this.#sentCseq = this.#outbox.entries.at(-1)?.cseq ?? 0;
  }

  #onOnline = (): void => {
    this.dispatchEvent(new Event("online"));
    if (this.#state === OPEN) this.#monitor?.check();
    else if (this.#state === CONNECTING && !this.#ws) {
      // Back online: try now rather than sit out a long backoff, but not before
      // the server's retry hint (1012/1013 retry-after, reconnect delay) is over.
      this.#clock.clearTimeout(this.#retryTimer);
      const wait = this.#notBefore - this.#clock.now();
      if (wait <= 0) return this.#connect();
      // A retry still scheduled keeps its number; else this is the free attempt of coming back.
      if (this.#retryTimer === undefined) this.#retryCounted = false;
      this.#retryTimer = this.#later(this.#connect, wait);
      const attempt = this.#retries + (this.#retryCounted ? 0 : 1);
      this.#emit("reconnecting", { attempt, delay: wait });
    }
  };

  #onOffline = (): void => {
    this.dispatchEvent(new Event("offline"));
    // The connection is probably dead: find out within one timeout.
    this.#monitor?.check();
    // Attempts now would fail and burn retries; the online event restarts them.
    if (this.#retryTimer !== undefined) {
      this.#clock.clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
      if (this.#retryCounted) this.#retries--; // that retry never happened
    }
  };

  #onVisible = (): void => {
    // Background tabs run timers late: check liveness the moment the tab is back.
    if (this.#document?.visibilityState === "visible") this.#monitor?.check();
  };
}
