/**
 * Issue 9 item 5: one client creating sessions by the thousand must not push
 * other clients' detached sessions or tombstones out. Sessions and
 * tombstones are bounded per owner (IP address) and per client id, so the
 * churner loses its own first.
 */
import { assertEquals } from "@std/assert";
import { chat, Hub, type MemorySessionStore } from "../hub/mod.ts";
import { ManualClock } from "./_clock.ts";
import { connect, hangUp, say } from "./_hub_fake.ts";

Deno.test("adversarial: a session churn burst from one IP leaves another client's session and tombstone alone", async () => {
  const clock = new ManualClock();
  const hub = chat(new Hub({ clock, grace: 60_000, maxSessions: 1_000 }));
  const store = hub.sessions as MemorySessionStore;
  try {
    // A keeps its session detached (a phone in a tunnel): cseq 1..3 processed, acks lost.
    const [a, [welcomeA]] = await connect(hub, "?id=alice", "192.0.2.10");
    for (const cseq of [1, 2, 3]) await say(hub, a, { type: "chat", text: `a${cseq}`, cseq });
    // B's session expired long ago; only its tombstone says what it processed.
    const [b, [welcomeB]] = await connect(hub, "?id=bob", "192.0.2.20");
    for (const cseq of [1, 2]) await say(hub, b, { type: "chat", text: `b${cseq}`, cseq });
    await hangUp(hub, b);
    const [keeper] = await connect(hub, "?id=keeper", "192.0.2.30"); // keeps the sweep timer armed
    clock.advance(60_000);
    assertEquals(store.tombstones, 1);
    await hangUp(hub, a);

    // The churner: 5 000 sessions opened and dropped at once, some under the victims' ids.
    let refused = 0;
    for (let n = 0; n < 5_000; n++) {
      const id = n % 10 === 0 ? "alice" : n % 10 === 1 ? "bob" : `bot${n}`;
      const [ws] = await connect(hub, `?id=${id}`, "198.51.100.66");
      if (ws.closedWith) refused++;
      else await hangUp(hub, ws);
    }
    assertEquals(
      refused,
      0,
      "the churner evicts its own detached sessions, so it is never refused",
    );
    assertEquals(store.size <= 1_000, true, `sessions bounded: ${store.size}`);
    assertEquals(store.tombstones <= 4_000, true, `tombstones bounded: ${store.tombstones}`);

    // A comes back: resumed, and its re-sent cseq 3 is acked, not processed again.
    const [a2, [resumed]] = await connect(
      hub,
      `?id=alice&session=${welcomeA.session}`,
      "192.0.2.10",
    );
    assertEquals([resumed.type, resumed.resumed, resumed.last_cseq], ["welcome", true, 3]);
    assertEquals(await say(hub, a2, { type: "chat", text: "a3", cseq: 3 }), [
      { type: "ack", cseq: 3 },
    ]);
    // B comes back too late, but is told exactly what its old session processed.
    const [, [failed, fresh]] = await connect(
      hub,
      `?id=bob&session=${welcomeB.session}`,
      "192.0.2.20",
    );
    assertEquals(failed, {
      type: "resume_failed",
      session: welcomeB.session,
      reason: "unknown or expired session",
      last_cseq: 2,
    });
    assertEquals([fresh.type, fresh.resumed], ["welcome", false]);
    assertEquals(keeper.closedWith, undefined);
  } finally {
    hub.dispose();
  }
});

Deno.test("adversarial: at the total cap a newcomer takes from the owner holding the most, not from the small", async () => {
  const clock = new ManualClock();
  const hub = new Hub({ clock, maxSessions: 10 });
  const store = hub.sessions as MemorySessionStore; // per owner: a quarter of the cap, 3
  try {
    const [small, [welcome]] = await connect(hub, "?id=small", "192.0.2.1");
    await hangUp(hub, small);
    // Three owners fill the rest with detached sessions (3 each: their own bound).
    for (const ip of ["198.51.100.1", "198.51.100.2", "198.51.100.3"]) {
      for (let n = 0; n < 3; n++) await hangUp(hub, (await connect(hub, "?id=x", ip))[0]);
    }
    assertEquals(store.size, 10);
    // A newcomer with nothing detached of its own: the cap is reached, someone must give.
    const [newcomer] = await connect(hub, "?id=new", "203.0.113.9");
    assertEquals(newcomer.closedWith, undefined);
    const [, [again]] = await connect(hub, `?id=small&session=${welcome.session}`, "192.0.2.1");
    assertEquals(again.resumed, true, "the owner with one session kept it");
  } finally {
    hub.dispose();
  }
});

Deno.test("adversarial: IPv6 addresses of one /64 are one owner", async () => {
  // A host given a /64 may use any of its addresses: each its own owner, it
  // could hold sessions without bound.
  const hub = new Hub({ clock: new ManualClock(), maxSessions: 8 }); // per owner: 2
  const store = hub.sessions as MemorySessionStore;
  try {
    for (const ip of ["2001:db8:0:1::1", "2001:db8:0:1::2", "2001:db8:0:1::3", "2001:db8:0:1::4"]) {
      await hangUp(hub, (await connect(hub, "?id=x", ip))[0]);
    }
    assertEquals(store.size, 2, "the /64 holds its owner's bound, not one per address");
    await hangUp(hub, (await connect(hub, "?id=y", "2001:db8:0:2::1"))[0]);
    assertEquals(store.size, 3, "another /64 is another owner");
  } finally {
    hub.dispose();
  }
});
