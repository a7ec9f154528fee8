/**
 * Sessions: what outlives one WebSocket connection — the client id, the
 * topics, and the last client `cseq` processed (at-most-once processing).
 *
 * A session does not buffer messages: topics keep history (see
 * {@linkcode MemoryHistory}) and the client recovers each from its offset.
 * When its connection drops a session waits a grace period for the client
 * to come back with `?session=…`; then it is removed and leaves a tombstone
 * (id, client id, last `cseq`), so a client that comes back too late is told
 * what the old session processed and re-sends only the rest.
 *
 * Space is shared fairly. Every session has an owner (the client's IP
 * address, an IPv6 one by its /64), and sessions and tombstones are bounded
 * per owner and per (owner, client id) as well as in total. Whoever needs
 * room takes it from its own oldest detached session or tombstone first, so
 * a client creating sessions by the thousand evicts its own, never another
 * client's, until the total cap leaves no choice; then it takes from the
 * owner holding the most.
 *
 * Expiry needs no timer per session: the grace period is the same for all,
 * so detached sessions sit in a queue in the order they detached, which is
 * the order they expire. Every store operation sweeps first (lazy), and one
 * timer — armed only while some session is detached and some connection is
 * live, so it never keeps an idle process alive — sweeps the rest.
 *
 * @module
 */
import type { Clock } from "../protocol/clock.ts";
import { systemClock } from "../server/mod.ts";
import type { Awaitable } from "./history.ts";

/**
 * One client's session.
 *
 * @example
 * ```ts
 * import { Session } from "@heartwire/heartwire/hub";
 * const session = new Session("s1", "alice", "192.0.2.7");
 * session.topics.add("lobby");
 * session.lastCseq = 3;
 * ```
 */
export class Session {
  /** The session id: a secret, since it lets its holder resume. */
  readonly id: string;
  /** The client id (`?id=`). */
  readonly clientId: string;
  /** Who the session counts against: the client's IP address (an IPv6 one by its /64). */
  readonly owner: string;
  /** The topics this session receives, its direct topic not included. */
  readonly topics: Set<string> = new Set();
  /** Highest client `cseq` processed (0 before any). */
  lastCseq: number = 0;
  /** True while a connection is attached. */
  attached: boolean = false;
  /** Clock time the session lost its connection, or -1 while attached (or never attached). */
  detachedAt: number = -1;

  /** Creates a session record. */
  constructor(id: string, clientId: string, owner: string) {
    this.id = id;
    this.clientId = clientId;
    this.owner = owner;
  }
}

/**
 * The outcome of {@linkcode SessionStore.resume}: the session, or why it
 * cannot be resumed and, when known, the last client `cseq` the session
 * processed (it will process no more).
 */
export type ResumeResult =
  | { ok: true; session: Session }
  | { ok: false; reason: string; lastCseq?: number };

/**
 * Where the hub keeps sessions. Every method may return a promise, so a
 * shared store (Redis, Deno KV) fits; the hub calls one at a time per
 * connection, in order.
 *
 * @example
 * ```ts
 * import { MemorySessionStore, type SessionStore } from "@heartwire/heartwire/hub";
 * const sessions: SessionStore = new MemorySessionStore({ grace: 30_000 });
 * const session = await sessions.create("alice", "192.0.2.7");
 * console.log(session?.clientId); // "alice"
 * sessions.dispose();
 * ```
 */
export interface SessionStore {
  /**
   * Told when a session is removed (expired, evicted, failed to resume,
   * removed). Set by the hub; `session.attached` is still true if a
   * connection was attached, so the hub can close it. The tombstone is
   * written before.
   */
  onRemove?: (session: Session) => void;
  /**
   * Told when a session was resumed on another node (a shared store): the
   * hub forgets its record here without ending the session, and closes its
   * connection as taken over. Set by the hub.
   */
  onMove?: (session: Session) => void;
  /** A new detached session for `clientId`, owned by `owner`; undefined when no room is left. */
  create(clientId: string, owner: string): Awaitable<Session | undefined>;
  /** The session `id`, if `clientId` (when given) is its client's; else why not. */
  resume(id: string, clientId?: string): Awaitable<ResumeResult>;
  /** A connection is attached to the session. */
  attach(session: Session): Awaitable<void>;
  /** The session lost its connection: its grace period starts now. */
  detach(session: Session): Awaitable<void>;
  /**
   * The session's `lastCseq` or `topics` changed: store them. Resolves to
   * `false` when the change was not stored because another node owns the
   * session now (it processes what this one did not); anything else means
   * stored.
   */
  update(session: Session): Awaitable<boolean | void>;
  /** Removes the session at once (it leaves a tombstone). */
  remove(session: Session): Awaitable<void>;
  /** Forgets everything and stops every timer. */
  dispose(): void;
  /**
   * Whether the session `id` exists anywhere (a shared store): lets a hub
   * with a broker send to a session on another node.
   */
  exists?(id: string): Awaitable<boolean>;
}

