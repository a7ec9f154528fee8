import { assert, assertEquals } from "@std/assert";
import { MemorySessionStore, Session } from "../hub/sessions.ts";
import { ManualClock } from "./_clock.ts";
import { Random } from "./_random.ts";

/** A new session for `clientId` (owner `ip`), attached. */
function attached(store: MemorySessionStore, clientId: string, ip = "10.0.0.1"): Session {
  const session = store.create(clientId, ip)!;
  store.attach(session);
  return session;
}

Deno.test("sessions: a detached session expires after the grace period, found lazily", () => {
  const clock = new ManualClock();
  const store = new MemorySessionStore({ clock, grace: 5_000 });
  const session = attached(store, "c");
  store.detach(session);
  assertEquals(clock.pending, 0, "no timer while no connection is live");
  clock.jump(4_999);
  assertEquals(store.get(session.id), session);
  clock.jump(1);
  assertEquals(store.get(session.id), undefined);
  assertEquals(store.size, 0);
  assertEquals(store.resume(session.id).ok, false);
});

Deno.test("sessions: one timer sweeps expired sessions while connections are live", () => {
  const clock = new ManualClock();
  const removed: string[] = [];
  const store = new MemorySessionStore({ clock, grace: 1_000 });
  store.onRemove = (s) => removed.push(s.clientId);
  const keeper = attached(store, "keeper");
  const sessions = ["a", "b", "c"].map((id) => attached(store, id));
  store.detach(sessions[0]);
  clock.advance(300);
  store.detach(sessions[1]);
  store.detach(sessions[2]);
  assertEquals(clock.pending, 1, "one timer for every detached session");
  clock.advance(700); // a's grace is over
  assertEquals(removed, ["a"]);
  clock.advance(300);
  assertEquals(removed, ["a", "b", "c"]);
  assertEquals(clock.pending, 0, "nothing detached: no timer");
  store.detach(keeper);
  assertEquals(clock.pending, 0, "nothing live: no timer");
  store.dispose();
  assertEquals(store.size, 0);
});

Deno.test("sessions: re-attaching within grace cancels the expiry; a never-attached session expires", () => {
  const clock = new ManualClock();
  const store = new MemorySessionStore({ clock, grace: 1_000 });
  attached(store, "other"); // a live connection, so expiry runs on a timer
  const session = attached(store, "c");
  store.detach(session);
  clock.advance(900);
  assert(store.resume(session.id).ok);
  store.attach(session);
  clock.advance(5_000);
  assertEquals(store.get(session.id), session);
  store.detach(session);
  clock.advance(999);
  assertEquals(store.get(session.id), session, "grace restarts at the new detach");
  clock.advance(1);
  assertEquals(store.get(session.id), undefined);
  const orphan = store.create("never", "10.0.0.1")!; // its connection closed first
  clock.advance(1_000);
  assertEquals(store.get(orphan.id), undefined);
  store.dispose();
  assertEquals(clock.pending, 0);
});

Deno.test("sessions: the cap evicts the oldest detached session, never a live one", () => {
  const store = new MemorySessionStore({ maxSessions: 3, maxSessionsPerOwner: 3 });
  const [a, b, c] = ["a", "b", "c"].map((id) => attached(store, id));
  assertEquals(store.create("d", "10.0.0.1"), undefined, "all live: refused");
  store.detach(b);
  store.detach(a);
  const d = store.create("d", "10.0.0.1")!;
  assertEquals(store.size, 3);
  assertEquals(store.get(b.id), undefined, "b detached first: evicted");
  assertEquals([store.get(a.id), store.get(c.id), store.get(d.id)], [a, c, d]);
  store.dispose();
});

Deno.test("sessions: ids are unique even when the generator repeats, and never a tombstone's", () => {
  const ids = ["x", "x", "y", "x", "z"];
  const store = new MemorySessionStore({ createId: () => ids.shift()! });
  const x = store.create("1", "ip")!;
  assertEquals(x.id, "x");
  assertEquals(store.create("2", "ip")!.id, "y");
  store.remove(x);
  assertEquals(store.create("3", "ip")!.id, "z", "a tombstone's id is not given out again");
  store.dispose();
});

