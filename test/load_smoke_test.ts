/**
 * Keeps the load harness (bench/load/) from rotting: a short run of the real
 * load client against heartwire's /echo and against the raw TCP baseline,
 * checking that echoes flow and that every one of them matched.
 */
import { assert, assertEquals } from "@std/assert";
import { runLoad } from "../bench/load/client.ts";
import { startRawEcho } from "../bench/load/servers/raw_echo.ts";
import { serve, type WebSocketHandler } from "../server/mod.ts";

const SHORT_RUN = { connections: 4, inflight: 16, warmup: 100, duration: 400 };

Deno.test("load client: heartwire /echo returns every message intact", async () => {
  const server = serve({ port: 0, hostname: "127.0.0.1" });
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
