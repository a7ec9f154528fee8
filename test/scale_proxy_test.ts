/**
 * serve({ trustedProxies }): behind a proxy it trusts, the server counts each
 * WebSocket under the client address the proxy forwarded — for
 * `maxConnectionsPerIp`, as `ws.clientAddress`, and as the hub's session
 * owner — and from any other peer the forwarding headers are ignored.
 */
import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import { Hub, type MemorySessionStore } from "../hub/mod.ts";
import { serve, type WebSocketConnection } from "../server/mod.ts";
import { RawClient } from "./_raw_client.ts";
import { waitFor } from "./_wait.ts";

function startServer(trustedProxies: string[]) {
  const seen: string[] = [];
  const hub = new Hub();
  const server = serve({
    hostname: "127.0.0.1",
    port: 0,
    maxConnectionsPerIp: 2,
    trustedProxies,
    routes: {
      "/who": { open: (ws: WebSocketConnection) => void seen.push(ws.clientAddress) },
      "/ws": hub,
    },
  });
  return { server, hub, seen };
}

const from = (address: string) => ({ headers: { "X-Forwarded-For": address } });

Deno.test("trusted proxy: per-IP caps and clientAddress count the forwarded client", async () => {
  const { server, hub, seen } = startServer(["127.0.0.1"]);
  const clients: RawClient[] = [];
  try {
    const port = server.addr.port;
    clients.push(await RawClient.connect(port, "/who", from("203.0.113.5")));
    clients.push(await RawClient.connect(port, "/who", from("198.51.100.7, 203.0.113.5")));
    // The third from one client is refused; another client through the same proxy is not.
    await assertRejects(() => RawClient.connect(port, "/who", from("203.0.113.5")), Error, "429");
    clients.push(await RawClient.connect(port, "/who", from("203.0.113.6")));
    clients.push(
      await RawClient.connect(port, "/who", { headers: { Forwarded: "for=192.0.2.1" } }),
    );
    await waitFor(() => seen.length === 4);
    assertEquals(seen, ["203.0.113.5", "203.0.113.5", "203.0.113.6", "192.0.2.1"]);
    // A slot comes back when its connection ends.
    clients.shift()!.conn.close();
    await waitFor(() => server.connections.size === 3);
    clients.push(await RawClient.connect(port, "/who", from("203.0.113.5")));
    // The hub's sessions belong to the client, not to the proxy.
    clients.push(await RawClient.connect(port, "/ws", from("203.0.113.9")));
    const sessions = hub.sessions as MemorySessionStore;
    await waitFor(() => sessions.size === 1);
    const first = await clients.at(-1)!.next();
    const welcome = JSON.parse(first.type === "text" ? first.data : "{}");
    assertEquals(sessions.get(welcome.session)?.owner, "203.0.113.9");
  } finally {
    for (const client of clients) client.conn.close();
    await server.shutdown({ timeout: 100 });
    hub.dispose();
  }
});

Deno.test("untrusted peer: forwarding headers are ignored, the TCP peer is counted", async () => {
  const { server, hub, seen } = startServer(["10.0.0.0/8"]);
  const clients: RawClient[] = [];
  try {
    const port = server.addr.port;
    clients.push(await RawClient.connect(port, "/who", from("203.0.113.5")));
    clients.push(await RawClient.connect(port, "/who", from("203.0.113.6")));
    await assertRejects(() => RawClient.connect(port, "/who", from("203.0.113.7")), Error, "429");
    await waitFor(() => seen.length === 2);
    assertEquals(seen, ["127.0.0.1", "127.0.0.1"]);
  } finally {
    for (const client of clients) client.conn.close();
    await server.shutdown({ timeout: 100 });
    hub.dispose();
  }
  // A range that is not one is refused before anything listens.
  assertThrows(() => serve({ port: 0, trustedProxies: ["10.0.0.0/33"] }), RangeError);
});
