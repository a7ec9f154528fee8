/**
 * Chat with presence: a hub on `/ws` where every client joins `lobby`, chat
 * messages are published to it with offsets, and who is online is tracked —
 * live on the WebSocket (`presence_subscribe`) and over HTTP
 * (`GET /presence?topic=lobby`, `GET /presence/<id>`).
 *
 * ```sh
 * deno run --allow-net --allow-env examples/chat_presence.ts      # PORT=9000 to move it
 * ```
 *
 * Then connect with `examples/chat_client.ts`, the demo page of
 * `deno task start`, or any WebSocket client at `ws://localhost:8080/ws?id=ann`,
 * and look at `curl localhost:8080/presence?topic=lobby`.
 *
 * @module
 */
import { chat, Hub, openPresence, presenceFetch } from "@heartwire/heartwire/hub";
import { serve } from "@heartwire/heartwire/server";

// "memory" keeps presence in this process; "kv" (Deno KV) survives a restart,
// "redis" is shared by several nodes (see docs/06_running.md).
const presence = await openPresence({
  kind: "memory",
  presenceTimeout: 35_000, // ≥ the heartbeat interval + timeout the hub announces (25 s + 10 s)
});
const hub = chat(new Hub({ presence }), { topic: "lobby" });

const server = serve({
  port: Number(Deno.env.get("PORT") ?? 8080),
  routes: { "/ws": hub },
  fetch: presenceFetch(presence, {
    fallback: () => new Response("WebSocket on /ws, presence on /presence?topic=lobby\n"),
  }),
  onListen: (addr) => console.log(`listening on http://localhost:${addr.port}/`),
});

Deno.addSignalListener("SIGINT", async () => {
  await server.shutdown();
  hub.dispose();
  await presence.close();
  await presence.store.close();
  Deno.exit(0);
});
