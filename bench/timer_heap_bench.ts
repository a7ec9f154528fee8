/**
 * Keepalive churn for 20 000 connections: one shared {@linkcode TimerHeap}
 * versus one `setTimeout` per connection.
 *
 * Each iteration does what keepalive does over a connection's life: (a) arm a
 * deadline for every connection, (b) re-arm each one {@linkcode REARMS} times
 * to a later deadline, in a shuffled order, as if traffic arrived, (c) cancel
 * them all, as if every connection closed. Deadlines are an hour away so
 * nothing fires; both variants end each iteration with no timer pending.
 *
 * Run: `deno bench --allow-all bench/timer_heap_bench.ts`
 *
 * @module
 */
import { systemClock, type TimerEntry, TimerHeap } from "../server/timer_heap.ts";

const CONNECTIONS = 20_000;
const REARMS = 5;
/** Far enough ahead that nothing fires during the bench. */
const HORIZON_MS = 3_600_000;
/** Connections' deadlines are spread this far apart, as if they opened one after another. */
const SPREAD_MS = 0.05;

function noop(): void {}

/** Seeded shuffle (mulberry32 + Fisher–Yates) so every run re-arms in the same order. */
function shuffled(length: number, seed: number): Uint32Array {
  const order = new Uint32Array(length);
  for (let i = 0; i < length; i++) order[i] = i;
  let s = seed >>> 0;
  for (let i = length - 1; i > 0; i--) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const j = ((t ^ (t >>> 14)) >>> 0) % (i + 1);
    const tmp = order[i];
    order[i] = order[j];
    order[j] = tmp;
  }
  return order;
}

/** The order in which traffic re-arms connections, one shuffle per round. */
const rounds = Array.from({ length: REARMS }, (_, r) => shuffled(CONNECTIONS, r + 1));

const heap = new TimerHeap({ clock: systemClock });
/** One entry per connection, created once and reused, as a connection would. */
const entries: TimerEntry[] = Array.from({ length: CONNECTIONS }, () => heap.create(noop));
const handles: ReturnType<typeof setTimeout>[] = new Array(CONNECTIONS);

Deno.bench({
  name: "setTimeout per connection",
  group: `keepalive churn, ${CONNECTIONS} connections`,
  baseline: true,
  fn() {
    // Relative delays: the same deadlines as the heap variant below.
    for (let i = 0; i < CONNECTIONS; i++) {
      handles[i] = setTimeout(noop, HORIZON_MS + i * SPREAD_MS);
    }
    for (let r = 0; r < REARMS; r++) {
      const order = rounds[r];
      const base = HORIZON_MS + (r + 1) * 1_000;
      for (let k = 0; k < CONNECTIONS; k++) {
        const i = order[k];
        clearTimeout(handles[i]);
        handles[i] = setTimeout(noop, base + k * SPREAD_MS);
      }
    }
    for (let i = 0; i < CONNECTIONS; i++) clearTimeout(handles[i]);
  },
});

Deno.bench({
  name: "TimerHeap (one OS timer)",
  group: `keepalive churn, ${CONNECTIONS} connections`,
  fn() {
    const now = systemClock.now();
    for (let i = 0; i < CONNECTIONS; i++) {
      heap.schedule(entries[i], now + HORIZON_MS + i * SPREAD_MS);
    }
    for (let r = 0; r < REARMS; r++) {
      const order = rounds[r];
      const base = now + HORIZON_MS + (r + 1) * 1_000;
      for (let k = 0; k < CONNECTIONS; k++) {
        heap.schedule(entries[order[k]], base + k * SPREAD_MS);
      }
    }
    for (let i = 0; i < CONNECTIONS; i++) heap.cancel(entries[i]);
    if (heap.size !== 0) throw new Error("heap not empty after cancelling everything");
  },
});
