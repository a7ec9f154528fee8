/**
 * Baseline (b): Deno's built-in WebSocket server, `Deno.serve` +
 * `Deno.upgradeWebSocket`, echoing every message — the minimal server issue 4
 * compares heartwire with.
 *
 * Prints `listening <port>` once ready; SIGTERM stops it.
 *
 * @module
 */

const port = Number(Deno.args[0] ?? 0);
Deno.serve({
  hostname: "127.0.0.1",
  port,
  onListen: (addr) => console.log(`listening ${addr.port}`),
}, (request) => {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("WebSocket only\n", { status: 426 });
  }
  const { socket, response } = Deno.upgradeWebSocket(request);
  socket.onmessage = (event) => socket.send(event.data);
  return response;
});
