/**
 * `serve({ metrics })` and `new Hub({ metrics })` over loopback: a scripted
 * session moves each counter as it should — a message and its bytes, a
 * normal close, a protocol error (1002), a slow consumer, refused handshakes
 * by status (and a plain 404 not among them), pings and pongs with their
 * RTTs, a ping timeout, queued bytes read at scrape time, app heartbeats and
 * resumes. The exposition is read back with a real Prometheus parser.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { Opcode } from "../protocol/opcodes.ts";
import { encodeFrame } from "../protocol/frame_encoder.ts";
import { HeartwireMetrics } from "../server/metrics.ts";
import { echoHandler, serve, type ServeOptions, type Server } from "../server/server.ts";
import { Hub } from "../hub/hub.ts";
import { MemoryPresenceStore, Presence } from "../hub/presence/mod.ts";
import { sampleReader } from "./_prometheus.ts";
import { RawClient, rawHttp, upgradeRequest } from "./_raw_client.ts";
import { waitFor } from "./_wait.ts";

async function withServer(
  options: ServeOptions,
  body: (server: Server, port: number, metrics: HeartwireMetrics) => Promise<void>,
): Promise<void> {
  const metrics = new HeartwireMetrics({ processMetrics: false });
  const server = serve({ port: 0, hostname: "127.0.0.1", ...options, metrics });
  try {
    await body(server, server.addr.port, metrics);
  } finally {
    await server.shutdown({ timeout: 1_000 });
  }
}

/** `/metrics` text read as name → label set → value. */
function scrape(
  metrics: HeartwireMetrics,
): (name: string, labels?: Record<string, string>) => number {
  return sampleReader(metrics.registry.expose());
}

Deno.test("serve({ metrics }): a message, its bytes, a normal close and a protocol error", async () => {
  await withServer({ routes: { "/echo": echoHandler } }, async (_server, port, metrics) => {
    const client = await RawClient.connect(port);
    assertEquals(metrics.connectionsActive.value, 1);
    await client.sendFrame(Opcode.Text, "hello");
    const echo = await client.next();
    assertEquals(echo.type, "text");
    // A masked 5-byte text frame is 2 + 4 + 5 bytes; its unmasked echo 2 + 5.
    await waitFor(() => metrics.bytesOut.value === 7);
    assertEquals(metrics.bytesIn.value, 11);
    assertEquals([metrics.messagesIn.value, metrics.messagesOut.value], [1, 1]);

    await client.sendFrame(Opcode.Close, new Uint8Array([0x03, 0xe8])); // 1000
    await client.untilEof();
    await waitFor(() => metrics.connectionsActive.value === 0);
    assertEquals(metrics.closedByReason.get("normal").value, 1);
    assertEquals(metrics.closedByCode.get(1000).value, 1);

    // RFC 6455 §5.1: a client frame must be masked; the server fails with 1002.
    const rude = await RawClient.connect(port);
    await rude.sendFrame(Opcode.Text, "unmasked", { mask: false });
    const close = await rude.nextClose();
    assertEquals(close.type, "close");
    await rude.untilEof().catch(() => {});
    rude.close();
    await waitFor(() => metrics.closedByReason.get("protocol_error").value === 1);
    assertEquals(metrics.closedByCode.get(1002).value, 1);

    const read = scrape(metrics);
    assertEquals(read("heartwire_connections_opened_total"), 2);
    assertEquals(read("heartwire_connections_active"), 0);
    assertEquals(read("heartwire_connections_closed_total", { reason: "protocol_error" }), 1);
    assertEquals(read("heartwire_connections_closed_by_code_total", { code: "1002" }), 1);
    assertEquals(read("heartwire_messages_received_total"), 1);
    assertEquals(read("heartwire_messages_sent_total"), 1);
    // The 1002 close frame the server sent counts too: 7 + 2 + 2 + reason.
    assert(read("heartwire_bytes_sent_total") > 7 + 4);
    assertEquals(read("heartwire_pings_sent_total"), 0);
  });
});

