// (d) ws 8 on Node: `node node_ws_echo.cjs <path to ws/index.js> [port]`.
// The runner passes the ws package from Deno's npm cache (deno.json imports
// npm:ws@8), so nothing is installed for Node. Prints `listening <port>`.
"use strict";
const { WebSocketServer } = require(process.argv[2]);

const wss = new WebSocketServer({
  host: "127.0.0.1",
  port: Number(process.argv[3] ?? 0),
  perMessageDeflate: false,
});
wss.on("listening", () => console.log(`listening ${wss.address().port}`));
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
});
