/**
 * The client side of `examples/acks_server.ts`: asks for a sum, makes a move
 * and sees it published on `board`, and shows how a handler's error comes
 * back. Prints what happened and exits.
 *
 * ```sh
 * deno run --allow-net examples/acks_client.ts ws://localhost:8080/ws
 * ```
 *
 * @module
 */
import { ReconnectingSocket } from "@heartwire/heartwire/client";

const socket = new ReconnectingSocket(Deno.args[0] ?? "ws://localhost:8080/ws", { id: "ada" });

// request(): sent with a cseq, kept in the outbox until acked, resolved with the reply.
const sum = await socket.request("add", { a: 2, b: 3 });
console.log("add →", JSON.stringify(sum));

const moved = new Promise<void>((resolve) => {
  socket.on<{ by: string; x: number; y: number; offset: number }>("moved", (m) => {
    console.log(`moved by ${m.by} to ${m.x},${m.y} (offset ${m.offset} in board)`);
    resolve();
  });
});
socket.subscribe("board");
console.log("move →", JSON.stringify(await socket.request("move", { x: 1, y: 2 })));
await moved;

try {
  await socket.request("boom");
} catch (error) {
  console.log("boom → error:", (error as Error).message);
}
socket.close();
