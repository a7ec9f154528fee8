/**
 * The presence tracker on an injected clock: timeouts, several connections per
 * user, throttled lastSeen writes, away, offsets, and two nodes on one store.
 */
import { assert, assertEquals } from "@std/assert";
import {
  MAX_META_LENGTH,
  MemoryPresenceStore,
  Presence,
  type PresenceEvent,
  type PresenceOptions,
  type PresenceWrite,
} from "../hub/presence/mod.ts";
import { ManualClock } from "./_clock.ts";
import { sleep } from "./_wait.ts";

/** A memory store that counts user-record writes (what heartbeats cause). */
class CountingStore extends MemoryPresenceStore {
  recordWrites = 0;
  override write(batch: PresenceWrite): Promise<void> {
    this.recordWrites += batch.users?.length ?? 0;
    return super.write(batch);
  }
}

async function settle(...trackers: Presence[]): Promise<void> {
  for (let i = 0; i < 3; i++) {
    for (const tracker of trackers) await tracker.flush();
    await sleep(0);
  }
}

async function setup(options: PresenceOptions = {}) {
  const clock = new ManualClock(1_700_000_000_000);
  const store = new CountingStore({ now: () => clock.now() });
  const presence = new Presence({ store, clock, nodeId: "n1", ...options });
  const events: PresenceEvent[] = [];
  presence.subscribe((event) => events.push(event));
  await presence.start();
  return { clock, store, presence, events };
}

Deno.test("a silent client goes offline at the limit with exactly one leave {timeout}", async () => {
  const { clock, presence, events } = await setup({ presenceTimeout: 30_000 });
  presence.join("lobby", "ann", "c1");
  clock.advance(10_000);
  assert(presence.touch("ann", "c1"));
  const lastSeen = clock.now();
  // Silent from here: still online one millisecond before the limit.
  clock.advance(30_000 - 1);
  await settle(presence);
  assertEquals(events.map((e) => e.type), ["join"]);
  assertEquals((await presence.get("ann"))?.status, "online");
  // Offline within one sweep (1 s) after the limit, with one leave.
  clock.advance(1 + 1_000);
  await settle(presence);
  assertEquals(events.map((e) => [e.type, e.reason]), [["join", undefined], ["leave", "timeout"]]);
  clock.advance(120_000);
  await settle(presence);
  assertEquals(events.length, 2);
  const after = await presence.get("ann");
  assertEquals(after?.status, "offline");
  assertEquals(after?.lastSeen, lastSeen);
  assertEquals(await presence.list("lobby"), []);
  assertEquals(presence.connections, 0);
  await presence.close();
});

Deno.test("several connections of one user: one entry, one join, one leave", async () => {
  const { clock, presence, events } = await setup();
  presence.join("lobby", "ann", "tab1", { name: "Ann" });
  clock.advance(100);
  presence.join("lobby", "ann", "tab2");
  presence.join("lobby", "ann", "tab3");
  presence.join("lobby", "bob", "b1");
  await settle(presence);
  const list = await presence.list("lobby");
  assertEquals(list.map((e) => e.userId).sort(), ["ann", "bob"]);
  const ann = list.find((e) => e.userId === "ann")!;
  assertEquals(ann.meta, { name: "Ann" });
  assertEquals(ann.nodes, ["n1"]);
  assertEquals(ann.connectedAt, 1_700_000_000_000);
  presence.disconnect("ann", "tab1");
  presence.disconnect("ann", "tab3");
  assertEquals(events.filter((e) => e.userId === "ann").map((e) => e.type), ["join"]);
  presence.disconnect("ann", "tab2");
  const annEvents = events.filter((e) => e.userId === "ann");
  assertEquals(annEvents.map((e) => [e.type, e.reason]), [["join", undefined], [
    "leave",
    "closed",
  ]]);
  assertEquals(annEvents[1].presence.status, "offline");
  // Offsets count per topic, one per user change.
  assertEquals(events.map((e) => e.offset), [1, 2, 3]);
  await settle(presence);
  assertEquals((await presence.list("lobby")).map((e) => e.userId), ["bob"]);
  await presence.close();
});

Deno.test("throttling: 1 000 touches in one interval cost at most one store write", async () => {
  const { clock, store, presence } = await setup({ presenceTimeout: 30_000 });
  presence.join("lobby", "ann", "c1");
  await settle(presence);
  const before = store.recordWrites;
  // 1 000 heartbeats and messages inside one write interval (10 s).
  for (let i = 0; i < 1_000; i++) {
    clock.advance(9);
    presence.touch("ann", "c1", { activity: i % 2 === 0 });
  }
  await settle(presence);
  assert(store.recordWrites - before <= 1, `${store.recordWrites - before} writes`);
  // The throttled write does land: after the interval the store has a recent lastSeen.
  const touchedAt = clock.now();
  clock.advance(10_000);
  await settle(presence);
  const [record] = await store.records("ann");
  assertEquals(record.lastSeen, touchedAt);
  assert(store.recordWrites - before >= 1);
  await presence.close();
});

