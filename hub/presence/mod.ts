/**
 * Presence for the hub: who is online in each topic, when each user was last
 * seen, and join / leave / update events with per-topic offsets — on memory,
 * Deno KV (the embedded default) or Redis (several nodes).
 *
 * @example
 * ```ts
 * import { openPresenceStore, Presence } from "@heartwire/heartwire/hub/presence";
 * const store = await openPresenceStore({ kind: "memory" });
 * const presence = new Presence({ store, presenceTimeout: 30_000, awayAfter: 300_000 });
 * presence.subscribe((event) => console.log(event));
 * await presence.start();
 * presence.join("lobby", "ann", "conn-1", { name: "Ann" });
 * console.log(await presence.get("ann"));
 * await presence.close();
 * await store.close();
 * ```
 *
 * @module
 */
export * from "./types.ts";
export * from "./presence.ts";
export * from "./memory_store.ts";
export * from "./kv_store.ts";
export * from "./redis_store.ts";
export * from "./open_store.ts";
export * from "./http.ts";
