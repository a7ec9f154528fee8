import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import WebSocketWs from "ws";
import { Opcode } from "../protocol/opcodes.ts";
import { encodeFrame } from "../protocol/frame_encoder.ts";
import { echoHandler, serve, type ServeOptions, type Server } from "../server/mod.ts";
import { RawClient, rawHttp } from "./_raw_client.ts";
import { waitFor } from "./_wait.ts";

const encoder = new TextEncoder();

async function withServer(
  options: ServeOptions,
  body: (server: Server, port: number) => Promise<void>,
): Promise<void> {
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    routes: { "/echo": echoHandler },
    ...options,
  });
  try {
    await body(server, server.addr.port);
  } finally {
    await server.shutdown({ timeout: 1_000 });
  }
}

/** Opens Deno's own WebSocket client and waits for open. */
function denoSocket(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => resolve(ws);
    ws.onerror = (e) => reject(new Error(`WebSocket error: ${(e as ErrorEvent).message}`));
  });
}

function nextMessage(ws: WebSocket): Promise<string | ArrayBuffer> {
  return new Promise((resolve) =>
    ws.addEventListener("message", (e) => resolve(e.data), { once: true })
  );
}

function closed(ws: WebSocket): Promise<CloseEvent> {
  return new Promise((resolve) => ws.addEventListener("close", (e) => resolve(e), { once: true }));
}

Deno.test("Deno's WebSocket echoes text, binary and a 1 MiB message", async () => {
  await withServer({}, async (_server, port) => {
    const ws = await denoSocket(`ws://127.0.0.1:${port}/echo`);
    ws.send("héllo ✓");
    assertEquals(await nextMessage(ws), "héllo ✓");
    ws.send(new Uint8Array([0, 1, 2, 255]));
    assertEquals(
      new Uint8Array(await nextMessage(ws) as ArrayBuffer),
      new Uint8Array([0, 1, 2, 255]),
    );
    const big = new Uint8Array(1024 * 1024).map((_, i) => i * 7);
    ws.send(big);
    assertEquals(new Uint8Array(await nextMessage(ws) as ArrayBuffer), big);
    ws.send("");
    assertEquals(await nextMessage(ws), "");
    const done = closed(ws);
    ws.close(1000, "bye");
    const event = await done;
    assertEquals(event.code, 1000);
    assertEquals(event.reason, "bye");
    assert(event.wasClean);
  });
});

Deno.test("npm ws echoes fragmented messages and answers its pings", async () => {
  await withServer({}, async (_server, port) => {
    const ws = new WebSocketWs(`ws://127.0.0.1:${port}/echo`);
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    const messages: string[] = [];
    ws.on("message", (data: Uint8Array, isBinary: boolean) => {
      messages.push(isBinary ? "bin" : new TextDecoder().decode(data));
    });
    const pong = new Promise<Uint8Array>((resolve) => ws.once("pong", resolve));
    ws.ping(encoder.encode("are you there"));
    assertEquals(new TextDecoder().decode(await pong), "are you there");
    // Three fragments, with a ping interleaved (RFC 6455 §5.4).
    ws.send("frag-", { fin: false });
    ws.ping();
    ws.send("men-", { fin: false });
    ws.send("ted", { fin: true });
    const done = new Promise<number>((resolve) => ws.once("close", resolve));
    await waitFor(() => messages.length === 1);
    assertEquals(messages, ["frag-men-ted"]);
    ws.close(4000, "done");
    assertEquals(await done, 4000);
  });
});

Deno.test("frames pipelined behind the handshake are not lost", async () => {
  await withServer({}, async (_server, port) => {
    const first = encodeFrame(Opcode.Text, encoder.encode("early"), { mask: true });
    const client = await RawClient.connect(port, "/echo", { pipelined: first });
    assertEquals(await client.next(), { type: "text", data: "early" });
    client.close();
  });
});

