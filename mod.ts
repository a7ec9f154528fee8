/**
 * heartwire: WebSocket connections kept alive and honest.
 *
 * - `@heartwire/heartwire/protocol`: the sans-I/O RFC 6455 core.
 * - `@heartwire/heartwire/server`: the server over raw TCP, with keepalive on
 *   one timer heap.
 *
 * This entry point re-exports both.
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
