/**
 * The Deno KV {@linkcode PresenceStore}: the embedded default of
 * `deno task start`, one file, survives restarts (`Deno.openKv` needs
 * `--unstable-kv`).
 *
 * Layout (prefix `["presence"]`):
 * - `lease, node` → lease end (epoch ms), written with `expireIn`;
 * - `known, node` → nodes that ever held a lease, so a successor finds the dead;
 * - `user, user, node` → {@linkcode UserRecord};
 * - `member, topic, user, node` and `of, user, topic, node` → {@linkcode MemberRow};
 * - `node, node, …` → what each node owns, so its rows go in one pass when it dies;
 * - `seen, user` → last seen after leaving.
 *
 * Rows are not refreshed by TTL: they live exactly as long as their node's
 * lease, which readers check, and the next node to sweep deletes them.
 *
 * @module
 */
import type { MemberRow, PresenceStore, RemotePresenceEvent, UserRecord } from "./types.ts";

/** Options for {@linkcode KvPresenceStore.open}. */
export interface KvPresenceStoreOptions {
  /** Key prefix, to share one database with other data. Default `["presence"]`. */
  prefix?: Deno.KvKey;
  /** How long (ms) `lastSeen` of a user who left is kept. Default 30 days. */
  seenTtl?: number;
}

// Deno KV caps one atomic operation at 1 000 mutations; stay well below.
const BATCH = 200;

/**
 * Presence in Deno KV.
 *
 * @example
 * ```ts ignore
 * import { KvPresenceStore, Presence } from "@heartwire/heartwire/hub/presence";
 * const store = await KvPresenceStore.open("./presence.db");
 * const presence = new Presence({ store });
 * await presence.start(); // clears what a crashed predecessor left
 * ```
 */
export class KvPresenceStore implements PresenceStore {
  readonly crossProcess = false;
  #kv: Deno.Kv;
  #own: boolean;
  #prefix: Deno.KvKey;
  #seenTtl: number;
  #writes = 0;
  #listeners = new Set<(event: RemotePresenceEvent) => void>();

  /** Wraps an open database (left open by {@linkcode KvPresenceStore.close}). */
  constructor(kv: Deno.Kv, options: KvPresenceStoreOptions = {}, own = false) {
    this.#kv = kv;
    this.#own = own;
    this.#prefix = options.prefix ?? ["presence"];
    this.#seenTtl = options.seenTtl ?? 30 * 24 * 3600_000;
  }

  /** Opens (or creates) the database at `path` (`undefined`: Deno's default location). */
  static async open(
    path?: string,
    options: KvPresenceStoreOptions = {},
  ): Promise<KvPresenceStore> {
    return new KvPresenceStore(await Deno.openKv(path), options, true);
  }

  get writes(): number {
    return this.#writes;
  }

  #key(...parts: Deno.KvKeyPart[]): Deno.KvKey {
    return [...this.#prefix, ...parts];
  }

