import { assert, assertEquals, assertFalse } from "@std/assert";
import { PreparedMessage, Session, SessionStore } from "../server/sessions.ts";
import { utf8 } from "./_bytes.ts";
import { ManualClock } from "./_clock.ts";
import { Random } from "./_random.ts";

function note(n: number, text = "x"): PreparedMessage {
  return new PreparedMessage("note", { n, text });
}

/** A new session for `clientId`, attached to `connection` (by default named like the client). */
function attached(
  store: SessionStore<string>,
  clientId: string,
  connection = clientId,
): Session<string> {
  const session = store.create(clientId)!;
  store.attach(session, connection);
  return session;
}

Deno.test("PreparedMessage puts type and seq first and counts UTF-8 bytes exactly", () => {
  const chat = new PreparedMessage("chat", { from: "c1", text: "héllo ✓ 😀", room: "r", ts: 5 });
  for (const seq of [1, 9, 10, 12345]) {
    const text = chat.text(seq);
    assertEquals(JSON.parse(text), {
      type: "chat",
      seq,
      from: "c1",
      text: "héllo ✓ 😀",
      room: "r",
      ts: 5,
    });
    assert(text.startsWith(`{"type":"chat","seq":${seq},`));
    assertEquals(chat.bytes(seq), utf8(text).length);
  }
  const bare = new PreparedMessage("tick");
  assertEquals(bare.text(3), '{"type":"tick","seq":3}');
  assertEquals(bare.bytes(3), utf8(bare.text(3)).length);
  const lone = new PreparedMessage("x", { s: "a\ud800b" }); // JSON.stringify escapes it
  assertEquals(lone.bytes(1), utf8(lone.text(1)).length);
});

Deno.test("a session numbers from 1, replays after last_seq, and forgets what is acked", () => {
  const session = new Session("s", "c", { replayBytes: 10_000 });
  assertEquals(session.seq, 0);
  assertEquals(session.replay(0), []);
  const texts = [1, 2, 3, 4].map((n) => session.push(note(n)));
  assertEquals(texts.map((t) => JSON.parse(t).seq), [1, 2, 3, 4]);
  assertEquals(session.replay(2), texts.slice(2));
  assertEquals(session.replay(0), texts);
  assertEquals(session.replay(4), []);
  assertEquals(session.replay(5), undefined, "last_seq ahead of the session");
  assertEquals(session.bufferedBytes, texts.reduce((sum, t) => sum + utf8(t).length, 0));
  session.ack(2);
  assertEquals(session.floor, 3);
  assertEquals(session.buffered, 2);
  assertEquals(session.replay(2), texts.slice(2));
  assertEquals(session.replay(1), undefined, "1 < floor - 1: already forgotten");
  session.ack(99); // beyond the last seq: everything, and no further
  assertEquals(session.buffered, 0);
  assertEquals(session.bufferedBytes, 0);
  assertEquals(session.push(note(5)).includes('"seq":5'), true);
  assertEquals(session.replay(4)!.length, 1);
});

Deno.test("the replay buffer stays within its byte bound, dropping the oldest", () => {
  const one = new PreparedMessage("note", { text: "y".repeat(80) }).bytes(1); // ~108 bytes
  const session = new Session("s", "c", { replayBytes: one * 3 + 5 });
  for (let n = 1; n <= 10; n++) {
    session.push(new PreparedMessage("note", { text: "y".repeat(80) }));
    assert(session.bufferedBytes <= one * 3 + 5, `over the bound after ${n}`);
  }
  assertEquals(session.buffered, 3);
  assertEquals(session.floor, 8);
  assert(session.canReplay(7));
  assertFalse(session.canReplay(6), "seq 7 was dropped: overrun");
  assertEquals(session.replay(6), undefined);
  // A message bigger than the whole bound is sent but never kept.
  session.push(new PreparedMessage("note", { text: "z".repeat(1000) }));
  assertEquals(session.buffered, 0);
  assertFalse(session.canReplay(10));
  assert(session.canReplay(11));
});