Deno.test("serve({ metrics }): a client that stops reading is counted as a slow consumer", async () => {
  await withServer(
    { routes: { "/echo": echoHandler }, maxBufferedBytes: 256 * 1024 },
    async (server, port, metrics) => {
      const client = await RawClient.connect(port);
      const chunk = encodeFrame(Opcode.Binary, new Uint8Array(60_000), { mask: true });
      try {
        for (let i = 0; i < 400 && server.connections.size > 0; i++) await client.write(chunk);
      } catch {
        // Dropped mid-stream: the point.
      }
      await waitFor(() => metrics.closedByReason.get("slow_consumer").value === 1, 10_000);
      assertEquals(metrics.closedByCode.get(1008).value, 1);
      assertEquals(metrics.connectionsActive.value, 0);
      assert(metrics.messagesIn.value > 0 && metrics.bytesIn.value > 60_000);
      client.close();
    },
  );
});

Deno.test("serve({ metrics }): handshakes refused by status; a plain 404 is not one", async () => {
  await withServer({
    routes: { "/echo": echoHandler, "/busy": echoHandler },
    refuseUpgrade: (_request, path) =>
      path === "/busy"
        ? { status: 503, reason: "overloaded", headers: { "Retry-After": "5" } }
        : undefined,
    authenticate: (request) => request.headers.get("x-deny") === null,
  }, async (_server, port, metrics) => {
    const busy = await rawHttp(port, upgradeRequest(port, "/busy"));
    assertEquals(busy.status, 503);
    assertMatch(busy.head, /\r\nretry-after: 5\r\n/i);
    const denied = await rawHttp(port, upgradeRequest(port, "/echo", { "X-Deny": "1" }));
    assertEquals(denied.status, 401);
    const noUpgrade = await rawHttp(port, `GET /echo HTTP/1.1\r\nHost: x\r\n\r\n`);
    assertEquals(noUpgrade.status, 426);
    const badKey = await rawHttp(
      port,
      upgradeRequest(port).replace("dGhlIHNhbXBsZSBub25jZQ==", "short"),
    );
    assertEquals(badKey.status, 400);
    const huge = await rawHttp(port, `GET /echo HTTP/1.1\r\nX: ${"a".repeat(20_000)}\r\n\r\n`);
    assertEquals(huge.status, 431);
    const missing = await rawHttp(port, `GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n`);
    assertEquals(missing.status, 404);

    const read = scrape(metrics);
    for (const status of [503, 401, 426, 400, 431]) {
      assertEquals(read("heartwire_handshakes_refused_total", { status: String(status) }), 1);
    }
    assertEquals(metrics.handshakesRefused.total(), 5); // not the 404
    assertEquals(metrics.connectionsOpened.value, 0);
  });
});

Deno.test("serve({ metrics }): pings, pongs with RTT, a ping timeout and queued bytes", async () => {
  const flood = new Uint8Array(1024 * 1024);
  await withServer({
    routes: {
      "/echo": echoHandler,
      // 48 MiB to a client that does not read: far more than loopback buffers hold.
      "/flood": { open: (ws) => Array.from({ length: 48 }, () => ws.send(flood)) },
    },
    pingInterval: 100,
    pingTimeout: 400,
    pingJitter: 0,
    maxBufferedBytes: 128 * 1024 * 1024,
  }, async (_server, port, metrics) => {
    // Deno's WebSocket answers pings by itself: pongs with RTTs.
    const answering = new WebSocket(`ws://127.0.0.1:${port}/echo`);
    await new Promise((resolve) => answering.onopen = resolve);
    // A raw client answers nothing: missed pongs, then a timeout (1006).
    const silent = await RawClient.connect(port);
    await waitFor(() => metrics.closedByReason.get("timeout").value >= 1, 5_000);
    await silent.untilEof().catch(() => {});
    silent.close();
    await waitFor(() => metrics.pingRtt.count >= 2, 5_000);
    assert(metrics.missedPongs.value >= 1);
    assert(metrics.closedByCode.get(1006).value >= 1);
    assert(metrics.pingsSent.value >= metrics.pongsReceived.value + 1);
    assertEquals(metrics.pongsReceived.value, metrics.pingRtt.count);
    assert(metrics.pingRtt.sum >= 0);

    // Queued bytes are summed over the open connections when scraped.
    const reader = await RawClient.connect(port, "/flood");
    await waitFor(() => metrics.queuedBytes.get() > 16 * 1024 * 1024);
    const read = scrape(metrics);
    assert(read("heartwire_queued_bytes") > 16 * 1024 * 1024);
    assert(read("heartwire_pongs_received_total") >= 2);
    reader.close();
    await waitFor(() => metrics.queuedBytes.get() === 0 && metrics.connectionsActive.value === 1);

    const closed = new Promise((resolve) => answering.onclose = resolve);
    answering.close();
    await closed;
    await waitFor(() => metrics.connectionsActive.value === 0);
  });
});

