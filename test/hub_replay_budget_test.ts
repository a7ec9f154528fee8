/**
 * The per-connection replay budget (`maxReplayBytes`): what one connection
 * may make the hub send again (history recoveries, presence states). Within
 * it nothing changes; past it the next replay is refused unprocessed with
 * 1013 and a retry hint, and the real client resumes and loses nothing.
 * The attacks themselves are in adversarial_replay_test.ts.
 */
import { assert, assertEquals } from "@std/assert";
import { ReconnectingSocket } from "../client/mod.ts";
import { Hub, type HubOptions, MemoryHistory } from "../hub/mod.ts";
import { REPLAY_REFILL, ReplayBudget } from "../hub/_replay_budget.ts";
import type { Publication } from "../protocol/messages.ts";
import { ManualClock } from "./_clock.ts";
import { serveHub } from "./_serve_hub.ts";
import { connect, type Json, say } from "./_hub_fake.ts";
import { waitFor } from "./_wait.ts";

const QUICK_BACKOFF = { minDelay: 20, initialDelay: 50, maxDelay: 200 };

/** Appends `count` publications of about `size` bytes each to `topic`. */
async function fill(hub: Hub, topic: string, count: number, size: number): Promise<void> {
  const pad = "x".repeat(size - 60);
  for (let n = 1; n <= count; n++) await hub.publish(topic, "fill", { n, pad });
}

Deno.test("replay budget: the bucket overdraws once, refuses while in debt, refills over a minute", () => {
  const clock = new ManualClock();
  const budget = new ReplayBudget(1_000, () => clock.now());
  assert(budget.admit("h lobby"));
  budget.spend(700);
  assert(budget.admit("h lobby"), "300 left");
  budget.spend(700); // a replay under way completes: into debt
  assertEquals(budget.tokens, -400);
  assert(!budget.admit("h lobby"));
  assert(!budget.admit("h other"), "no first replays free by default");
  clock.advance(REPLAY_REFILL * 0.4);
  assertEquals(budget.tokens, 0);
  assert(!budget.admit("h lobby"), "empty is not enough");
  clock.advance(REPLAY_REFILL * 0.1);
  assertEquals(budget.tokens, 100);
  clock.advance(REPLAY_REFILL * 10);
  assertEquals(budget.tokens, 1_000, "never above the burst");
});

Deno.test("replay budget: the first replay of each key starts in debt, up to `firsts` keys; repeats wait", () => {
  const budget = new ReplayBudget(1_000, () => 0, { firsts: 3 });
  budget.spend(5_000);
  assert(budget.admit("h a"), "a first: admitted in debt");
  assert(budget.admit("p a"), "a presence state is its own first");
  assert(!budget.admit("h a"), "asked again: waits for the bucket");
  assert(budget.admit("h b"), "the third first");
  assert(!budget.admit("h c"), "past `firsts` keys, the bucket decides");
  assertEquals(budget.tokens, -4_000);
});

Deno.test("replay budget: every topic's first recovery on a connection goes through, so a reconnect always progresses", async () => {
  // Three histories of ~10 KB against a 5 000-byte bucket: before, the
  // second was shed on every connection, and a client that asks for all
  // three on each reconnect (as presence states are asked) never got the third.
  const clock = new ManualClock();
  const hub = new Hub({ clock, maxReplayBytes: 5_000 });
  try {
    for (const topic of ["a", "b", "c"]) await fill(hub, topic, 10, 1_000);
    const [ws] = await connect(hub, "?id=many");
    const epochs = new Map<string, unknown>();
    for (const topic of ["a", "b", "c"]) {
      epochs.set(topic, (await say(hub, ws, { type: "subscribe", topic }))[0].epoch);
    }
    for (const [cseq, topic] of [[1, "a"], [2, "b"], [3, "c"]] as const) {
      const epoch = epochs.get(topic);
      const got = await say(hub, ws, { type: "subscribe", topic, epoch, offset: 0, cseq });
      assertEquals(got.map((m) => m.type), ["subscribed", ...Array(10).fill("fill"), "ack"], topic);
    }
    assertEquals(ws.closedWith, undefined);
    // Asking again on the same connection is what the bucket bounds.
    const epoch = epochs.get("a");
    const again = await say(hub, ws, { type: "subscribe", topic: "a", epoch, offset: 0, cseq: 4 });
    assertEquals(again.map((m) => m.type), ["error"]);
    assertEquals(ws.closedWith?.[0], 1013);
  } finally {
    hub.dispose();
  }
});