Deno.test("sessions: a removed session leaves its last cseq, told only to its own client id", () => {
  const clock = new ManualClock();
  const store = new MemorySessionStore({ clock, grace: 1_000 });
  const session = attached(store, "alice");
  session.lastCseq = 3;
  store.detach(session);
  clock.jump(1_000);
  assertEquals(store.get(session.id), undefined, "expired");
  assertEquals(store.tombstones, 1);
  const expired = { ok: false, reason: "unknown or expired session" };
  assertEquals(store.resume(session.id, "alice"), { ...expired, lastCseq: 3 });
  assertEquals(store.resume(session.id), { ...expired, lastCseq: 3 }, "no id: no check");
  assertEquals(store.resume(session.id, "mallory"), expired, "another id learns nothing");
  assertEquals(store.resume("never-was", "alice"), expired);
  const live = attached(store, "bob");
  assertEquals(store.resume(live.id, "mallory"), {
    ok: false,
    reason: "session belongs to another client id",
  });
  store.dispose();
  assertEquals(store.tombstones, 0);
});

Deno.test("sessions: the tombstone exists when onRemove runs, with the final lastCseq", () => {
  const told: unknown[] = [];
  const store = new MemorySessionStore();
  // The hub closes the connection here; a client reconnecting at once must find the tombstone.
  store.onRemove = (s) => told.push([s.attached, store.resume(s.id, "c")]);
  const session = attached(store, "c");
  session.lastCseq = 7;
  store.remove(session);
  assertEquals(told, [[true, { ok: false, reason: "unknown or expired session", lastCseq: 7 }]]);
  assertEquals([store.size, store.live], [0, 0]);
  store.dispose();
});

Deno.test("sessions: tombstones are bounded, the oldest forgotten first", () => {
  const store = new MemorySessionStore({ maxTombstones: 3, maxTombstonesPerOwner: 3 });
  const ids: string[] = [];
  for (let n = 1; n <= 10; n++) {
    const session = store.create(`c${n}`, "ip")!;
    session.lastCseq = n * 10;
    ids.push(session.id);
    store.remove(session);
    assertEquals(store.tombstones, Math.min(n, 3));
  }
  const told = ids.map((id, i) => store.resume(id, `c${i + 1}`));
  assertEquals(
    told.map((result) => result.ok ? "resumed" : result.lastCseq),
    [undefined, undefined, undefined, undefined, undefined, undefined, undefined, 80, 90, 100],
  );
  store.dispose();
  const none = new MemorySessionStore({ maxTombstones: 0 });
  none.remove(none.create("c", "ip")!);
  assertEquals(none.tombstones, 0);
  none.dispose();
});

Deno.test("sessions: seeded detach/attach churn expires exactly the sessions a simple model says", () => {
  const clock = new ManualClock();
  const grace = 1_000;
  const store = new MemorySessionStore({ clock, grace, maxSessions: 1_000 });
  const random = new Random(7);
  const sessions = Array.from({ length: 50 }, (_, i) => attached(store, `c${i}`));
  const detachedAt = new Map<Session, number>();
  const gone = new Set<Session>();
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
      store.attach(session);
      detachedAt.delete(session);
    } else {
      store.detach(session);
      detachedAt.set(session, clock.now());
    }
    assertEquals(store.detached, detachedAt.size, `step ${step}`);
  }
  store.dispose();
});

Deno.test("sessions: adopt takes in a record made elsewhere, under the same bounds, detached", () => {
  const clock = new ManualClock();
  const store = new MemorySessionStore({ clock, grace: 1_000, maxSessionsPerClient: 1 });
  const made = new Session("from-node-b", "dora", "10.0.0.9");
  made.lastCseq = 7;
  made.topics.add("lobby");
  assertEquals(store.adopt(made), true);
  assertEquals(store.get("from-node-b"), made);
  assertEquals(store.adopt(made), false, "the id is taken");
  // Its client is at its bound: a live one blocks the next, a detached one makes way.
  store.attach(made);
  assertEquals(store.adopt(new Session("other", "dora", "10.0.0.9")), false);
  store.detach(made);
  assertEquals(store.adopt(new Session("other", "dora", "10.0.0.9")), true);
  assertEquals(store.get("from-node-b"), undefined, "evicted for it");
  clock.jump(1_000);
  assertEquals(store.get("other"), undefined, "adopted sessions expire like any detached one");
});
