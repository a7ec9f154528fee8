/**
 * The Redis {@linkcode PresenceStore}: several nodes share presence, learn of
 * each other's joins and leaves by pub/sub, and drop a dead node's users
 * within its lease.
 *
 * The client (`npm:redis@5`) is imported only when this store is opened, so
 * heartwire's core has no npm dependency.
 *
 * Layout (prefix `hw:presence:`):
 * - `lease:<node>` — the node's lease, a key with a TTL (`SET … PX`); renewed
 *   by its sweep; gone when the node dies;
 * - `nodes` — set of nodes that hold or held a lease: the sweepers' to-do list;
 * - `user:<user>` — hash node → {@linkcode UserRecord} JSON;
 * - `member:<topic>` and `of:<user>` — hashes of {@linkcode MemberRow} JSON;
 * - `owned:<node>` — set of the rows a node wrote, deleted with it;
 * - `seen:<user>` — last seen after leaving, with a TTL;
 * - channel `hw:presence:events` — {@linkcode RemotePresenceEvent} JSON.
 *
 * @module
 */
import type {
  MemberRow,
  PresenceStore,
  PresenceWrite,
  RemotePresenceEvent,
  UserRecord,
} from "./types.ts";

/** The few calls of a node-redis v5 client this store makes. */
export interface RedisClientLike {
  /** Opens the connection. */
  connect(): Promise<unknown>;
  /** Sends one command; concurrent calls are pipelined by the client. */
  sendCommand(args: string[]): Promise<unknown>;
  /** A second connection with the same options (pub/sub needs its own). */
  duplicate(): RedisClientLike;
  /** Subscribes this connection to `channel`. */
  subscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
  /** Closes the connection after pending replies. */
  close(): Promise<unknown>;
  /** Connection errors (node-redis requires a listener), and `ready` once (re)connected. */
  on(event: "error" | "ready", listener: (error?: unknown) => void): unknown;
  /** Drops the connection at once, pending replies and reconnection attempts included. */
  destroy?(): void;
}

/** Options for {@linkcode RedisPresenceStore.open}. */
export interface RedisPresenceStoreOptions {
  /** Key and channel prefix. Default `hw:presence:`. */
  prefix?: string;
  /** How long (ms) `lastSeen` of a user who left is kept. Default 30 days. */
  seenTtl?: number;
  /** Connection errors; defaults to `console.error`. */
  onError?: (error: unknown) => void;
  /** How long (ms) the first connection may take before opening fails. Default 5 000. */
  connectTimeout?: number;
}

type Row = ["u", string] | ["m", string, string];

/**
 * Presence in Redis, shared by every node pointing at the same server.
 *
 * @example
 * ```ts ignore
 * import { Presence, RedisPresenceStore } from "@heartwire/heartwire/hub/presence";
 * const store = await RedisPresenceStore.open("redis://127.0.0.1:6379");
 * const presence = new Presence({ store, nodeId: Deno.hostname() });
 * await presence.start();
 * ```
 */
export class RedisPresenceStore implements PresenceStore {
  readonly crossProcess = true;
  #client: RedisClientLike;
  #sub: RedisClientLike;
  #prefix: string;
  #seenTtl: number;
  #onError: (error: unknown) => void;
  #writes = 0;
  // (node, user) pairs this instance already put in `owned:<node>`.
  #indexed = new Set<string>();
  #listeners = new Set<(event: RemotePresenceEvent) => void>();

  private constructor(
    client: RedisClientLike,
    sub: RedisClientLike,
    options: RedisPresenceStoreOptions,
  ) {
    this.#client = client;
    this.#sub = sub;
    this.#prefix = options.prefix ?? "hw:presence:";
    this.#seenTtl = options.seenTtl ?? 30 * 24 * 3600_000;
    this.#onError = options.onError ?? ((error) => console.error("presence redis:", error));
  }

  /** Loads `npm:redis@5`, connects twice (commands and pub/sub) and subscribes to events. */
  static async open(
    url: string,
    options: RedisPresenceStoreOptions = {},
  ): Promise<RedisPresenceStore> {
    // A dynamic import: the client loads only when this store is configured.
    const { createClient } = await import("npm:redis@5") as unknown as {
      createClient(options: {
        url: string;
        disableOfflineQueue: boolean;
        socket: { connectTimeout: number; reconnectStrategy: (retries: number) => number };
      }): RedisClientLike;
    };
    const client = createClient({
      url,
      // While Redis is away, commands fail at once instead of queueing without
      // bound (and close() does not wait for them).
      disableOfflineQueue: true,
      socket: {
        connectTimeout: options.connectTimeout ?? 5_000,
        // Back off with jitter (at most 2 s) so nodes do not reconnect in step.
        reconnectStrategy: (retries) =>
          Math.round(Math.min(50 * 2 ** retries, 2_000) * (0.5 + Math.random() / 2)),
      },
    });
    return RedisPresenceStore.withClient(client, options);
  }

