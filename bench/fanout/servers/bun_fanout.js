// Fan-out with Bun.serve: /sub sockets subscribe to one topic and every
// message from /pub goes out with server.publish (uWS encodes it once); the
// text "?" from /pub is answered with the subscriber count instead.
// `bun bun_fanout.js [port]` prints `listening <port>`.
let subscribers = 0;
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.argv[2] ?? 0),
  fetch(request, server) {
    const publisher = new URL(request.url).pathname === "/pub";
    if (server.upgrade(request, { data: { publisher } })) return undefined;
    return new Response("WebSocket only\n", { status: 426 });
  },
  websocket: {
    perMessageDeflate: false,
    open(ws) {
      if (ws.data.publisher) return;
      ws.subscribe("all");
      subscribers++;
    },
    close(ws) {
      if (!ws.data.publisher) subscribers--;
    },
    message(ws, message) {
      if (message === "?") ws.send(String(subscribers));
      else server.publish("all", message);
    },
  },
});
console.log(`listening ${server.port}`);
