/**
 * (c) heartwire's own server with default options: `serve()` with
 * `echoHandler` on `/echo` (server/server.ts), nothing tuned for the benchmark.
 *
 * Arguments: `[port] [pingInterval ms]` (idle.ts's `--ping-interval` mode; the
 * ping timeout is then the same), and `--metrics` anywhere to count into a
 * `HeartwireMetrics` as the program does (run.ts's `heartwire-metrics`).
 * Prints `listening <port>` once ready; SIGTERM stops it.
 *
 * @module
 */
import { echoHandler, HeartwireMetrics, serve } from "../../../server/mod.ts";

const args = Deno.args.filter((arg) => arg !== "--metrics");
serve({
  hostname: "127.0.0.1",
  port: Number(args[0] ?? 0),
  routes: { "/echo": echoHandler },
  // The same timeout as interval, so pings keep their cadence (issue 9's setup).
  pingInterval: args[1] ? Number(args[1]) : undefined,
  pingTimeout: args[1] ? Number(args[1]) : undefined,
  metrics: Deno.args.includes("--metrics") ? new HeartwireMetrics() : undefined,
  onListen: (addr) => console.log(`listening ${addr.port}`),
});
