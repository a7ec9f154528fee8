/**
 * The in-memory {@linkcode PresenceStore}: one process, tests, and the model
 * the Deno KV and Redis stores follow.
 *
 * @module
 */
import { LocalEvents } from "./_local_events.ts";
import type {
  MemberRow,
  PresenceStore,
  PresenceWrite,
  RemotePresenceEvent,
  UserRecord,
} from "./types.ts";

/** Options for {@linkcode MemoryPresenceStore}. */
export interface MemoryPresenceStoreOptions {
  /** Wall-clock source for leases (epoch ms); tests pass a manual clock's `now`. */
  now?: () => number;
}

/**
 * Presence rows in maps; several trackers in one process may share one
 * instance and see each other as nodes.
 *
 * @example
 * ```ts
 * import { MemoryPresenceStore, Presence } from "@heartwire/heartwire/hub/presence";
 * const presence = new Presence({ store: new MemoryPresenceStore() });
 * await presence.start();
 * presence.join("lobby", "ann", "conn-1", { name: "Ann" });
 * console.log(await presence.list("lobby"));
 * await presence.close();
 * ```
 */
export class MemoryPresenceStore implements PresenceStore {
  readonly crossProcess = false;
  #writes = 0;
  #now: () => number;
  #leases = new Map<string, number>();
  // key `${userId}\0${nodeId}`
  #records = new Map<string, UserRecord>();
  // topic → key `${userId}\0${nodeId}` → row
  #topics = new Map<string, Map<string, MemberRow>>();
  #lastSeen = new Map<string, number>();
  #events = new LocalEvents();

  /** Creates an empty store. */
  constructor(options: MemoryPresenceStoreOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  get writes(): number {
    return this.#writes;
  }

  #live(nodeId: string): boolean {
    const until = this.#leases.get(nodeId);
    return until !== undefined && until > this.#now();
  }

  #dropNode(nodeId: string): void {
    for (const [key, record] of this.#records) {
      if (record.nodeId === nodeId) {
        this.#records.delete(key);
        this.#writes++;
        const seen = this.#lastSeen.get(record.userId) ?? 0;
        this.#lastSeen.set(record.userId, Math.max(seen, record.lastSeen));
      }
    }
    for (const [topic, rows] of this.#topics) {
      for (const [key, row] of rows) {
        if (row.nodeId === nodeId) {
          rows.delete(key);
          this.#writes++;
        }
      }
      if (rows.size === 0) this.#topics.delete(topic);
    }
    this.#leases.delete(nodeId);
  }

  claim(nodeId: string, leaseMs: number): Promise<void> {
    this.#dropNode(nodeId);
    this.#leases.set(nodeId, this.#now() + leaseMs);
    this.#writes++;
    return Promise.resolve();
  }

  renew(nodeId: string, leaseMs: number): Promise<void> {
    this.#leases.set(nodeId, this.#now() + leaseMs);
    this.#writes++;
    return Promise.resolve();
  }

  release(nodeId: string): Promise<void> {
    this.#dropNode(nodeId);
    return Promise.resolve();
  }

  reap(): Promise<string[]> {
    const dead = new Set<string>();
    for (const [nodeId] of this.#leases) if (!this.#live(nodeId)) dead.add(nodeId);
    for (const record of this.#records.values()) {
      if (!this.#live(record.nodeId)) dead.add(record.nodeId);
    }
    for (const rows of this.#topics.values()) {
      for (const row of rows.values()) if (!this.#live(row.nodeId)) dead.add(row.nodeId);
    }
    for (const nodeId of dead) this.#dropNode(nodeId);
    return Promise.resolve([...dead]);
  }

  write(batch: PresenceWrite): Promise<void> {
    for (const record of batch.users ?? []) {
      this.#records.set(`${record.userId}\0${record.nodeId}`, { ...record });
      this.#writes++;
    }
    for (const { userId, nodeId, lastSeenAt } of batch.gone ?? []) {
      this.#records.delete(`${userId}\0${nodeId}`);
      this.#lastSeen.set(userId, Math.max(this.#lastSeen.get(userId) ?? 0, lastSeenAt));
      this.#writes++;
    }
    for (const row of batch.joined ?? []) {
      let rows = this.#topics.get(row.topic);
      if (!rows) this.#topics.set(row.topic, rows = new Map());
      rows.set(`${row.userId}\0${row.nodeId}`, { ...row });
      this.#writes++;
    }
    for (const { topic, userId, nodeId } of batch.left ?? []) {
      const rows = this.#topics.get(topic);
      rows?.delete(`${userId}\0${nodeId}`);
      if (rows?.size === 0) this.#topics.delete(topic);
      this.#writes++;
    }
    return Promise.resolve();
  }

  members(topic: string): Promise<MemberRow[]> {
    const rows = [...this.#topics.get(topic)?.values() ?? []];
    return Promise.resolve(rows.filter((row) => this.#live(row.nodeId)).map((row) => ({ ...row })));
  }

  topicsOf(userId: string): Promise<MemberRow[]> {
    const out: MemberRow[] = [];
    for (const rows of this.#topics.values()) {
      for (const row of rows.values()) {
        if (row.userId === userId && this.#live(row.nodeId)) out.push({ ...row });
      }
    }
    return Promise.resolve(out);
  }

  records(userId: string): Promise<UserRecord[]> {
    const out: UserRecord[] = [];
    for (const record of this.#records.values()) {
      if (record.userId === userId && this.#live(record.nodeId)) out.push({ ...record });
    }
    return Promise.resolve(out);
  }

  lastSeenAt(userId: string): Promise<number | undefined> {
    return Promise.resolve(this.#lastSeen.get(userId));
  }

  publish(event: RemotePresenceEvent): Promise<void> {
    return this.#events.publish(event);
  }

  subscribe(listener: (event: RemotePresenceEvent) => void): () => void {
    return this.#events.subscribe(listener);
  }

  close(): Promise<void> {
    this.#events.clear();
    return Promise.resolve();
  }
}
