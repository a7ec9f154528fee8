/**
 * (c) heartwire's own server with default options: `serve()` and its
 * built-in `/echo` route (server/server.ts), nothing tuned for the benchmark.
 *
 * Arguments: `[port] [pingInterval ms]` (idle.ts's `--ping-interval` mode).
 * Prints `listening <port>` once ready; SIGTERM stops it.
 *
 * @module
 */
import { serve } from "../../../server/server.ts";

serve({
  hostname: "127.0.0.1",
  port: Number(Deno.args[0] ?? 0),
  pingInterval: Deno.args[1] ? Number(Deno.args[1]) : undefined,
  onListen: (addr) => console.log(`listening ${addr.port}`),
});
