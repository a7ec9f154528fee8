/**
 * A Hono app and heartwire on one port: Hono answers the HTTP routes, and its
 * `/ws` route hands the request to heartwire, which upgrades the same TCP
 * connection to a WebSocket with typed per-connection data. `serve()`'s
 * `fetch` is the standard `(Request) => Response` shape, so any such app
 * (Hono, Oak, Fresh) mounts the same way.
 *
 * ```sh
 * deno run --allow-net --allow-env examples/hono.ts          # PORT=9000 to move it
 * ```
 *
 * Then `curl localhost:8080/api/hello` and connect to `ws://localhost:8080/ws?name=ann`.
 *
 * @module
 */
import { Hono } from "hono";
import { serve, type Server } from "@heartwire/heartwire/server";

interface Visitor {
  name: string;
}

// Hono passes its second `fetch` argument on as `c.env`: the heartwire server goes there.
const app = new Hono<{ Bindings: { server: Server<Visitor> } }>();

app.get("/api/hello", (c) => c.json({ hello: "world", websockets: c.env.server.connections.size }));

app.get("/ws", (c) => {
  const name = c.req.query("name");
  if (!name) return c.text("who are you? add ?name=…", 401);
  // Upgrades this request's own connection; the Response returned is ignored.
  if (c.env.server.upgrade(c.req.raw, { data: { name } })) return new Response(null);
  return c.text("expected a WebSocket upgrade", 400);
});

const server = serve<Visitor>({
  port: Number(Deno.env.get("PORT") ?? 8080),
  fetch: (request, server) => app.fetch(request, { server }),
  websocket: {
    open: (ws) => ws.send(`welcome, ${ws.data.name}`),
    message: (ws, data) =>
      ws.send(typeof data === "string" ? `${ws.data.name} said: ${data}` : data),
  },
  onListen: (addr) => console.log(`listening on http://localhost:${addr.port}/`),
});

// Ctrl-C: every WebSocket gets close 1001 ("going away"), then the process ends.
Deno.addSignalListener("SIGINT", () => server.shutdown().then(() => Deno.exit(0)));