Deno.test("each protocol violation closes with its RFC 6455 code and others keep working", async () => {
  const cases: Array<[string, (c: RawClient) => Promise<void>, number]> = [
    ["unmasked frame", (c) => c.sendFrame(Opcode.Text, "x", { mask: false }), 1002],
    ["reserved opcode", (c) => c.write(encodeFrame(0x3, new Uint8Array(0), { mask: true })), 1002],
    ["RSV1 without extension", (c) => {
      const frame = encodeFrame(Opcode.Text, encoder.encode("x"), { mask: true });
      frame[0] |= 0x40;
      return c.write(frame);
    }, 1002],
    ["fragmented ping", (c) => c.sendFrame(Opcode.Ping, "p", { fin: false }), 1002],
    ["continuation without start", (c) => c.sendFrame(Opcode.Continuation, "x"), 1002],
    ["invalid UTF-8 text", (c) => c.sendFrame(Opcode.Text, new Uint8Array([0xc3, 0x28])), 1007],
    [
      "close code 1005 on the wire",
      (c) => c.sendFrame(Opcode.Close, new Uint8Array([0x03, 0xed])),
      1002,
    ],
    ["message over maxPayload", (c) => c.sendFrame(Opcode.Binary, new Uint8Array(2048)), 1009],
  ];
  await withServer({ maxPayload: 1024 }, async (server, port) => {
    const bystander = await denoSocket(`ws://127.0.0.1:${port}/echo`);
    for (const [name, misbehave, code] of cases) {
      const client = await RawClient.connect(port);
      await misbehave(client);
      const event = await client.nextClose();
      assertEquals(event.type, "close", name);
      assertEquals((event as { code: number }).code, code, name);
      await client.untilEof();
      client.close();
      bystander.send(name);
      assertEquals(await nextMessage(bystander), name);
    }
    assertEquals(server.stats.closed.protocol, cases.length);
    bystander.close();
    await closed(bystander);
  });
});

Deno.test("the server answers a peer's close with the same code and reason, then closes TCP", async () => {
  await withServer({}, async (_server, port) => {
    const client = await RawClient.connect(port);
    await client.sendFrame(Opcode.Close, new Uint8Array([0x0f, 0xa1, 0x68, 0x69])); // 4001 "hi"
    assertEquals(await client.next(), { type: "close", code: 4001, reason: "hi" });
    assertEquals(await client.next(), { type: "eof" });
    client.close();
  });
});

Deno.test("an empty close frame is answered with an empty one", async () => {
  await withServer({}, async (_server, port) => {
    const client = await RawClient.connect(port);
    await client.sendFrame(Opcode.Close);
    assertEquals(await client.next(), { type: "close", code: 1005, reason: "" });
    client.close();
  });
});

