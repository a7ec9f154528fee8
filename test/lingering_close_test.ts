/**
 * Lingering close: when the server fails a connection while the peer is still
 * sending (here a 2 MiB message to a 1 MiB limit, written in one go), closing
 * TCP with the rest of the message unread would make the kernel answer with a
 * reset, which can destroy the 1009 close frame before the client reads it.
 * The server instead sends FIN after its close frame and reads and discards
 * until the peer's FIN (bounded in bytes and time): every client must see 1009.
 */
import { assertEquals } from "@std/assert";
import WebSocketWs from "ws";
import { encodeFrame } from "../protocol/frame_encoder.ts";
import { serve } from "../server/mod.ts";
import { RawClient } from "./_raw_client.ts";

const LIMIT = 1024 * 1024;
const OVERSIZE = 2 * 1024 * 1024;

function startServer() {
  return serve({
    port: 0,
    hostname: "127.0.0.1",
    maxPayload: LIMIT,
    routes: { "/echo": { message: (ws, data) => ws.send(data) } },
  });
}

/** Runs `task(i)` for i in 0..count, `parallel` at a time. */
async function inBatches<T>(
  count: number,
  parallel: number,
  task: (i: number) => Promise<T>,
): Promise<T[]> {
  const results: T[] = [];
  for (let start = 0; start < count; start += parallel) {
    const batch = [];
    for (let i = start; i < Math.min(count, start + parallel); i++) batch.push(task(i));
    results.push(...await Promise.all(batch));
  }
  return results;
}

Deno.test("100 of 100 oversize messages from Deno's WebSocket get the 1009 close frame", async () => {
  // Without lingering, this client sees code 0 (a reset) instead, every time.
  const server = startServer();
  const port = server.addr.port;
  const payload = new Uint8Array(OVERSIZE);
  try {
    const codes = await inBatches(100, 10, () =>
      new Promise<number>((resolve, reject) => {
        const socket = new WebSocket(`ws://127.0.0.1:${port}/echo`);
        const timer = setTimeout(() => {
          socket.close();
          reject(new Error("no close within 5 s"));
        }, 5_000);
        socket.onopen = () => socket.send(payload);
        socket.onerror = () => {}; // the close event carries the code
        socket.onclose = (event) => {
          clearTimeout(timer);
          resolve(event.code);
        };
      }));
    assertEquals(codes.filter((code) => code === 1009).length, 100, `codes: ${codes}`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("100 of 100 oversize messages from ws (one write each) get the 1009 close frame", async () => {
  const server = startServer();
  const port = server.addr.port;
  const payload = new Uint8Array(OVERSIZE);
  try {
    const codes = await inBatches(100, 10, () =>
      new Promise<number>((resolve, reject) => {
        const socket = new WebSocketWs(`ws://127.0.0.1:${port}/echo`);
        const timer = setTimeout(() => {
          socket.terminate();
          reject(new Error("no close within 5 s"));
        }, 5_000);
        socket.on("open", () => socket.send(payload));
        socket.on("error", () => {}); // the close event carries the code
        socket.on("close", (code: number) => {
          clearTimeout(timer);
          resolve(code);
        });
      }));
    assertEquals(codes.filter((code) => code === 1009).length, 100, `codes: ${codes}`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("raw clients that write an oversize frame before reading get 1009, then the server's FIN", async () => {
  const server = startServer();
  const port = server.addr.port;
  const frame = encodeFrame(0x2, new Uint8Array(OVERSIZE), { mask: true });
  try {
    const results = await inBatches(30, 10, async () => {
      const client = await RawClient.connect(port, "/echo");
      try {
        // Everything is written before anything is read, as a client that
        // is busy sending would. Without lingering the server closes TCP with
        // most of the frame unread, the kernel answers with a reset, and the
        // reset throws away the close frame waiting in our receive buffer.
        const wrote = await client.write(frame).then(() => "wrote", () => "write failed");
        const close = await client.nextClose(5_000);
        const code = close.type === "close" ? close.code : close.type;
        const eof = (await client.next(5_000)).type;
        assertEquals(wrote, "wrote");
        return `${code} ${eof}`;
      } finally {
        client.close();
      }
    });
    assertEquals(results, new Array(30).fill("1009 eof"));
  } finally {
    await server.shutdown();
  }
});

Deno.test("lingering is bounded: a peer that keeps sending after our close is cut off", async () => {
  const server = startServer();
  const port = server.addr.port;
  const client = await RawClient.connect(port, "/echo");
  try {
    // An unmasked frame fails the connection with 1002 at once…
    await client.sendFrame(0x1, "x", { mask: false });
    const close = await client.nextClose();
    assertEquals(close.type === "close" ? close.code : close.type, 1002);
    // …then the client never sends FIN but floods: past the byte bound the
    // server closes TCP, so writing eventually fails.
    const chunk = new Uint8Array(256 * 1024);
    let failed = false;
    const deadline = Date.now() + 10_000;
    while (!failed && Date.now() < deadline) {
      try {
        await client.conn.write(chunk);
      } catch {
        failed = true;
      }
    }
    assertEquals(failed, true);
  } finally {
    client.close();
    await server.shutdown();
  }
});