  async #commit(op: Deno.AtomicOperation): Promise<void> {
    const result = await op.commit();
    if (!result.ok) throw new Error("presence: Deno KV commit failed");
  }

  async #liveNodes(nodeIds: Iterable<string>): Promise<Set<string>> {
    const now = Date.now();
    const live = new Set<string>();
    await Promise.all([...new Set(nodeIds)].map(async (nodeId) => {
      const lease = await this.#kv.get<number>(this.#key("lease", nodeId));
      if (lease.value !== null && lease.value > now) live.add(nodeId);
    }));
    return live;
  }

  async #setLease(nodeId: string, leaseMs: number): Promise<void> {
    await this.#commit(
      this.#kv.atomic()
        .set(this.#key("lease", nodeId), Date.now() + leaseMs, { expireIn: leaseMs })
        .set(this.#key("known", nodeId), true),
    );
    this.#writes++;
  }

  async claim(nodeId: string, leaseMs: number): Promise<void> {
    await this.#dropNode(nodeId);
    await this.#setLease(nodeId, leaseMs);
  }

  renew(nodeId: string, leaseMs: number): Promise<void> {
    return this.#setLease(nodeId, leaseMs);
  }

  async release(nodeId: string): Promise<void> {
    await this.#dropNode(nodeId);
  }

  async reap(): Promise<string[]> {
    const known: string[] = [];
    for await (const entry of this.#kv.list({ prefix: this.#key("known") })) {
      known.push(entry.key.at(-1) as string);
    }
    const live = await this.#liveNodes(known);
    const dead = known.filter((nodeId) => !live.has(nodeId));
    for (const nodeId of dead) await this.#dropNode(nodeId);
    return dead;
  }

  // Deletes a node's rows (found through its `node` index), its lease and its `known` mark.
  async #dropNode(nodeId: string): Promise<void> {
    let op = this.#kv.atomic();
    let n = 0;
    const flush = async () => {
      if (n > 0) await this.#commit(op);
      op = this.#kv.atomic();
      n = 0;
    };
    for await (const entry of this.#kv.list({ prefix: this.#key("node", nodeId) })) {
      const rest = entry.key.slice(this.#prefix.length + 2);
      op.delete(entry.key);
      if (rest[0] === "u") {
        const userId = rest[1] as string;
        const record = await this.#kv.get<UserRecord>(this.#key("user", userId, nodeId));
        op.delete(this.#key("user", userId, nodeId));
        if (record.value) await this.#remember(userId, record.value.lastSeen);
      } else {
        const [, topic, userId] = rest as string[];
        op.delete(this.#key("member", topic, userId, nodeId));
        op.delete(this.#key("of", userId, topic, nodeId));
      }
      this.#writes++;
      if (++n >= BATCH) await flush();
    }
    op.delete(this.#key("lease", nodeId)).delete(this.#key("known", nodeId));
    n++;
    await flush();
  }

  async #remember(userId: string, lastSeenAt: number): Promise<void> {
    const key = this.#key("seen", userId);
    const old = await this.#kv.get<number>(key);
    if (old.value !== null && old.value >= lastSeenAt) return;
    await this.#kv.set(key, lastSeenAt, { expireIn: this.#seenTtl });
  }

  async putUsers(records: readonly UserRecord[]): Promise<void> {
    for (let i = 0; i < records.length; i += BATCH) {
      const op = this.#kv.atomic();
      for (const record of records.slice(i, i + BATCH)) {
        op.set(this.#key("user", record.userId, record.nodeId), record);
        op.set(this.#key("node", record.nodeId, "u", record.userId), true);
      }
      await this.#commit(op);
      this.#writes += Math.min(BATCH, records.length - i);
    }
  }

  async removeUser(userId: string, nodeId: string, lastSeenAt: number): Promise<void> {
    await this.#commit(
      this.#kv.atomic()
        .delete(this.#key("user", userId, nodeId))
        .delete(this.#key("node", nodeId, "u", userId)),
    );
    await this.#remember(userId, lastSeenAt);
    this.#writes++;
  }

  async putMember(row: MemberRow): Promise<void> {
    await this.#commit(
      this.#kv.atomic()
        .set(this.#key("member", row.topic, row.userId, row.nodeId), row)
        .set(this.#key("of", row.userId, row.topic, row.nodeId), row)
        .set(this.#key("node", row.nodeId, "m", row.topic, row.userId), true),
    );
    this.#writes++;
  }

  async removeMember(topic: string, userId: string, nodeId: string): Promise<void> {
    await this.#commit(
      this.#kv.atomic()
        .delete(this.#key("member", topic, userId, nodeId))
        .delete(this.#key("of", userId, topic, nodeId))
        .delete(this.#key("node", nodeId, "m", topic, userId)),
    );
    this.#writes++;
  }

  async #liveRows<T extends { nodeId: string }>(prefix: Deno.KvKey): Promise<T[]> {
    const rows: T[] = [];
    for await (const entry of this.#kv.list<T>({ prefix })) rows.push(entry.value);
    const live = await this.#liveNodes(rows.map((row) => row.nodeId));
    return rows.filter((row) => live.has(row.nodeId));
  }

  members(topic: string): Promise<MemberRow[]> {
    return this.#liveRows<MemberRow>(this.#key("member", topic));
  }

  topicsOf(userId: string): Promise<MemberRow[]> {
    return this.#liveRows<MemberRow>(this.#key("of", userId));
  }

  records(userId: string): Promise<UserRecord[]> {
    return this.#liveRows<UserRecord>(this.#key("user", userId));
  }

  async lastSeenAt(userId: string): Promise<number | undefined> {
    return (await this.#kv.get<number>(this.#key("seen", userId))).value ?? undefined;
  }

  publish(event: RemotePresenceEvent): Promise<void> {
    // Deno KV has no broadcast: events reach trackers sharing this instance only.
    for (const listener of this.#listeners) queueMicrotask(() => listener(structuredClone(event)));
    return Promise.resolve();
  }

  subscribe(listener: (event: RemotePresenceEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): Promise<void> {
    this.#listeners.clear();
    if (this.#own) this.#kv.close();
    return Promise.resolve();
  }
}