Deno.test("replay budget: a recovery loop is served up to the budget, then refused unprocessed with 1013", async () => {
  const clock = new ManualClock();
  const hub = new Hub({ clock, maxReplayBytes: 15_000 });
  hub.defaultTopics.add("lobby");
  try {
    await fill(hub, "lobby", 10, 1_000); // ~10 KB of history
    const [ws, opening] = await connect(hub, "?id=looper");
    const epoch = opening.find((m) => m.topic === "lobby")!.epoch;
    const ask = (cseq: number) =>
      say(hub, ws, { type: "subscribe", topic: "lobby", epoch, offset: 0, cseq });
    // 15 000 bytes: the first two start with bytes left (the second overdraws).
    for (const cseq of [1, 2]) {
      const got = await ask(cseq);
      assertEquals(got.map((m) => m.type), ["subscribed", ...Array(10).fill("fill"), "ack"]);
      assertEquals(got[0].recovered, true);
    }
    assertEquals(ws.closedWith, undefined);
    const refused = await ask(3);
    assertEquals(refused, [
      { type: "error", reason: "replay budget spent: resume and ask again", cseq: 3 },
    ]);
    assertEquals(ws.closedWith, [1013, "retry-after=1000"]);
    assertEquals(hub.connections, 0, "detached: its grace starts");
    // Unprocessed: its cseq is not recorded, so the resumed client's re-send is carried out.
    const [again, welcome] = await connect(hub, `?id=looper&session=${opening[0].session}`);
    assertEquals([welcome[0].type, welcome[0].resumed, welcome[0].last_cseq], ["welcome", true, 2]);
    const answered = await say(hub, again, {
      type: "subscribe",
      topic: "lobby",
      epoch,
      offset: 0,
      cseq: 3,
    });
    assertEquals(answered.length, 12, "a new connection has a full budget");
    assertEquals(answered.at(-1), { type: "ack", cseq: 3 });
  } finally {
    hub.dispose();
  }
});

Deno.test("replay budget: a subscribe without an offset, a join, is no replay; time refills the bucket", async () => {
  const clock = new ManualClock();
  const hub = new Hub({ clock, maxReplayBytes: 5_000 });
  hub.defaultTopics.add("lobby");
  try {
    await fill(hub, "lobby", 10, 1_000);
    const [ws, opening] = await connect(hub, "?id=reader");
    const epoch = opening.find((m) => m.topic === "lobby")!.epoch;
    const recover = () => say(hub, ws, { type: "subscribe", topic: "lobby", epoch, offset: 0 });
    assertEquals((await recover()).length, 11); // overdrawn by ~5 KB
    for (let n = 0; n < 50; n++) {
      const got = await say(hub, ws, { type: "subscribe", topic: `room${n % 5}` });
      assertEquals(got[0].type, "subscribed");
    }
    assertEquals(ws.closedWith, undefined, "joins cost nothing");
    clock.advance(2 * REPLAY_REFILL); // the debt is paid back, and the bucket full again
    assertEquals((await recover()).length, 11);
    assertEquals(ws.closedWith, undefined);
    await recover();
    assertEquals(ws.closedWith?.[0], 1013, "an uncounted (cseq-less) resync is refused too");
  } finally {
    hub.dispose();
  }
});

Deno.test("replay budget: maxReplayBytes Infinity turns it off", async () => {
  // One topic per session: the default budget is 1 MiB (512 KiB for it, and for
  // $direct), which 200 recoveries of ~10 KB pass. Without the option they are
  // shed; with Infinity none is.
  const loop = async (options: HubOptions) => {
    const hub = new Hub({ clock: new ManualClock(), maxTopicsPerSession: 1, ...options });
    hub.defaultTopics.add("lobby");
    try {
      await fill(hub, "lobby", 10, 1_000);
      const [ws, opening] = await connect(hub, "?id=free");
      const epoch = opening.find((m) => m.topic === "lobby")!.epoch;
      for (let n = 0; n < 200 && ws.closedWith === undefined; n++) {
        await say(hub, ws, { type: "subscribe", topic: "lobby", epoch, offset: 0 });
      }
      return ws.closedWith?.[0];
    } finally {
      hub.dispose();
    }
  };
  assertEquals(await loop({}), 1013, "the default budget is passed");
  assertEquals(await loop({ maxReplayBytes: Infinity }), undefined);
});

/** A hub on loopback and a real client following `topics`, with what it saw. */
async function rig(options: HubOptions, topics: string[]) {
  const hub = new Hub({ clock: new ManualClock(), ...options });
  hub.defaultTopics.add("lobby");
  const server = serveHub(hub);
  const socket = new ReconnectingSocket(`ws://127.0.0.1:${server.addr.port}/ws`, {
    id: "resumer",
    backoff: QUICK_BACKOFF,
  });
  const seen = {
    messages: [] as Publication[],
    opens: [] as boolean[],
    closes: [] as { code: number; reason: string }[],
    recovered: [] as (boolean | undefined)[],
  };
  socket.addEventListener("message", (event) => seen.messages.push(event.data));
  socket.addEventListener("open", (event) => seen.opens.push(event.detail.resumed));
  socket.addEventListener("close", (event) => seen.closes.push(event.detail));
  socket.addEventListener("subscribed", (event) => seen.recovered.push(event.detail.recovered));
  await waitFor(() => seen.opens.length === 1 && socket.topics.size === 2); // lobby, $direct
  for (const topic of topics) socket.subscribe(topic);
  await waitFor(() => socket.topics.size === topics.length + 2);
  const done = async () => {
    socket.close();
    await waitFor(() => server.connections.size === 0).catch(() => {});
    await server.shutdown({ timeout: 500 });
    hub.dispose();
  };
  return { hub, server, socket, seen, done };
}

