/**
 * The presence data model and the contract every presence store keeps.
 *
 * A store holds two kinds of rows, each owned by one node:
 * - a {@linkcode UserRecord} per (user, node): liveness (`lastSeen`), activity
 *   (`lastActive`), metadata — the only row heartbeats refresh, so a user in
 *   ten topics still costs one write per interval;
 * - a {@linkcode MemberRow} per (topic, user, node): membership, written only
 *   on join and leave.
 *
 * Every row lives under its node's lease: readers ignore rows of a node whose
 * lease lapsed, and {@linkcode PresenceStore.reap} deletes them, so a crashed
 * node leaves no ghost online past its lease.
 *
 * @module
 */

/** Client-supplied metadata shown next to a user (bounded by the tracker). */
export interface PresenceMeta {
  /** Display name. */
  name?: string;
  /** Free-form status line ("in a meeting"). */
  status?: string;
}

/** Whether a user is reachable and active. `away`: connected but idle for `awayAfter`. */
export type PresenceStatus = "online" | "away" | "offline";

/** Why a user left a topic. */
export type LeaveReason = "closed" | "timeout" | "node-lost";

/** What one node knows about one connected user; the row heartbeats refresh. */
export interface UserRecord {
  /** The user's id (`?id=`). */
  userId: string;
  /** The node holding the user's connections. */
  nodeId: string;
  /** When the user's first live connection on this node opened (epoch ms). */
  connectedAt: number;
  /** Last heartbeat or message from any of the user's connections on this node (epoch ms). */
  lastSeen: number;
  /** Last user activity (a message, not a heartbeat) on this node (epoch ms). */
  lastActive: number;
  /** `online` or `away`; offline users have no record. */
  status: "online" | "away";
  /** Client metadata. */
  meta: PresenceMeta;
}

/** One node's membership of one user in one topic. */
export interface MemberRow {
  /** The topic. */
  topic: string;
  /** The member. */
  userId: string;
  /** The node holding the member's connection(s). */
  nodeId: string;
  /** When the user joined the topic on this node (epoch ms). */
  joinedAt: number;
}

/** A user record to delete, remembering when the user was last seen. */
export interface GoneUser {
  /** The user. */
  userId: string;
  /** The node letting go. */
  nodeId: string;
  /** Kept as the user's last seen (never moved backwards). */
  lastSeenAt: number;
}

/** A membership row to delete. */
export interface LeftMember {
  /** The topic. */
  topic: string;
  /** The user. */
  userId: string;
  /** The node letting go. */
  nodeId: string;
}

/** Row changes applied together by {@linkcode PresenceStore.write}; each row at most once. */
export interface PresenceWrite {
  /** User records to create or replace. */
  users?: readonly UserRecord[];
  /** User records to delete. */
  gone?: readonly GoneUser[];
  /** Membership rows to create or replace. */
  joined?: readonly MemberRow[];
  /** Membership rows to delete. */
  left?: readonly LeftMember[];
}

/** A change one node tells the others about (through {@linkcode PresenceStore.publish}). */
export type RemotePresenceEvent =
  | { type: "join"; topic: string; userId: string; nodeId: string; record: UserRecord }
  | { type: "leave"; topic: string; userId: string; nodeId: string; reason: LeaveReason }
  | { type: "update"; userId: string; nodeId: string; record: UserRecord }
  | { type: "node-lost"; nodeId: string };

/**
 * Where presence lives. One contract, three implementations: memory (tests,
 * one process), Deno KV (the embedded default), Redis (several nodes).
 *
 * Methods take the node id explicitly so one store instance may serve several
 * trackers (tests run two "nodes" on one memory store).
 *
 * @example
 * ```ts
 * import { MemoryPresenceStore } from "@heartwire/heartwire/hub/presence";
 * const store = new MemoryPresenceStore();
 * await store.claim("node-a", 30_000);
 * await store.write({
 *   joined: [{ topic: "lobby", userId: "ann", nodeId: "node-a", joinedAt: Date.now() }],
 * });
 * console.log(await store.members("lobby"));
 * ```
 */
export interface PresenceStore {
  /** Store writes so far: one per row put or removed (what throttling bounds). */
  readonly writes: number;
  /** Whether {@linkcode PresenceStore.publish} reaches other processes. */
  readonly crossProcess: boolean;
  /**
   * Takes node `nodeId`'s lease for `leaseMs` and deletes whatever a previous
   * holder of the same id left (it is dead by definition: ids are unique per
   * live node).
   */
  claim(nodeId: string, leaseMs: number): Promise<void>;
  /** Extends node `nodeId`'s lease by `leaseMs` from now. */
  renew(nodeId: string, leaseMs: number): Promise<void>;
  /** Deletes node `nodeId`'s lease and every row it owns (clean shutdown). */
  release(nodeId: string): Promise<void>;
  /** Deletes the rows of every node whose lease lapsed; returns those node ids. */
  reap(): Promise<string[]>;
  /**
   * Applies one batch of row changes. A batch names each row at most once
   * (the tracker coalesces), so the order inside it does not matter; stores
   * apply it in as few round trips or transactions as they can.
   */
  write(batch: PresenceWrite): Promise<void>;
  /** Membership rows of `topic` on live nodes. */
  members(topic: string): Promise<MemberRow[]>;
  /** Membership rows of `userId` (all topics) on live nodes. */
  topicsOf(userId: string): Promise<MemberRow[]>;
  /** User records of `userId` on live nodes. */
  records(userId: string): Promise<UserRecord[]>;
  /** When `userId` was last seen by a node that let them go, if ever. */
  lastSeenAt(userId: string): Promise<number | undefined>;
  /** Tells every other subscriber (every node) about a change. */
  publish(event: RemotePresenceEvent): Promise<void>;
  /** Receives what other nodes publish; returns a function that unsubscribes. */
  subscribe(listener: (event: RemotePresenceEvent) => void): () => void;
  /** Releases the store's own resources (connections, handles). */
  close(): Promise<void>;
}
