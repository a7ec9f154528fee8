/**
 * Baseline (b): Deno's built-in WebSocket server, `Deno.serve` +
 * `Deno.upgradeWebSocket`, echoing every message — the minimal server issue 4
 * compares heartwire with.
 *
 * Arguments: `[port] [pingInterval ms]`. With a ping interval, `idleTimeout`
 * is twice it: Deno pings after half the idle timeout of silence.
 * Prints `listening <port>` once ready; SIGTERM stops it.
 *
 * @module
 */

const port = Number(Deno.args[0] ?? 0);
const pingInterval = Number(Deno.args[1] ?? 0);
const idleTimeout = pingInterval > 0 ? (2 * pingInterval) / 1000 : undefined;
Deno.serve({
  hostname: "127.0.0.1",
  port,
  onListen: (addr) => console.log(`listening ${addr.port}`),
}, (request) => {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("WebSocket only\n", { status: 426 });
  }
  const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout });
  socket.onmessage = (event) => socket.send(event.data);
  return response;
});