Deno.test("throttling: 100 users touching 100 times a second write about users/interval", async () => {
  const { clock, store, presence } = await setup({
    presenceTimeout: 30_000,
    writeInterval: 10_000,
  });
  for (let u = 0; u < 100; u++) presence.connect(`u${u}`, `c${u}`);
  await settle(presence);
  const before = store.recordWrites;
  for (let step = 0; step < 3_000; step++) {
    // Let the store writes of each simulated second land, as the event loop would.
    if (step % 100 === 0) await settle(presence);
    clock.advance(10);
    for (let u = step % 10; u < 100; u += 10) presence.touch(`u${u}`, `c${u}`);
  }
  await settle(presence);
  const writes = store.recordWrites - before;
  // 30 s at one write per user per 10 s: 300, never one per touch (30 000).
  assert(writes >= 200 && writes <= 300, `${writes} writes`);
  await presence.close();
});

Deno.test("away after no activity, online again on a message; heartbeats keep the connection only", async () => {
  const { clock, presence, events } = await setup({ presenceTimeout: 30_000, awayAfter: 60_000 });
  presence.join("lobby", "ann", "c1");
  for (let t = 0; t < 65_000; t += 5_000) {
    clock.advance(5_000);
    presence.touch("ann", "c1"); // heartbeat
  }
  await settle(presence);
  assertEquals(events.map((e) => [e.type, e.presence.status]), [
    ["join", "online"],
    ["update", "away"],
  ]);
  assertEquals((await presence.get("ann"))?.status, "away");
  presence.touch("ann", "c1", { activity: true });
  assertEquals(events.at(-1)?.presence.status, "online");
  assertEquals(events.length, 3);
  await presence.close();
});

Deno.test("metadata is bounded and changes emit update", async () => {
  const { presence, events } = await setup();
  presence.join("t", "ann", "c1", { name: "x".repeat(1_000), status: "hi" });
  assertEquals(events[0].presence.meta.name?.length, MAX_META_LENGTH);
  presence.setMeta("ann", { name: "Ann", status: "busy" });
  presence.setMeta("ann", { name: "Ann", status: "busy" }); // no change, no event
  assertEquals(events.map((e) => e.type), ["join", "update"]);
  assertEquals(events[1].presence.meta, { name: "Ann", status: "busy" });
  await presence.close();
});

Deno.test("snapshot carries the offset; an emptied topic restarts with a new epoch", async () => {
  const { presence, events } = await setup();
  presence.join("t", "ann", "c1");
  presence.join("t", "bob", "c2");
  presence.join("u", "bob", "c2");
  await settle(presence);
  const snap = await presence.snapshot("t");
  assertEquals(snap.offset, 2);
  assertEquals(snap.entries.length, 2);
  assertEquals((await presence.snapshot("u")).offset, 1);
  presence.leave("t", "ann", "c1");
  presence.leave("t", "bob", "c2");
  presence.join("t", "cat", "c3");
  const tEvents = events.filter((e) => e.topic === "t");
  assertEquals(tEvents.map((e) => e.offset), [1, 2, 3, 4, 1]);
  assert(tEvents[4].epoch !== tEvents[0].epoch);
  assertEquals(await presence.get("nobody"), undefined);
  assertEquals((await presence.get("bob"))?.topics, ["u"]);
  await presence.close();
});

