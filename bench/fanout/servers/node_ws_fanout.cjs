// Fan-out with ws 8 on Node, the broadcast loop of ws's README: every message
// from /pub goes to every open client on /sub; the text "?" from /pub is
// answered with the subscriber count instead.
// `node node_ws_fanout.cjs <path to ws/index.js> [port]` prints `listening <port>`.
"use strict";
const { WebSocket, WebSocketServer } = require(process.argv[2]);

const subscribers = new Set();
const wss = new WebSocketServer({
  host: "127.0.0.1",
  port: Number(process.argv[3] ?? 0),
  perMessageDeflate: false,
  backlog: 4096,
});
wss.on("listening", () => console.log(`listening ${wss.address().port}`));
wss.on("connection", (ws, request) => {
  if (request.url !== "/pub") {
    subscribers.add(ws);
    ws.on("close", () => subscribers.delete(ws));
    return;
  }
  ws.on("message", (data, isBinary) => {
    if (!isBinary && data.length === 1 && data[0] === 0x3f) {
      ws.send(String(subscribers.size));
      return;
    }
    for (const client of subscribers) {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
    }
  });
});
