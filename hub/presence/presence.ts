/**
 * The per-node presence tracker: who is connected here, when each user was
 * last seen, and the join / leave / update events a topic's subscribers get.
 *
 * Connections come and go; users are what presence reports. A user with three
 * tabs on two nodes is one entry, joins once and leaves once — when the last
 * connection anywhere goes. Heartbeats and messages only touch memory; one
 * sweep timer writes `lastSeen` to the store at most once per user per
 * `writeInterval`, times out silent connections, marks idle users away,
 * renews this node's lease and reaps nodes whose lease lapsed.
 *
 * @module
 */
import type { Clock } from "../../protocol/clock.ts";
import { MemoryPresenceStore } from "./memory_store.ts";
import type {
  GoneUser,
  LeaveReason,
  LeftMember,
  MemberRow,
  PresenceMeta,
  PresenceStatus,
  PresenceStore,
  RemotePresenceEvent,
  UserRecord,
} from "./types.ts";

/** Longest `name` or `status` kept from client metadata, in UTF-16 units. */
export const MAX_META_LENGTH = 128;

/** Options for {@linkcode Presence}. */
export interface PresenceOptions {
  /** Where presence lives; defaults to a fresh {@linkcode MemoryPresenceStore}. */
  store?: PresenceStore;
  /** This node's id, unique among live nodes; defaults to a random UUID. */
  nodeId?: string;
  /**
   * Time and the sweep timer. `now()` must be wall-clock epoch ms when nodes
   * share a store (timestamps cross processes); defaults to `Date.now` and
   * global timers.
   */
  clock?: Clock;
  /** A connection not heard from for this long (ms) is gone: `leave {timeout}`. Default 30 000. */
  presenceTimeout?: number;
  /** A user with no activity (messages, not heartbeats) for this long (ms) is `away`; 0 never. Default 300 000. */
  awayAfter?: number;
  /** At most one `lastSeen` write per user per this many ms. Default `presenceTimeout / 3`. */
  writeInterval?: number;
  /** This node's lease (ms): its users outlive a crash by at most this. Default `presenceTimeout`. */
  lease?: number;
  /** Period of the one sweep timer (ms). Default `min(writeInterval, lease / 3, 1000)`. */
  sweepInterval?: number;
  /** Called when a store operation fails; defaults to `console.error`. */
  onError?: (error: unknown) => void;
}

/** What presence says about one user in an event or a snapshot. */
export interface PresenceEntry {
  /** The user's id. */
  userId: string;
  /** `online`, `away` or `offline`. */
  status: PresenceStatus;
  /** Earliest live connection (epoch ms); absent when offline. */
  connectedAt?: number;
  /** Last heartbeat or message (epoch ms); for an offline user, when they were last seen. */
  lastSeen?: number;
  /** Nodes holding the user's connections. */
  nodes: string[];
  /** Client metadata. */
  meta: PresenceMeta;
}

/** One presence change in a topic, with the topic's offset for gap detection. */
export interface PresenceEvent {
  /** `join`: first connection anywhere; `leave`: last one gone; `update`: status or metadata. */
  type: "join" | "leave" | "update";
  /** The topic. */
  topic: string;
  /** Changes when the topic's offsets restart (the topic emptied here): resync from a snapshot. */
  epoch: string;
  /** 1, 2, 3, … per topic and epoch: a client that sees a gap resyncs from a snapshot. */
  offset: number;
  /** The user concerned. */
  userId: string;
  /** Why they left (only on `leave`). */
  reason?: LeaveReason;
  /** The user's presence after the change. */
  presence: PresenceEntry;
}

/** A topic's members plus the position in its event stream they reflect. */
export interface PresenceSnapshot {
  /** The topic. */
  topic: string;
  /** Epoch of the offsets. */
  epoch: string;
  /** Events with a higher offset (same epoch) may or may not be reflected; diffs are idempotent. */
  offset: number;
  /** Online and away members. */
  entries: PresenceEntry[];
}

/** What `touch` reports. */
export interface TouchOptions {
  /** True for a user's message (resets `away`); false for a heartbeat (liveness only). */
  activity?: boolean;
}

