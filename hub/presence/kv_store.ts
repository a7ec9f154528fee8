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
import { LocalEvents } from "./_local_events.ts";
import type {
  MemberRow,
  PresenceStore,
  PresenceWrite,
  RemotePresenceEvent,
  UserRecord,
} from "./types.ts";

/** Options for {@linkcode KvPresenceStore.open}. */
export interface KvPresenceStoreOptions {
  /** Key prefix, to share one database with other data. Default `["presence"]`. */
  prefix?: Deno.KvKey;
  /** How long (ms) `lastSeen` of a user who left is kept. Default 30 days. */
  seenTtl?: number;
}

// Rows per commit: Deno KV caps one atomic operation at 1 000 mutations (a row takes ≤ 3).
const BATCH = 300;

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
  #events = new LocalEvents();

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

  // Deletes a node's rows (found through its `node` index), its lease and its `known` mark, in
  // few commits: a crashed node may leave thousands of rows, and each commit is a disk sync.
  async #dropNode(nodeId: string): Promise<void> {
    const index: Deno.KvKey[] = [];
    for await (const entry of this.#kv.list({ prefix: this.#key("node", nodeId) })) {
      index.push(entry.key);
    }
    const rest = (key: Deno.KvKey) => key.slice(this.#prefix.length + 2) as string[];
    const userIds = index.map(rest).filter((r) => r[0] === "u").map((r) => r[1]);
    const [records, seen] = await Promise.all([
      Promise.all(userIds.map((u) => this.#kv.get<UserRecord>(this.#key("user", u, nodeId)))),
      Promise.all(userIds.map((u) => this.#kv.get<number>(this.#key("seen", u)))),
    ]);
    const lastSeen = new Map<string, number>();
    userIds.forEach((userId, i) => {
      const at = records[i].value?.lastSeen;
      if (at !== undefined && at > (seen[i].value ?? -Infinity)) lastSeen.set(userId, at);
    });
    for (let i = 0; i < index.length; i += BATCH) {
      const op = this.#kv.atomic();
      for (const key of index.slice(i, i + BATCH)) {
        op.delete(key);
        const [kind, a, b] = rest(key);
        if (kind === "u") {
          op.delete(this.#key("user", a, nodeId));
          const at = lastSeen.get(a);
          if (at !== undefined) op.set(this.#key("seen", a), at, { expireIn: this.#seenTtl });
        } else {
          op.delete(this.#key("member", a, b, nodeId)).delete(this.#key("of", b, a, nodeId));
        }
      }
      await this.#commit(op);
      this.#writes += Math.min(BATCH, index.length - i);
    }
    await this.#commit(
      this.#kv.atomic().delete(this.#key("lease", nodeId)).delete(this.#key("known", nodeId)),
    );
  }

  async write(batch: PresenceWrite): Promise<void> {
    const gone = batch.gone ?? [];
    // Last-seen only moves forward: read the current values first (outside the commit; a race
    // between two nodes letting go of one user at once can at worst keep the earlier time).
    const seen = await Promise.all(
      gone.map(({ userId }) => this.#kv.get<number>(this.#key("seen", userId))),
    );
    const ops: ((op: Deno.AtomicOperation) => void)[] = [];
    for (const r of batch.users ?? []) {
      ops.push((op) =>
        op.set(this.#key("user", r.userId, r.nodeId), r)
          .set(this.#key("node", r.nodeId, "u", r.userId), true)
      );
    }
    gone.forEach(({ userId, nodeId, lastSeenAt }, i) => {
      ops.push((op) => {
        op.delete(this.#key("user", userId, nodeId)).delete(this.#key("node", nodeId, "u", userId));
        if ((seen[i].value ?? -Infinity) < lastSeenAt) {
          op.set(this.#key("seen", userId), lastSeenAt, { expireIn: this.#seenTtl });
        }
      });
    });
    for (const row of batch.joined ?? []) {
      ops.push((op) =>
        op.set(this.#key("member", row.topic, row.userId, row.nodeId), row)
          .set(this.#key("of", row.userId, row.topic, row.nodeId), row)
          .set(this.#key("node", row.nodeId, "m", row.topic, row.userId), true)
      );
    }
    for (const { topic, userId, nodeId } of batch.left ?? []) {
      ops.push((op) =>
        op.delete(this.#key("member", topic, userId, nodeId))
          .delete(this.#key("of", userId, topic, nodeId))
          .delete(this.#key("node", nodeId, "m", topic, userId))
      );
    }
    // One commit per BATCH rows: one disk sync for many changes.
    for (let i = 0; i < ops.length; i += BATCH) {
      const op = this.#kv.atomic();
      for (const add of ops.slice(i, i + BATCH)) add(op);
      await this.#commit(op);
      this.#writes += Math.min(BATCH, ops.length - i);
    }
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
    return this.#events.publish(event);
  }

  subscribe(listener: (event: RemotePresenceEvent) => void): () => void {
    return this.#events.subscribe(listener);
  }

  close(): Promise<void> {
    this.#events.clear();
    if (this.#own) this.#kv.close();
    return Promise.resolve();
  }
}