/**
 * Options for {@linkcode MemorySessionStore}. Every field has a default.
 */
export interface MemorySessionStoreOptions {
  /** Time source, and the one sweep timer. Default the system clock. */
  clock?: Clock;
  /** How long (ms) a detached session waits for its client to resume. Default 60 000. */
  grace?: number;
  /** Sessions kept at once, live and detached. Default 10 000. */
  maxSessions?: number;
  /** Sessions one owner (IP address) may hold. Default a quarter of `maxSessions`. */
  maxSessionsPerOwner?: number;
  /** Sessions one client id of one owner may hold. Default 64. */
  maxSessionsPerClient?: number;
  /**
   * Removed sessions whose last `cseq` is remembered for `resume_failed`
   * (about 200 bytes each). 0 keeps none. Default 4 × `maxSessions`.
   */
  maxTombstones?: number;
  /** Tombstones one owner may hold. Default a quarter of `maxTombstones`. */
  maxTombstonesPerOwner?: number;
  /** Makes session ids; they must be unguessable. Default `crypto.randomUUID`. */
  createId?: () => string;
}

/** What a removed session leaves behind. */
interface Tombstone {
  readonly id: string;
  readonly clientId: string;
  readonly owner: string;
  readonly lastCseq: number;
}

/** A FIFO with O(1) shift (an array and a head index, compacted as it goes). */
class Queue<T> {
  items: T[] = [];
  head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  peek(): T | undefined {
    return this.head < this.items.length ? this.items[this.head] : undefined;
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined!;
    if (this.head === this.items.length) this.items.length = this.head = 0;
    else if (this.head >= 64 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

/** What one owner holds. */
interface Owner {
  key: string;
  sessions: number;
  /** Its detachments in order (stale entries skipped, as in the global queue). */
  detached: Queue<Detachment>;
  tombstones: Queue<Tombstone>;
}

interface Detachment {
  session: Session;
  at: number;
}

/**
 * Every session in this process's memory, with grace-period expiry,
 * tombstones and fair bounds per owner and client.
 *
 * @example
 * ```ts
 * import { MemorySessionStore } from "@heartwire/heartwire/hub";
 * const store = new MemorySessionStore({ grace: 30_000 });
 * const session = store.create("alice", "192.0.2.7")!;
 * store.attach(session);
 * session.lastCseq = 4;
 * store.detach(session); // the socket dropped
 * store.remove(session);
 * store.resume(session.id, "alice"); // { ok: false, reason: "unknown or expired session", lastCseq: 4 }
 * store.dispose();
 * ```
 */
export class MemorySessionStore implements SessionStore {
  /** See {@linkcode SessionStore.onRemove}. */
  onRemove?: (session: Session) => void;

  readonly #clock: Clock;
  readonly #grace: number;
  readonly #maxSessions: number;
  readonly #maxPerOwner: number;
  readonly #maxPerClient: number;
  readonly #maxTombstones: number;
  readonly #maxTombstonesPerOwner: number;
  readonly #createId: () => string;
  readonly #sessions = new Map<string, Session>();
  readonly #owners = new Map<string, Owner>();
  /** Sessions per owner and client id (`owner + "\n" + clientId`). */
  readonly #clients = new Map<string, number>();
  readonly #tombstones = new Map<string, Tombstone>();
  #detached = 0;
  /** Every detachment in order: the expiry order. */
  #expiry = new Queue<Detachment>();
  #live = 0;
  #timer: unknown = undefined;

  /** Creates an empty store. */
  constructor(options: MemorySessionStoreOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#grace = options.grace ?? 60_000;
    this.#maxSessions = Math.max(1, Math.floor(options.maxSessions ?? 10_000));
    this.#maxPerOwner = Math.max(
      1,
      Math.floor(options.maxSessionsPerOwner ?? Math.ceil(this.#maxSessions / 4)),
    );
    this.#maxPerClient = Math.max(1, Math.floor(options.maxSessionsPerClient ?? 64));
    this.#maxTombstones = Math.max(0, Math.floor(options.maxTombstones ?? 4 * this.#maxSessions));
    this.#maxTombstonesPerOwner = Math.max(
      0,
      Math.floor(options.maxTombstonesPerOwner ?? Math.ceil(this.#maxTombstones / 4)),
    );
    this.#createId = options.createId ?? (() => crypto.randomUUID());
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
    return this.#detached;
  }

  /** Removed sessions whose last `cseq` is still remembered. */
  get tombstones(): number {
    return this.#tombstones.size;
  }

  /** The session with this id, if it exists and has not expired. */
  get(id: string): Session | undefined {
    this.sweep();
    return this.#sessions.get(id);
  }

  /**
   * Makes a new detached session. When `owner`, its client id, or the whole
   * store is at its bound, the oldest detached session of the same client,
   * owner, or (at the total cap, if the owner has none) of the owner holding
   * the most is evicted; undefined if none can be.
   */
  create(clientId: string, owner: string): Session | undefined {
    this.sweep();
    if (!this.#makeRoom(clientId, owner)) return undefined;
    let id = this.#createId();
    // Never reuse a tombstone's id: its client would resume a stranger's session.
    while (this.#sessions.has(id) || this.#tombstones.has(id)) id = this.#createId();
    const session = new Session(id, clientId, owner);
    this.#insert(session);
    return session;
  }

  /**
   * Takes in a detached session made elsewhere (a shared store's record,
   * resumed from another node), under the same bounds as
   * {@linkcode MemorySessionStore.create}; false if no room can be made or
   * the id is taken.
   */
  adopt(session: Session): boolean {
    this.sweep();
    if (this.#sessions.has(session.id)) return false;
    if (!this.#makeRoom(session.clientId, session.owner)) return false;
    session.attached = false;
    this.#insert(session);
    return true;
  }

  /** Evicts what `create` must for one more session of `clientId` and `owner`; false if it cannot. */
  #makeRoom(clientId: string, owner: string): boolean {
    if ((this.#clients.get(owner + "\n" + clientId) ?? 0) >= this.#maxPerClient) {
      const victim = this.#oldestDetachedOf(owner, clientId);
      if (!victim) return false;
      this.#drop(victim);
    }
    if ((this.#owners.get(owner)?.sessions ?? 0) >= this.#maxPerOwner) {
      const victim = this.#oldestDetachedOf(owner);
      if (!victim) return false;
      this.#drop(victim);
    }
    if (this.#sessions.size >= this.#maxSessions) {
      const victim = this.#oldestDetachedOf(owner) ?? this.#oldestDetachedOfLargest();
      if (!victim) return false;
      this.#drop(victim);
    }
    return true;
  }

  #insert(session: Session): void {
    const clientKey = session.owner + "\n" + session.clientId;
    this.#sessions.set(session.id, session);
    this.#owner(session.owner).sessions++;
    this.#clients.set(clientKey, (this.#clients.get(clientKey) ?? 0) + 1);
    this.#markDetached(session);
    this.#arm();
  }

  /**
   * The session `id`; `clientId`, if given, must be the session's. If the
   * session is gone its tombstone's `lastCseq` is told, but only to its own
   * client id (or when none is given).
   */
  resume(id: string, clientId?: string): ResumeResult {
    const session = this.get(id);
    if (!session) {
      const failed: ResumeResult = { ok: false, reason: "unknown or expired session" };
      const tombstone = this.#tombstones.get(id);
      if (tombstone && (clientId === undefined || clientId === tombstone.clientId)) {
        failed.lastCseq = tombstone.lastCseq;
      }
      return failed;
    }
    if (clientId !== undefined && clientId !== session.clientId) {
      return { ok: false, reason: "session belongs to another client id" };
    }
    return { ok: true, session };
  }

  /** A connection is attached. */
  attach(session: Session): void {
    if (this.#sessions.get(session.id) !== session) return;
    if (!session.attached) this.#live++;
    if (session.detachedAt >= 0) this.#detached--;
    session.attached = true;
    session.detachedAt = -1;
    this.#arm();
  }

  /** The session lost its connection. */
  detach(session: Session): void {
    if (!session.attached || this.#sessions.get(session.id) !== session) return;
    session.attached = false;
    this.#live--;
    this.#markDetached(session);
    this.#arm();
  }

  /** Nothing to do: the hub changed the record itself. */
  update(_session: Session): void {}

  /** Forgets a session at once; it leaves a tombstone. */
  remove(session: Session): void {
    if (this.#drop(session)) this.#arm();
  }

  /** Removes every detached session whose grace period has passed; returns how many. */
  sweep(): number {
    if (this.#detached === 0) return 0;
    const expiredBefore = this.#clock.now() - this.#grace;
    let removed = 0;
    for (;;) {
      const front = this.#front(this.#expiry);
      if (front === undefined || front.at > expiredBefore) break; // the rest detached later
      this.#drop(front.session);
      removed++;
    }
    if (removed > 0) this.#arm();
    return removed;
  }

  /** Forgets every session and tombstone, and cancels the sweep timer. */
  dispose(): void {
    for (const session of [...this.#sessions.values()]) this.#drop(session);
    this.#expiry = new Queue();
    this.#tombstones.clear();
    this.#owners.clear();
    this.#clients.clear();
    this.#disarm();
  }

  #owner(key: string): Owner {
    let owner = this.#owners.get(key);
    if (!owner) {
      owner = { key, sessions: 0, detached: new Queue(), tombstones: new Queue() };
      this.#owners.set(key, owner);
    }
    return owner;
  }

  /** A new session is detached until a connection attaches: it expires like one. */
  #markDetached(session: Session): void {
    session.detachedAt = this.#clock.now();
    this.#detached++;
    const entry = { session, at: session.detachedAt };
    this.#expiry.push(entry);
    this.#owner(session.owner).detached.push(entry);
  }

  /** The first still-valid detachment of a queue, dropping stale ones. */
  #front(queue: Queue<Detachment>): Detachment | undefined {
    for (;;) {
      const entry = queue.peek();
      if (entry === undefined) return undefined;
      const { session, at } = entry;
      if (this.#sessions.get(session.id) === session && session.detachedAt === at) return entry;
      queue.shift();
    }
  }

  /** The oldest detached session of `owner` (and of `clientId`, if given). */
  #oldestDetachedOf(owner: string, clientId?: string): Session | undefined {
    const queue = this.#owners.get(owner)?.detached;
    if (!queue) return undefined;
    this.#front(queue);
    for (let i = queue.head; i < queue.items.length; i++) {
      const { session, at } = queue.items[i];
      if (this.#sessions.get(session.id) !== session || session.detachedAt !== at) continue;
      if (clientId === undefined || session.clientId === clientId) return session;
    }
    return undefined;
  }

  /** The oldest detached session of the owner holding the most sessions that has one. */
  #oldestDetachedOfLargest(): Session | undefined {
    let best: Session | undefined;
    let most = 0;
    for (const [key, owner] of this.#owners) {
      if (owner.sessions <= most) continue;
      const session = this.#oldestDetachedOf(key);
      if (session) [best, most] = [session, owner.sessions];
    }
    return best;
  }

  #drop(session: Session): boolean {
    if (this.#sessions.get(session.id) !== session) return false;
    this.#sessions.delete(session.id);
    if (session.detachedAt >= 0) this.#detached--;
    const owner = this.#owner(session.owner);
    owner.sessions--;
    const clientKey = session.owner + "\n" + session.clientId;
    const count = (this.#clients.get(clientKey) ?? 1) - 1;
    if (count > 0) this.#clients.set(clientKey, count);
    else this.#clients.delete(clientKey);
    this.#addTombstone(session);
    this.onRemove?.(session); // before `attached` is cleared: the hub may close its connection
    if (session.attached) this.#live--;
    session.attached = false;
    session.detachedAt = -1;
    if (owner.sessions === 0 && owner.tombstones.length === 0) this.#owners.delete(session.owner);
    return true;
  }

  #addTombstone(session: Session): void {
    if (this.#maxTombstones === 0 || this.#maxTombstonesPerOwner === 0) return;
    const owner = this.#owner(session.owner);
    // The owner's own oldest go first; another owner's only at the total cap
    // when this one has none, and then the largest holder's.
    if (owner.tombstones.length >= this.#maxTombstonesPerOwner) this.#forget(owner);
    if (this.#tombstones.size >= this.#maxTombstones) {
      let victim: Owner | undefined = owner.tombstones.length > 0 ? owner : undefined;
      if (!victim) {
        for (const other of this.#owners.values()) {
          if (!victim || other.tombstones.length > victim.tombstones.length) victim = other;
        }
      }
      if (victim) this.#forget(victim);
      if (victim && victim !== owner && victim.sessions === 0 && victim.tombstones.length === 0) {
        this.#owners.delete(victim.key);
      }
    }
    const tombstone = {
      id: session.id,
      clientId: session.clientId,
      owner: session.owner,
      lastCseq: session.lastCseq,
    };
    owner.tombstones.push(tombstone);
    this.#tombstones.set(session.id, tombstone);
  }

  #forget(owner: Owner): void {
    const oldest = owner.tombstones.shift();
    if (oldest && this.#tombstones.get(oldest.id) === oldest) this.#tombstones.delete(oldest.id);
  }

  /**
   * Keeps the one sweep timer armed for the earliest expiry while sessions
   * are detached and connections live; with no live connection nothing can
   * touch the store, so a lingering timer would only hold the process open.
   * The next operation sweeps lazily instead.
   */
  #arm(): void {
    if (this.#detached === 0 || this.#live === 0) {
      this.#disarm();
      return;
    }
    if (this.#timer !== undefined) return; // an early wake-up re-arms for the new front
    const front = this.#front(this.#expiry)!;
    const delay = Math.max(0, front.at + this.#grace - this.#clock.now());
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