/**
 * Sends the client away (1012 with a `retry-after` of `away` ms), fills
 * every topic it follows and its `$direct` meanwhile with `count`
 * publications of `size` bytes, and waits for it to have them all back.
 */
async function fillWhileAway(
  t: Awaited<ReturnType<typeof rig>>,
  { away, count, size }: { away: number; count: number; size: number },
): Promise<void> {
  const topics = [...t.socket.topics.keys()];
  t.hub.restart(away);
  await waitFor(() => t.seen.closes.length === 1);
  const pad = "x".repeat(size - 60);
  for (const topic of topics) {
    for (let n = 1; n <= count; n++) {
      if (topic === "$direct") await t.hub.send(t.socket.session!, "fill", { n, pad });
      else await t.hub.publish(topic, "fill", { n, pad });
    }
  }
  assertEquals(t.seen.opens.length, 1, "filled while the client was away: all of it is recovered");
  await waitFor(() => t.seen.messages.length === topics.length * count, 15_000);
  // Each topic's publications exactly once, in order, none live: all recovered.
  for (const topic of topics) {
    const mine = t.seen.messages.filter((m) => m.topic === topic);
    assertEquals(
      mine.map((m) => [m.n, m.offset]),
      [...Array(count).keys()].map((i) => [i + 1, i + 1]),
    );
  }
}

Deno.test("replay budget: by default a reconnect recovers the full history of every topic a session may be in", async () => {
  // 15 topics + lobby = maxTopicsPerSession (16), and $direct: 17 histories of ~250 KB.
  const topics = [...Array(15).keys()].map((i) => `t${i}`);
  const t = await rig({}, topics);
  try {
    await fillWhileAway(t, { away: 1_000, count: 600, size: 420 });
    assertEquals((t.hub.history as MemoryHistory).entries("t0"), 600, "nothing trimmed");
    assertEquals(t.seen.closes.map((c) => c.code), [1012], "never shed for replaying");
    assertEquals(t.seen.opens, [false, true]);
    assert(t.seen.recovered.filter((r) => r === true).length === 17);
  } finally {
    await t.done();
  }
});

Deno.test("replay budget: a reconnect asking for more than the bucket holds is served in full, not shed", async () => {
  // 4 histories of ~30 KB against a budget of 40 KB: each is the first of its
  // topic on the connection, so all go through (before, the third was shed on
  // every connection, and only the offsets moving on got the client through).
  const t = await rig({ maxReplayBytes: 40_000 }, ["a", "b"]);
  try {
    await fillWhileAway(t, { away: 200, count: 100, size: 300 });
    assertEquals(t.seen.closes.map((c) => c.code), [1012], "never shed for replaying");
    assertEquals(t.seen.opens, [false, true]);
    // Live traffic after the recovery still flows.
    await t.hub.publish("a", "fill", { n: 101, pad: "" });
    await waitFor(() => t.seen.messages.length === 401);
    assertEquals(t.seen.messages.at(-1)!.offset, 101);
  } finally {
    await t.done();
  }
});

Deno.test("replay budget: the client's resync after recovered:false still succeeds", async () => {
  const hub = new Hub({ clock: new ManualClock(), history: new MemoryHistory({ maxEntries: 5 }) });
  hub.defaultTopics.add("lobby");
  const server = serveHub(hub);
  const socket = new ReconnectingSocket(`ws://127.0.0.1:${server.addr.port}/ws`, {
    id: "trimmed",
    backoff: QUICK_BACKOFF,
  });
  const messages: Json[] = [];
  const subscribed: Json[] = [];
  socket.addEventListener("message", (event) => messages.push(event.data));
  socket.addEventListener("subscribed", (event) => subscribed.push({ ...event.detail }));
  try {
    await waitFor(() => socket.topics.has("lobby"));
    let closed = false;
    socket.addEventListener("close", () => closed = true);
    hub.restart(150);
    await waitFor(() => closed);
    for (let n = 1; n <= 12; n++) await hub.publish("lobby", "tick", { n }); // 1..7 trimmed
    await waitFor(() => subscribed.some((s) => s.topic === "lobby" && s.recovered === false));
    await hub.publish("lobby", "tick", { n: 13 });
    await waitFor(() => messages.length === 1);
    assertEquals([messages[0].n, messages[0].offset], [13, 13]);
  } finally {
    socket.close();
    await waitFor(() => server.connections.size === 0).catch(() => {});
    await server.shutdown({ timeout: 500 });
    hub.dispose();
  }
});
