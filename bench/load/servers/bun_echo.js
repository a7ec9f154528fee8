// (e) Bun.serve's native (uWebSockets) WebSocket echo: `bun bun_echo.js [port]`.
// Only run when a `bun` binary is on PATH. Prints `listening <port>`.
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.argv[2] ?? 0),
  fetch(request, server) {
    if (server.upgrade(request)) return undefined;
    return new Response("WebSocket only\n", { status: 426 });
  },
  websocket: {
    perMessageDeflate: false,
    message(ws, message) {
      ws.send(message);
    },
  },
});
console.log(`listening ${server.port}`);
