/**
 * Sessions shared through Redis: a client whose node went away resumes on
 * another one, which knows the session's topics and last processed `cseq`,
 * so nothing is processed twice and nothing is refused.
 *
 * Each node keeps the sessions it serves in a {@linkcode MemorySessionStore}
 * (grace periods, fair bounds per owner) and mirrors them to a hash
 * `PREFIX s:ID` {client, owner, cseq, topics, node, gen}. One node owns a
 * session at a time (`node`): a resume on another node claims it (a Lua
 * script: `node` changes, `gen` rises) and PUBLISHes the move, and the old
 * node forgets its record and closes its connection as taken over. Writes
 * are conditional on owning the session, so a node that missed the move
 * cannot overwrite the new owner's `cseq`: its next write finds out, and the
 * message it was about to handle is left for the new owner.
 *
 * The hash expires `grace` after its session detached, or a lease (renewed
 * while attached) after its node went quiet: a node that dies leaves its
 * sessions resumable elsewhere. Every write also stores the tombstone
 * `PREFIX t:ID` {client, cseq}, kept `tombstoneTtl` longer than the hash: a
 * session that ended, expired or lost its node still tells its last `cseq`
 * (`resume_failed`), wherever its client comes back. A node that shuts down
 * (`dispose`) leaves its sessions in Redis for other nodes.
 *
 * @module
 */
import type { Clock } from "../../protocol/clock.ts";
import { MemorySessionStore, type ResumeResult, Session, type SessionStore } from "../sessions.ts";
import { command, type RedisCommands, type RedisSubscriber, Script } from "./_client.ts";

/**
 * Options for {@linkcode RedisSessionStore}. Every field has a default.
 */
export interface RedisSessionStoreOptions {
  /** Prefix of every key and channel. Default "hw:". */
  prefix?: string;
  /** This node's name (unique among the nodes). Default a random UUID. */
  node?: string;
  /** How long (ms) a detached session can be resumed. Default 60 000. */
  grace?: number;
  /** How long (ms) an attached session outlives its node's last renewal (every third of it). Default 600 000. */
  lease?: number;
  /** How long (ms) an ended session's last `cseq` is remembered. Default one day. */
  tombstoneTtl?: number;
  /** Sessions this node holds at once. Default 10 000. */
  maxSessions?: number;
  /** Makes session ids; they must be unguessable. Default `crypto.randomUUID`. */
  createId?: () => string;
  /** Time for the local grace periods. Default the system clock. */
  clock?: Clock;
  /** Told about an unexpected error. Default `console.error`. */
  onError?: (error: unknown) => void;
}

/**
 * KEYS: session, tombstone. ARGV: node, ttl, cseq, topics, client, owner,
 * tombstone ttl. Stores the record if this node owns it (or it is gone
 * without a tombstone, e.g. Redis restarted: this node's record is then the
 * truth), and its tombstone-to-be, which outlives it: however the hash goes
 * (ended, expired, its node dead), the last `cseq` stays. 1 if stored.
 */
const WRITE = new Script(`
local node = redis.call('HGET', KEYS[1], 'node')
if not node then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
  redis.call('HSET', KEYS[1], 'client', ARGV[5], 'owner', ARGV[6], 'node', ARGV[1], 'gen', 0)
elseif node ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'cseq', ARGV[3], 'topics', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], 'client', ARGV[5], 'cseq', ARGV[3])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]) + tonumber(ARGV[7]))
return 1
`);

/**
 * KEYS: session, tombstone. ARGV: node, client id ('' for any), ttl, moved
 * channel, id. Makes this node the owner: {1, client, owner, cseq, topics,
 * previous node, gen}; {-1} for another client id; {0, cseq?} if gone.
 */
