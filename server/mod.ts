/**
 * The heartwire server: HTTP/1.1 and RFC 6455 over raw TCP (`Deno.listen` /
 * `Deno.listenTls`), in the shape of `Deno.serve` / `Bun.serve`: a `fetch`
 * handler for requests, `server.upgrade()` for WebSockets, keepalive on one
 * timer heap, limits and graceful shutdown.
 *
 * @example
 * ```ts
 * import { serve } from "@heartwire/heartwire/server";
 * const server = serve({
 *   port: 0,
 *   fetch(request, server) {
 *     if (new URL(request.url).pathname === "/echo" && server.upgrade(request)) {
 *       return new Response(null);
 *     }
 *     return Response.json({ hello: "world" });
 *   },
 *   websocket: { message: (ws, data) => ws.send(data) },
 *   onListen: (addr) => console.log(`ws://localhost:${addr.port}/echo`),
 * });
 * await server.shutdown();
 * ```
 *
 * @module
 */
export { echoHandler, serve } from "./server.ts";
export type {
  AuthResult,
  ServeOptions,
  Server,
  ServerStats,
  ShutdownOptions,
  UpgradeOptions,
  UpgradeRefusal,
} from "./server.ts";
export { WebSocketConnection } from "./connection.ts";
export type { CloseInfo, ConnectionOptions, WebSocketHandler } from "./connection.ts";
export * from "./keepalive.ts";
export * from "./timer_heap.ts";
export * from "./metrics.ts";
export * from "./load_monitor.ts";
export * from "./trusted_proxy.ts";
