/**
 * Fan-out with heartwire's `serve()`: every message from `/pub` goes to every
 * connection on `/sub`, one `ws.send` per subscriber; the text `?` from `/pub`
 * is answered with the subscriber count instead (the generator waits for it
 * to reach N before it starts).
 *
 * `serve()` has no topic publish yet, so each `send` encodes its own frame.
 * TODO(hub topics): once hub/ can publish to a topic with the frame encoded
 * once for all subscribers, subscribe `/sub` connections to a topic in
 * `open` and call that publish in `broadcast` in fanoutRoutes() — that is the number
 * this benchmark should report for heartwire.
 *
 * `deno run --allow-net heartwire_fanout.ts [port]` prints `listening <port>`;
 * SIGTERM stops it.
 *
 * @module
 */
import { serve, type WebSocketConnection, type WebSocketHandler } from "../../../server/mod.ts";

/**
 * The two routes: `/sub` joins the audience, `/pub` broadcasts to it.
 *
 * @example
 * ```ts
 * import { serve } from "../../../server/mod.ts";
 * import { fanoutRoutes } from "./heartwire_fanout.ts";
 * const server = serve({ port: 0, routes: fanoutRoutes() });
 * await server.shutdown();
 * ```
 */
export function fanoutRoutes(): Record<string, WebSocketHandler> {
  const subscribers = new Set<WebSocketConnection>();
  const broadcast = (data: string | Uint8Array) => {
    for (const ws of subscribers) ws.send(data);
  };
  return {
    "/sub": {
      open: (ws) => subscribers.add(ws),
      close: (ws) => subscribers.delete(ws),
    },
    "/pub": {
      message(ws, data) {
        if (data === "?") ws.send(String(subscribers.size));
        else broadcast(data);
      },
    },
  };
}

if (import.meta.main) {
  serve({
    hostname: "127.0.0.1",
    port: Number(Deno.args[0] ?? 0),
    // Each side is one process and the machine allows 20 000 open files each.
    maxConnections: 19_500,
    routes: fanoutRoutes(),
    onListen: (addr) => console.log(`listening ${addr.port}`),
  });
}
