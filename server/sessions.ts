/**
 * Sessions of the `/ws` endpoint: what outlives one WebSocket connection.
 *
 * A session numbers every application message it is sent (`seq`, from 1),
 * keeps the ones the client has not acknowledged in a byte-bounded replay
 * buffer, and remembers the last client `cseq` it processed. When its
 * connection drops it waits a grace period for the client to come back with
 * `?session=…&last_seq=N`; then {@linkcode SessionStore.resume} hands back
 * exactly the messages after N, or says why it cannot.
 *
 * ```text
 *  seq:  1  2  3 │ 4  5  6  7        buffer holds 4..7 (1..3 acked or dropped)
 *                └ floor             resume with last_seq 3..7 works, < 3 is an overrun
 * ```
 *
 * Expiry needs no timer per session: the grace period is the same for all,
 * so detached sessions sit in a map in the order they detached, which is the
 * order they expire. A sweep walks from the front and stops at the first one
 * still in grace. Every store operation sweeps first (lazy), and one timer —
 * armed only while some session is detached and some connection is live, so
 * it never keeps an idle process or a finished test alive — sweeps the rest.
 *
 * A removed session (expired, evicted, failed to resume) leaves a tombstone:
 * its id, client id and last `cseq`, final since nothing can reach the
 * session any more. A client that comes back too late is told that `cseq`
 * and re-sends only what was never processed. Tombstones sit in a ring of
 * fixed size, so the oldest is overwritten: bounded memory, O(1), no timer.
 *
 * @module
 */
import type { Clock } from "../protocol/clock.ts";
import { utf8Length } from "../protocol/utf8.ts";
import { systemClock } from "./timer_heap.ts";

/**
 * An application message serialised once, numbered per recipient.
 *
 * A broadcast reaches every session of a room, each with its own `seq`. The
 * JSON is built once as a head (`{"type":…,"seq":`) and a tail (the other
 * fields); {@linkcode PreparedMessage.text} only joins them around the
 * number, and every replay buffer holding the message shares this one object.
 *
 * @example
 * ```ts
 * import { PreparedMessage } from "@heartwire/heartwire/server";
 * const message = new PreparedMessage("chat", { from: "c1", text: "hi" });
 * message.text(7); // '{"type":"chat","seq":7,"from":"c1","text":"hi"}'
 * message.bytes(7); // 47
 * ```
 */
export class PreparedMessage {
  /** The message `type`. */
  readonly type: string;
  readonly #head: string;
  readonly #tail: string;
  readonly #fixedBytes: number;

  /**
   * Serialises `fields` (which must not hold `type` or `seq`) after `type`
   * and `seq`, in their own key order.
   */
  constructor(type: string, fields: Record<string, unknown> = {}) {
    this.type = type;
    this.#head = `{"type":${JSON.stringify(type)},"seq":`;
    const rest = JSON.stringify(fields);
    this.#tail = rest === "{}" ? "}" : "," + rest.slice(1);
    this.#fixedBytes = utf8Length(this.#head) + utf8Length(this.#tail);
  }

  /** The JSON text of this message numbered `seq`. */
  text(seq: number): string {
    return this.#head + seq + this.#tail;
  }

  /** The UTF-8 size of {@linkcode PreparedMessage.text} for `seq`. */
  bytes(seq: number): number {
    return this.#fixedBytes + String(seq).length;
  }
}

/**
 * One client's session: its numbering, replay buffer and dedupe state.
 * `C` is the type of the connection attached to it.
 *
 * @example
 * ```ts
 * import { PreparedMessage, Session } from "@heartwire/heartwire/server";
 * const session = new Session("s1", "c1", { replayBytes: 1024 });
 * session.push(new PreparedMessage("note", { n: 1 })); // '{"type":"note","seq":1,"n":1}'
 * session.push(new PreparedMessage("note", { n: 2 }));
 * session.replay(1); // ['{"type":"note","seq":2,"n":2}']
 * session.ack(2);
 * session.bufferedBytes; // 0
 * ```
 */
