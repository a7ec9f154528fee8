import { assertEquals } from "@std/assert";
import { PreparedMessage } from "../protocol/frame_encoder.ts";
import { OutboundBudget, type QueuedView } from "../server/_outbound_budget.ts";
import { ManualClock } from "./_clock.ts";

/** A connection stand-in: what it holds, since when, and whether it was shed. */
class Peer {
  buffered = 0;
  oldest = Infinity;
  pending = Infinity;
  shedCount = 0;
  constructor(readonly budget: OutboundBudget<Peer>) {}
}

const view: QueuedView<Peer> = {
  oldestQueuedAt: (peer) => peer.oldest,
  bufferedAmount: (peer) => peer.buffered,
  writePendingSince: (peer) => peer.pending,
  shed(peer) {
    peer.shedCount++;
    peer.budget.charge(-peer.buffered);
    peer.buffered = 0;
  },
};

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("budget: a frame shared by many holders counts once, until the last releases it", () => {
  const budget = new OutboundBudget(1_000_000, new ManualClock(), [], view);
  const message = new PreparedMessage("x".repeat(1000));
  for (let i = 0; i < 3; i++) budget.hold(message); // three connections queue it
  assertEquals(budget.used, message.frame.length);
  budget.release(message);
  budget.release(message);
  assertEquals(budget.used, message.frame.length);
  budget.release(message);
  assertEquals(budget.used, 0);
});

Deno.test("budget: over the limit, only peers whose write is stuck are shed, oldest first", async () => {
  const clock = new ManualClock(10_000);
  const peers: Peer[] = [];
  const budget = new OutboundBudget(1000, clock, peers, view);
  const reader = new Peer(budget); // far behind, but its writes progress
  const old = new Peer(budget);
  const young = new Peer(budget);
  peers.push(reader, old, young);
  const charge = (peer: Peer, bytes: number, since: number, pending: number) => {
    peer.buffered += bytes;
    peer.oldest = since;
    peer.pending = pending;
    budget.charge(bytes);
  };
  charge(reader, 600, 1_000, clock.now());
  charge(old, 300, 2_000, 5_000);
  charge(young, 300, 3_000, 6_000);
  assertEquals(budget.used, 1200);
  await tick();
  // 1200 > 1000: shed the oldest stuck peer; 900 is still above the low water (750).
  assertEquals([reader.shedCount, old.shedCount, young.shedCount], [0, 1, 1]);
  assertEquals(budget.used, 600);
  assertEquals(budget.shed, 2);
});

Deno.test("budget: with nobody stuck yet it waits, then sheds once a write is stuck", async () => {
  const clock = new ManualClock(10_000);
  const peers: Peer[] = [];
  const budget = new OutboundBudget(1000, clock, peers, view);
  const peer = new Peer(budget);
  peers.push(peer);
  peer.buffered = 2000;
  peer.oldest = clock.now();
  peer.pending = clock.now();
  budget.charge(2000);
  await tick();
  assertEquals(peer.shedCount, 0, "shed before its write was stuck for a second");
  clock.advance(900);
  assertEquals(peer.shedCount, 0);
  clock.advance(100); // it looks again by itself, though nothing more was sent
  assertEquals(peer.shedCount, 1);
  assertEquals(budget.used, 0);
});

Deno.test("budget: two budgets count the same shared frame each for itself", () => {
  const a = new OutboundBudget(1_000_000, new ManualClock(), [], view);
  const b = new OutboundBudget(1_000_000, new ManualClock(), [], view);
  const message = new PreparedMessage("shared by two servers");
  a.hold(message);
  b.hold(message);
  assertEquals([a.used, b.used], [message.frame.length, message.frame.length]);
  a.release(message);
  assertEquals([a.used, b.used], [0, message.frame.length]);
  a.release(message); // a release too many is ignored
  assertEquals(a.used, 0);
});