Deno.test("serve({ metrics }): event-loop lag is sampled until shutdown", async () => {
  await withServer({}, async (_server, _port, metrics) => {
    // Block the loop past the 500 ms probe: the next probe runs late by at least the rest.
    const until = Date.now() + 700;
    while (Date.now() < until) { /* busy */ }
    await waitFor(() => metrics.eventLoopLag.get() >= 100, 2_000);
  });
});

Deno.test("new Hub({ metrics }): app heartbeats and resumes ok and failed", async () => {
  const metrics = new HeartwireMetrics({ processMetrics: false });
  const hub = new Hub({ metrics });
  const server = serve({ port: 0, hostname: "127.0.0.1", routes: { "/ws": hub }, metrics });
  const url = `ws://127.0.0.1:${server.addr.port}/ws`;
  const open = (query: string) => {
    const ws = new WebSocket(url + query);
    const messages: Record<string, unknown>[] = [];
    ws.onmessage = (event) => messages.push(JSON.parse(event.data));
    const closed = new Promise((resolve) => ws.onclose = resolve);
    return { ws, messages, closed };
  };
  try {
    const first = open("");
    await waitFor(() => first.messages.some((m) => m.type === "welcome"));
    const session = first.messages.find((m) => m.type === "welcome")!.session as string;
    first.ws.send(JSON.stringify({ type: "heartbeat", id: 1, ts: 5 }));
    first.ws.send(JSON.stringify({ type: "heartbeat", id: 2, ts: 6 }));
    await waitFor(() => first.messages.filter((m) => m.type === "heartbeat_ack").length === 2);
    assertEquals(metrics.appHeartbeats.value, 2);
    first.ws.close();
    await first.closed;

    const resumed = open(`?session=${encodeURIComponent(session)}`);
    await waitFor(() => resumed.messages.some((m) => m.type === "welcome"));
    const bogus = open("?session=no-such-session");
    await waitFor(() => bogus.messages.some((m) => m.type === "welcome"));
    assertEquals(bogus.messages[0].type, "resume_failed");
    const read = scrape(metrics);
    assertEquals(read("heartwire_resumes_total", { result: "ok" }), 1);
    assertEquals(read("heartwire_resumes_total", { result: "failed" }), 1);
    assertEquals(read("heartwire_app_heartbeats_total"), 2);
    resumed.ws.close();
    bogus.ws.close();
    await Promise.all([resumed.closed, bogus.closed]);
  } finally {
    await server.shutdown({ timeout: 1_000 });
    hub.dispose();
  }
});

Deno.test("new Hub({ metrics, presence }): heartwire_presence_online counts users online here", async () => {
  const metrics = new HeartwireMetrics({ processMetrics: false });
  const presence = new Presence({ store: new MemoryPresenceStore(), nodeId: "n1" });
  await presence.start();
  const hub = new Hub({ metrics, presence });
  const server = serve({ port: 0, hostname: "127.0.0.1", routes: { "/ws": hub }, metrics });
  const url = `ws://127.0.0.1:${server.addr.port}/ws`;
  const sockets: WebSocket[] = [];
  try {
    // Two connections of ada are one user; bob is another.
    for (const id of ["ada", "ada", "bob"]) {
      const ws = new WebSocket(`${url}?id=${id}`);
      const welcomed = new Promise((resolve) => ws.onmessage = resolve);
      sockets.push(ws);
      await welcomed;
    }
    await waitFor(() => metrics.presenceOnline.get() === 2);
    assertEquals(scrape(metrics)("heartwire_presence_online"), 2);
    const bob = sockets.pop()!;
    const closed = new Promise((resolve) => bob.onclose = resolve);
    bob.close();
    await closed;
    await waitFor(() => metrics.presenceOnline.get() === 1);
  } finally {
    const closing = sockets.map((ws) => new Promise((resolve) => ws.onclose = resolve));
    for (const ws of sockets) ws.close();
    await Promise.all(closing);
    await server.shutdown({ timeout: 1_000 });
    hub.dispose();
    await presence.close();
  }
});