const CLAIM = new Script(`
local f = redis.call('HMGET', KEYS[1], 'client', 'owner', 'cseq', 'topics', 'node')
if f[1] then
  if ARGV[2] ~= '' and f[1] ~= ARGV[2] then return {-1} end
  local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
  redis.call('HSET', KEYS[1], 'node', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  if f[5] ~= ARGV[1] then redis.call('PUBLISH', ARGV[4], ARGV[1] .. ' ' .. gen .. ' ' .. ARGV[5]) end
  return {1, f[1], f[2], tonumber(f[3]), f[4], f[5], gen}
end
local t = redis.call('HMGET', KEYS[2], 'client', 'cseq')
if t[1] and (ARGV[2] == '' or t[1] == ARGV[2]) then return {0, tonumber(t[2])} end
return {0}
`);

/**
 * KEYS: session, tombstone. ARGV: node, tombstone ttl, client, cseq.
 * Ends the session if this node owns it (or it is gone): 1, else 0.
 */
const END = new Script(`
local f = redis.call('HMGET', KEYS[1], 'node', 'cseq')
if f[1] and f[1] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], 'client', ARGV[3], 'cseq', math.max(tonumber(f[2] or 0), tonumber(ARGV[4])))
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
`);

/**
 * A {@linkcode SessionStore} shared by every node through Redis (see the
 * module doc for the ownership rules).
 *
 * @example
 * ```ts ignore
 * import { createClient } from "npm:redis@5";
 * import { RedisSessionStore } from "@heartwire/heartwire/hub/redis";
 * import { Hub } from "@heartwire/heartwire/hub";
 * const client = await createClient({ url: "redis://127.0.0.1:6379" }).connect();
 * const subscriber = await client.duplicate().connect();
 * const sessions = new RedisSessionStore(client, { grace: 30_000 });
 * await sessions.listen(subscriber);
 * const hub = new Hub({ sessions });
 * ```
 */
export class RedisSessionStore implements SessionStore {
  /** See {@linkcode SessionStore.onRemove}. */
  onRemove?: (session: Session) => void;
  /** See {@linkcode SessionStore.onMove}. */
  onMove?: (session: Session) => void;
  /** This node's name. */
  readonly node: string;

  readonly #client: RedisCommands;
  readonly #prefix: string;
  readonly #grace: number;
  readonly #lease: number;
  readonly #tombstoneTtl: number;
  readonly #onError: (error: unknown) => void;
  readonly #local: MemorySessionStore;
  /** The claim generation each record of this node was made at. */
  readonly #gens = new WeakMap<Session, number>();
  /** Records dropped here because another node owns the session now. */
  readonly #moved = new WeakSet<Session>();
  /** Ids whose ending is being written: a resume waits for it. */
  readonly #ending = new Map<string, Promise<void>>();
  readonly #attached = new Set<Session>();
  /** Records whose last write failed (Redis away): written again by `flush`. */
  readonly #dirty = new Set<Session>();
  #renewal: ReturnType<typeof setInterval> | undefined;
  #disposed = false;

