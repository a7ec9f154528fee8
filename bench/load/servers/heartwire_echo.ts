/**
 * (c) heartwire's own server with default options: `serve()` and its
 * built-in `/echo` route (server/server.ts), nothing tuned for the benchmark.
 *
 * Arguments: `[port] [pingInterval ms]` (idle.ts's `--ping-interval` mode; the
 * ping timeout is then the same).
 * Prints `listening <port>` once ready; SIGTERM stops it.
 *
 * @module
 */
import { serve } from "../../../server/server.ts";

serve({
  hostname: "127.0.0.1",
  port: Number(Deno.args[0] ?? 0),
  // The same timeout as interval, so pings keep their cadence (issue 9's setup).
  pingInterval: Deno.args[1] ? Number(Deno.args[1]) : undefined,
  pingTimeout: Deno.args[1] ? Number(Deno.args[1]) : undefined,
  onListen: (addr) => console.log(`listening ${addr.port}`),
});
