/**
 * heartwire: WebSocket connections kept alive and honest.
 *
 * - `@heartwire/heartwire/protocol`: the sans-I/O RFC 6455 core.
 * - `@heartwire/heartwire/server`: the server over raw TCP, with keepalive on
 *   one timer heap.
 * - `@heartwire/heartwire/hub`: the application layer on a route — sessions,
 *   topics with recoverable history, your own message types.
 *
 * This entry point re-exports all three.
 *
 * @example
 * ```ts
 * import { serve } from "@heartwire/heartwire";
 * const server = serve({ port: 0 });
 * await server.shutdown();
 * ```
 *
 * @module
 */
export * from "./protocol/mod.ts";
export * from "./server/mod.ts";
export * from "./hub/mod.ts";
