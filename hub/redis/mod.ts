/**
 * A hub on several processes or machines, through Redis (never a home-made
 * cluster protocol): topic histories, sessions and publications shared by
 * every node. The Redis client (`npm:redis@5`) is loaded by
 * {@linkcode connectRedisBackend} only, so an application without Redis
 * loads no package.
 *
 * | what | where in Redis |
 * |---|---|
 * | a topic's history | hash `hw:h:TOPIC` {epoch, top, bytes} + list `hw:l:TOPIC`, capped, with a TTL |
 * | its publications, live | channel `hw:p:TOPIC`, published by the append script itself |
 * | a session | hash `hw:s:ID` {client, owner, cseq, topics, node, gen}, TTL grace or lease |
 * | its tombstone-to-be | hash `hw:t:ID` {client, cseq}, `tombstoneTtl` longer than the session's |
 * | a session moving node | channel `hw:moved` |
 *
 * When Redis goes away the backend logs it once and is `degraded`: a
 * message that needs it gets an `error` and no `ack`, and its connection is
 * closed 1013 with a retry hint (nothing after it is processed first), as
 * are new connections; idle ones stay. node-redis reconnects with backoff;
 * once Redis is back (logged once) failed session writes are flushed and
 * every topic fetches what its channel missed, and the clients resume and
 * re-send what was not acked.
 *
 * @example
 * ```ts ignore
 * import { chat, Hub } from "@heartwire/heartwire/hub";
 * import { connectRedisBackend } from "@heartwire/heartwire/hub/redis";
 * import { serve } from "@heartwire/heartwire/server";
 *
 * const redis = await connectRedisBackend("redis://127.0.0.1:6379", { grace: 30_000 });
 * const { history, sessions, broker } = redis;
 * const hub = chat(new Hub({ history, sessions, broker }));
 * const server = serve({ port: 8080, routes: { "/ws": hub } });
 * // /healthz: redis.state is "healthy" or "degraded"
 * ```
 *
 * @module
 */
import { type RedisCommands, type RedisSubscriber, withTimeout } from "./_client.ts";
import { RedisBroker } from "./broker.ts";
import { RedisHistory } from "./history.ts";
import { RedisSessionStore } from "./sessions.ts";

export * from "./broker.ts";
export * from "./history.ts";
export * from "./sessions.ts";
export type { RedisCommands, RedisSubscriber } from "./_client.ts";

/**
 * Options for {@linkcode connectRedisBackend}. Every field has a default.
 */
export interface RedisBackendOptions {
  /** Prefix of every key and channel; nodes that share one share everything. Default "hw:". */
  prefix?: string;
  /** This node's name, unique among the nodes. Default a random UUID. */
  node?: string;
  /** How long (ms) a detached session can be resumed, on any node. Default 60 000. */
  grace?: number;
  /** How long (ms) an attached session outlives a node that stopped renewing it. Default 600 000. */
  lease?: number;
  /** How long (ms) an ended session's last `cseq` is remembered. Default one day. */
  tombstoneTtl?: number;
  /** Sessions this node holds at once. Default 10 000. */
  maxSessions?: number;
  /** Makes session ids; they must be unguessable. Default `crypto.randomUUID`. */
  createId?: () => string;
  /** Publications kept per topic. Default 1 000. */
  maxEntries?: number;
  /** UTF-8 bytes of publications kept per topic. Default 256 KiB. */
  maxBytes?: number;
  /** How long (ms) a history nobody publishes to is kept. Default one day. */
  historyTtl?: number;
  /** How long (ms) the first connection may take. Default 5 000. */
  connectTimeout?: number;
  /** Longest wait (ms) between reconnection attempts. Default 2 000. */
  maxReconnectDelay?: number;
  /**
   * Longest wait (ms) for a command's reply, after which it fails as if
   * Redis were away. Default none: a Redis that hangs without closing holds
   * the messages that need it. With one, a script that ran but whose reply
   * came late counts as failed: its message may be processed again when the
   * client re-sends it (at least once instead of at most once, for those).
   */
  commandTimeout?: number;
  /** Where the once-per-change state lines go. Default `console.error`. */
  log?: (line: string) => void;
  /** Told when the state changes. */
  onStateChange?: (state: RedisState) => void;
}

/**
 * `healthy` while both connections (commands, subscriptions) are up;
 * `degraded` while either is away.
 *
 * @example
 * ```ts
 * import type { RedisState } from "@heartwire/heartwire/hub/redis";
 * const status = (state: RedisState) => state === "healthy" ? 200 : 503;
 * console.log(status("degraded")); // 503
 * ```
 */
export type RedisState = "healthy" | "degraded";

/**
 * What {@linkcode connectRedisBackend} gives: the stores and the broker for
 * `new Hub({ history, sessions, broker })`, the connection's state, and
 * `close`.
 *
 * @example
 * ```ts ignore
 * import { connectRedisBackend } from "@heartwire/heartwire/hub/redis";
 * const redis = await connectRedisBackend("redis://127.0.0.1:6379");
 * console.log(redis.state); // "healthy"
 * await redis.close();
 * ```
 */