Deno.test("a long-lived buffer stays correct across compactions", () => {
  const session = new Session("s", "c", { replayBytes: 1 << 30 });
  for (let n = 1; n <= 5000; n++) {
    session.push(note(n));
    if (n % 700 === 0) session.ack(n - 50);
  }
  const replay = session.replay(4950 - 1)!;
  assertEquals(replay.map((t) => JSON.parse(t).n), Array.from({ length: 51 }, (_, i) => 4950 + i));
  assertEquals(session.floor, 4851, "the last ack was 4850, at n = 4900");
  assertEquals(session.buffered, 150);
  assertEquals(JSON.parse(session.replay(4850)![0]).n, 4851);
});

Deno.test("store: resume hands back exactly the missed messages and keeps last_cseq", () => {
  const clock = new ManualClock();
  const store = new SessionStore<string>({ clock, grace: 1_000 });
  const session = attached(store, "c1", "socket 1");
  assertEquals(store.live, 1);
  const sent = [1, 2, 3].map((n) => session.push(note(n)));
  session.lastCseq = 7;
  store.detach(session);
  assertEquals(store.live, 0);
  assertEquals(store.detached, 1);
  const missed = [4, 5].map((n) => session.push(note(n))); // buffered while detached
  clock.advance(999);
  const result = store.resume(session.id, 3);
  assert(result.ok);
  assertEquals(result.session, session);
  assertEquals(result.replay, missed);
  assertEquals(result.session.lastCseq, 7);
  assertEquals(session.floor, 4, "resume with last_seq 3 acks 1..3");
  store.attach(session, "socket 2");
  assertEquals(session.connection, "socket 2");
  assertEquals(store.detached, 0);
  assertEquals(sent.length, 3);
  store.dispose();
});

Deno.test("store: unknown, overrun, ahead and foreign resumes fail with a reason", () => {
  const clock = new ManualClock();
  const removed: string[] = [];
  const store = new SessionStore<string>({
    clock,
    replayBytes: 200,
    onRemove: (s) => removed.push(s.id),
  });
  assertEquals(store.resume("nope", 0), { ok: false, reason: "unknown or expired session" });
  const a = attached(store, "alice", "a");
  store.detach(a);
  a.push(note(1));
  a.lastCseq = 2;
  assertEquals(store.resume(a.id, 5), {
    ok: false,
    reason: "last_seq is ahead of the session",
    lastCseq: 2,
  });
  assertEquals(removed, [a.id], "a session that cannot resume is dropped");
  assertEquals(store.size, 0);

  const b = attached(store, "bob", "b");
  store.detach(b);
  assertEquals(store.resume(b.id, 0, "mallory"), {
    ok: false,
    reason: "session belongs to another client id",
  });
  assertEquals(store.size, 1, "a wrong id does not destroy the session");
  for (let n = 1; n <= 20; n++) b.push(note(n, "padding padding"));
  assertEquals(store.resume(b.id, 2), { ok: false, reason: "replay buffer overrun", lastCseq: 0 });
  assertEquals(removed, [a.id, b.id]);
  store.dispose();
});

Deno.test("store: a detached session expires after the grace period, found lazily", () => {
  const clock = new ManualClock();
  const store = new SessionStore<string>({ clock, grace: 5_000 });
  const session = attached(store, "c", "ws");
  store.detach(session);
  assertEquals(clock.pending, 0, "no timer while no connection is live");
  clock.jump(4_999);
  assertEquals(store.get(session.id), session);
  clock.jump(1);
  assertEquals(store.get(session.id), undefined);
  assertEquals(store.size, 0);
  assertEquals(store.resume(session.id, 0).ok, false);
});

Deno.test("store: one timer sweeps expired sessions while connections are live", () => {
  const clock = new ManualClock();
  const removed: string[] = [];
  const store = new SessionStore<string>({
    clock,
    grace: 1_000,
    onRemove: (s) => removed.push(s.clientId),
  });
  const keeper = attached(store, "keeper", "live");
  const sessions = ["a", "b", "c"].map((id) => attached(store, id));
  store.detach(sessions[0]);
  clock.advance(300);
  store.detach(sessions[1]);
  store.detach(sessions[2]);
  assertEquals(clock.pending, 1, "one timer for every detached session");
  clock.advance(700); // a's grace is over
  assertEquals(removed, ["a"]);
  assertEquals(clock.pending, 1);
  clock.advance(300);
  assertEquals(removed, ["a", "b", "c"]);
  assertEquals(clock.pending, 0, "nothing detached: no timer");
  store.detach(keeper);
  assertEquals(clock.pending, 0, "nothing live: no timer");
  store.dispose();
  assertEquals(store.size, 0);
});

