/**
 * serve() as an HTTP/1.1 server: a Hono app as `fetch` beside WebSockets on
 * one port, keep-alive, request bodies (sized and chunked), streamed
 * responses, pipelining, HEAD, and the limits on kept-alive connections.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { Hono } from "hono";
import { serve, type ServeOptions, type Server } from "../server/mod.ts";
import { sleep, waitFor } from "./_wait.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function withServer<T>(
  options: ServeOptions<T>,
  body: (server: Server<T>, base: string) => Promise<void>,
): Promise<void> {
  const server = serve<T>({ port: 0, hostname: "127.0.0.1", ...options });
  try {
    await body(server, `http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown({ timeout: 1_000 });
  }
}

/** Writes `request` on a raw socket and reads until `done(text)` or EOF; returns the text. */
async function raw(
  port: number,
  request: string,
  done: (text: string) => boolean = () => false,
): Promise<{ text: string; eof: boolean }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(encoder.encode(request));
    const buffer = new Uint8Array(16 * 1024);
    let text = "";
    for (;;) {
      if (done(text)) return { text, eof: false };
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) return { text, eof: true };
      text += decoder.decode(buffer.subarray(0, n));
    }
  } finally {
    conn.close();
  }
}

async function curl(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  const output = await new Deno.Command("/usr/bin/curl", { args, stdout: "piped", stderr: "piped" })
    .output();
  assertEquals(output.code, 0, decoder.decode(output.stderr));
  return { stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}

/** The app of the Hono tests; `c.env` is the heartwire Server (fetch's second argument). */
interface User {
  user: string;
}

function honoApp() {
  const app = new Hono<{ Bindings: Server<User> }>();
  app.get("/api/hello", (c) => c.json({ hello: "world" }));
  app.post("/api/echo", async (c) => c.text(await c.req.text()));
  app.get("/ws", (c) => {
    const user = c.req.query("user");
    if (!user) return c.text("who are you?", 401);
    if (c.env.upgrade(c.req.raw, { data: { user } })) return new Response(null);
    return c.text("this is a WebSocket endpoint", 400);
  });
  return app;
}

Deno.test("a Hono app and a WebSocket on one port; typed data reaches open", async () => {
  const app = honoApp();
  await withServer<User>({
    fetch: (request, server) => app.fetch(request, server),
    websocket: {
      open(ws) {
        ws.send(`hello ${ws.data.user}`);
      },
      message(ws, data) {
        ws.send(`${ws.data.user}: ${data}`);
      },
    },
  }, async (server, base) => {
    const ws = new WebSocket(`${base.replace("http", "ws")}/ws?user=ada`);
    const messages: string[] = [];
    ws.onmessage = (event) => messages.push(event.data);
    await new Promise((resolve) => ws.onopen = resolve);
    // While the WebSocket is open, Hono answers JSON on the same port.
    const response = await fetch(`${base}/api/hello`);
    assertEquals(await response.json(), { hello: "world" });
    ws.send("hi");
    await waitFor(() => messages.length === 2);
    assertEquals(messages, ["hello ada", "ada: hi"]);
    assertEquals(server.connections.size, 1);
    // Not an upgrade request: upgrade() says false and Hono answers.
    const plain = await fetch(`${base}/ws?user=ada`);
    assertEquals([plain.status, await plain.text()], [400, "this is a WebSocket endpoint"]);
    const anonymous = await fetch(`${base}/ws`);
    assertEquals(anonymous.status, 401);
    await anonymous.body?.cancel();
    const closed = new Promise((resolve) => ws.onclose = resolve);
    ws.close();
    await closed;
  });
});

Deno.test("curl: two requests on one kept-alive connection, and a POST body echoed", async () => {
  const app = honoApp();
  await withServer<User>(
    { fetch: (request, server) => app.fetch(request, server) },
    async (server, base) => {
      const { stdout, stderr } = await curl(
        "-sv",
        `${base}/api/hello`,
        "--next",
        "-s",
        "--data-binary",
        "payload from curl",
        `${base}/api/echo`,
      );
      assertEquals(stdout, `{"hello":"world"}payload from curl`);
      assertStringIncludes(stderr, "Re-using existing connection");
      assertEquals(server.stats.accepted, 1);
      assertEquals(server.stats.requests, 2);
    },
  );
});

Deno.test("request bodies: chunked from fetch(), and larger than one read", async () => {
  await withServer({
    fetch: async (request) => new Response(`${request.method} ${(await request.text()).length}`),
  }, async (_server, base) => {
    const parts = ["first,", "second,", "x".repeat(100_000)];
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const part of parts) controller.enqueue(encoder.encode(part));
        controller.close();
      },
    });
    // A stream body of unknown length goes out chunked.
    const response = await fetch(`${base}/upload`, { method: "POST", body: stream });
    assertEquals(await response.text(), `POST ${parts.join("").length}`);
  });
});

