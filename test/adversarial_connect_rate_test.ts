/**
 * One address connecting in a loop (issue 9: no client may use up what others
 * need): `maxConnectionRatePerIp` answers it 429 with `Retry-After` once its
 * burst is spent, while its open connections and every other address are
 * served. The bucket itself is tested on a manual clock.
 */
import { assert, assertEquals, assertThrows } from "@std/assert";
import { ConnectionRateLimit } from "../server/_rate_limit.ts";
import { echoHandler, serve } from "../server/mod.ts";
import { rawHttp, upgradeResponse } from "./_raw_client.ts";

Deno.test("rate limit: a burst, then the rate; Retry-After says when", () => {
  let now = 0;
  const limit = new ConnectionRateLimit({ rate: 2, burst: 3, now: () => now });
  assertEquals([limit.take("a"), limit.take("a"), limit.take("a")], [0, 0, 0]);
  assertEquals(limit.take("a"), 500); // one token comes back in 1 / 2 s
  assertEquals(limit.take("b"), 0, "another address has its own bucket");
  now = 499;
  const wait = limit.take("a"); // a refusal spends nothing: still ~1 ms to go
  assert(wait >= 1 && wait <= 2, `${wait}`);
  now = 500;
  assertEquals(limit.take("a"), 0);
  assertEquals(limit.take("a"), 500);
  now = 10_000; // refilled, but never past the burst
  assertEquals([limit.take("a"), limit.take("a"), limit.take("a"), limit.take("a")], [
    0,
    0,
    0,
    500,
  ]);
  assertThrows(() => new ConnectionRateLimit({ rate: 0, burst: 1, now: () => 0 }), RangeError);
});

Deno.test("rate limit: memory is bounded, the least recently used address goes first", () => {
  const limit = new ConnectionRateLimit({ rate: 1, burst: 1, now: () => 0, maxAddresses: 3 });
  for (const address of ["a", "b", "c"]) assertEquals(limit.take(address), 0);
  assertEquals(limit.take("a"), 1_000); // "a" is now the most recently used
  assertEquals(limit.take("d"), 0); // over the bound: "b" is forgotten
  assertEquals(limit.size, 3);
  assertEquals(limit.take("a"), 1_000, "a is still remembered");
  assertEquals(limit.take("b"), 0, "b starts again with a full bucket");
});

/** The response head to an upgrade request on `/ws` from a fresh socket. */
const upgrade = (port: number, headers: Record<string, string> = {}) =>
  upgradeResponse(port, "/ws", headers);

/**
 * An echo server behind a trusted proxy (this test, on 127.0.0.1) that limits
 * each client it names to a burst of 2, then 1 a second; `from(client)` upgrades
 * as that client.
 */
function behindProxy() {
  const server = serve({
    hostname: "127.0.0.1",
    port: 0,
    routes: { "/ws": echoHandler },
    trustedProxies: ["127.0.0.1"],
    maxConnectionRatePerIp: 1,
    connectionBurstPerIp: 2,
  });
  const from = (client: string) => upgrade(server.addr.port, { "X-Forwarded-For": client });
  return { server, from };
}

Deno.test("adversarial: an address connecting in a loop gets 429 + Retry-After; its open sockets and others go on", async () => {
  const server = serve({
    hostname: "127.0.0.1",
    port: 0,
    routes: { "/ws": echoHandler },
    maxConnectionRatePerIp: 1,
    connectionBurstPerIp: 5,
  });
  const port = server.addr.port;
  const open: WebSocket[] = [];
  try {
    // The burst: five sockets open, and the first stays open and echoing.
    const first = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    await new Promise((resolve, reject) => {
      first.onopen = resolve;
      first.onerror = reject;
    });
    open.push(first);
    for (let i = 0; i < 4; i++) assert((await upgrade(port)).startsWith("HTTP/1.1 101"));
    // The loop: refused from now on, with when to come back.
    for (let i = 0; i < 20; i++) {
      const head = await upgrade(port);
      assert(head.startsWith("HTTP/1.1 429"), head);
      assert(/\r\nretry-after: 1\r\n/i.test(head), head);
    }
    assertEquals(server.stats.responses[429], 20);
    // Its open connection is not touched.
    const echoed = new Promise((resolve) => first.onmessage = (event) => resolve(event.data));
    first.send("still here");
    assertEquals(await echoed, "still here");
  } finally {
    for (const ws of open) ws.close();
    await server.shutdown();
  }
});

