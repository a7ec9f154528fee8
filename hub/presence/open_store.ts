/**
 * One call that turns the `--presence-store`, `--kv-path` and `--redis` flags
 * into a {@linkcode PresenceStore}.
 *
 * @module
 */
import { KvPresenceStore } from "./kv_store.ts";
import { MemoryPresenceStore } from "./memory_store.ts";
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
