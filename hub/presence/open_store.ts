/**
 * One call that turns the `--presence-store`, `--kv-path` and `--redis` flags
 * into a {@linkcode PresenceStore}, and one that adds `--presence-timeout`
 * and `--away-after` for a started {@linkcode Presence} tracker.
 *
 * @module
 */
import { KvPresenceStore } from "./kv_store.ts";
import { MemoryPresenceStore } from "./memory_store.ts";
import { Presence, type PresenceOptions } from "./presence.ts";
import { RedisPresenceStore } from "./redis_store.ts";
import type { PresenceStore } from "./types.ts";

/** Which store {@linkcode openPresenceStore} opens, and where. */
export interface OpenPresenceStoreOptions {
  /** `memory` (one process), `kv` (Deno KV file, the default) or `redis`. */
  kind?: "memory" | "kv" | "redis";
  /** Deno KV file (`--kv-path`); Deno's default location when absent. */
  kvPath?: string;
  /** Redis URL (`--redis`), required for `redis`. */
  redisUrl?: string;
}

/**
 * Opens the configured store; the Redis client is loaded only for `redis`.
 *
 * @example
 * ```ts
 * import { openPresenceStore } from "@heartwire/heartwire/hub/presence";
 * const store = await openPresenceStore({ kind: "memory" });
 * await store.close();
 * ```
 */
export async function openPresenceStore(
  options: OpenPresenceStoreOptions = {},
): Promise<PresenceStore> {
  switch (options.kind ?? "kv") {
    case "memory":
      return new MemoryPresenceStore();
    case "kv":
      return await KvPresenceStore.open(options.kvPath);
    case "redis":
      if (!options.redisUrl) throw new TypeError("presence store redis needs a URL (--redis)");
      return await RedisPresenceStore.open(options.redisUrl);
    default:
      throw new TypeError(`unknown presence store: ${options.kind}`);
  }
}

/**
 * Options for {@linkcode openPresence}: where the store is, and the tracker's own.
 */
export interface OpenPresenceOptions
  extends OpenPresenceStoreOptions, Omit<PresenceOptions, "store"> {}

/**
 * Opens the configured store and starts a {@linkcode Presence} tracker on it
 * (its lease taken, a dead predecessor's rows cleaned). At shutdown close the
 * tracker, then its store: `await presence.close(); await presence.store.close();`.
 *
 * @example
 * ```ts
 * import { Hub, openPresence } from "@heartwire/heartwire/hub";
 * const presence = await openPresence({ kind: "memory", presenceTimeout: 35_000 });
 * const hub = new Hub({ presence });
 * hub.dispose();
 * await presence.close();
 * await presence.store.close();
 * ```
 */
export async function openPresence(options: OpenPresenceOptions = {}): Promise<Presence> {
  const store = await openPresenceStore(options);
  const presence = new Presence({ ...options, store });
  try {
    await presence.start();
  } catch (error) {
    await store.close();
    throw error;
  }
  return presence;
}