Deno.test("two nodes on one store: join once across nodes, leave when the last node lets go, node-lost on crash", async () => {
  const clock = new ManualClock(1_700_000_000_000);
  const frozen = new ManualClock(1_700_000_000_000); // node A's time stops: A "crashes"
  const store = new MemoryPresenceStore({ now: () => clock.now() });
  const a = new Presence({ store, clock: frozen, nodeId: "A", presenceTimeout: 3_000 });
  const b = new Presence({ store, clock, nodeId: "B", presenceTimeout: 3_000 });
  const seenB: PresenceEvent[] = [];
  b.subscribe((event) => seenB.push(event));
  await a.start();
  await b.start();

  a.join("lobby", "ann", "a1", { name: "Ann" });
  await settle(a, b);
  assertEquals(seenB.map((e) => [e.type, e.userId, e.presence.meta.name]), [[
    "join",
    "ann",
    "Ann",
  ]]);
  assertEquals((await b.list("lobby")).map((e) => [e.userId, e.nodes]), [["ann", ["A"]]]);

  // Ann opens a second tab on B: still one entry, no second join.
  b.join("lobby", "ann", "b1");
  await settle(a, b);
  assertEquals(seenB.length, 1);
  assertEquals((await b.list("lobby"))[0].nodes.sort(), ["A", "B"]);
  b.disconnect("ann", "b1");
  await settle(a, b);
  assertEquals(seenB.length, 1, "still on A");

  a.join("lobby", "bob", "a2");
  await settle(a, b);
  assertEquals(seenB.length, 2);
  // A stops renewing; within its lease (3 s) plus one reap (1 s) B drops its users.
  for (let i = 0; i < 5; i++) {
    clock.advance(1_000);
    await settle(a, b);
  }
  assertEquals(
    seenB.slice(2).map((e) => [e.type, e.userId, e.reason]).sort(),
    [["leave", "ann", "node-lost"], ["leave", "bob", "node-lost"]],
  );
  assertEquals(await b.list("lobby"), []);
  assertEquals((await b.get("ann"))?.status, "offline");
  await a.close();
  await b.close();
});

Deno.test("a node that starts later learns earlier members from its first snapshot", async () => {
  const clock = new ManualClock(1_700_000_000_000);
  const frozen = new ManualClock(1_700_000_000_000);
  const store = new MemoryPresenceStore({ now: () => clock.now() });
  const a = new Presence({ store, clock: frozen, nodeId: "A", presenceTimeout: 3_000 });
  await a.start();
  a.join("lobby", "ann", "a1");
  a.join("lobby", "bob", "a2");
  await settle(a);

  const b = new Presence({ store, clock, nodeId: "B", presenceTimeout: 3_000 });
  const seenB: PresenceEvent[] = [];
  b.subscribe((event) => seenB.push(event));
  await b.start();
  const snap = await b.snapshot("lobby");
  assertEquals(snap.entries.map((e) => e.userId).sort(), ["ann", "bob"]);
  assertEquals(snap.offset, 0);
  assert(snap.epoch !== "", "the snapshot names the epoch its diffs will carry");

  a.disconnect("bob", "a2");
  await settle(a, b);
  assertEquals(seenB.map((e) => [e.type, e.userId, e.epoch, e.offset]), [
    ["leave", "bob", snap.epoch, 1],
  ]);
  for (let i = 0; i < 5; i++) {
    clock.advance(1_000);
    await settle(a, b);
  }
  assertEquals(seenB.slice(1).map((e) => [e.type, e.userId, e.reason, e.offset]), [
    ["leave", "ann", "node-lost", 2],
  ]);
  await a.close();
  await b.close();
});

Deno.test("list and get reflect this node's changes before its store writes land", async () => {
  const { presence } = await setup();
  presence.join("t", "ann", "c1");
  presence.join("u", "ann", "c1");
  // No flush: the batch is still queued.
  assertEquals((await presence.list("t")).map((e) => e.userId), ["ann"]);
  assertEquals((await presence.get("ann"))?.topics.sort(), ["t", "u"]);
  await presence.flush();
  presence.leave("t", "ann", "c1");
  assertEquals(await presence.list("t"), []);
  assertEquals((await presence.get("ann"))?.topics, ["u"]);
  await presence.close();
  // After close the tracker takes no new connections.
  presence.join("t", "bob", "c2");
  assertEquals(presence.connections, 0);
});

Deno.test("a node restarting under its old id clears its predecessor's users at once, on every node", async () => {
  const clock = new ManualClock(1_700_000_000_000);
  const store = new MemoryPresenceStore({ now: () => clock.now() });
  const old = new Presence({
    store,
    clock: new ManualClock(),
    nodeId: "A",
    presenceTimeout: 60_000,
  });
  const b = new Presence({ store, clock, nodeId: "B", presenceTimeout: 60_000 });
  const seenB: PresenceEvent[] = [];
  b.subscribe((event) => seenB.push(event));
  await old.start();
  await b.start();
  old.join("lobby", "ann", "a1");
  await settle(old, b);
  assertEquals(seenB.map((e) => e.type), ["join"]);
  // "A" crashes (never closes) and comes back long before its 60 s lease ends.
  const again = new Presence({ store, clock, nodeId: "A", presenceTimeout: 60_000 });
  await again.start();
  await settle(again, b);
  assertEquals(seenB.map((e) => [e.type, e.reason]), [["join", undefined], ["leave", "node-lost"]]);
  assertEquals(await b.list("lobby"), []);
  await again.close();
  await b.close();
});