Deno.test("store: re-attaching within grace cancels the expiry", () => {
  const clock = new ManualClock();
  const store = new SessionStore<string>({ clock, grace: 1_000 });
  attached(store, "other", "x"); // a live connection, so expiry runs on a timer
  const session = attached(store, "c", "1");
  store.detach(session);
  clock.advance(900);
  assert(store.resume(session.id, 0).ok);
  store.attach(session, "2");
  clock.advance(5_000);
  assertEquals(store.get(session.id), session);
  store.detach(session);
  clock.advance(999);
  assertEquals(store.get(session.id), session, "grace restarts at the new detach");
  clock.advance(1);
  assertEquals(store.get(session.id), undefined);
  store.dispose();
  assertEquals(clock.pending, 0);
});

Deno.test("store: the session cap evicts the oldest detached session, never a live one", () => {
  const clock = new ManualClock();
  const store = new SessionStore<string>({ clock, maxSessions: 3 });
  const [a, b, c] = ["a", "b", "c"].map((id) => attached(store, id));
  assertEquals(store.create("d"), undefined, "all live: refused");
  store.detach(b);
  store.detach(a);
  const d = store.create("d")!;
  assertEquals(store.size, 3);
  assertEquals(store.get(b.id), undefined, "b detached first: evicted");
  assertEquals(store.get(a.id), a);
  assertEquals(store.get(c.id), c);
  assertEquals(store.get(d.id), d);
  store.dispose();
});

Deno.test("store: session ids are unique even when the generator repeats", () => {
  const ids = ["x", "x", "y", "x", "z"];
  const store = new SessionStore<string>({ createId: () => ids.shift()! });
  const x = store.create("1")!;
  assertEquals(x.id, "x");
  assertEquals(store.create("2")!.id, "y");
  store.remove(x);
  assertEquals(store.create("3")!.id, "z", "a tombstone's id is not given out again");
  store.dispose();
});

Deno.test("store: an expired session leaves its last cseq, told only to its own client id", () => {
  const clock = new ManualClock();
  const store = new SessionStore<string>({ clock, grace: 1_000 });
  const session = attached(store, "alice", "ws");
  session.lastCseq = 3;
  store.detach(session);
  clock.jump(1_000);
  assertEquals(store.get(session.id), undefined, "expired");
  assertEquals(store.size, 0);
  assertEquals(store.tombstones, 1);
  const expired = { ok: false, reason: "unknown or expired session" };
  assertEquals(store.resume(session.id, 0, "alice"), { ...expired, lastCseq: 3 });
  assertEquals(store.resume(session.id, 7), { ...expired, lastCseq: 3 }, "no id: no check");
  assertEquals(store.resume(session.id, 0, "mallory"), expired, "another id learns nothing");
  assertEquals(store.resume("never-was", 0, "alice"), expired);
  assertEquals(store.tombstones, 1, "asking again is fine: the answer is final");
  store.dispose();
  assertEquals(store.tombstones, 0);
});

Deno.test("store: evicted and failed-to-resume sessions leave tombstones too", () => {
  const clock = new ManualClock();
  const store = new SessionStore<string>({ clock, maxSessions: 2, replayBytes: 100 });
  const a = attached(store, "a");
  a.lastCseq = 5;
  store.detach(a);
  const b = attached(store, "b");
  store.create("c"); // at the cap: a, the oldest detached, is evicted
  assertEquals(store.get(a.id), undefined);
  assertEquals(store.resume(a.id, 0, "a"), {
    ok: false,
    reason: "unknown or expired session",
    lastCseq: 5,
  });
  b.lastCseq = 9;
  for (let n = 1; n <= 5; n++) b.push(note(n, "padding padding padding"));
  store.detach(b);
  assertEquals(store.resume(b.id, 0, "b"), {
    ok: false,
    reason: "replay buffer overrun",
    lastCseq: 9,
  });
  // The client may ask again (its welcome was lost): the tombstone answers the same.
  assertEquals(store.resume(b.id, 0, "b"), {
    ok: false,
    reason: "unknown or expired session",
    lastCseq: 9,
  });
  assertEquals(store.tombstones, 2);
  store.dispose();
});

