/**
 * Keeps the load harness (bench/load/) from rotting: a short run of the real
 * load client against heartwire's /echo and against the raw TCP baseline,
 * checking that echoes flow and that every one of them matched; and a small
 * idle-memory run (bench/load/idle.ts) against heartwire.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { runLoad } from "../bench/load/client.ts";
import { runIdle } from "../bench/load/idle.ts";
import { startRawEcho } from "../bench/load/servers/raw_echo.ts";
import { echoHandler, serve, type WebSocketHandler } from "../server/mod.ts";
import { waitFor } from "./_wait.ts";

const SHORT_RUN = { connections: 4, inflight: 16, warmup: 100, duration: 400 };

Deno.test("load client: heartwire /echo returns every message intact", async () => {
  const server = serve({ port: 0, hostname: "127.0.0.1", routes: { "/echo": echoHandler } });
  try {
    const result = await runLoad({ port: server.addr.port, ...SHORT_RUN });
    assertEquals(result.errors, []);
    assertEquals(result.corrupt, 0);
    assert(result.messages > 0, `no echoes counted: ${JSON.stringify(result)}`);
    assert(result.msgPerSec > 0);
    assert(result.total >= result.messages);
  } finally {
    await server.shutdown({ timeout: 1_000 });
  }
});

Deno.test("load client: the raw TCP baseline echoes masked frames it never parses", async () => {
  const server = startRawEcho(0);
  try {
    const result = await runLoad({ port: server.port, maskedEchoes: true, ...SHORT_RUN });
    assertEquals(result.errors, []);
    assertEquals(result.corrupt, 0);
    assert(result.messages > 0, `no echoes counted: ${JSON.stringify(result)}`);
  } finally {
    await server.close();
  }
});

Deno.test("load client: an echo that differs from what was sent is counted as corrupt", async () => {
  const shout: WebSocketHandler = {
    message(ws, data) {
      ws.send(typeof data === "string" ? data.toUpperCase() : data);
    },
  };
  const server = serve({ port: 0, hostname: "127.0.0.1", routes: { "/echo": shout } });
  try {
    const result = await runLoad({ port: server.addr.port, ...SHORT_RUN });
    assertEquals(result.messages, 0);
    assert(result.corrupt > 0, `corruption went unnoticed: ${JSON.stringify(result)}`);
  } finally {
    await server.shutdown({ timeout: 1_000 });
  }
});

// Server and client share this process here, so the RSS is both of theirs:
// only its being read is checked, not its size.
const SMALL_IDLE_RUN = { connections: 20, warmup: 2, batch: 8, settle: 50 };

Deno.test("idle mode: every connection opens, RSS is read, all are closed at the end", async () => {
  const server = serve({ port: 0, hostname: "127.0.0.1", routes: { "/echo": echoHandler } });
  try {
    const result = await runIdle({ port: server.addr.port, pid: Deno.pid, ...SMALL_IDLE_RUN });
    assertEquals(result.errors, []);
    assertEquals(result.opened, 20);
    assertEquals(result.failed, 0);
    assertEquals(result.dropped, 0);
    assert(result.rssBefore > 0 && result.rssAfter > 0, `no RSS read: ${JSON.stringify(result)}`);
    assert(result.peakRss >= result.rssAfter);
    assertEquals(server.stats.upgraded, 22); // the warm-up ones too
    await waitFor(() => server.connections.size === 0, 1_000);
  } finally {
    await server.shutdown({ timeout: 1_000 });
  }
});

Deno.test("idle mode: refused handshakes are counted as failures, not measured", async () => {
  const server = serve({ port: 0, hostname: "127.0.0.1", routes: { "/echo": echoHandler } });
  try {
    const result = await runIdle({
      port: server.addr.port,
      pid: Deno.pid,
      path: "/nowhere",
      ...SMALL_IDLE_RUN,
    });
    assertEquals(result.opened, 0);
    assertEquals(result.failed, 22);
    assert(Number.isNaN(result.bytesPerConnection));
    assertEquals(result.errors.length, 1);
    assertStringIncludes(result.errors[0], "404");
    assertStringIncludes(result.errors[0], "×22");
  } finally {
    await server.shutdown({ timeout: 1_000 });
  }
});

Deno.test("idle mode: connections the server closes while idle are counted as dropped", async () => {
  const hangUp: WebSocketHandler = { open: (ws) => ws.close(1001, "no idlers") };
  const server = serve({ port: 0, hostname: "127.0.0.1", routes: { "/echo": hangUp } });
  try {
    const result = await runIdle({ port: server.addr.port, pid: Deno.pid, ...SMALL_IDLE_RUN });
    assertEquals(result.opened, 20);
    assertEquals(result.dropped, 22);
    assert(Number.isNaN(result.bytesPerConnection));
    assertEquals(result.errors, ["closed by the server while idle (×22)"]);
  } finally {
    await server.shutdown({ timeout: 1_000 });
  }
});
