/**
 * (c) heartwire's own server with default options: `serve()` with
 * `echoHandler` on `/echo` (server/server.ts), nothing tuned for the benchmark.
 *
 * Arguments: `[port] [pingInterval ms]` (idle.ts's `--ping-interval` mode; the
 * ping timeout is then the same).
 * Prints `listening <port>` once ready; SIGTERM stops it.
 *
 * @module
 */
import { echoHandler, serve } from "../../../server/mod.ts";

serve({
  hostname: "127.0.0.1",
  port: Number(Deno.args[0] ?? 0),
  routes: { "/echo": echoHandler },
  // The same timeout as interval, so pings keep their cadence (issue 9's setup).
  pingInterval: Deno.args[1] ? Number(Deno.args[1]) : undefined,
  pingTimeout: Deno.args[1] ? Number(Deno.args[1]) : undefined,
  onListen: (addr) => console.log(`listening ${addr.port}`),
});
