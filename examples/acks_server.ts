/**
 * Your own message types with replies: a hub that registers `add` (answers
 * with a value), `move` (publishes to a topic everyone on `board` sees) and
 * `boom` (throws: the client gets an `error`, the connection stays up). Every
 * client message carries a `cseq` and is processed at most once, however often
 * a reconnecting client re-sends it; the reply travels in the `ack`.
 *
 * ```sh
 * deno run --allow-net --allow-env examples/acks_server.ts      # then: examples/acks_client.ts
 * ```
 *
 * @module
 */
import { Hub } from "@heartwire/heartwire/hub";
import { serve } from "@heartwire/heartwire/server";

const hub = new Hub({
  // Joining a topic passes here; a string refuses with that reason.
  authorize: (_session, topic) => topic === "board" || `no topic "${topic}" here`,
});

hub.on<{ a: number; b: number }>("add", (_ctx, m) => {
  if (typeof m.a !== "number" || typeof m.b !== "number") {
    throw new Error("a and b must be numbers");
  }
  return { sum: m.a + m.b }; // → {"type":"ack","cseq":N,"reply":{"sum":…}}
});

hub.on<{ x: number; y: number }>("move", async (ctx, m) => {
  // A publication: numbered in the topic's history, recoverable after a reconnect.
  await hub.publish("board", "moved", { by: ctx.clientId, x: m.x, y: m.y });
  return { ok: true };
});

hub.on("boom", () => {
  throw new Error("this handler always fails"); // → {"type":"error","reason":…,"cseq":N}
});

const server = serve({
  port: Number(Deno.env.get("PORT") ?? 8080),
  routes: { "/ws": hub },
  onListen: (addr) => console.log(`listening on http://localhost:${addr.port}/`),
});

Deno.addSignalListener("SIGINT", async () => {
  await server.shutdown();
  hub.dispose();
  Deno.exit(0);
});
