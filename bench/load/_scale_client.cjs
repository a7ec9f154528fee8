// One load-generator process for `deno task bench:scale` (bench/load/scale.ts),
// on Node's `net`: it holds idle WebSockets that answer every ping at once and
// reports how many the server dropped. Node, not Deno, because at 18 000
// connections a Deno client's reads queue up (Deno completes at most 128 reads
// per turn of its event loop, see server/keepalive.ts), so its pongs would
// be late and the load generator, not the server, would decide the result.
//
// `node _scale_client.cjs <hostname> <port> <path> <connections> [batch]`
//
// Protocol with the runner, one line each way:
// - prints `opened <n> <failed>` once every handshake has finished;
// - on stdin `mark`, prints a JSON mark (see ScaleMark in scale.ts);
// - on stdin `finish`, prints a last mark, destroys every socket and exits;
// - on stdin `blackhole <n>` (bench/load/detect.ts), prints a mark after
//   turning n of its open connections, spread evenly, into dead peers: they
//   keep reading (so the server's FIN or close frame is seen the moment it
//   arrives) but discard everything and never answer a ping again, and
//   send no FIN or RST. From then on `dropped` counts only the live
//   connections the server ended (false drops); each blackholed one the
//   server ends adds, to `detectMs`, the ms from its blackhole moment to
//   the first sign of its end (close frame, FIN, reset).
//
// Pongs (RFC 6455 §5.5.3) are masked with a zero key (§5.3 allows any key,
// and zero leaves the payload as is). Anything but a ping from the server
// ends the connection and counts as a drop.
"use strict";
const net = require("node:net");
const crypto = require("node:crypto");

const [hostname, port, path, count, batchArg] = process.argv.slice(2);
const connections = Number(count);
const batch = Number(batchArg ?? 200);
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; // RFC 6455 §1.3

const mark = {
  opened: 0,
  failed: 0,
  dropped: 0,
  pings: 0,
  maxLagMs: 0,
  sincePong: [],
  errors: [],
  blackholed: 0,
  detectMs: [],
};
const sockets = [];
const states = [];
let finishing = false;

/** Answers every complete ping in `data`; false if anything else came. */
function frames(state, socket, data) {
  if (state.pending) data = Buffer.concat([state.pending, data]);
  let at = 0;
  while (data.length - at >= 2) {
    const opcode = data[at] & 0x0f, length = data[at + 1] & 0x7f;
    if (opcode !== 0x9 || length > 125) return false;
    if (data.length - at < 2 + length) break;
    if (state.blackholedAt >= 0) {
      at += 2 + length; // a dead peer: read, discard, never answer
      continue;
    }
    mark.pings++;
    const pong = Buffer.alloc(6 + length);
    pong[0] = 0x8a;
    pong[1] = 0x80 | length;
    data.copy(pong, 6, at + 2, at + 2 + length);
    socket.write(pong);
    state.lastPong = performance.now();
    at += 2 + length;
  }
  state.pending = at < data.length ? data.subarray(at) : null;
  return true;
}

function open() {
  return new Promise((resolve) => {
    const key = crypto.randomBytes(16).toString("base64");
    const accept = crypto.createHash("sha1").update(key + GUID).digest("base64");
    const socket = net.connect({ host: hostname, port: Number(port) });
    const state = {
      pending: null,
      lastPong: -1,
      open: false,
      head: Buffer.alloc(0),
      blackholedAt: -1,
      ended: false,
    };
    const fail = (message) => {
      if (state.open) return;
      state.open = true; // settled
      mark.failed++;
      if (mark.errors.length < 5 && !mark.errors.includes(message)) mark.errors.push(message);
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(() => fail("no handshake within 30 s"), 30_000);
    socket.on("connect", () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    socket.on("error", (error) => fail(error.message));
    const drop = () => {
      if (state.ended) return;
      state.ended = true;
      if (!state.open) return fail("closed during the handshake");
      if (finishing) return;
      if (state.blackholedAt >= 0) {
        mark.detectMs.push(Math.round(performance.now() - state.blackholedAt));
        return;
      }
      mark.dropped++;
      mark.sincePong.push(state.lastPong < 0 ? -1 : Math.round(performance.now() - state.lastPong));
    };
    socket.on("close", drop);
    socket.on("end", drop); // FIN: the first sign, before 'close'
    socket.on("data", (data) => {
      if (!state.open) {
        state.head = Buffer.concat([state.head, data]);
        const end = state.head.indexOf("\r\n\r\n");
        if (end === -1) return;
        const head = state.head.subarray(0, end).toString("latin1");
        if (!head.startsWith("HTTP/1.1 101") || !head.includes(accept)) {
          return fail(`handshake refused: ${head.split("\r\n")[0]}`);
        }
        clearTimeout(timer);
        state.open = true;
        mark.opened++;
        sockets.push(socket);
        states.push(state);
        resolve();
        data = state.head.subarray(end + 4);
        if (data.length === 0) return;
      }
      if (!frames(state, socket, data)) {
        drop();
        socket.destroy();
      }
    });
  });
}

/** Turns `n` open connections, spread evenly over all, into dead peers at once. */
function blackhole(n) {
  const now = performance.now();
  const step = sockets.length / n;
  for (let i = 0; i < n && i * step < sockets.length; i++) {
    const state = states[Math.floor(i * step)];
    if (state.blackholedAt >= 0 || state.ended) continue;
    state.blackholedAt = now;
    mark.blackholed++;
  }
}

let expected = performance.now() + 50;
const lagTimer = setInterval(() => {
  const now = performance.now();
  mark.maxLagMs = Math.max(mark.maxLagMs, Math.round(now - expected));
  expected = now + 50;
}, 50);

(async () => {
  for (let started = 0; started < connections; started += batch) {
    const size = Math.min(batch, connections - started);
    await Promise.all(Array.from({ length: size }, open));
  }
  console.log(`opened ${mark.opened} ${mark.failed}`);
  let rest = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (text) => {
    rest += text;
    let newline;
    while ((newline = rest.indexOf("\n")) !== -1) {
      const command = rest.slice(0, newline).trim();
      rest = rest.slice(newline + 1);
      if (command.startsWith("blackhole ")) blackhole(Number(command.slice(10)));
      if (command === "mark" || command === "finish" || command.startsWith("blackhole ")) {
        console.log(JSON.stringify(mark));
      }
      if (command === "finish") {
        finishing = true;
        clearInterval(lagTimer);
        for (const socket of sockets) socket.destroy();
        process.stdout.write("", () => process.exit(0));
      }
    }
  });
})();