export class Session<C = unknown> {
  /** The session id: a secret, since it lets its holder resume. */
  readonly id: string;
  /** The client id, sent as `from` on its chat messages. */
  readonly clientId: string;
  /** Rooms this session receives messages of. */
  readonly rooms: Set<string> = new Set();
  /** Highest client `cseq` processed (0 before any). */
  lastCseq: number = 0;
  /** The live connection, or undefined while detached. */
  connection: C | undefined = undefined;
  /** Clock time the session lost its connection, or -1 while attached (or never attached). */
  detachedAt: number = -1;

  readonly #replayBytes: number;
  /** Last seq assigned. */
  #seq = 0;
  /** Buffered messages: `#messages[#head]` has seq `#seq - (#messages.length - #head) + 1`. */
  #messages: PreparedMessage[] = [];
  #sizes: number[] = [];
  #head = 0;
  #bytes = 0;

  /** Creates a session whose replay buffer holds at most `replayBytes` bytes of JSON. */
  constructor(id: string, clientId: string, options: { replayBytes: number }) {
    this.id = id;
    this.clientId = clientId;
    this.#replayBytes = options.replayBytes;
  }

  /** The last seq assigned (0 before the first message). */
  get seq(): number {
    return this.#seq;
  }

  /** How many messages the replay buffer holds. */
  get buffered(): number {
    return this.#messages.length - this.#head;
  }

  /** UTF-8 bytes of JSON in the replay buffer. */
  get bufferedBytes(): number {
    return this.#bytes;
  }

  /** The lowest seq still buffered (`seq + 1` when the buffer is empty). */
  get floor(): number {
    return this.#seq - this.buffered + 1;
  }

  /**
   * Numbers `message` with the next seq, keeps it for replay and returns its
   * text for sending. The oldest messages are dropped while the buffer is over
   * its byte bound: a resume that needs them will fail instead of losing
   * them silently.
   */
  push(message: PreparedMessage): string {
    const seq = ++this.#seq;
    const size = message.bytes(seq);
    this.#messages.push(message);
    this.#sizes.push(size);
    this.#bytes += size;
    while (this.#bytes > this.#replayBytes) this.#dropOldest();
    this.#compact();
    return message.text(seq);
  }

  /** The client has everything up to `seq` (cumulative): forget it. */
  ack(seq: number): void {
    const through = Math.min(seq, this.#seq);
    while (this.floor <= through) this.#dropOldest();
    this.#compact();
  }

  /**
   * The texts of every message after `lastSeq`, in order; undefined if the
   * buffer no longer holds all of them or `lastSeq` is ahead of the session.
   */
  replay(lastSeq: number): string[] | undefined {
    if (!this.canReplay(lastSeq)) return undefined;
    const texts: string[] = [];
    const first = this.floor;
    for (let seq = lastSeq + 1; seq <= this.#seq; seq++) {
      texts.push(this.#messages[this.#head + seq - first].text(seq));
    }
    return texts;
  }

  /** Whether every message after `lastSeq` is still buffered. */
  canReplay(lastSeq: number): boolean {
    return lastSeq >= this.floor - 1 && lastSeq <= this.#seq;
  }

  /** Drops the whole replay buffer (the session is gone). */
  clear(): void {
    this.#messages = [];
    this.#sizes = [];
    this.#head = 0;
    this.#bytes = 0;
  }

  #dropOldest(): void {
    this.#bytes -= this.#sizes[this.#head];
    this.#messages[this.#head] = undefined!; // let the message be collected
    this.#head++;
  }

  /** Shifts the arrays once the dropped prefix is half of them: amortised O(1) per message. */
  #compact(): void {
    const head = this.#head;
    if (head === this.#messages.length) {
      this.#messages.length = this.#sizes.length = this.#head = 0;
    } else if (head >= 1024 && head * 2 >= this.#messages.length) {
      this.#messages = this.#messages.slice(head);
      this.#sizes = this.#sizes.slice(head);
      this.#head = 0;
    }
  }
}

/** What a removed session leaves behind. */
interface Tombstone {
  readonly id: string;
  readonly clientId: string;
  readonly lastCseq: number;
}

/**
 * The last `max` tombstones, by session id. A ring rather than a Map in
 * insertion order: deleting a Map's first entries leaves holes that every
 * later "first entry" lookup walks over until the Map is rehashed.
 */
class Tombstones {
  readonly #max: number;
  readonly #ring: Tombstone[] = [];
  /** The ring slot the next tombstone takes: the oldest one once the ring is full. */
  #next = 0;
  readonly #byId = new Map<string, Tombstone>();