Deno.test("a chunked request body on a raw socket, then the next request on the same connection", async () => {
  await withServer({
    fetch: async (request) => new Response(`[${await request.text()}]`),
  }, async (server) => {
    const { text } = await raw(
      server.addr.port,
      "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
        "4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n" +
        "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    );
    assertStringIncludes(text, "[Wikipedia in \r\n\r\nchunks.]");
    assertStringIncludes(text, "Content-Length: 4\r\nConnection: close\r\n\r\n[ok]");
  });
});

Deno.test("a streamed response is written chunked as it comes; HTTP/1.0 gets it until close", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  await withServer({
    fetch: () =>
      new Response(
        new ReadableStream({
          async start(controller) {
            controller.enqueue(encoder.encode("tick "));
            await gate;
            controller.enqueue(encoder.encode("tock"));
            controller.close();
          },
        }),
        { headers: { "content-type": "text/plain" } },
      ),
  }, async (server) => {
    const port = server.addr.port;
    // The first chunk arrives while the stream is still open.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(encoder.encode("GET /s HTTP/1.1\r\nHost: x\r\n\r\n"));
    const buffer = new Uint8Array(4096);
    let text = "";
    while (!text.includes("tick ")) {
      const n = await conn.read(buffer);
      assert(n !== null);
      text += decoder.decode(buffer.subarray(0, n));
    }
    assertStringIncludes(text, "Transfer-Encoding: chunked\r\n");
    assertStringIncludes(text, "\r\n\r\n5\r\ntick \r\n");
    release();
    while (!text.endsWith("0\r\n\r\n")) {
      const n = await conn.read(buffer);
      assert(n !== null);
      text += decoder.decode(buffer.subarray(0, n));
    }
    assertStringIncludes(text, "4\r\ntock\r\n0\r\n\r\n");
    conn.close();
    // Through a real client, the body is whole.
    assertEquals(await (await fetch(`http://127.0.0.1:${port}/s`)).text(), "tick tock");
    // HTTP/1.0 cannot read chunks: raw bytes, then the server closes.
    const old = await raw(port, "GET /s HTTP/1.0\r\n\r\n");
    assert(old.eof);
    assert(!old.text.includes("chunked"), old.text);
    assertStringIncludes(old.text, "Connection: close\r\n\r\ntick tock");
  });
});

