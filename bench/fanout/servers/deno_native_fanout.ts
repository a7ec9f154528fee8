/**
 * Fan-out with `Deno.serve` + `Deno.upgradeWebSocket`: every message from
 * `/pub` goes to every socket on `/sub` in a plain loop; the text `?` from
 * `/pub` is answered with the subscriber count instead.
 *
 * `deno run --allow-net deno_native_fanout.ts [port]` prints `listening <port>`;
 * SIGTERM stops it.
 *
 * @module
 */

const subscribers = new Set<WebSocket>();

Deno.serve({
  hostname: "127.0.0.1",
  port: Number(Deno.args[0] ?? 0),
  onListen: (addr) => console.log(`listening ${addr.port}`),
}, (request) => {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("WebSocket only\n", { status: 426 });
  }
  const { socket, response } = Deno.upgradeWebSocket(request);
  if (new URL(request.url).pathname === "/pub") {
    socket.onmessage = (event) => {
      if (event.data === "?") socket.send(String(subscribers.size));
      else for (const subscriber of subscribers) subscriber.send(event.data);
    };
  } else {
    socket.onopen = () => subscribers.add(socket);
    socket.onclose = () => subscribers.delete(socket);
  }
  return response;
});
