/**
 * A hub served on `/ws` of a fresh loopback port, for tests that drive it
 * over real sockets.
 *
 * @module
 */
import type { Hub } from "../hub/mod.ts";
import { serve, type Server } from "../server/mod.ts";

/**
 * Serves `hub` on `ws://127.0.0.1:<port>/ws` with a short close timeout
 * (tests end many connections and should not wait on silent peers).
 */
export function serveHub(hub: Hub): Server {
  return serve({ port: 0, hostname: "127.0.0.1", routes: { "/ws": hub }, closeTimeout: 300 });
}