Deno.test("adversarial: behind a trusted proxy the rate counts each client it names", async () => {
  const { server, from } = behindProxy();
  try {
    assert((await from("203.0.113.1")).startsWith("HTTP/1.1 101"));
    assert((await from("203.0.113.1")).startsWith("HTTP/1.1 101"));
    assert((await from("203.0.113.1")).startsWith("HTTP/1.1 429"));
    // The proxy's own address is not what is limited: another client gets in.
    assert((await from("203.0.113.2")).startsWith("HTTP/1.1 101"));
    assert((await from("203.0.113.2")).startsWith("HTTP/1.1 101"));
  } finally {
    await server.shutdown();
  }
});

/** One plain HTTP GET on a fresh socket; its status. */
async function get(port: number, headers: Record<string, string> = {}): Promise<number> {
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("");
  const request = `GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${extra}\r\n`;
  return (await rawHttp(port, request)).status;
}

Deno.test("rate limit: plain HTTP counts from a client, not through a trusted proxy (upgrades only)", async () => {
  const options = {
    hostname: "127.0.0.1",
    port: 0,
    fetch: () => new Response("ok"),
    maxConnectionRatePerIp: 1,
    connectionBurstPerIp: 2,
  };
  const direct = serve(options);
  try {
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push(await get(direct.addr.port));
    assertEquals(statuses, [200, 200, 429]);
  } finally {
    await direct.shutdown();
  }
  const proxied = serve({ ...options, trustedProxies: ["127.0.0.1"] });
  try {
    for (let i = 0; i < 5; i++) {
      const status = await get(proxied.addr.port, { "X-Forwarded-For": "203.0.113.1" });
      assertEquals(status, 200);
    }
  } finally {
    await proxied.shutdown();
  }
});

Deno.test("rate limit: serve() refuses a rate that cannot work; a slow rate still admits one", async () => {
  for (const rate of [0, -1, NaN, Infinity]) {
    assertThrows(
      () => serve({ port: 0, maxConnectionRatePerIp: rate }),
      RangeError,
      "maxConnectionRatePerIp",
    );
  }
  assertThrows(
    () => serve({ port: 0, maxConnectionRatePerIp: 1, connectionBurstPerIp: 0.5 }),
    RangeError,
    "connectionBurstPerIp",
  );
  // 10 seconds' worth of 0.05/s is half a connection: the burst is still one.
  const server = serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: () => new Response("ok"),
    maxConnectionRatePerIp: 0.05,
  });
  try {
    assertEquals(await get(server.addr.port), 200);
    assertEquals(await get(server.addr.port), 429);
  } finally {
    await server.shutdown();
  }
});

Deno.test("adversarial: IPv6 addresses of one /64 share their limits", async () => {
  // A host given a /64 may use any of its 2^64 addresses: counted per address,
  // it would never be limited. Through a trusted proxy, so the test can name them.
  const { server, from } = behindProxy();
  try {
    assert((await from("2001:db8:0:1::1")).startsWith("HTTP/1.1 101"));
    assert((await from("2001:db8:0:1::2")).startsWith("HTTP/1.1 101"));
    assert((await from("2001:db8:0:1:ffff::3")).startsWith("HTTP/1.1 429"), "same /64");
    assert((await from("2001:db8:0:2::1")).startsWith("HTTP/1.1 101"), "another /64");
  } finally {
    await server.shutdown();
  }
});