interface Conn {
  id: string;
  lastSeen: number;
  topics: Set<string>;
}

interface LocalUser {
  userId: string;
  conns: Map<string, Conn>;
  connectedAt: number;
  lastSeen: number;
  lastActive: number;
  status: "online" | "away";
  meta: PresenceMeta;
  lastWrite: number;
  dirty: boolean;
  // topic → local connections in it
  topics: Map<string, Set<string>>;
}

interface TopicView {
  epoch: string;
  offset: number;
  // userId → nodes where the user is a member
  members: Map<string, Set<string>>;
}

const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, delay) => setTimeout(callback, delay),
  clearTimeout: (handle) => clearTimeout(handle as number),
};

function cleanMeta(meta: PresenceMeta | undefined): PresenceMeta {
  const out: PresenceMeta = {};
  if (typeof meta?.name === "string") out.name = meta.name.slice(0, MAX_META_LENGTH);
  if (typeof meta?.status === "string") out.status = meta.status.slice(0, MAX_META_LENGTH);
  return out;
}

/**
 * Tracks presence for one node and emits per-user events per topic.
 *
 * @example
 * ```ts
 * import { Presence } from "@heartwire/heartwire/hub/presence";
 * const presence = new Presence({ presenceTimeout: 30_000 });
 * presence.subscribe((event) => console.log(event.topic, event.offset, event.type, event.userId));
 * await presence.start();
 * presence.join("lobby", "ann", "conn-1", { name: "Ann" });
 * presence.touch("ann", "conn-1", { activity: true });
 * presence.disconnect("ann", "conn-1", "closed");
 * await presence.close();
 * ```
 */
export class Presence {
  /** This node's id. */
  readonly nodeId: string;
  /** The store behind this tracker. */
  readonly store: PresenceStore;
  readonly #clock: Clock;
  readonly #timeout: number;
  readonly #awayAfter: number;
  readonly #writeInterval: number;
  readonly #lease: number;
  readonly #sweepInterval: number;
  readonly #onError: (error: unknown) => void;
  #users = new Map<string, LocalUser>();
  #remote = new Map<string, Map<string, UserRecord>>();
  #topics = new Map<string, TopicView>();
  #listeners = new Set<(event: PresenceEvent) => void>();
  #queue: Promise<void> = Promise.resolve();
  // Row changes not yet written, keyed so a row appears once per batch (latest state wins).
  #pendingUsers = new Map<string, UserRecord | GoneUser>();
  #pendingMembers = new Map<string, MemberRow | LeftMember>();
  #pendingEvents: RemotePresenceEvent[] = [];
  #drainQueued = false;
  #timer: unknown;
  #unsubscribe?: () => void;
  #lastRenew = 0;
  #lastReap = 0;
  #epochs = 0;
  #started = false;
  #closed = false;