Deno.test("pipelined requests on a raw socket are answered in order; HEAD has no body", async () => {
  await withServer({
    fetch: (request) => new Response(`you asked for ${new URL(request.url).pathname}`),
  }, async (server) => {
    const { text, eof } = await raw(
      server.addr.port,
      "GET /one HTTP/1.1\r\nHost: x\r\n\r\n" +
        "HEAD /two HTTP/1.1\r\nHost: x\r\n\r\n" +
        "GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert(eof);
    const statuses = text.match(/HTTP\/1\.1 \d+/g);
    assertEquals(statuses, ["HTTP/1.1 200", "HTTP/1.1 200", "HTTP/1.1 200"]);
    assertStringIncludes(text, "\r\n\r\nyou asked for /oneHTTP/1.1 200 OK");
    // RFC 9110 §6.6.1: every response is dated.
    assertEquals(text.match(/\r\nDate: \w{3}, \d\d \w{3} \d{4} [\d:]{8} GMT\r\n/g)?.length, 3);
    // HEAD: no body, so the third response follows the second's head directly.
    assert(!text.includes("/two"), text);
    assert(text.endsWith("\r\n\r\nyou asked for /three"), text);
    assertEquals(server.stats.accepted, 1);
    assertEquals(server.stats.requests, 3);
  });
});

Deno.test("a fetch that throws is a 500 and reported; the connection and server keep serving", async () => {
  const reported: unknown[] = [];
  await withServer({
    fetch: (request) => {
      if (request.url.endsWith("/boom")) throw new Error("handler broke");
      return new Response("fine");
    },
    onError: (error) => reported.push(error),
  }, async (server) => {
    const { text } = await raw(
      server.addr.port,
      "GET /boom HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert(text.startsWith("HTTP/1.1 500 "), text);
    assert(text.endsWith("\r\n\r\nfine"), text);
    assertEquals((reported[0] as Error).message, "handler broke");
    assertEquals(server.stats.responses[500], 1);
  });
});

Deno.test("request limits: 413 over maxBodyBytes, 400 without Host, 404 with no fetch", async () => {
  await withServer({
    maxBodyBytes: 10,
    fetch: async (request) => new Response(await request.text()),
  }, async (server) => {
    const port = server.addr.port;
    const big = await raw(port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n");
    assert(big.text.startsWith("HTTP/1.1 413 "), big.text);
    const chunked = await raw(
      port,
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n",
    );
    assert(chunked.text.startsWith("HTTP/1.1 413 "), chunked.text);
    const noHost = await raw(port, "GET / HTTP/1.1\r\n\r\n");
    assert(noHost.text.startsWith("HTTP/1.1 400 "), noHost.text);
  });
  await withServer({}, async (server) => {
    const none = await raw(
      server.addr.port,
      "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert(none.text.startsWith("HTTP/1.1 404 "), none.text);
  });
});

Deno.test("kept-alive connections: idle timeout, and the head timeout for each later request", async () => {
  await withServer({
    keepAliveTimeout: 150,
    handshakeTimeout: 300,
    fetch: () => new Response("ok"),
  }, async (server) => {
    const port = server.addr.port;
    // Idle after one response: closed after keepAliveTimeout.
    const idle = await raw(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert(idle.eof && idle.text.endsWith("ok"), idle.text);
    assert(server.stats.handshakeTimeouts === 0);
    // A second head that starts but never ends: dropped by the head timeout.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(encoder.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    const buffer = new Uint8Array(4096);
    await conn.read(buffer);
    await conn.write(encoder.encode("GET / HTTP/1.1\r\nX-Slow: "));
    const started = Date.now();
    for (;;) {
      // Keep trickling: bytes must not extend the head's deadline.
      await sleep(50);
      if (await conn.write(encoder.encode("a")).catch(() => 0) === 0) break;
      if (server.stats.handshakeTimeouts > 0 || Date.now() - started > 2_000) break;
    }
    await waitFor(() => server.stats.handshakeTimeouts === 1);
    assert(Date.now() - started < 2_000);
    conn.close();
  });
});

Deno.test("upgrade(): extra 101 headers; false for foreign or repeated requests; TypeError without websocket", async () => {
  const answers: boolean[] = [];
  let late: (() => boolean) | undefined;
  await withServer({
    fetch(request, server) {
      late = () => server.upgrade(request);
      answers.push(server.upgrade(new Request(request.url, { headers: request.headers })));
      answers.push(server.upgrade(request, { headers: { "X-Served-By": "heartwire" } }));
      answers.push(server.upgrade(request));
      return new Response("ignored");
    },
    websocket: { open: (ws) => ws.close(1000, "bye") },
  }, async (server) => {
    const { text } = await raw(
      server.addr.port,
      "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      (text) => text.includes("\r\n\r\n"),
    );
    assert(text.startsWith("HTTP/1.1 101 "), text);
    assertStringIncludes(text.toLowerCase(), "x-served-by: heartwire\r\n");
    assert(!text.includes("ignored"));
    assertEquals(answers, [false, true, false]);
    // After fetch returned, its request can no longer upgrade anything.
    assertEquals(late?.(), false);
  });
  const errors: unknown[] = [];
  await withServer({
    fetch: (request, server) => new Response(String(server.upgrade(request))),
    onError: (error) => errors.push(error),
  }, async (server) => {
    const { text } = await raw(
      server.addr.port,
      "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert(text.startsWith("HTTP/1.1 500 "), text);
    assert(errors[0] instanceof TypeError);
  });
});

Deno.test("request URLs: the Host header's, never one a target or a Host could smuggle in", async () => {
  await withServer({ fetch: (request) => new Response(request.url) }, async (server) => {
    const port = server.addr.port;
    const get = (target: string, host = "example.com:8080") =>
      raw(port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    assert((await get("/a?b=c")).text.endsWith("\r\n\r\nhttp://example.com:8080/a?b=c"));
    assert(
      (await get("//evil.example/x")).text.endsWith("http://example.com:8080//evil.example/x"),
    );
    assert((await get("http://other.example/y")).text.endsWith("http://other.example/y"));
    assert((await get("/", "a@b")).text.startsWith("HTTP/1.1 400 "));
    assert((await get("/", "a/b")).text.startsWith("HTTP/1.1 400 "));
    assert((await get("*")).text.startsWith("HTTP/1.1 400 "));
    // HTTP/1.0 may omit Host: the listening address stands in.
    const old = await raw(port, "GET /old HTTP/1.0\r\n\r\n");
    assert(old.text.endsWith(`http://127.0.0.1:${port}/old`), old.text);
  });
});

Deno.test("Expect: 100-continue: sent when the handler reads the body; unread, the connection closes", async () => {
  await withServer({
    fetch: async (request) =>
      new URL(request.url).pathname === "/read"
        ? new Response(`got ${await request.text()}`)
        : new Response("not reading that", { status: 413 }),
  }, async (server) => {
    const port = server.addr.port;
    const head = (path: string) =>
      `POST ${path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n`;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(encoder.encode(head("/read")));
    const buffer = new Uint8Array(4096);
    const n = await conn.read(buffer);
    assertEquals(decoder.decode(buffer.subarray(0, n!)), "HTTP/1.1 100 Continue\r\n\r\n");
    await conn.write(encoder.encode("hello"));
    let text = "";
    while (!text.endsWith("got hello")) {
      const m = await conn.read(buffer);
      assert(m !== null, text);
      text += decoder.decode(buffer.subarray(0, m));
    }
    assert(text.startsWith("HTTP/1.1 200 "), text);
    conn.close();
    const refused = await raw(port, head("/refuse"));
    assert(refused.eof);
    assert(refused.text.startsWith("HTTP/1.1 413 "), refused.text);
    assertStringIncludes(refused.text, "Connection: close\r\n");
  });
});

Deno.test("an unread request body that stalls is dropped by the head timeout", async () => {
  await withServer({
    handshakeTimeout: 200,
    fetch: () => new Response("answered without reading"),
  }, async (server) => {
    const started = Date.now();
    const { text, eof } = await raw(
      server.addr.port,
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly this much",
    );
    assert(eof);
    assert(text.endsWith("answered without reading"), text);
    assert(Date.now() - started < 2_000);
    assertEquals(server.stats.handshakeTimeouts, 1);
  });
});

Deno.test("a request body the handler waits for, that stops coming, is dropped by the head timeout", async () => {
  const errors: unknown[] = [];
  await withServer({
    handshakeTimeout: 200,
    fetch: async (request) => new Response(await request.text()),
    onError: (error) => errors.push(error),
  }, async (server) => {
    const started = Date.now();
    const { eof } = await raw(
      server.addr.port,
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly this much",
    );
    assert(eof);
    assert(Date.now() - started < 2_000);
    assertEquals(server.stats.handshakeTimeouts, 1);
    assertEquals(errors, []);
  });
});
