/**
 * Fan-out with heartwire's `serve()`: every message from `/pub` goes to every
 * connection on `/sub`, encoded once as a {@linkcode PreparedMessage} whose
 * frame each subscriber queues by reference (`ws.sendPrepared`), as hub
 * topics publish; the text `?` from `/pub` is answered with the subscriber
 * count instead (the generator waits for it to reach N before it starts).
 *
 * `deno run --allow-net heartwire_fanout.ts [port]` prints `listening <port>`;
 * SIGTERM stops it.
 *
 * @module
 */
import { PreparedMessage } from "../../../protocol/frame_encoder.ts";
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
    const message = new PreparedMessage(data);
    for (const ws of subscribers) ws.sendPrepared(message);
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