export interface RedisBackend {
  /** Topic histories. */
  readonly history: RedisHistory;
  /** Sessions. */
  readonly sessions: RedisSessionStore;
  /** Publications across nodes. */
  readonly broker: RedisBroker;
  /** The connection's state, for `/healthz`. */
  readonly state: RedisState;
  /** True while the state is `healthy`. */
  readonly healthy: boolean;
  /** Closes both connections (after `hub.dispose()`). */
  close(): Promise<void>;
}

/** The part of a node-redis client used here. */
interface Client extends RedisCommands, RedisSubscriber {
  readonly isReady: boolean;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  connect(): Promise<unknown>;
  destroy(): void;
  duplicate(): Client;
}

/** The URL without its password, for log lines. */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(unparsable URL)";
  }
}

/**
 * Connects to Redis at `url` (two connections: commands and subscriptions)
 * and makes the stores and broker of a hub node.
 *
 * @throws {Error} if Redis cannot be reached within `connectTimeout`.
 *
 * @example
 * ```ts ignore
 * import { chat, Hub } from "@heartwire/heartwire/hub";
 * import { connectRedisBackend } from "@heartwire/heartwire/hub/redis";
 * const redis = await connectRedisBackend("redis://127.0.0.1:6379");
 * const hub = chat(new Hub({ history: redis.history, sessions: redis.sessions, broker: redis.broker }));
 * hub.dispose();
 * await redis.close();
 * ```
 */
export async function connectRedisBackend(
  url: string,
  options: RedisBackendOptions = {},
): Promise<RedisBackend> {
  // Loaded only here, so the library's import graph has no package in it.
  const { createClient } = await import("npm:redis@5");
  const log = options.log ?? ((line: string) => console.error(line));
  const where = redact(url);
  const maxDelay = Math.max(10, options.maxReconnectDelay ?? 2_000);
  const client = createClient({
    url,
    // Fail fast while away: the sender is told, nothing waits in an unbounded queue.
    disableOfflineQueue: true,
    socket: {
      connectTimeout: options.connectTimeout ?? 5_000,
      // Exponential backoff with jitter, so nodes do not reconnect in step.
      reconnectStrategy: (retries: number) =>
        Math.round(Math.min(50 * 2 ** retries, maxDelay) * (0.5 + Math.random() / 2)),
    },
  }) as unknown as Client;
  const subscriber = client.duplicate();

  let state: RedisState = "degraded";
  let reason = "";
  let started = false;
  const commands = options.commandTimeout
    ? withTimeout(client, Math.max(1, options.commandTimeout))
    : client;
  const history = new RedisHistory(commands, {
    prefix: options.prefix,
    maxEntries: options.maxEntries,
    maxBytes: options.maxBytes,
    ttl: options.historyTtl,
    publish: true,
  });
  const broker = new RedisBroker(history, subscriber);
  const sessions = new RedisSessionStore(commands, {
    prefix: options.prefix,
    node: options.node,
    grace: options.grace,
    lease: options.lease,
    tombstoneTtl: options.tombstoneTtl,
    maxSessions: options.maxSessions,
    createId: options.createId,
  });
  const update = () => {
    const now: RedisState = client.isReady && subscriber.isReady ? "healthy" : "degraded";
    if (!started || now === state) return;
    state = now;
    if (now === "degraded") {
      log(`heartwire redis: lost ${where} (${reason}); publishes fail until it is back`);
    } else {
      log(`heartwire redis: ${where} is back`);
      sessions.flush(); // what could not be written meanwhile (a given-back cseq)
      broker.resync(); // pub/sub dropped what was published meanwhile
    }
    options.onStateChange?.(now);
  };
  for (const connection of [client, subscriber]) {
    connection.on("error", (error) => {
      reason = error instanceof Error ? error.message || error.name : String(error);
      update();
    });
    for (const event of ["ready", "end", "reconnecting"]) connection.on(event, update);
  }

  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const connecting = Promise.all([client.connect(), subscriber.connect()]);
    connecting.catch(() => {}); // after a timeout, its failure is told below already
    await Promise.race([
      connecting,
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`cannot reach Redis at ${where} (${reason || "timed out"})`)),
          options.connectTimeout ?? 5_000,
        );
      }),
    ]);
    await sessions.listen(subscriber);
  } catch (error) {
    client.destroy();
    subscriber.destroy();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  started = true;
  state = "healthy";

  return {
    history,
    sessions,
    broker,
    get state() {
      return state;
    },
    get healthy() {
      return state === "healthy";
    },
    close() {
      if (!started) return Promise.resolve();
      started = false;
      for (const connection of [client, subscriber]) {
        try {
          connection.destroy();
        } catch {
          // closed already
        }
      }
      return Promise.resolve();
    },
  };
}