  constructor(max: number) {
    this.#max = max > 0 ? Math.floor(max) : 0; // a whole number, or the ring never wraps
  }

  get size(): number {
    return this.#byId.size;
  }

  add(id: string, clientId: string, lastCseq: number): void {
    if (this.#max === 0) return;
    const oldest = this.#ring[this.#next];
    // Only if it is still the current tombstone of its id.
    if (oldest !== undefined && this.#byId.get(oldest.id) === oldest) this.#byId.delete(oldest.id);
    const tombstone = { id, clientId, lastCseq };
    this.#ring[this.#next] = tombstone;
    this.#byId.set(id, tombstone);
    this.#next = this.#next + 1 === this.#max ? 0 : this.#next + 1;
  }

  get(id: string): Tombstone | undefined {
    return this.#byId.get(id);
  }

  clear(): void {
    this.#ring.length = 0;
    this.#next = 0;
    this.#byId.clear();
  }
}

/**
 * Options for {@linkcode SessionStore}.
 *
 * @example
 * ```ts
 * import type { SessionStoreOptions } from "@heartwire/heartwire/server";
 * const options: SessionStoreOptions = { grace: 60_000, replayBytes: 64 * 1024 };
 * ```
 */
export interface SessionStoreOptions<C = unknown> {
  /** Time source, and the one sweep timer. Default {@linkcode systemClock}. */
  clock?: Clock;
  /** How long (ms) a detached session waits for its client to resume. Default 60 000. */
  grace?: number;
  /** Bytes of JSON each session keeps for replay. Default 64 KiB. */
  replayBytes?: number;
  /**
   * Sessions kept at once, live and detached. At the cap a new session evicts
   * the oldest detached one; with none detached it is refused. Default 10 000.
   */
  maxSessions?: number;
  /**
   * Removed sessions whose last `cseq` is remembered (the oldest is forgotten
   * first), so a client that comes back after its session is gone re-sends
   * only what was never processed. About 200 bytes each. 0 keeps none.
   * Default 4 × `maxSessions`.
   */
  maxTombstones?: number;
  /** Makes session ids; they must be unguessable. Default `crypto.randomUUID`. */
  createId?: () => string;
  /**
   * Told when a session is removed (expired, evicted, failed to resume, or
   * {@linkcode SessionStore.remove}d). `session.connection` is still set if
   * the session was live, so the owner can close that connection.
   */
  onRemove?: (session: Session<C>) => void;
}

/**
 * The outcome of {@linkcode SessionStore.resume}: the session and the
 * messages to replay, or why it cannot be resumed and, when known, the last
 * client `cseq` the session processed (it will process no more).
 *
 * @example
 * ```ts
 * import type { ResumeResult } from "@heartwire/heartwire/server";
 * const failed: ResumeResult = { ok: false, reason: "unknown or expired session", lastCseq: 3 };
 * ```
 */
export type ResumeResult<C = unknown> =
  | { ok: true; session: Session<C>; replay: string[] }
  | { ok: false; reason: string; lastCseq?: number };

/**
 * Every session of an endpoint, with grace-period expiry and bounded counts.
 *
 * @example
 * ```ts
 * import { PreparedMessage, SessionStore } from "@heartwire/heartwire/server";
 * const store = new SessionStore<string>({ grace: 30_000 });
 * const session = store.create("c1")!;
 * store.attach(session, "socket 1");
 * session.push(new PreparedMessage("note", { n: 1 }));
 * store.detach(session); // the socket dropped
 * const result = store.resume(session.id, 0);
 * if (result.ok) console.log(result.replay); // ['{"type":"note","seq":1,"n":1}']
 * store.dispose();
 * ```
 */
export class SessionStore<C = unknown> {
  readonly #clock: Clock;
  readonly #grace: number;
  readonly #replayBytes: number;
  readonly #maxSessions: number;
  readonly #createId: () => string;
  readonly #onRemove: ((session: Session<C>) => void) | undefined;
  readonly #tombstones: Tombstones;
  #sessions = new Map<string, Session<C>>();
  /** Detached sessions, by id. */
  #detached = new Map<string, Session<C>>();
  /**
   * Detachments in the order they happened, which is the order they expire.
   * An entry goes stale when its session re-attaches or is removed; stale
   * entries are skipped when they reach the front. (A Map cannot play this
   * role: V8 leaves a hole per deleted entry, so taking the first entry of a
   * Map used as a queue costs O(holes) — measured ~20 µs at 40 000 sessions.)
   */
  #expiry: { session: Session<C>; at: number }[] = [];
  #expiryHead = 0;
  #live = 0;
  #timer: unknown = undefined;

  /** Creates an empty store. */
  constructor(options: SessionStoreOptions<C> = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#grace = options.grace ?? 60_000;
    this.#replayBytes = options.replayBytes ?? 64 * 1024;
    this.#maxSessions = Math.max(1, options.maxSessions ?? 10_000);
    this.#tombstones = new Tombstones(options.maxTombstones ?? 4 * this.#maxSessions);
    this.#createId = options.createId ?? (() => crypto.randomUUID());
    this.#onRemove = options.onRemove;
  }

  /** Sessions held, live and detached. */
  get size(): number {
    return this.#sessions.size;
  }

  /** Sessions with a live connection. */
  get live(): number {
    return this.#live;
  }

  /** Detached sessions still in their grace period (or expired and not yet swept). */
  get detached(): number {
    return this.#detached.size;
  }

  /** Removed sessions whose last `cseq` is still remembered. */
  get tombstones(): number {
    return this.#tombstones.size;
  }

  /** Every session held. */
  values(): IterableIterator<Session<C>> {
    return this.#sessions.values();
  }

  /** The session with this id, if it exists and has not expired. */
  get(id: string): Session<C> | undefined {
    this.sweep();
    return this.#sessions.get(id);
  }

  /**
   * Makes a new (detached, unnumbered) session for `clientId`. At the
   * session cap the oldest detached session is evicted; returns undefined if
   * every session is live.
   */
  create(clientId: string): Session<C> | undefined {
    this.sweep();
    if (this.#sessions.size >= this.#maxSessions) {
      const oldest = this.#oldestDetached();
      if (oldest === undefined) return undefined;
      this.remove(oldest);
    }
    let id = this.#createId();
    // Never reuse a tombstone's id: its client would resume a stranger's session.
    while (this.#sessions.has(id) || this.#tombstones.get(id)) id = this.#createId();
    const session = new Session<C>(id, clientId, { replayBytes: this.#replayBytes });
    this.#sessions.set(id, session);
    return session;
  }

  /**
   * Looks up session `id` for a client that has every message up to
   * `lastSeq`. On success the messages after `lastSeq` are returned for
   * replay and the ones up to it are forgotten. A session that cannot replay
   * everything is removed, even if live, since its client starts a new one:
   * the `lastCseq` returned must be final. `clientId`, if given, must be the
   * session's; if it is not, the session is left alone and its `lastCseq`
   * is not told.
   */
  resume(id: string, lastSeq: number, clientId?: string): ResumeResult<C> {
    const session = this.get(id);
    if (!session) {
      const failed: ResumeResult<C> = { ok: false, reason: "unknown or expired session" };
      const tombstone = this.#tombstones.get(id);
      if (tombstone && (clientId === undefined || clientId === tombstone.clientId)) {
        failed.lastCseq = tombstone.lastCseq;
      }
      return failed;
    }
    if (clientId !== undefined && clientId !== session.clientId) {
      return { ok: false, reason: "session belongs to another client id" };
    }
    const replay = session.replay(lastSeq);
    if (!replay) {
      this.remove(session);
      return {
        ok: false,
        reason: lastSeq > session.seq
          ? "last_seq is ahead of the session"
          : "replay buffer overrun",
        lastCseq: session.lastCseq,
      };
    }
    session.ack(lastSeq);
    return { ok: true, session, replay };
  }

  /** Gives `session` its live connection (replacing any other). */
  attach(session: Session<C>, connection: C): void {
    if (session.connection === undefined) this.#live++;
    session.connection = connection;
    session.detachedAt = -1;
    this.#detached.delete(session.id);
    this.#arm();
  }

  /** The session lost its connection: its grace period starts now. */
  detach(session: Session<C>): void {
    if (session.connection === undefined || !this.#sessions.has(session.id)) return;
    session.connection = undefined;
    session.detachedAt = this.#clock.now();
    this.#live--;
    this.#detached.set(session.id, session);
    this.#expiry.push({ session, at: session.detachedAt });
    if (this.#expiryHead > 1024 && this.#expiryHead * 2 > this.#expiry.length) {
      // Drop the consumed front so the queue stays proportional to what is live.
      this.#expiry = this.#expiry.slice(this.#expiryHead);
      this.#expiryHead = 0;
    }
    this.#arm();
  }

  /** Forgets a session at once. */
  remove(session: Session<C>): void {
    if (this.#drop(session)) this.#arm();
  }

  /** Removes every detached session whose grace period has passed; returns how many. */
  sweep(): number {
    if (this.#detached.size === 0) return 0;
    const expiredBefore = this.#clock.now() - this.#grace;
    let removed = 0;
    for (;;) {
      const session = this.#oldestDetached();
      if (session === undefined || session.detachedAt > expiredBefore) break; // the rest detached later
      this.#drop(session);
      removed++;
    }
    if (removed > 0) this.#arm();
    return removed;
  }

  /** The session detached longest ago, dropping stale queue entries on the way. */
  #oldestDetached(): Session<C> | undefined {
    const queue = this.#expiry;
    while (this.#expiryHead < queue.length) {
      const { session, at } = queue[this.#expiryHead];
      if (this.#detached.get(session.id) === session && session.detachedAt === at) {
        return session;
      }
      this.#expiryHead++;
    }
    // Everything was stale: start over rather than grow forever.
    queue.length = 0;
    this.#expiryHead = 0;
    return undefined;
  }

  #drop(session: Session<C>): boolean {
    if (this.#sessions.get(session.id) !== session) return false;
    this.#sessions.delete(session.id);
    this.#detached.delete(session.id);
    this.#tombstones.add(session.id, session.clientId, session.lastCseq);
    session.clear();
    this.#onRemove?.(session); // before the connection is cleared: the owner may close it
    if (session.connection !== undefined) this.#live--;
    session.connection = undefined;
    return true;
  }

  /** Forgets every session and tombstone, and cancels the sweep timer. */
  dispose(): void {
    for (const session of [...this.#sessions.values()]) this.#drop(session);
    this.#expiry = [];
    this.#expiryHead = 0;
    this.#tombstones.clear();
    this.#disarm();
  }

  /**
   * Keeps the one sweep timer armed for the earliest expiry while sessions
   * are detached and connections live; with no live connection nothing can
   * touch the store, so a lingering timer would only hold the process open.
   * The next operation sweeps lazily instead.
   */
  #arm(): void {
    if (this.#detached.size === 0 || this.#live === 0) {
      this.#disarm();
      return;
    }
    if (this.#timer !== undefined) return; // an early wake-up re-arms for the new front
    const front = this.#oldestDetached()!;
    const delay = Math.max(0, front.detachedAt + this.#grace - this.#clock.now());
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.sweep();
      this.#arm();
    }, delay);
  }

  #disarm(): void {
    if (this.#timer === undefined) return;
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
