/**
 * The server of adversarial_fanout_test.ts, in a process of its own so that
 * its RSS and its `/healthz` latency are its own. A chat room: every text
 * message sent on `/publish` is broadcast to every member of `/chat`, as one
 * {@linkcode PreparedMessage} (or, with `"copy"` mode, as a `send` per
 * member, for comparison). Prints `{ "port": n }` once listening.
 *
 * Usage: deno run -A test/_fanout_server.ts '<ServeOptions as JSON>' [prepared|copy]
 */
import { PreparedMessage } from "../protocol/frame_encoder.ts";
import { serve, type WebSocketConnection } from "../server/mod.ts";

const options = JSON.parse(Deno.args[0] ?? "{}");
const copy = Deno.args[1] === "copy";
const members = new Set<WebSocketConnection>();

/** The longest the event loop was late for a 50 ms tick: the server's own stall. */
let lag = 0;
let last = performance.now();
setInterval(() => {
  const now = performance.now();
  lag = Math.max(lag, now - last - 50);
  last = now;
}, 50);

const server = serve({
  ...options,
  hostname: "127.0.0.1",
  port: 0,
  routes: {
    "/chat": {
      open: (ws) => void members.add(ws),
      close: (ws) => void members.delete(ws),
      // Members' own messages are heartbeats: nothing to do.
    },
    "/publish": {
      message(_ws, data) {
        if (typeof data !== "string") return;
        if (copy) {
          for (const member of members) member.send(data);
          return;
        }
        const message = new PreparedMessage(data);
        for (const member of members) member.sendPrepared(message);
      },
    },
  },
  fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === "/healthz") return new Response("ok\n");
    if (path === "/stats") {
      return Response.json({ closed: server.stats.closed, members: members.size, lag });
    }
    return new Response("not found\n", { status: 404 });
  },
});
console.log(JSON.stringify({ port: server.addr.port }));