Deno.test("plain HTTP: fetch, 404 without it, 405, 400, 426 and 431", async () => {
  await withServer({
    fetch: (request) =>
      new URL(request.url).pathname === "/healthz"
        ? new Response("ok\n")
        : new Response("none\n", { status: 404 }),
  }, async (_server, port) => {
    const health = await rawHttp(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assertEquals(health.status, 200);
    assertEquals(health.body, "ok\n");
    assertEquals((await rawHttp(port, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")).status, 404);
    await withServer({}, async (_server, bare) => {
      // serve() mounts nothing: without fetch, every page is 404.
      const none = await rawHttp(bare, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
      assertEquals(none.status, 404);
    });
    const upgrade = (method: string, extra: string) =>
      `${method} /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`;
    const post = await rawHttp(port, upgrade("POST", "Sec-WebSocket-Version: 13\r\n"));
    assertEquals(post.status, 405);
    assertStringIncludes(post.head, "Allow: GET");
    const v8 = await rawHttp(port, upgrade("GET", "Sec-WebSocket-Version: 8\r\n"));
    assertEquals(v8.status, 426);
    assertStringIncludes(v8.head.toLowerCase(), "sec-websocket-version: 13");
    const badKey = await rawHttp(
      port,
      "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assertEquals(badKey.status, 400);
    assertEquals((await rawHttp(port, "NONSENSE\r\n\r\n")).status, 400);
    const huge = `GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`;
    assertEquals((await rawHttp(port, huge)).status, 431);
  });
});

Deno.test("origin allow-list, authenticate hook, and per-IP cap", async () => {
  await withServer({
    allowedOrigins: ["https://good.example"],
    authenticate: (request) =>
      request.target.includes("token=ok") ? true : { status: 403, reason: "bad token" },
    maxConnectionsPerIp: 2,
  }, async (_server, port) => {
    await assertRejects(
      () =>
        RawClient.connect(port, "/echo?token=ok", { headers: { Origin: "https://evil.example" } }),
      Error,
      "403",
    );
    await assertRejects(
      () =>
        RawClient.connect(port, "/echo?token=no", { headers: { Origin: "https://good.example" } }),
      Error,
      "403",
    );
    const ok = { headers: { Origin: "https://good.example" } };
    const a = await RawClient.connect(port, "/echo?token=ok", ok);
    const b = await RawClient.connect(port, "/echo?token=ok", ok);
    await assertRejects(() => RawClient.connect(port, "/echo?token=ok", ok), Error, "429");
    a.close();
    await waitFor(async () => {
      try {
        (await RawClient.connect(port, "/echo?token=ok", ok)).close();
        return true;
      } catch {
        return false;
      }
    });
    b.close();
  });
});

Deno.test("graceful shutdown sends 1001 to every client", async () => {
  const server = serve({ port: 0, hostname: "127.0.0.1", routes: { "/echo": echoHandler } });
  const port = server.addr.port;
  const sockets = await Promise.all([1, 2, 3].map(() => denoSocket(`ws://127.0.0.1:${port}/echo`)));
  const events = sockets.map(closed);
  await server.shutdown();
  for (const event of await Promise.all(events)) {
    assertEquals(event.code, 1001);
    assertEquals(event.reason, "server shutting down");
  }
  assertEquals(server.connections.size, 0);
  await assertRejects(() => Deno.connect({ hostname: "127.0.0.1", port }));
});

Deno.test("a route handler's open/message/close callbacks see the connection", async () => {
  const seen: string[] = [];
  await withServer({
    routes: {
      "/echo": echoHandler,
      "/hooks": {
        open: (ws) => seen.push(`open ${ws.path}`),
        message: (ws, data) => {
          seen.push(`message ${data}`);
          ws.close(4321, "enough");
        },
        close: (_ws, info) => seen.push(`close ${info.code} ${info.cause} ${info.wasClean}`),
      },
    },
  }, async (server, port) => {
    const ws = await denoSocket(`ws://127.0.0.1:${port}/hooks`);
    assertEquals(server.connections.size, 1);
    ws.send("hi");
    const event = await closed(ws);
    assertEquals(event.code, 4321);
    await waitFor(() => seen.length === 3);
    assertEquals(seen, ["open /hooks", "message hi", "close 4321 local true"]);
  });
});

Deno.test("a handler that throws closes only its own connection with 1011", async () => {
  const reported: unknown[] = [];
  await withServer({
    routes: {
      "/echo": echoHandler,
      "/boom": {
        message() {
          throw new Error("boom");
        },
      },
    },
    onError: (error) => reported.push(error),
  }, async (_server, port) => {
    const good = await denoSocket(`ws://127.0.0.1:${port}/echo`);
    const bad = await denoSocket(`ws://127.0.0.1:${port}/boom`);
    bad.send("x");
    assertEquals((await closed(bad)).code, 1011);
    assertEquals(reported.map((e) => (e as Error).message), ["boom"]); // not swallowed
    good.send("still here");
    assertEquals(await nextMessage(good), "still here");
    good.close();
    await closed(good);
  });
});

Deno.test("a client that stops reading is dropped as a slow consumer", async () => {
  await withServer({ maxBufferedBytes: 256 * 1024 }, async (server, port) => {
    const client = await RawClient.connect(port);
    // Ask for far more echo than the socket buffers hold, and never read it.
    const chunk = encodeFrame(Opcode.Binary, new Uint8Array(60_000), { mask: true });
    try {
      for (let i = 0; i < 400; i++) await client.write(chunk);
    } catch {
      // The server dropped us mid-stream: that is the point.
    }
    await waitFor(() => server.stats.closed.slow === 1, 10_000);
    assertEquals(server.connections.size, 0);
    client.close();
  });
});

Deno.test("an async handler that rejects closes its connection with 1011 instead of crashing", async () => {
  const closes: string[] = [];
  await withServer({
    routes: {
      "/echo": echoHandler,
      "/async-boom": {
        // deno-lint-ignore require-await
        async message() {
          throw new Error("async boom");
        },
        close: (_ws, info) => closes.push(`${info.code} ${info.cause}`),
      },
    },
  }, async (server, port) => {
    const client = await RawClient.connect(port, "/async-boom");
    await client.sendFrame(Opcode.Text, "x");
    const event = await client.nextClose();
    assertEquals(event.type === "close" && event.code, 1011);
    await client.untilEof();
    client.close();
    await waitFor(() => closes.length === 1);
    assertEquals(closes, ["1011 error"]);
    assertEquals(server.stats.closed.error, 1);
  });
});

Deno.test("serve() whose onListen throws releases its port and rethrows", () => {
  let port = 0;
  assertThrows(
    () =>
      serve({
        port: 0,
        hostname: "127.0.0.1",
        onListen(addr) {
          port = addr.port;
          throw new Error("logger broke");
        },
      }),
    Error,
    "logger broke",
  );
  // The port is free again (and no listener leaks: the sanitizer checks that too).
  const again = Deno.listen({ hostname: "127.0.0.1", port });
  again.close();
});

Deno.test("close() with a code that may not be sent throws and leaves the connection open", async () => {
  const thrown: string[] = [];
  await withServer({
    routes: {
      "/bad-close": {
        message(ws, data) {
          for (const [code, reason] of [[1005, ""], [1000, "é".repeat(62)]] as const) {
            try {
              ws.close(code, reason);
            } catch (error) {
              thrown.push((error as Error).name);
            }
          }
          ws.send(`still open: ${data}`);
        },
      },
    },
  }, async (server, port) => {
    const client = await RawClient.connect(port, "/bad-close");
    await client.sendFrame(Opcode.Text, "a");
    assertEquals(await client.next(), { type: "text", data: "still open: a" });
    assertEquals(thrown, ["RangeError", "RangeError"]);
    const [ws] = server.connections;
    assertEquals(ws.readyState, 1);
    // A valid close still runs the whole closing handshake.
    ws.close(4000, "now really");
    assertEquals(await client.next(), { type: "close", code: 4000, reason: "now really" });
    await client.sendFrame(Opcode.Close, new Uint8Array([0x0f, 0xa0]));
    await client.untilEof();
    client.close();
    await waitFor(() => server.connections.size === 0);
    assertEquals(server.stats.closed.local, 1);
  });
});

Deno.test("shutdown() with a code or reason that may not be sent rejects and leaves the server running", async () => {
  await withServer({}, async (server, port) => {
    const client = await RawClient.connect(port);
    await assertRejects(() => server.shutdown({ code: 1006 }), RangeError);
    await assertRejects(() => server.shutdown({ reason: "x".repeat(124) }), RangeError);
    await client.sendFrame(Opcode.Text, "still served");
    assertEquals(await client.next(), { type: "text", data: "still served" });
    // The real shutdown (withServer's) still closes it with 1001.
    const closing = server.shutdown();
    assertEquals(await client.nextClose(), {
      type: "close",
      code: 1001,
      reason: "server shutting down",
    });
    client.close();
    await closing;
  });
});

Deno.test("after a handler throws, no further message reaches it (§7.1.7)", async () => {
  const seen: string[] = [];
  await withServer({
    routes: {
      "/boom-first": {
        message(_ws, data) {
          seen.push(String(data));
          if (data === "boom") throw new Error("boom");
        },
      },
    },
  }, async (_server, port) => {
    const client = await RawClient.connect(port, "/boom-first");
    // Both messages in one write, so the server reads them in one go.
    const frames = ["boom", "after"].map((text) =>
      encodeFrame(Opcode.Text, encoder.encode(text), { mask: true })
    );
    await client.write(new Uint8Array([...frames[0], ...frames[1]]));
    const event = await client.nextClose();
    assertEquals(event.type === "close" && event.code, 1011);
    await client.untilEof();
    client.close();
    assertEquals(seen, ["boom"]);
  });
});

Deno.test("fetch or authenticate that throws is answered 500 and reported; a throwing onError is contained", async () => {
  const reported: string[] = [];
  await withServer({
    fetch: () => {
      throw new Error("route broke");
    },
    authenticate: (request) => {
      if (request.target.includes("explode")) throw new Error("auth broke");
      return true;
    },
    onError: (error) => {
      reported.push((error as Error).message);
      throw new Error("and the reporter broke too");
    },
  }, async (_server, port) => {
    const page = await rawHttp(port, "GET /broken HTTP/1.1\r\nHost: x\r\n\r\n");
    assertEquals(page.status, 500);
    const upgrade = await rawHttp(
      port,
      "GET /echo?explode HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assertEquals(upgrade.status, 500);
    assertEquals(reported, ["route broke", "auth broke"]);
    // Still serving.
    const ws = await denoSocket(`ws://127.0.0.1:${port}/echo`);
    ws.send("alive");
    assertEquals(await nextMessage(ws), "alive");
    ws.close();
    await closed(ws);
  });
});

Deno.test("a request head trickled one byte per write still upgrades", async () => {
  await withServer({}, async (_server, port) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    const request =
      "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    for (const byte of encoder.encode(request)) await conn.write(new Uint8Array([byte]));
    const buffer = new Uint8Array(1024);
    let text = "";
    while (!text.includes("\r\n\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    assert(text.startsWith("HTTP/1.1 101 "), text);
    assertStringIncludes(text, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    conn.close();
  });
});

Deno.test("ws.request: the upgrade request, kept compact and the same object while held", async () => {
  let opened: import("../server/mod.ts").WebSocketConnection | undefined;
  let seenInOpen: unknown;
  await withServer({
    routes: {
      "/echo": {
        open(ws) {
          opened = ws;
          seenInOpen = ws.request;
        },
      },
    },
  }, async (_server, port) => {
    const client = await RawClient.connect(port, "/echo?room=a%20b", {
      headers: { "X-Twice": "one", "x-twice": "two", Cookie: "k=v; other=1" },
    });
    await waitFor(() => opened !== undefined);
    const request = opened!.request;
    assert(request === seenInOpen, "the object open saw, while it is held");
    assert(opened!.request === request);
    assertEquals(request.method, "GET");
    assertEquals(request.target, "/echo?room=a%20b");
    assertEquals(request.version, "1.1");
    assertEquals(request.headers.get("x-twice"), "one, two");
    assertEquals(request.headers.get("cookie"), "k=v; other=1");
    assertEquals(request.headers.get("upgrade"), "websocket");
    client.close();
  });
});

Deno.test("compactHead round-trips a request head", async () => {
  const { compactHead, parseCompactHead } = await import("../server/connection.ts");
  const headers = new Headers([["Host", "a:8080"], ["X-V", "a:b: c"], ["Set-Cookie", "1"]]);
  headers.append("set-cookie", "2");
  const head = { method: "GET", target: "/p?q=1:2", version: "1.1", headers };
  const compact = compactHead(head);
  const back = parseCompactHead(compact);
  assertEquals([back.method, back.target, back.version], ["GET", "/p?q=1:2", "1.1"]);
  assertEquals([...back.headers], [...headers]);
  assertEquals(back.headers.getSetCookie(), ["1", "2"]);
  assert(compact.length < 80, `compact: ${compact.length} characters`);
});
