/**
 * The hub: the application layer above one WebSocket — sessions that
 * survive reconnects, topics with recoverable history (offsets and epochs),
 * the application's own message types with replies, direct messages, and
 * join authorisation, and presence (who is online: {@linkcode Presence},
 * served over HTTP by {@linkcode presenceFetch}). Stores sit behind small
 * interfaces ({@linkcode SessionStore}, {@linkcode HistoryStore},
 * {@linkcode PresenceStore}) with memory implementations, and Deno KV or
 * Redis for presence.
 *
 * @example
 * ```ts
 * import { chat, Hub } from "@heartwire/heartwire/hub";
 * import { serve } from "@heartwire/heartwire/server";
 *
 * const hub = chat(new Hub({ authorize: (_session, topic) => topic !== "admin" }));
 * hub.on<{ a: number; b: number }>("add", (_ctx, m) => ({ sum: m.a + m.b }));
 * const server = serve({ port: 0, routes: { "/ws": hub } });
 * await hub.publish("lobby", "notice", { text: "hello, everyone" });
 * await server.shutdown();
 * hub.dispose();
 * ```
 *
 * @module
 */
export * from "./hub.ts";
export * from "./chat.ts";
export * from "./broker.ts";
export * from "./history.ts";
export * from "./sessions.ts";
export * from "./presence/mod.ts";