  /** Builds the store on an unconnected client (tests may pass their own). */
  static async withClient(
    client: RedisClientLike,
    options: RedisPresenceStoreOptions = {},
  ): Promise<RedisPresenceStore> {
    const onError = options.onError ?? ((error) => console.error("presence redis:", error));
    const sub = client.duplicate();
    // Until both connections are up, a failure is the caller's error (thrown
    // once, below), not a line per reconnection attempt.
    // Afterwards, one line when a connection is lost and one when it is back,
    // not one per reconnection attempt.
    let opened = false;
    for (const connection of [client, sub]) {
      let down = false;
      connection.on("error", (error) => {
        if (!opened || down) return;
        down = true;
        onError(error);
      });
      connection.on("ready", () => {
        if (down) console.error("presence redis: connection back");
        down = false;
      });
    }
    const limit = options.connectTimeout ?? 5_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        Promise.all([client.connect(), sub.connect()]),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`Redis did not answer within ${limit} ms`)),
            limit,
          );
        }),
      ]);
    } catch (error) {
      client.destroy?.();
      sub.destroy?.();
      throw error;
    } finally {
      clearTimeout(timer);
    }
    opened = true;
    const store = new RedisPresenceStore(client, sub, options);
    await sub.subscribe(store.#prefix + "events", (message) => store.#deliver(message));
    return store;
  }

  get writes(): number {
    return this.#writes;
  }

  #k(...parts: string[]): string {
    return this.#prefix + parts.join(":");
  }

  #cmd(...args: string[]): Promise<unknown> {
    return this.#client.sendCommand(args);
  }

  #deliver(message: string): void {
    let event: RemotePresenceEvent;
    try {
      event = JSON.parse(message);
    } catch {
      return; // not JSON: not ours
    }
    // Anyone with access to the server may publish here; ignore what is not an event.
    if (typeof event?.type !== "string" || typeof event.nodeId !== "string") return;
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.#onError(error);
      }
    }
  }

  async #liveNodes(nodeIds: Iterable<string>): Promise<Set<string>> {
    const ids = [...new Set(nodeIds)];
    if (ids.length === 0) return new Set();
    const leases = await this.#cmd(
      "MGET",
      ...ids.map((id) => this.#k("lease", id)),
    ) as (string | null)[];
    return new Set(ids.filter((_, i) => leases[i] !== null));
  }

  async #setLease(nodeId: string, leaseMs: number): Promise<void> {
    await Promise.all([
      this.#cmd(
        "SET",
        this.#k("lease", nodeId),
        String(Date.now() + leaseMs),
        "PX",
        String(Math.ceil(leaseMs)),
      ),
      this.#cmd("SADD", this.#k("nodes"), nodeId),
    ]);
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
    await this.#cmd("SREM", this.#k("nodes"), nodeId);
    await this.#dropNode(nodeId);
  }

  async reap(): Promise<string[]> {
    const known = await this.#cmd("SMEMBERS", this.#k("nodes")) as string[];
    const live = await this.#liveNodes(known);
    const dead: string[] = [];
    for (const nodeId of known) {
      if (live.has(nodeId)) continue;
      // Whoever removes the node from the set cleans up; the other sweepers hear node-lost.
      if (await this.#cmd("SREM", this.#k("nodes"), nodeId) !== 1) continue;
      await this.#dropNode(nodeId);
      dead.push(nodeId);
    }
    return dead;
  }

  async #dropNode(nodeId: string): Promise<void> {
    for (const pair of this.#indexed) {
      if (pair.startsWith(`${nodeId}\0`)) this.#indexed.delete(pair);
    }
    const owned = this.#k("owned", nodeId);
    const rows = await this.#cmd("SMEMBERS", owned) as string[];
    const ops: Promise<unknown>[] = [];
    for (const raw of rows) {
      const row = JSON.parse(raw) as Row;
      if (row[0] === "u") {
        const userId = row[1];
        ops.push((async () => {
          const json = await this.#cmd("HGET", this.#k("user", userId), nodeId) as string | null;
          await this.#cmd("HDEL", this.#k("user", userId), nodeId);
          if (json) await this.#remember(userId, (JSON.parse(json) as UserRecord).lastSeen);
        })());
      } else {
        const [, topic, userId] = row;
        ops.push(this.#cmd("HDEL", this.#k("member", topic), JSON.stringify([userId, nodeId])));
        ops.push(this.#cmd("HDEL", this.#k("of", userId), JSON.stringify([topic, nodeId])));
      }
      this.#writes++;
    }
    await Promise.all(ops);
    await this.#cmd("DEL", owned, this.#k("lease", nodeId));
  }

  async #remember(userId: string, lastSeenAt: number): Promise<void> {
    const key = this.#k("seen", userId);
    const old = Number(await this.#cmd("GET", key) ?? 0);
    if (old >= lastSeenAt) return;
    await this.#cmd("SET", key, String(lastSeenAt), "PX", String(this.#seenTtl));
  }

  async write(batch: PresenceWrite): Promise<void> {
    // Every command is sent at once; the client pipelines them in one round trip.
    const ops: Promise<unknown>[] = [];
    for (const r of batch.users ?? []) {
      ops.push(this.#cmd("HSET", this.#k("user", r.userId), r.nodeId, JSON.stringify(r)));
      // Index a user once, not on every lastSeen refresh (half the commands under heartbeats).
      const owned = `${r.nodeId}\0${r.userId}`;
      if (!this.#indexed.has(owned)) {
        this.#indexed.add(owned);
        ops.push(this.#cmd("SADD", this.#k("owned", r.nodeId), JSON.stringify(["u", r.userId])));
      }
    }
    for (const { userId, nodeId, lastSeenAt } of batch.gone ?? []) {
      this.#indexed.delete(`${nodeId}\0${userId}`);
      ops.push(this.#cmd("HDEL", this.#k("user", userId), nodeId));
      ops.push(this.#cmd("SREM", this.#k("owned", nodeId), JSON.stringify(["u", userId])));
      ops.push(this.#remember(userId, lastSeenAt));
    }
    for (const row of batch.joined ?? []) {
      const json = JSON.stringify(row);
      ops.push(
        this.#cmd(
          "HSET",
          this.#k("member", row.topic),
          JSON.stringify([row.userId, row.nodeId]),
          json,
        ),
        this.#cmd("HSET", this.#k("of", row.userId), JSON.stringify([row.topic, row.nodeId]), json),
        this.#cmd(
          "SADD",
          this.#k("owned", row.nodeId),
          JSON.stringify(["m", row.topic, row.userId]),
        ),
      );
    }
    for (const { topic, userId, nodeId } of batch.left ?? []) {
      ops.push(
        this.#cmd("HDEL", this.#k("member", topic), JSON.stringify([userId, nodeId])),
        this.#cmd("HDEL", this.#k("of", userId), JSON.stringify([topic, nodeId])),
        this.#cmd("SREM", this.#k("owned", nodeId), JSON.stringify(["m", topic, userId])),
      );
    }
    await Promise.all(ops);
    this.#writes += (batch.users?.length ?? 0) + (batch.gone?.length ?? 0) +
      (batch.joined?.length ?? 0) + (batch.left?.length ?? 0);
  }

  async #liveValues<T extends { nodeId: string }>(key: string): Promise<T[]> {
    const values = await this.#cmd("HVALS", key) as string[];
    const rows = values.map((value) => JSON.parse(value) as T);
    const live = await this.#liveNodes(rows.map((row) => row.nodeId));
    return rows.filter((row) => live.has(row.nodeId));
  }

  members(topic: string): Promise<MemberRow[]> {
    return this.#liveValues<MemberRow>(this.#k("member", topic));
  }

  topicsOf(userId: string): Promise<MemberRow[]> {
    return this.#liveValues<MemberRow>(this.#k("of", userId));
  }

  records(userId: string): Promise<UserRecord[]> {
    return this.#liveValues<UserRecord>(this.#k("user", userId));
  }

  async lastSeenAt(userId: string): Promise<number | undefined> {
    const value = await this.#cmd("GET", this.#k("seen", userId)) as string | null;
    return value === null ? undefined : Number(value);
  }

  async publish(event: RemotePresenceEvent): Promise<void> {
    await this.#cmd("PUBLISH", this.#prefix + "events", JSON.stringify(event));
  }

  subscribe(listener: (event: RemotePresenceEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.#listeners.clear();
    await Promise.allSettled([this.#sub.close(), this.#client.close()]);
  }
}
