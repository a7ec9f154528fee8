/**
 * Attacks on the HTTP side of serve(), from a raw socket: each must leave
 * the server serving everyone else.
 */
import { assertEquals } from "@std/assert";
import { Hub, MemoryHistory } from "../hub/mod.ts";
import { RequestParser } from "../protocol/http1.ts";
import { serve } from "../server/mod.ts";
import { connect } from "./_hub_fake.ts";
import { sleep } from "./_wait.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Sends one GET on a fresh connection and returns the status line. */
async function statusLine(port: number): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(encoder.encode("GET /small HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
    const buffer = new Uint8Array(4096);
    const n = await conn.read(buffer);
    return n === null ? "(closed)" : decoder.decode(buffer.subarray(0, n)).split("\r\n", 1)[0];
  } finally {
    conn.close();
  }
}

Deno.test("slow read: a client that pipelines requests and never reads its responses is dropped after writeTimeout", async () => {
  const big = new Uint8Array(1024 * 1024);
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    maxConnections: 1,
    writeTimeout: 300,
    fetch: (request) => new Response(new URL(request.url).pathname === "/small" ? "ok\n" : big),
  });
  const port = server.addr.port;
  const attacker = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    // 64 MiB of answers: far more than the sockets' buffers hold. The
    // attacker never reads, so the server's write blocks.
    await attacker.write(encoder.encode("GET /big HTTP/1.1\r\nHost: a\r\n\r\n".repeat(64)));
    await sleep(200);
    // While the attacker holds the only slot, others are refused…
    assertEquals(await statusLine(port), "HTTP/1.1 503 Service Unavailable");
    // …but not for long: the stuck write times out and frees it.
    let line = "";
    for (let i = 0; i < 30 && line !== "HTTP/1.1 200 OK"; i++) {
      await sleep(100);
      line = await statusLine(port);
    }
    assertEquals(line, "HTTP/1.1 200 OK");
  } finally {
    attacker.close();
    await server.shutdown({ timeout: 100 });
  }
});

/** Sends `request` on a fresh connection and returns the first line of the answer. */
async function firstLine(port: number, request: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(encoder.encode(request));
    const buffer = new Uint8Array(4096);
    const n = await conn.read(buffer);
    return n === null ? "(closed)" : decoder.decode(buffer.subarray(0, n)).split("\r\n", 1)[0];
  } finally {
    conn.close();
  }
}

