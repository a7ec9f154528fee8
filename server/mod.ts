/**
 * The heartwire server: RFC 6455 over raw TCP (`Deno.listen` / `Deno.listenTls`),
 * keepalive on one timer heap, limits and graceful shutdown.
 *
 * @example
 * ```ts
 * import { serve } from "@heartwire/heartwire/server";
 * const server = serve({
 *   port: 0,
 *   routes: {
 *     "/echo": { message: (ws, data) => ws.send(data) },
 *   },
 *   onListen: (addr) => console.log(`ws://localhost:${addr.port}/echo`),
 * });
 * await server.shutdown();
 * ```
 *
 * @module
 */
export * from "./server.ts";
export * from "./connection.ts";
export * from "./demo.ts";
export * from "./keepalive.ts";
export * from "./timer_heap.ts";
export * from "./http.ts";
export * from "./cli.ts";
export * from "./metrics.ts";
export * from "./load_monitor.ts";
export * from "./trusted_proxy.ts";
