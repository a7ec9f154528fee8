// ws 8 on Node with the isAlive ping recipe from ws's README, for
// `deno task bench:scale`:
// `node node_ws_isalive.cjs <path to ws/index.js> <hostname> <port> <intervalMs>`.
// Every interval, one pass over all clients: a client that has not answered
// the previous pass's ping is terminated, the others are marked and pinged.
// Prints `listening <port>`.
"use strict";
const { WebSocketServer } = require(process.argv[2]);
const interval = Number(process.argv[5] ?? 1000);

const wss = new WebSocketServer({
  host: process.argv[3] ?? "127.0.0.1",
  port: Number(process.argv[4] ?? 0),
  perMessageDeflate: false,
});
wss.on("listening", () => console.log(`listening ${wss.address().port}`));
wss.on("connection", (ws) => {
  ws.isAlive = true;
  ws.on("pong", () => {
    ws.isAlive = true;
  });
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
});
const timer = setInterval(() => {
  for (const ws of wss.clients) {
    if (ws.isAlive === false) {
      ws.terminate();
      continue;
    }
    ws.isAlive = false;
    ws.ping();
  }
}, interval);
wss.on("close", () => clearInterval(timer));