Deno.test("routes: a request target named like an Object.prototype member is no route", async () => {
  let asked = 0;
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    // Every request goes through fetch, which upgrades nobody.
    fetch: () => {
      asked++;
      return new Response("no\n", { status: 403 });
    },
    websocket: { message: (ws, data) => ws.send(data) },
  });
  try {
    for (const target of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      const line = await firstLine(
        server.addr.port,
        `GET ${target} HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      );
      // Not a route, so fetch's (or the target check's) answer, never an upgrade.
      assertEquals(line, "HTTP/1.1 400 Bad Request", target);
    }
    assertEquals(server.stats.upgraded, 0);
    assertEquals(asked, 0);
  } finally {
    await server.shutdown({ timeout: 100 });
  }
});

Deno.test("hub: messages piling up behind a slow handler are bounded per connection (1013, not a queue without end)", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  let handled = 0;
  const hub = new Hub({ maxPendingMessages: 100 });
  hub.on("slow", async () => {
    await gate;
    handled++;
  });
  try {
    const [ws] = await connect(hub, "?id=flood");
    const done: (Promise<void> | void)[] = [];
    // The socket is read on while the first message waits: 1 000 more arrive.
    for (let cseq = 1; cseq <= 1_000; cseq++) {
      done.push(hub.message(ws.ws, JSON.stringify({ type: "slow", cseq })));
    }
    assertEquals(ws.closedWith?.[0], 1013);
    release();
    await Promise.all(done);
    assertEquals(handled, 100, "only the messages within the bound were handled");
    // Nothing is acked on the closing connection: the client re-sends after resuming.
    const acks = ws.take().filter((m) => m.type === "ack");
    assertEquals(acks.length, 0, "a closing connection's acks are not sent");
  } finally {
    hub.dispose();
  }
});

Deno.test("http1: chunk extensions are bounded per body, not only per line", () => {
  // 1 byte of body per 1 KiB of extension: without a total bound a 16 MiB
  // body limit would let 16 GiB through one request.
  const parser = new RequestParser({ maxHeaderBytes: 16 * 1024 });
  parser.receive(
    encoder.encode("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
  );
  assertEquals(parser.next().type, "request");
  const chunk = encoder.encode(`1;${"x".repeat(1000)}\r\na\r\n`);
  let event = parser.next();
  let body = 0;
  for (let i = 0; i < 1_000 && event.type !== "error"; i++) {
    parser.receive(chunk);
    for (event = parser.next(); event.type === "data"; event = parser.next()) {
      body += event.data.length;
    }
  }
  assertEquals(event.type, "error");
  assertEquals(event.type === "error" && event.status, 400);
  assertEquals(body <= 17, true, `${body} body bytes let through`);
});

Deno.test("history: asking where thousands of fresh topics stand does not push out a topic with publications", () => {
  const history = new MemoryHistory({ maxTopics: 100 });
  const quiet = history.position("quiet-room");
  history.append("quiet-room", (offset) => `{"type":"chat","offset":${offset}}`);
  // A client subscribing to (and leaving) name after name: each asks its position.
  for (let n = 0; n < 1_000; n++) history.position(`junk-${n}`);
  const recovery = history.since("quiet-room", quiet);
  assertEquals([recovery.recovered, recovery.texts.length], [true, 1]);
  assertEquals(history.topics <= 200, true, `${history.topics} topics held`);
});

/** Starts a POST of `length` body bytes on a fresh connection. */
async function startPost(port: number, length: number): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    encoder.encode(`POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: ${length}\r\n\r\n`),
  );
  return conn;
}

/** Reads until the peer closes; returns what came. */
async function readToEnd(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(4096);
  let text = "";
  for (;;) {
    let n: number | null;
    try {
      n = await conn.read(buffer);
    } catch {
      n = null; // reset
    }
    if (n === null) return text;
    text += decoder.decode(buffer.subarray(0, n));
  }
}

Deno.test("slow body: a body trickled just inside handshakeTimeout is dropped by minBodyRate, a slow real upload is not", async () => {
  const outcomes: string[] = [];
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    handshakeTimeout: 200,
    minBodyRate: 1000,
    keepAliveTimeout: 100,
    fetch: async (request) => {
      try {
        const body = await request.arrayBuffer();
        outcomes.push(`read ${body.byteLength}`);
        return new Response(`got ${body.byteLength}\n`);
      } catch {
        outcomes.push("failed");
        throw new Error("body failed");
      }
    },
  });
  const port = server.addr.port;
  try {
    // One byte every 150 ms: each pause is inside the 200 ms timeout, but
    // 1 000 bytes would take 150 s. The rate allows 200 ms + 1 ms a byte.
    const attacker = await startPost(port, 1000);
    const started = Date.now();
    let closed = false;
    const ended = readToEnd(attacker).then((text) => {
      closed = true;
      return text;
    });
    for (let i = 0; i < 20 && !closed; i++) {
      try {
        await attacker.write(encoder.encode("x"));
      } catch {
        break; // reset: the server has dropped it
      }
      await sleep(150);
    }
    const text = await ended;
    const elapsed = Date.now() - started;
    attacker.close();
    assertEquals(closed, true);
    assertEquals(text.startsWith("HTTP/1.1 200"), false);
    assertEquals(elapsed < 1_500, true, `dropped after ${elapsed} ms`);
    assertEquals(outcomes, ["failed"]);

    // 64 KiB in 16 pieces 50 ms apart: 800 ms in all, longer than the
    // timeout, at 80 KiB/s, far above the minimum rate.
    const size = 64 * 1024;
    const uploader = await startPost(port, size);
    const piece = new Uint8Array(size / 16).fill(121);
    const answer = readToEnd(uploader);
    for (let i = 0; i < 16; i++) {
      await uploader.write(piece);
      await sleep(50);
    }
    // Without Connection: close, the answer comes, then keepAliveTimeout ends it.
    const reply = await answer;
    uploader.close();
    assertEquals(reply.split("\r\n", 1)[0], "HTTP/1.1 200 OK");
    assertEquals(reply.endsWith(`got ${size}\n`), true);
    assertEquals(outcomes, ["failed", `read ${size}`]);
  } finally {
    await server.shutdown({ timeout: 100 });
  }
});