Deno.test("store: a live session that fails to resume is removed; onRemove still sees its connection", () => {
  const clock = new ManualClock();
  const seen: (string | undefined)[] = [];
  const store = new SessionStore<string>({
    clock,
    replayBytes: 100,
    onRemove: (s) => seen.push(s.connection),
  });
  const session = attached(store, "c", "old socket");
  session.lastCseq = 4;
  for (let n = 1; n <= 5; n++) session.push(note(n, "padding padding padding"));
  // The old socket is live (half-open, say): it must not process anything more, so
  // the session goes and the lastCseq told is final.
  assertEquals(store.resume(session.id, 0, "c"), {
    ok: false,
    reason: "replay buffer overrun",
    lastCseq: 4,
  });
  assertEquals(seen, ["old socket"]);
  assertEquals(session.connection, undefined);
  assertEquals([store.size, store.live], [0, 0]);
  store.dispose();
});

Deno.test("store: the tombstone exists when onRemove closes the connection, with the final lastCseq", () => {
  const told: unknown[] = [];
  const store: SessionStore<string> = new SessionStore<string>({
    // The owner closes the connection here; a client reconnecting at once must find the tombstone.
    onRemove: (s) => told.push(store.resume(s.id, 0, "c")),
  });
  const session = attached(store, "c");
  session.lastCseq = 7;
  store.remove(session);
  assertEquals(told, [{ ok: false, reason: "unknown or expired session", lastCseq: 7 }]);
  store.dispose();
});

Deno.test("store: tombstones are bounded, the oldest forgotten first", () => {
  const store = new SessionStore<string>({ maxTombstones: 3 });
  const ids: string[] = [];
  for (let n = 1; n <= 10; n++) { // wraps around the ring three times
    const session = store.create(`c${n}`)!;
    session.lastCseq = n * 10;
    ids.push(session.id);
    store.remove(session);
    assertEquals(store.tombstones, Math.min(n, 3));
  }
  const told = ids.map((id, i) => store.resume(id, 0, `c${i + 1}`));
  assertEquals(
    told.map((result) => result.ok ? "resumed" : result.lastCseq),
    [undefined, undefined, undefined, undefined, undefined, undefined, undefined, 80, 90, 100],
  );
  store.dispose();

  const none = new SessionStore<string>({ maxTombstones: 0 });
  none.remove(none.create("c")!);
  assertEquals(none.tombstones, 0);
  none.dispose();

  const odd = new SessionStore<string>({ maxTombstones: 2.5 });
  for (let n = 0; n < 6; n++) odd.remove(odd.create("c")!);
  assertEquals(odd.tombstones, 2, "a fractional bound is rounded down, still a bound");
  odd.dispose();

  const byDefault = new SessionStore<string>({ maxSessions: 2 });
  for (let n = 0; n < 20; n++) byDefault.remove(byDefault.create("c")!);
  assertEquals(byDefault.tombstones, 8, "default: 4 × maxSessions");
  byDefault.dispose();
});

Deno.test("store: seeded detach/attach churn expires exactly the sessions a simple model says", () => {
  const clock = new ManualClock();
  const grace = 1_000;
  const store = new SessionStore<string>({ clock, grace, maxSessions: 1_000 });
  const random = new Random(7);
  const sessions = Array.from({ length: 50 }, (_, i) => attached(store, `c${i}`));
  // The model: a session is gone once it has been detached for the grace period.
  const detachedAt = new Map<Session<string>, number>();
  const gone = new Set<Session<string>>();
  for (let step = 0; step < 5_000; step++) {
    clock.advance(random.between(0, 40));
    for (const [session, at] of detachedAt) {
      if (clock.now() - at >= grace) {
        gone.add(session);
        detachedAt.delete(session);
      }
    }
    const session = sessions[random.below(sessions.length)];
    if (gone.has(session)) {
      assertEquals(store.get(session.id), undefined, `step ${step}: ${session.id} should be gone`);
      continue;
    }
    assertEquals(store.get(session.id), session, `step ${step}: ${session.id} should be held`);
    if (detachedAt.has(session)) {
      store.attach(session, session.clientId);
      detachedAt.delete(session);
    } else {
      store.detach(session);
      detachedAt.set(session, clock.now());
    }
    assertEquals(store.detached, detachedAt.size, `step ${step}`);
  }
  store.dispose();
});