  /** A store on `client` (a connected node-redis client, or anything with `sendCommand`). */
  constructor(client: RedisCommands, options: RedisSessionStoreOptions = {}) {
    this.#client = client;
    this.#prefix = options.prefix ?? "hw:";
    this.node = options.node ?? crypto.randomUUID();
    this.#grace = Math.max(1, options.grace ?? 60_000);
    this.#lease = Math.max(1_000, options.lease ?? 600_000);
    this.#tombstoneTtl = Math.max(1, options.tombstoneTtl ?? 86_400_000);
    this.#onError = options.onError ?? ((error) => console.error("heartwire redis:", error));
    this.#local = new MemorySessionStore({
      grace: this.#grace,
      maxSessions: options.maxSessions,
      createId: options.createId,
      clock: options.clock,
      maxTombstones: 0, // Redis keeps them
    });
    this.#local.onRemove = (session) => this.#removed(session);
  }

  /** Sessions this node holds, live and detached. */
  get size(): number {
    return this.#local.size;
  }

  /**
   * Listens for sessions moving to other nodes on `subscriber` (so this node
   * closes their connections at once, not at their next message).
   *
   * @throws {UnavailableError} if Redis cannot be reached.
   */
  async listen(subscriber: RedisSubscriber): Promise<void> {
    await subscriber.subscribe(`${this.#prefix}moved`, (message) => {
      const [node, gen, ...rest] = message.split(" ");
      const session = this.#local.get(rest.join(" "));
      if (session && node !== this.node && Number(gen) > (this.#gens.get(session) ?? 0)) {
        this.#drop(session);
      }
    });
  }

  /**
   * A new session, stored in Redis.
   *
   * @throws {UnavailableError} if Redis cannot be reached (nothing is kept).
   */
  async create(clientId: string, owner: string): Promise<Session | undefined> {
    const session = this.#local.create(clientId, owner);
    if (!session) return undefined;
    this.#gens.set(session, 0);
    try {
      await this.#write(session);
    } catch (error) {
      this.#drop(session);
      throw error;
    }
    return session;
  }

  /**
   * The session `id`, wherever it was: claimed for this node.
   *
   * @throws {UnavailableError} if Redis cannot be reached.
   */
  async resume(id: string, clientId?: string): Promise<ResumeResult> {
    await this.#ending.get(id);
    const local = this.#local.get(id);
    if (local && clientId !== undefined && clientId !== local.clientId) {
      return { ok: false, reason: "session belongs to another client id" };
    }
    const reply = await CLAIM.run(this.#client, this.#keys(id), [
      this.node,
      clientId ?? "",
      this.#grace,
      `${this.#prefix}moved`,
      id,
    ]) as [number, (number | string)?, string?, number?, string?, string?, number?];
    if (reply[0] === -1) return { ok: false, reason: "session belongs to another client id" };
    if (reply[0] === 0 && local && (reply[1] === undefined || reply[1] === null)) {
      // Gone without a tombstone (Redis restarted and lost both): this node's record
      // is the truth; writing it makes it this node's again.
      await this.#write(local);
      if (this.#local.get(id) === local) return { ok: true, session: local };
    }
    if (reply[0] === 0) {
      if (local) this.#drop(local); // expired in Redis, or ended on another node
      const failed: ResumeResult = { ok: false, reason: "unknown or expired session" };
      if (typeof reply[1] === "number") failed.lastCseq = reply[1];
      return failed;
    }
    const [, client, owner, cseq, topics, previous, gen] = reply as [
      number,
      string,
      string,
      number,
      string,
      string,
      number,
    ];
    if (local && previous === this.node) {
      this.#gens.set(local, gen);
      return { ok: true, session: local };
    }
    if (local) this.#drop(local); // another node served it since: its record is newer
    const session = new Session(id, client, owner);
    session.lastCseq = cseq ?? 0;
    for (const topic of parseTopics(topics)) session.topics.add(topic);
    if (!this.#local.adopt(session)) {
      return { ok: false, reason: "no room for the session on this server", lastCseq: cseq };
    }
    this.#gens.set(session, gen);
    return { ok: true, session };
  }

  /**
   * Whether the session `id` exists, on any node.
   *
   * @throws {UnavailableError} if Redis cannot be reached.
   */
  async exists(id: string): Promise<boolean> {
    if (this.#local.get(id)) return true;
    return await command(this.#client, ["EXISTS", this.#keys(id)[0]]) === 1;
  }

  /** A connection is attached: the session's hash lives on the lease. */
  async attach(session: Session): Promise<void> {
    this.#local.attach(session);
    this.#attached.add(session);
    this.#arm();
    await this.#write(session);
  }

  /** The session lost its connection: its hash lives `grace` more. */
  async detach(session: Session): Promise<void> {
    this.#local.detach(session);
    this.#attached.delete(session);
    await this.#write(session);
  }

  /**
   * Stores `lastCseq` and `topics`, if this node still owns the session; if
   * not, the session is dropped here (`onMove`).
   *
   * @throws {UnavailableError} if Redis cannot be reached.
   */
  async update(session: Session): Promise<boolean> {
    return await this.#write(session);
  }

  /** Ends the session (it leaves a tombstone). */
  remove(session: Session): void {
    this.#local.remove(session);
  }

  /**
   * Stops the lease renewal and forgets this node's records, leaving them in
   * Redis: until their grace or lease passes, other nodes resume them.
   */
  dispose(): void {
    this.#disposed = true;
    if (this.#renewal !== undefined) clearInterval(this.#renewal);
    this.#renewal = undefined;
    this.#attached.clear();
    this.#dirty.clear();
    this.#local.dispose();
  }

  /**
   * Writes again every record whose last write failed: call it when the
   * connection to Redis is back (a given-back `cseq` must reach Redis before
   * the session resumes elsewhere).
   */
  flush(): void {
    for (const session of this.#dirty) {
      this.#dirty.delete(session);
      this.#write(session).catch(() => {}); // away again: marked dirty again
    }
  }

  /** Writes the record; false when another node owns the session (nothing written). */
  async #write(session: Session): Promise<boolean> {
    if (this.#local.get(session.id) !== session) return false; // dropped here already
    let stored: unknown;
    try {
      stored = await this.#run(session);
    } catch (error) {
      if (this.#local.get(session.id) === session) this.#dirty.add(session);
      throw error;
    }
    this.#dirty.delete(session);
    if (stored === 1) return true;
    this.#drop(session);
    return false;
  }

  #run(session: Session): Promise<unknown> {
    return WRITE.run(this.#client, this.#keys(session.id), [
      this.node,
      session.attached ? this.#lease : this.#grace,
      session.lastCseq,
      JSON.stringify([...session.topics]),
      session.clientId,
      session.owner,
      this.#tombstoneTtl,
    ]);
  }

  /** Forgets a record whose session another node owns now; the hub hears `onMove`. */
  #drop(session: Session): void {
    this.#moved.add(session);
    this.#dirty.delete(session);
    this.#attached.delete(session);
    this.#local.remove(session);
  }

  /** The local store let go of a session: moved, or ended here (expired, evicted, removed). */
  #removed(session: Session): void {
    this.#attached.delete(session);
    this.#dirty.delete(session);
    if (this.#disposed) return; // shutting down: the session lives on in Redis
    if (this.#moved.has(session)) {
      this.onMove?.(session);
      return;
    }
    const id = session.id;
    const ending = END.run(this.#client, this.#keys(id), [
      this.node,
      this.#tombstoneTtl,
      session.clientId,
      session.lastCseq,
    ]).then(
      (ended) => ended === 1 ? this.onRemove?.(session) : this.onMove?.(session),
      // Redis is away: the hash expires by itself (no tombstone is left).
      () => this.onRemove?.(session),
    ).catch(this.#onError).finally(() => {
      if (this.#ending.get(id) === ending) this.#ending.delete(id);
    });
    this.#ending.set(id, ending);
  }

  /** Renews the lease of attached sessions every third of it, while there are some. */
  #arm(): void {
    if (this.#renewal !== undefined) return;
    const renewal = setInterval(() => {
      if (this.#attached.size === 0) {
        clearInterval(this.#renewal);
        this.#renewal = undefined;
        return;
      }
      for (const session of this.#attached) {
        this.#write(session).catch(() => {}); // Redis away: the next renewal tries again
      }
    }, this.#lease / 3);
    Deno.unrefTimer(renewal); // never what keeps the process alive
    this.#renewal = renewal;
  }

  #keys(id: string): string[] {
    return [`${this.#prefix}s:${id}`, `${this.#prefix}t:${id}`];
  }
}

function parseTopics(json: string | undefined): string[] {
  try {
    const topics = JSON.parse(json ?? "[]");
    return Array.isArray(topics) ? topics.filter((t) => typeof t === "string") : [];
  } catch {
    return [];
  }
}
