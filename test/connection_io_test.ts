/**
 * server/connection.ts on its own, over a loopback TCP pair: the typed
 * per-connection `data` a server hands over (`upgrade(request, { data })`)
 * and the I/O around the sans-I/O Connection.
 */
import { assertEquals } from "@std/assert";
import type { WebSocketHandler } from "../server/mod.ts";
import { FrameDecoder } from "../protocol/frame_decoder.ts";
import { FrameWriter } from "../protocol/frame_encoder.ts";
import { startConnection } from "./_connection.ts";

interface User {
  name: string;
}

/** A server-side WebSocketConnection on one end of a loopback pair, the raw client on the other. */
async function pair<T>(handler: WebSocketHandler<T>, data?: T) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [client, conn] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port }),
    listener.accept(),
  ]);
  listener.close();
  const { ws, ended } = startConnection(conn, handler, data);
  return { ws, client, ended };
}

/** Reads frames until `count` events arrived or EOF; says which. */
async function readEvents(conn: Deno.Conn, count: number) {
  const decoder = new FrameDecoder({ role: "client" });
  const events = [];
  const buffer = new Uint8Array(4096);
  while (events.length < count) {
    const n = await conn.read(buffer);
    if (n === null) return { events, eof: true };
    events.push(...decoder.push(buffer.subarray(0, n)));
  }
  return { events, eof: false };
}

Deno.test("ws.data is the server's typed per-connection data", async () => {
  const handler: WebSocketHandler<User> = {
    open(ws) {
      ws.send(`hello ${ws.data.name}`); // typed: ws.data is a User
    },
    message(ws, data) {
      ws.data = { name: String(data) };
      ws.send(`now ${ws.data.name}`);
    },
  };
  const { ws, client, ended } = await pair(handler, { name: "ann" });
  try {
    assertEquals(ws.data, { name: "ann" });
    const writer = new FrameWriter({ role: "client" });
    writer.text("bob");
    writer.close(1000);
    await client.write(writer.take());
    assertEquals((await readEvents(client, 3)).events, [
      { type: "text", data: "hello ann" },
      { type: "text", data: "now bob" },
      { type: "close", code: 1000, reason: "" },
    ]);
    const info = await ended;
    assertEquals(info, { code: 1000, reason: "", wasClean: true, cause: "peer" });
  } finally {
    client.close();
  }
});

Deno.test("a failed connection sends FIN after its close frame and ends on the peer's FIN", async () => {
  const { client, ended } = await pair({});
  try {
    const writer = new FrameWriter({ role: "client" });
    writer.binary(new Uint8Array(2048)); // over the 1024-byte limit
    await client.write(writer.take());
    // The close frame, then EOF: the server shut down its side (FIN), and
    // is still reading, waiting for ours.
    const { events, eof } = await readEvents(client, 2);
    assertEquals(events.map((event) => event.type === "close" && event.code), [1009]);
    assertEquals(eof, true);
    client.closeWrite(); // our FIN: the server stops lingering and closes
    const info = await ended;
    assertEquals([info.code, info.cause, info.wasClean], [1009, "protocol", false]);
  } finally {
    client.close();
  }
});