  /** Creates a tracker; nothing is written until {@linkcode Presence.start}. */
  constructor(options: PresenceOptions = {}) {
    this.store = options.store ?? new MemoryPresenceStore();
    this.nodeId = options.nodeId ?? crypto.randomUUID();
    this.#clock = options.clock ?? systemClock;
    this.#timeout = options.presenceTimeout ?? 30_000;
    this.#awayAfter = options.awayAfter ?? 300_000;
    this.#writeInterval = options.writeInterval ?? this.#timeout / 3;
    this.#lease = options.lease ?? this.#timeout;
    this.#sweepInterval = options.sweepInterval ??
      Math.min(this.#writeInterval, this.#lease / 3, 1_000);
    this.#onError = options.onError ?? ((error) => console.error("presence:", error));
    if (!(this.#timeout > 0 && this.#writeInterval > 0 && this.#lease > 0)) {
      throw new RangeError("presenceTimeout, writeInterval and lease must be positive");
    }
  }

  /** Takes this node's lease, clears what dead nodes (or a crashed predecessor) left, starts the sweep. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#unsubscribe = this.store.subscribe((event) => this.#onRemote(event));
    await this.store.claim(this.nodeId, this.#lease);
    // A crashed predecessor with this id left users other nodes still list: claim() deleted
    // their rows; this tells the other nodes to let them leave.
    await this.store.publish({ type: "node-lost", nodeId: this.nodeId });
    await this.#reap();
    this.#lastRenew = this.#lastReap = this.#clock.now();
    this.#arm();
  }

  /** Receives every event this tracker emits; returns a function that unsubscribes. */
  subscribe(listener: (event: PresenceEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Store writes queued so far have settled. */
  flush(): Promise<void> {
    return this.#queue;
  }

  /** Local connections (for metrics). */
  get connections(): number {
    let n = 0;
    for (const user of this.#users.values()) n += user.conns.size;
    return n;
  }

  /** Users with a live connection on this node. */
  get localUsers(): number {
    return this.#users.size;
  }

  /** Registers a connection of `userId`: the user is online (no topic needed). */
  connect(userId: string, connId: string, meta?: PresenceMeta): void {
    if (this.#closed) return;
    const now = this.#clock.now();
    let user = this.#users.get(userId);
    if (!user) {
      user = {
        userId,
        conns: new Map(),
        connectedAt: now,
        lastSeen: now,
        lastActive: now,
        status: "online",
        meta: cleanMeta(meta),
        lastWrite: now,
        dirty: false,
        topics: new Map(),
      };
      this.#users.set(userId, user);
      this.#stageUser(this.#record(user));
    } else if (meta) {
      this.setMeta(userId, meta);
    }
    if (!user.conns.has(connId)) {
      user.conns.set(connId, { id: connId, lastSeen: now, topics: new Set() });
      user.lastSeen = now;
    }
  }

  /** Adds `connId` of `userId` to `topic`; emits `join` when the user was in it nowhere. */
  join(topic: string, userId: string, connId: string, meta?: PresenceMeta): void {
    if (this.#closed) return;
    this.connect(userId, connId, meta);
    const user = this.#users.get(userId)!;
    user.conns.get(connId)!.topics.add(topic);
    let conns = user.topics.get(topic);
    if (conns) {
      conns.add(connId);
      return;
    }
    user.topics.set(topic, conns = new Set([connId]));
    const row: MemberRow = { topic, userId, nodeId: this.nodeId, joinedAt: this.#clock.now() };
    this.#pendingMembers.set(`${topic}\0${userId}`, row);
    this.#stageEvent({
      type: "join",
      topic,
      userId,
      nodeId: this.nodeId,
      record: this.#record(user),
    });
    this.#addMember(topic, userId, this.nodeId);
  }

  /**
   * Records a heartbeat (`activity: false`) or a message (`activity: true`)
   * from a connection. Memory only: the sweep writes `lastSeen` at most once
   * per user per `writeInterval`. Returns false for an unknown connection.
   */
  touch(userId: string, connId: string, options: TouchOptions = {}): boolean {
    const user = this.#users.get(userId);
    const conn = user?.conns.get(connId);
    if (!user || !conn) return false;
    const now = this.#clock.now();
    conn.lastSeen = now;
    user.lastSeen = now;
    user.dirty = true;
    if (options.activity) {
      user.lastActive = now;
      if (user.status === "away") {
        user.status = "online";
        this.#changed(user);
      }
    }
    return true;
  }

  /** Replaces a user's metadata; emits `update` in each of their topics. */
  setMeta(userId: string, meta: PresenceMeta): void {
    const user = this.#users.get(userId);
    if (!user) return;
    const clean = cleanMeta(meta);
    if (clean.name === user.meta.name && clean.status === user.meta.status) return;
    user.meta = clean;
    this.#changed(user);
  }

  /** Removes `connId` of `userId` from `topic`; emits `leave {reason}` when it was the user's last one anywhere. */
  leave(topic: string, userId: string, connId: string, reason: LeaveReason = "closed"): void {
    const user = this.#users.get(userId);
    const conns = user?.topics.get(topic);
    if (!user || !conns?.delete(connId)) return;
    user.conns.get(connId)?.topics.delete(topic);
    if (conns.size > 0) return;
    user.topics.delete(topic);
    this.#pendingMembers.set(`${topic}\0${userId}`, { topic, userId, nodeId: this.nodeId });
    this.#stageEvent({ type: "leave", topic, userId, nodeId: this.nodeId, reason });
    this.#removeMember(topic, userId, this.nodeId, reason);
  }

  /** A connection closed (or timed out): leaves its topics; the user goes offline with their last connection. */
  disconnect(userId: string, connId: string, reason: LeaveReason = "closed"): void {
    const user = this.#users.get(userId);
    const conn = user?.conns.get(connId);
    if (!user || !conn) return;
    for (const topic of [...conn.topics]) this.leave(topic, userId, connId, reason);
    user.conns.delete(connId);
    if (user.conns.size > 0) return;
    this.#users.delete(userId);
    this.#pendingUsers.set(userId, { userId, nodeId: this.nodeId, lastSeenAt: user.lastSeen });
    this.#stage();
  }

  /** Members of `topic` on every live node, read from the store (this node's own users fresh from memory). */
  async list(topic: string): Promise<PresenceEntry[]> {
    return (await this.snapshot(topic)).entries;
  }

  /** {@linkcode Presence.list} plus the offset it reflects: what a subscriber resyncs from. */
  async snapshot(topic: string): Promise<PresenceSnapshot> {
    const before = this.#topics.get(topic);
    let epoch = before?.epoch ?? "";
    let offset = before?.offset ?? 0;
    // Other nodes' members from the store; this node's from memory (its writes may be in flight).
    const rows = (await this.store.members(topic)).filter((row) => row.nodeId !== this.nodeId);
    const userSet = new Set(rows.map((row) => row.userId));
    for (const user of this.#users.values()) if (user.topics.has(topic)) userSet.add(user.userId);
    const users = [...userSet];
    const memberOn = new Set(rows.map((row) => `${row.userId}\0${row.nodeId}`));
    const entries: PresenceEntry[] = [];
    // Reads in parallel, a bounded number at a time (a topic may hold thousands of users).
    for (let i = 0; i < users.length; i += 256) {
      const chunk = users.slice(i, i + 256);
      const records = await Promise.all(chunk.map((userId) => this.#records(userId)));
      chunk.forEach((userId, j) => {
        const entry = this.#entry(userId, records[j]);
        if (entry.status === "offline") return;
        entries.push(entry);
        // Members on other nodes that joined before this node was listening: from now on their
        // leave (or their node's loss) is an event here too.
        for (const record of records[j]) {
          if (record.nodeId === this.nodeId || !memberOn.has(`${userId}\0${record.nodeId}`)) {
            continue;
          }
          this.#remember(record);
          const members = this.#view(topic).members;
          const nodes = members.get(userId) ?? new Set();
          members.set(userId, nodes.add(record.nodeId));
        }
      });
    }
    const after = this.#topics.get(topic);
    if (after && after !== before) {
      // The topic's offsets (re)started while reading: every event of the new epoch may be news.
      epoch = after.epoch;
      offset = 0;
    }
    return { topic, epoch, offset, entries };
  }

  /**
   * One user across topics and nodes: online/away with `topics`, offline with
   * the last time seen, or undefined for a user never seen.
   */
  async get(userId: string): Promise<(PresenceEntry & { topics: string[] }) | undefined> {
    const entry = this.#entry(userId, await this.#records(userId));
    if (entry.status === "offline") {
      const lastSeen = await this.store.lastSeenAt(userId);
      if (lastSeen === undefined) return undefined;
      return { ...entry, lastSeen, topics: [] };
    }
    const rows = (await this.store.topicsOf(userId)).filter((row) => row.nodeId !== this.nodeId);
    const topics = new Set(rows.map((row) => row.topic));
    for (const topic of this.#users.get(userId)?.topics.keys() ?? []) topics.add(topic);
    return { ...entry, topics: [...topics] };
  }

  /** Stops the sweep, lets every local user leave (`closed`), releases the lease. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#clock.clearTimeout(this.#timer);
    for (const user of [...this.#users.values()]) {
      for (const connId of [...user.conns.keys()]) this.disconnect(user.userId, connId, "closed");
    }
    this.#enqueue(() => this.store.release(this.nodeId));
    await this.#queue;
    this.#unsubscribe?.();
  }

  // ---- internals ----

  #stageUser(record: UserRecord): void {
    this.#pendingUsers.set(record.userId, record);
    this.#stage();
  }

  #stageEvent(event: RemotePresenceEvent): void {
    this.#pendingEvents.push(event);
    this.#stage();
  }

  // Changes made in one turn (a reconnect storm, a sweep) go to the store as one batch, each row
  // once with its latest state; then the events, so other nodes that read on an event see the row.
  #stage(): void {
    if (this.#drainQueued) return;
    this.#drainQueued = true;
    this.#enqueue(async () => {
      this.#drainQueued = false;
      const users: UserRecord[] = [];
      const gone: GoneUser[] = [];
      for (const change of this.#pendingUsers.values()) {
        if ("lastSeenAt" in change) gone.push(change);
        else users.push(change);
      }
      const joined: MemberRow[] = [];
      const left: LeftMember[] = [];
      for (const change of this.#pendingMembers.values()) {
        if ("joinedAt" in change) joined.push(change);
        else left.push(change);
      }
      const events = this.#pendingEvents;
      this.#pendingUsers = new Map();
      this.#pendingMembers = new Map();
      this.#pendingEvents = [];
      await this.store.write({ users, gone, joined, left });
      await Promise.all(events.map((event) => this.store.publish(event)));
    });
  }

  #enqueue(op: () => Promise<unknown>): void {
    // One chain keeps a user's put → remove order; failures are reported, never thrown into callers.
    this.#queue = this.#queue.then(op).then(() => {}, (error) => this.#onError(error));
  }

  #record(user: LocalUser): UserRecord {
    return {
      userId: user.userId,
      nodeId: this.nodeId,
      connectedAt: user.connectedAt,
      lastSeen: user.lastSeen,
      lastActive: user.lastActive,
      status: user.status,
      meta: { ...user.meta },
    };
  }

  async #records(userId: string): Promise<UserRecord[]> {
    const stored = (await this.store.records(userId)).filter((r) => r.nodeId !== this.nodeId);
    const local = this.#users.get(userId);
    return local ? [...stored, this.#record(local)] : stored;
  }

  #entry(userId: string, records: readonly UserRecord[]): PresenceEntry {
    if (records.length === 0) return { userId, status: "offline", nodes: [], meta: {} };
    const own = records.find((r) => r.nodeId === this.nodeId);
    return {
      userId,
      status: records.some((r) => r.status === "online") ? "online" : "away",
      connectedAt: Math.min(...records.map((r) => r.connectedAt)),
      lastSeen: Math.max(...records.map((r) => r.lastSeen)),
      nodes: records.map((r) => r.nodeId),
      meta: { ...(own ?? records[0]).meta },
    };
  }

  #entryFromView(userId: string): PresenceEntry {
    const records = [...this.#remote.get(userId)?.values() ?? []];
    const local = this.#users.get(userId);
    if (local) records.push(this.#record(local));
    return this.#entry(userId, records);
  }

  #emit(topic: string, type: PresenceEvent["type"], userId: string, reason?: LeaveReason): void {
    const view = this.#topics.get(topic);
    if (!view) return;
    const event: PresenceEvent = {
      type,
      topic,
      epoch: view.epoch,
      offset: ++view.offset,
      userId,
      presence: this.#entryFromView(userId),
    };
    if (reason) event.reason = reason;
    if (type === "leave") {
      event.presence = { ...event.presence, status: "offline", connectedAt: undefined, nodes: [] };
    }
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.#onError(error);
      }
    }
    if (view.members.size === 0) this.#topics.delete(topic);
  }

  #view(topic: string): TopicView {
    let view = this.#topics.get(topic);
    if (!view) {
      view = { epoch: `${this.nodeId}:${++this.#epochs}`, offset: 0, members: new Map() };
      this.#topics.set(topic, view);
    }
    return view;
  }

  #addMember(topic: string, userId: string, nodeId: string): void {
    const view = this.#view(topic);
    let nodes = view.members.get(userId);
    if (!nodes) view.members.set(userId, nodes = new Set());
    const first = nodes.size === 0;
    nodes.add(nodeId);
    if (first) this.#emit(topic, "join", userId);
  }

  #removeMember(topic: string, userId: string, nodeId: string, reason: LeaveReason): void {
    const view = this.#topics.get(topic);
    const nodes = view?.members.get(userId);
    if (!view || !nodes?.delete(nodeId) || nodes.size > 0) return;
    view.members.delete(userId);
    this.#emit(topic, "leave", userId, reason);
  }

  // Status or metadata changed: written at once (rare, unlike heartbeats) and announced.
  #changed(user: LocalUser): void {
    user.dirty = false;
    user.lastWrite = this.#clock.now();
    const record = this.#record(user);
    this.#stageUser(record);
    this.#stageEvent({ type: "update", userId: user.userId, nodeId: this.nodeId, record });
    for (const topic of user.topics.keys()) this.#emit(topic, "update", user.userId);
  }

  #onRemote(event: RemotePresenceEvent): void {
    if (event.nodeId === this.nodeId || this.#closed) return;
    switch (event.type) {
      case "join": {
        this.#remember(event.record);
        this.#addMember(event.topic, event.userId, event.nodeId);
        break;
      }
      case "leave": {
        this.#removeMember(event.topic, event.userId, event.nodeId, event.reason);
        this.#forgetIfGone(event.userId, event.nodeId);
        break;
      }
      case "update": {
        this.#remember(event.record);
        for (const [topic, view] of this.#topics) {
          if (view.members.get(event.userId)?.has(event.nodeId)) {
            this.#emit(topic, "update", event.userId);
          }
        }
        break;
      }
      case "node-lost":
        this.#nodeLost(event.nodeId);
        break;
    }
  }

  #remember(record: UserRecord): void {
    let byNode = this.#remote.get(record.userId);
    if (!byNode) this.#remote.set(record.userId, byNode = new Map());
    byNode.set(record.nodeId, record);
  }

  #forgetIfGone(userId: string, nodeId: string): void {
    for (const view of this.#topics.values()) if (view.members.get(userId)?.has(nodeId)) return;
    const byNode = this.#remote.get(userId);
    byNode?.delete(nodeId);
    if (byNode?.size === 0) this.#remote.delete(userId);
  }

  #nodeLost(nodeId: string): void {
    for (const [topic, view] of [...this.#topics]) {
      for (const [userId, nodes] of [...view.members]) {
        if (nodes.has(nodeId)) this.#removeMember(topic, userId, nodeId, "node-lost");
      }
    }
    for (const [userId, byNode] of this.#remote) {
      byNode.delete(nodeId);
      if (byNode.size === 0) this.#remote.delete(userId);
    }
  }

  // Only the node that removes a dead node learns it from reap(); it tells the others.
  async #reap(): Promise<void> {
    for (const nodeId of await this.store.reap()) {
      this.#nodeLost(nodeId);
      await this.store.publish({ type: "node-lost", nodeId });
    }
  }

  #arm(): void {
    if (this.#closed) return;
    this.#timer = this.#clock.setTimeout(() => this.#sweep(), this.#sweepInterval);
  }

  #sweep(): void {
    const now = this.#clock.now();
    for (const user of [...this.#users.values()]) {
      for (const conn of [...user.conns.values()]) {
        if (now - conn.lastSeen >= this.#timeout) this.disconnect(user.userId, conn.id, "timeout");
      }
      if (!this.#users.has(user.userId)) continue;
      if (
        this.#awayAfter > 0 && user.status === "online" && now - user.lastActive >= this.#awayAfter
      ) {
        user.status = "away";
        this.#changed(user);
      } else if (user.dirty && now - user.lastWrite >= this.#writeInterval) {
        user.dirty = false;
        user.lastWrite = now;
        this.#stageUser(this.#record(user));
      }
    }
    if (now - this.#lastRenew >= this.#lease / 3) {
      this.#lastRenew = now;
      this.#enqueue(() => this.store.renew(this.nodeId, this.#lease));
    }
    if (now - this.#lastReap >= this.#lease / 3) {
      this.#lastReap = now;
      this.#enqueue(() => this.#reap());
    }
    this.#arm();
  }
}
