/**
 * Echo server: every WebSocket message on `/echo` comes back exactly as it was
 * sent (text as text, binary as binary), and any other path answers JSON.
 *
 * ```sh
 * deno run --allow-net --allow-env examples/echo.ts          # PORT=9000 to move it
 * ```
 *
 * Try it from another terminal:
 *
 * ```sh
 * deno eval 'const ws = new WebSocket("ws://localhost:8080/echo");
 *   ws.onopen = () => ws.send("hello"); ws.onmessage = (e) => { console.log(e.data); ws.close(); };'
 * ```
 *
 * @module
 */
import { serve } from "@heartwire/heartwire/server";

const server = serve({
  port: Number(Deno.env.get("PORT") ?? 8080),
  fetch(request, server) {
    if (new URL(request.url).pathname === "/echo") {
      // true: this request's connection is now a WebSocket; the Response is ignored.
      if (server.upgrade(request)) return new Response(null);
      return new Response("expected a WebSocket upgrade\n", { status: 400 });
    }
    return Response.json({ try: "ws://localhost:" + server.addr.port + "/echo" });
  },
  websocket: {
    message: (ws, data) => ws.send(data),
  },
  onListen: (addr) => console.log(`listening on http://localhost:${addr.port}/`),
});

// Ctrl-C: every connection gets close 1001 ("going away"), then the process ends.
Deno.addSignalListener("SIGINT", () => server.shutdown().then(() => Deno.exit(0)));
