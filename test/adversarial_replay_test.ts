/**
 * Issue 9, "every resource bounded": a client asking the hub to send again
 * what it has — `subscribe {topic, epoch, offset: 0}` on a topic with a long
 * history, or `presence_subscribe` on a crowded topic, in a loop — turns a
 * few dozen bytes each into a whole history read and sent. The replay
 * budget (`maxReplayBytes`) cuts it off with 1013 after bounded bytes, while
 * a normal client on the same hub gets every publication, every diff.
 */
import { assert, assertEquals } from "@std/assert";
import { Hub } from "../hub/mod.ts";
import { MemoryPresenceStore, Presence } from "../hub/presence/mod.ts";
import { ManualClock } from "./_clock.ts";
import { serveHub } from "./_serve_hub.ts";
import { waitFor } from "./_wait.ts";

type Json = Record<string, unknown>;

/** A plain WebSocket on the hub that records what it got, in bytes and messages. */
class Peer {
  readonly ws: WebSocket;
  readonly messages: Json[] = [];
  bytes = 0;
  closed: { code: number; reason: string } | undefined;

  constructor(port: number, id: string) {
    this.ws = new WebSocket(`ws://127.0.0.1:${port}/ws?id=${id}`);
    this.ws.onmessage = (event) => {
      this.bytes += (event.data as string).length; // ASCII here: characters are bytes
      this.messages.push(JSON.parse(event.data));
    };
    this.ws.onclose = (event) => this.closed = { code: event.code, reason: event.reason };
  }

  /** Waits for the welcome and where `lobby` and `$direct` stand; returns lobby's epoch. */
  async opened(): Promise<string> {
    await waitFor(() => this.messages.filter((m) => m.type === "subscribed").length === 2);
    return this.messages.find((m) => m.topic === "lobby")!.epoch as string;
  }

  send(message: Json): void {
    this.ws.send(JSON.stringify(message));
  }

  of(type: string): Json[] {
    return this.messages.filter((m) => m.type === type);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.ws.close();
    await waitFor(() => this.closed !== undefined);
  }
}

/** The attacker's requests: more than enough to pass the budget, fewer than `maxPendingMessages`. */
const REQUESTS = 300;

Deno.test("adversarial: a recovery loop at offset 0 is cut off with 1013 after bounded bytes; a reader gets everything", async () => {
  const budget = 256 * 1024;
  // The hub's clock stands still: no refill, the bound is exact.
  const hub = new Hub({ clock: new ManualClock(), maxReplayBytes: budget });
  hub.defaultTopics.add("lobby");
  const server = serveHub(hub);
  const port = server.addr.port;
  const peers: Peer[] = [];
  try {
    const pad = "x".repeat(940);
    for (let n = 1; n <= 60; n++) await hub.publish("lobby", "old", { n, pad });
    const history = 60 * 1_000; // about
    const reader = new Peer(port, "reader");
    const attacker = new Peer(port, "attacker");
    peers.push(reader, attacker);
    const epoch = await attacker.opened();
    await reader.opened();
    // The reader recovers the history once, as any client may.
    reader.send({ type: "subscribe", topic: "lobby", epoch, offset: 0 });
    await waitFor(() => reader.of("old").length === 60);

    for (let i = 0; i < REQUESTS; i++) {
      attacker.send({ type: "subscribe", topic: "lobby", epoch, offset: 0 });
    }
    for (let n = 1; n <= 50; n++) await hub.publish("lobby", "live", { n });
    await waitFor(() => attacker.closed !== undefined);
    assertEquals(attacker.closed, { code: 1013, reason: "retry-after=1000" });
    assertEquals(attacker.of("error").at(-1)?.reason, "replay budget spent: resume and ask again");
    // Served up to the budget, then one overdraft at most: not 300 histories (~18 MB).
    assert(attacker.bytes >= budget, `served up to the budget: ${attacker.bytes}`);
    assert(attacker.bytes <= budget + history + 60_000, `bounded: ${attacker.bytes} bytes`);
    assert(attacker.of("subscribed").length < 10, "a handful of replays, not 300");

    // The reader: the history once, every live publication in order, never closed.
    await waitFor(() => reader.of("live").length === 50);
    assertEquals(reader.of("old").map((m) => m.n), [...Array(60).keys()].map((i) => i + 1));
    assertEquals(reader.of("live").map((m) => m.offset), [...Array(50).keys()].map((i) => i + 61));
    assertEquals(reader.closed, undefined);
  } finally {
    for (const peer of peers) await peer.close();
    await server.shutdown({ timeout: 500 });
    hub.dispose();
  }
});

Deno.test("adversarial: a presence_subscribe loop on a crowded topic is cut off with 1013; a follower gets every diff", async () => {
  const clock = new ManualClock(1_700_000_000_000);
  const store = new MemoryPresenceStore({ now: () => clock.now() });
  const presence = new Presence({ store, clock, nodeId: "n1" });
  await presence.start();
  const budget = 512 * 1024;
  const hub = new Hub({ clock, wallClock: () => clock.now(), presence, maxReplayBytes: budget });
  hub.defaultTopics.add("lobby");
  const server = serveHub(hub);
  const port = server.addr.port;
  const peers: Peer[] = [];
  try {
    // A crowd of 2 000 (each state lists every one of them: ~160 KB).
    for (let i = 0; i < 2_000; i++) {
      presence.connect(`member-${i}`, `c${i}`);
      presence.join("lobby", `member-${i}`, `c${i}`);
    }
    await presence.flush();
    const follower = new Peer(port, "follower");
    const attacker = new Peer(port, "attacker");
    peers.push(follower, attacker);
    await follower.opened();
    await attacker.opened();
    follower.send({ type: "presence_subscribe", topic: "lobby" });
    await waitFor(() => follower.of("presence_state").length === 1);
    const state = follower.of("presence_state")[0];
    const stateBytes = JSON.stringify(state).length;
    assert(stateBytes > 100_000, `a crowded state: ${stateBytes} bytes`);

    for (let i = 0; i < REQUESTS; i++) {
      attacker.send({ type: "presence_subscribe", topic: "lobby" });
    }
    for (let i = 0; i < 20; i++) presence.connect(`late-${i}`, `l${i}`);
    for (let i = 0; i < 20; i++) presence.join("lobby", `late-${i}`, `l${i}`);
    await presence.flush();
    await waitFor(() => attacker.closed !== undefined);
    assertEquals(attacker.closed, { code: 1013, reason: "retry-after=1000" });
    const states = attacker.of("presence_state").length;
    assert(states >= 2 && states <= 5, `a handful of states, not 300: ${states}`);
    assert(attacker.bytes <= budget + 2 * stateBytes, `bounded: ${attacker.bytes} bytes`);

    // The follower: one state, then every diff in offset order (the late joins, and the
    // attacker's leave somewhere among them), never closed.
    await waitFor(() => follower.of("presence_join").length === 20);
    const diffs = follower.messages.filter((m) =>
      /^presence_(join|leave|update)$/.test(m.type as string)
    );
    const offsets = diffs.map((m) => m.offset as number);
    assertEquals(offsets, offsets.map((_, i) => (state.offset as number) + 1 + i));
    assertEquals(follower.of("presence_state").length, 1);
    assertEquals(follower.closed, undefined);
  } finally {
    for (const peer of peers) await peer.close();
    await server.shutdown({ timeout: 500 });
    hub.dispose();
    await presence.close();
  }
});
