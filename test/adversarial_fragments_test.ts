/**
 * Issue 9, item 1: a message sent as a flood of 1-byte continuation frames
 * must cost the server its bytes, not an array per fragment. Several
 * connections each send 200 000 one-byte fragments over loopback; the server
 * must survive, deliver the message (or refuse it with 1009 above the limit),
 * and its RSS must stay within a generous bound.
 */
import { assertEquals, assertLess } from "@std/assert";
import { serve } from "../server/mod.ts";
import { RawClient } from "./_raw_client.ts";

const FRAGMENTS = 200_000;
const CONNECTIONS = 4;

/** One binary message as `count` masked 1-byte frames (key 0, so payload bytes read as sent). */
function tinyFragments(count: number): Uint8Array {
  const bytes = new Uint8Array(count * 7);
  for (let i = 0; i < count; i++) {
    const at = i * 7;
    const fin = i === count - 1 ? 0x80 : 0;
    bytes[at] = fin | (i === 0 ? 0x2 : 0x0); // binary, then continuations (§5.4)
    bytes[at + 1] = 0x80 | 1; // masked, 1 byte
    // bytes[at + 2..at + 6) is the masking key: zero.
    bytes[at + 6] = i & 0xff;
  }
  return bytes;
}

function startServer(maxPayload: number) {
  return serve({
    port: 0,
    hostname: "127.0.0.1",
    maxPayload,
    routes: {
      "/count": {
        message(ws, data) {
          const bytes = data as Uint8Array;
          let ok = true;
          for (let i = 0; i < bytes.length; i++) if (bytes[i] !== (i & 0xff)) ok = false;
          ws.send(`${bytes.length} ${ok ? "intact" : "corrupt"}`);
        },
      },
    },
  });
}

Deno.test("200 000 one-byte fragments on several connections: delivered, memory bounded", async () => {
  const server = startServer(1024 * 1024);
  const frames = tinyFragments(FRAGMENTS);
  const before = Deno.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => peak = Math.max(peak, Deno.memoryUsage().rss), 20);
  try {
    const clients = await Promise.all(
      Array.from({ length: CONNECTIONS }, () => RawClient.connect(server.addr.port, "/count")),
    );
    const replies = await Promise.all(clients.map(async (client) => {
      // Written in 64 KiB pieces, so the server sees many reads, each full of fragments.
      for (let at = 0; at < frames.length; at += 65_536) {
        await client.write(frames.subarray(at, at + 65_536));
      }
      const event = await client.next(20_000);
      client.close();
      return event.type === "text" ? event.data : event.type;
    }));
    assertEquals(replies, new Array(CONNECTIONS).fill(`${FRAGMENTS} intact`));
    peak = Math.max(peak, Deno.memoryUsage().rss);
    assertLess(peak - before, 64 * 1024 * 1024, `RSS grew by ${peak - before} bytes`);

    // The server is still there for everyone else.
    const after = await RawClient.connect(server.addr.port, "/count");
    await after.sendFrame(0x2, new Uint8Array([0, 1, 2]));
    assertEquals(await after.next(), { type: "text", data: "3 intact" });
    after.close();
  } finally {
    clearInterval(sampler);
    await server.shutdown();
  }
});

Deno.test("one-byte fragments past the limit are refused with 1009 at the fragment that crosses it", async () => {
  const limit = 100_000;
  const server = startServer(limit);
  const frames = tinyFragments(FRAGMENTS);
  try {
    const results = await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
      const client = await RawClient.connect(server.addr.port, "/count");
      try {
        // The server stops reading fragments after the limit; what it
        // discards while lingering lets this write finish.
        const writing = client.write(frames).catch(() => {});
        const close = await client.nextClose(20_000);
        await writing;
        return close.type === "close" ? close.code : close.type;
      } finally {
        client.close();
      }
    }));
    assertEquals(results, new Array(CONNECTIONS).fill(1009));
  } finally {
    await server.shutdown();
  }
});
