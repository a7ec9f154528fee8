/**
 * Deno's native WebSocket with its own keepalive, for `deno task bench:scale`:
 * `Deno.upgradeWebSocket(request, { idleTimeout })` pings a connection after
 * `idleTimeout / 2` s without a message and closes it (1001) when nothing
 * came back within another `idleTimeout / 2` s. So `idleTimeout` =
 * (interval + timeout) / 1000 matches heartwire's interval/timeout when the
 * two are equal.
 *
 * `deno run --allow-net deno_native_idle.ts <hostname> <port> <idleTimeoutSeconds>`
 *
 * Prints `listening <port>` once ready; SIGTERM stops it.
 *
 * @module
 */
const [hostname = "127.0.0.1", port = "0", idle = "2"] = Deno.args;
Deno.serve({
  hostname,
  port: Number(port),
  onListen: (addr) => console.log(`listening ${addr.port}`),
}, (request) => {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("WebSocket only\n", { status: 426 });
  }
  const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: Number(idle) });
  socket.onmessage = (event) => socket.send(event.data);
  return response;
});
