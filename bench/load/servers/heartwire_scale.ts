/**
 * heartwire's `/echo` (`echoHandler`) for `deno task bench:scale`: `serve()` with the ping
 * interval and timeout under test and a connection cap above the load.
 *
 * `deno run --allow-net heartwire_scale.ts <hostname> <port> <intervalMs> <timeoutMs> <maxConnections>`
 *
 * Prints `listening <port>` once ready; on SIGTERM prints (to stderr)
 * `closed <JSON of stats.closed>` and exits.
 *
 * @module
 */
import { echoHandler, serve } from "../../../server/mod.ts";

const [hostname = "127.0.0.1", port = "0", interval = "1000", timeout = "1000", max = "20000"] =
  Deno.args;
const server = serve({
  hostname,
  port: Number(port),
  routes: { "/echo": echoHandler },
  pingInterval: Number(interval),
  pingTimeout: Number(timeout),
  maxConnections: Number(max),
  onListen: (addr) => console.log(`listening ${addr.port}`),
});
Deno.addSignalListener("SIGTERM", () => {
  console.error(`closed ${JSON.stringify(server.stats.closed)}`);
  Deno.exit(0);
});
