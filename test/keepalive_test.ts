import {
  assertEquals,
  assertGreater,
  assertGreaterOrEqual,
  assertLessOrEqual,
  assertRejects,
  assertThrows,
} from "@std/assert";
import { encodeFrame } from "../protocol/frame_encoder.ts";
import { Opcode } from "../protocol/opcodes.ts";
import {
  DEFAULT_COALESCE_MS,
  echoHandler,
  LagMeter,
  lagMeterFor,
  LATE_SLACK_MS,
  nextKeepaliveAction,
  serve,
  type ServeOptions,
  type Server,
} from "../server/mod.ts";
import { ManualClock } from "./_clock.ts";
import { RawClient } from "./_raw_client.ts";
import { waitFor } from "./_wait.ts";

const options = { interval: 25_000, timeout: 10_000 };

Deno.test("policy: a peer heard from recently is left alone until interval after lastSeen", () => {
  assertEquals(nextKeepaliveAction({ lastSeen: 1_000, pingSentAt: -1 }, 20_000, options), {
    kind: "wait",
    at: 26_000,
  });
});

Deno.test("policy: silence for the interval sends a ping and waits for the timeout", () => {
  assertEquals(nextKeepaliveAction({ lastSeen: 0, pingSentAt: -1 }, 25_000, options), {
    kind: "ping",
    at: 35_000,
  });
});

Deno.test("policy: an unanswered ping with nothing else heard is death after the timeout", () => {
  const state = { lastSeen: 0, pingSentAt: 25_000 };
  assertEquals(nextKeepaliveAction(state, 30_000, options), { kind: "wait", at: 35_000 });
  assertEquals(nextKeepaliveAction(state, 35_000, options), { kind: "dead" });
});

Deno.test("policy: any byte after the ping counts as life, even without a pong", () => {
  const state = { lastSeen: 27_000, pingSentAt: 25_000 };
  assertEquals(nextKeepaliveAction(state, 35_000, options), { kind: "wait", at: 52_000 });
});

Deno.test("policy: earlyBy moves the ping earlier (jitter)", () => {
  assertEquals(
    nextKeepaliveAction({ lastSeen: 0, pingSentAt: -1, earlyBy: 2_000 }, 10_000, options),
    { kind: "wait", at: 23_000 },
  );
});

// Liveness never blames a peer for the server's own stall (keepalive.ts).
const fast = { interval: 1_000, timeout: 1_000 };

Deno.test("policy: a check that runs late waits for the reads that piled up, then decides", () => {
  // Ping written at 1 000, due to be judged at 2 000; the server stalled from
  // 1 500 to 4 500 (longer than interval + timeout) and fires the check then.
  const state = { lastSeen: 0, pingSentAt: 1_000, pingWrittenAt: 1_000, lateBy: 2_500 };
  assertEquals(nextKeepaliveAction(state, 4_500, fast), { kind: "grace", at: 5_500 });
  // The pong that sat in the socket is read right after the stall: alive.
  const answered = { ...state, lastSeen: 4_500.5, lateBy: 0 };
  assertEquals(nextKeepaliveAction(answered, 5_500, fast), { kind: "wait", at: 5_500.5 });
  // Nothing was read: the re-check decides, even if it runs late too.
  assertEquals(nextKeepaliveAction({ ...state, graced: true }, 5_600, fast), { kind: "dead" });
  assertEquals(nextKeepaliveAction({ ...state, lateBy: 0 }, 5_500, fast), { kind: "dead" });
});

Deno.test("policy: lateness and lag within the slack still decide on time", () => {
  const state = { lastSeen: 0, pingSentAt: 1_000, lateBy: LATE_SLACK_MS, lag: LATE_SLACK_MS };
  assertEquals(nextKeepaliveAction(state, 2_000 + 2 * LATE_SLACK_MS, fast), { kind: "dead" });
});

Deno.test("policy: a read lag below its cap moves the deadline once, with no grace on top", () => {
  // Answers have lately been read 300 ms late: the deadline moves by 300 ms,
  // and that already waited as long as answers take. A grace on top would
  // count the same lag twice (bench:detect: a dead peer found 0.5 s later).
  const state = { lastSeen: 0, pingSentAt: 1_000, lag: 300 };
  assertEquals(nextKeepaliveAction(state, 2_000, fast), { kind: "wait", at: 2_300 });
  assertEquals(nextKeepaliveAction(state, 2_300, fast), { kind: "dead" });
});

Deno.test("policy: a read lag at its cap gives a passed deadline one grace re-check", () => {
  // The meter is capped at interval + timeout (lagMeterFor), so the real lag
  // may be longer than the extension: the reads get half a timeout more.
  const state = { lastSeen: 0, pingSentAt: 1_000, lag: 2_000 };
  assertEquals(nextKeepaliveAction(state, 2_000, fast), { kind: "wait", at: 4_000 });
  assertEquals(nextKeepaliveAction(state, 4_000, fast), { kind: "grace", at: 4_500 });
  assertEquals(nextKeepaliveAction({ ...state, graced: true }, 4_500, fast), { kind: "dead" });
});

Deno.test("policy: the timeout counts from when the ping reached the kernel", () => {
  // Queued at 1 000 behind the server's own writes, written at 1 800.
  const queued = { lastSeen: 0, pingSentAt: 1_000, pingWrittenAt: -1 };
  assertEquals(nextKeepaliveAction(queued, 2_000, fast), { kind: "wait", at: 3_000 });
  const written = { lastSeen: 0, pingSentAt: 1_000, pingWrittenAt: 1_800 };
  assertEquals(nextKeepaliveAction(written, 2_000, fast), { kind: "wait", at: 2_800 });
  assertEquals(nextKeepaliveAction(written, 2_800, fast), { kind: "dead" });
});

Deno.test("policy: the server's read lag extends the deadline", () => {
  const state = { lastSeen: 0, pingSentAt: 1_000, lag: 40 };
  assertEquals(nextKeepaliveAction(state, 2_000, fast), { kind: "wait", at: 2_040 });
  assertEquals(nextKeepaliveAction(state, 2_040, fast), { kind: "dead" });
});

Deno.test("LagMeter: the largest recent delay, forgotten after two windows, capped", () => {
  const meter = new LagMeter({ window: 1_000, max: 500 });
  assertEquals(meter.value(0), 0);
  meter.note(0, 200);
  meter.note(10, 50);
  assertEquals(meter.value(500), 200);
  assertEquals(meter.value(1_500), 200, "the previous window still counts");
  meter.note(1_600, 900);
  assertEquals(meter.value(1_600), 500, "capped at max");
  assertEquals(meter.value(2_900), 500);
  assertEquals(meter.value(5_000), 0, "nothing noted for two windows");
});

Deno.test("LagMeter: a few slow peers do not stretch everyone's deadline; a server stall does", () => {
  const meter = new LagMeter({ window: 2_000, max: 2_000 });
  // 1 000 answers in a window: 10 from peers that answer 1.5 s late on purpose.
  for (let i = 0; i < 990; i++) meter.note(i, 5 + (i % 10));
  for (let i = 0; i < 10; i++) meter.note(990 + i, 1_500);
  assertEquals(meter.value(1_000), 14, "the slow 1 % are outliers");
  // The server stalls: every answer of the next window is read ~800 ms late.
  for (let i = 0; i < 1_000; i++) meter.note(2_000 + i, 800 + (i % 7));
  assertEquals(meter.value(3_000) >= 800, true);
  // A small server has no outliers to ignore: its one late answer counts.
  const small = new LagMeter({ window: 2_000, max: 2_000 });
  small.note(0, 10);
  small.note(1, 700);
  small.note(2, 12);
  assertEquals(small.value(10), 700);
});

Deno.test("lagMeterFor: one meter per owner", () => {
  const a = {}, b = {};
  assertEquals(lagMeterFor(a, fast) === lagMeterFor(a, fast), true);
  assertEquals(lagMeterFor(a, fast) === lagMeterFor(b, fast), false);
});

Deno.test("serve() refuses timings the keepalive cannot work with", () => {
  const bad: ServeOptions[] = [
    { pingInterval: 0 },
    { pingInterval: Infinity }, // would fail every connection right after its 101
    { pingTimeout: -1 },
    { pingTimeout: NaN },
    { pingJitter: 1 }, // would ping as soon as anything was heard: a ping storm
    { pingJitter: -0.1 },
    { closeTimeout: Infinity },
    { handshakeTimeout: -5 },
    { writeTimeout: NaN },
  ];
  for (const options of bad) {
    assertThrows(() => serve({ port: 0, ...options }), RangeError, Object.keys(options)[0]);
  }
});

async function withClockServer(
  extra: ServeOptions,
  body: (server: Server, clock: ManualClock, port: number) => Promise<void>,
): Promise<void> {
  const clock = new ManualClock();
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    routes: { "/echo": echoHandler },
    clock,
    pingInterval: 25_000,
    pingTimeout: 10_000,
    pingJitter: 0,
    ...extra,
  });
  try {
    await body(server, clock, server.addr.port);
  } finally {
    await Promise.race([
      server.shutdown({ timeout: 0 }),
      tick(50).then(() => clock.advance(60_000)),
    ]);
    await server.finished;
  }
}

// The heap wakes up to DEFAULT_COALESCE_MS after a deadline (never before it),
// so stepping the clock exactly onto a deadline is not yet enough.
const SLACK = DEFAULT_COALESCE_MS;

const tick = (ms = 20) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("keepalive: a silent but alive peer is pinged, answers, and is kept", async () => {
  await withClockServer({}, async (server, clock, port) => {
    const client = await RawClient.connect(port);
    await waitFor(() => server.connections.size === 1);
    clock.advance(24_999);
    clock.advance(1 + SLACK); // interval reached: ping
    const ping = await client.next();
    assertEquals(ping.type, "ping");
    await client.sendFrame(Opcode.Pong, (ping as { data: Uint8Array }).data);
    const [ws] = server.connections;
    await waitFor(() => ws.rtt >= 0);
    clock.advance(10_000); // past the timeout: still alive because it answered
    await tick();
    assertEquals(server.connections.size, 1);
    assertEquals(server.stats.closed.timeout, 0);
    assertEquals(ws.missedPongs, 0);
    client.close();
  });
});

Deno.test("keepalive: a peer that stops answering is dropped after interval + timeout", async () => {
  await withClockServer({}, async (server, clock, port) => {
    const client = await RawClient.connect(port);
    await waitFor(() => server.connections.size === 1);
    const [ws] = server.connections;
    clock.advance(25_000 + SLACK);
    assertEquals((await client.next()).type, "ping"); // ...and we never answer it
    clock.advance(9_999);
    await tick();
    assertEquals(server.connections.size, 1);
    clock.advance(1 + SLACK);
    await waitFor(() => server.connections.size === 0);
    assertEquals(server.stats.closed.timeout, 1);
    assertEquals(ws.missedPongs, 1);
    // Dropped without a close frame: it would never be read.
    assertEquals(await client.next(), { type: "eof" });
    client.close();
  });
});

Deno.test("keepalive: an active peer is never pinged", async () => {
  await withClockServer({}, async (server, clock, port) => {
    const client = await RawClient.connect(port);
    await waitFor(() => server.connections.size === 1);
    for (let i = 0; i < 10; i++) {
      clock.advance(20_000); // always within the interval of the last message
      await client.sendFrame(Opcode.Text, `m${i}`);
      assertEquals(await client.next(), { type: "text", data: `m${i}` });
    }
    clock.advance(20_000);
    await client.sendFrame(Opcode.Text, "last");
    assertEquals(await client.next(), { type: "text", data: "last" }); // not a ping
    assertEquals(server.stats.closed.timeout, 0);
    client.close();
  });
});

Deno.test("keepalive: pings of connections opened together are spread by jitter", async () => {
  await withClockServer({ pingJitter: 0.2 }, async (server, clock, port) => {
    const clients = await Promise.all(Array.from({ length: 8 }, () => RawClient.connect(port)));
    await waitFor(() => server.connections.size === 8);
    clock.advance(19_999); // nobody pings before interval × (1 − jitter) = 20 s
    await tick(50);
    for (const client of clients) {
      await assertRejects(() => client.next(20), Error, "no event");
    }
    // Between 20 s and 25 s each pings, at its own moment.
    const pingedBy: number[] = [];
    for (let t = 20_000; t <= 25_000; t += 250) {
      clock.advance(250);
      await tick(10);
      let count = 0;
      for (const client of clients) {
        if (await client.next(20).then((e) => e.type === "ping", () => false)) count++;
      }
      if (count > 0) pingedBy.push(count);
    }
    assertEquals(pingedBy.reduce((a, b) => a + b, 0), 8);
    assertGreater(pingedBy.length, 1, "all 8 pinged in the same 250 ms step");
    clients.forEach((c) => c.close());
  });
});

Deno.test("keepalive: a connection that ends while being pinged leaves no timer armed", async () => {
  // With a 1-byte queue the ping itself overflows it: the connection is
  // dropped as a slow consumer from inside the keepalive callback.
  await withClockServer({ maxBufferedBytes: 1 }, async (server, clock, port) => {
    const client = await RawClient.connect(port);
    await waitFor(() => server.connections.size === 1);
    clock.advance(25_000 + SLACK);
    await waitFor(() => server.connections.size === 0);
    assertEquals(server.stats.closed.slow, 1);
    assertEquals(clock.pending, 0, "the dead connection's timer was re-armed");
    client.close();
  });
});

/**
 * Has the server echo far more than the socket buffers hold to a client that
 * never reads, so that whatever the server queues next cannot be written.
 */
async function jamServerWrites(client: RawClient): Promise<void> {
  const message = encodeFrame(Opcode.Binary, new Uint8Array(1024 * 1024), { mask: true });
  for (let i = 0; i < 48; i++) await client.write(message);
}

const JAMMED = { maxBufferedBytes: 128 * 1024 * 1024, closeTimeout: 5_000 };

Deno.test("closing: a peer that sends close and stops reading is dropped after closeTimeout", async () => {
  await withClockServer(JAMMED, async (server, clock, port) => {
    const client = await RawClient.connect(port);
    await waitFor(() => server.connections.size === 1);
    await jamServerWrites(client);
    await client.sendFrame(Opcode.Close, new Uint8Array([0x03, 0xe8])); // our answer cannot go out
    const [ws] = server.connections;
    await waitFor(() => ws.readyState === 2);
    await tick();
    assertGreater(ws.bufferedAmount, 0); // still jammed
    clock.advance(4_999);
    await tick();
    assertEquals(server.connections.size, 1);
    clock.advance(1 + SLACK); // the close timeout, well before the keepalive deadline
    await waitFor(() => server.connections.size === 0);
    client.close();
  });
});

Deno.test("failing: a peer that breaks the protocol and stops reading is dropped after closeTimeout", async () => {
  await withClockServer(JAMMED, async (server, clock, port) => {
    const client = await RawClient.connect(port);
    await waitFor(() => server.connections.size === 1);
    await jamServerWrites(client);
    await client.sendFrame(Opcode.Text, "unmasked", { mask: false }); // 1002, queued behind
    const [ws] = server.connections;
    await waitFor(() => ws.readyState === 2);
    await tick();
    assertGreater(ws.bufferedAmount, 0); // still jammed
    clock.advance(5_000 + SLACK);
    await waitFor(() => server.connections.size === 0);
    assertEquals(server.stats.closed.protocol, 1);
    client.close();
  });
});

Deno.test("handshake timeout drops a client that never finishes its request", async () => {
  await withClockServer({ handshakeTimeout: 10_000 }, async (server, clock, port) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("GET /echo HTTP/1.1\r\nHost: x\r\n"));
    await tick(50);
    clock.advance(10_000 + SLACK);
    const n = await conn.read(new Uint8Array(100)).catch(() => null);
    assertEquals(n, null);
    assertEquals(server.stats.handshakeTimeouts, 1);
    conn.close();
  });
});

Deno.test("real time: a peer that stops reading is dropped within interval + timeout", async () => {
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    routes: { "/echo": echoHandler },
    pingInterval: 300,
    pingTimeout: 200,
    pingJitter: 0,
  });
  try {
    const client = await RawClient.connect(server.addr.port);
    await waitFor(() => server.connections.size === 1);
    const start = Date.now();
    // The client never reads again and never answers the ping.
    await waitFor(() => server.connections.size === 0, 5_000);
    const elapsed = Date.now() - start;
    assertGreaterOrEqual(elapsed, 400);
    // interval + timeout, plus the server's own read lag when the machine is
    // busy (at most interval + timeout: keepalive.ts), plus scheduling slack.
    assertLessOrEqual(elapsed, 2 * (300 + 200) + 200);
    assertEquals(server.stats.closed.timeout, 1);
    client.close();
  } finally {
    await server.shutdown({ timeout: 500 });
  }
});

// A stall longer than interval + timeout: the clock jumps past the deadline
// with no timer fired and nothing read, as when the event loop was blocked.
const STALL = 40_000;

Deno.test("keepalive: a pong that arrived during the server's stall is read before any verdict", async () => {
  await withClockServer({}, async (server, clock, port) => {
    const client = await RawClient.connect(port);
    await waitFor(() => server.connections.size === 1);
    const [ws] = server.connections;
    clock.advance(25_000 + SLACK);
    const ping = await client.next();
    assertEquals(ping.type, "ping");
    // The pong goes into the server's socket; the server does not read it
    // before the stall ends (this turn is the stall).
    const sent = client.sendFrame(Opcode.Pong, (ping as { data: Uint8Array }).data);
    assertEquals(ws.rtt, -1, "the pong was not read yet");
    clock.jump(STALL);
    clock.advance(0); // the overdue check fires first
    assertEquals(server.stats.closed.timeout, 0, "dropped for the server's own stall");
    await sent;
    await waitFor(() => ws.rtt >= 0); // the pending read is processed
    clock.advance(10_000 + SLACK); // the re-check
    await tick();
    assertEquals(server.connections.size, 1);
    assertEquals(server.stats.closed.timeout, 0);
    client.close();
  });
});

Deno.test("keepalive: a silent peer is still dropped after the server's stall", async () => {
  await withClockServer({}, async (server, clock, port) => {
    const client = await RawClient.connect(port);
    await waitFor(() => server.connections.size === 1);
    clock.advance(25_000 + SLACK);
    assertEquals((await client.next()).type, "ping"); // never answered
    clock.jump(STALL);
    clock.advance(0);
    await tick();
    assertEquals(server.connections.size, 1, "judged before the reads were processed");
    // One timeout after the stall (the reads had that long): dead.
    clock.advance(10_000 + SLACK);
    await waitFor(() => server.connections.size === 0);
    assertEquals(server.stats.closed.timeout, 1);
    assertEquals(await client.next(), { type: "eof" });
    client.close();
  });
});

Deno.test("keepalive: a moderate read lag delays a silent peer's drop by that lag, once", async () => {
  await withClockServer({}, async (server, clock, port) => {
    const late = await RawClient.connect(port);
    const silent = await RawClient.connect(port);
    await waitFor(() => server.connections.size === 2);
    clock.advance(25_000 + SLACK); // both pinged
    const ping = await late.next();
    assertEquals(ping.type, "ping");
    assertEquals((await silent.next()).type, "ping"); // never answered
    // One peer's pong is read 300 ms after its ping: the server's lag is 300 ms.
    clock.advance(300);
    await late.sendFrame(Opcode.Pong, (ping as { data: Uint8Array }).data);
    await waitFor(() => [...server.connections].some((ws) => ws.rtt >= 300));
    // The silent one's timeout has passed, but not the timeout + lag.
    clock.advance(10_000 - 300);
    await tick();
    assertEquals(server.connections.size, 2);
    // Timeout + lag passed: dead now, not a grace period later.
    clock.advance(300 + SLACK);
    await waitFor(() => server.stats.closed.timeout === 1);
    assertEquals(await silent.next(), { type: "eof" });
    assertEquals(server.connections.size, 1, "the peer that answered is kept");
    late.close();
    silent.close();
  });
});

Deno.test("keepalive: without a stall a silent peer goes within interval + timeout + slack", async () => {
  await withClockServer({}, async (server, clock, port) => {
    const client = await RawClient.connect(port);
    await waitFor(() => server.connections.size === 1);
    clock.advance(25_000 + SLACK);
    assertEquals((await client.next()).type, "ping");
    clock.advance(10_000 + SLACK);
    await waitFor(() => server.connections.size === 0);
    assertEquals(server.stats.closed.timeout, 1);
    client.close();
  });
});

Deno.test("policy: a server behind on its reads pings later by its lag", () => {
  const options = { interval: 1_000, timeout: 1_000 };
  const heard = { lastSeen: 0, pingSentAt: -1 };
  // An ordinary lag (up to a quarter of the timeout): the ping goes out on time.
  assertEquals(nextKeepaliveAction({ ...heard, lag: 250 }, 1_000, options), {
    kind: "ping",
    at: 2_000,
  });
  // Answers lately read 400 ms late: the next ping waits that much longer,
  // so the server has fewer answers to read until it has caught up.
  assertEquals(nextKeepaliveAction({ ...heard, lag: 400 }, 1_000, options), {
    kind: "wait",
    at: 1_400,
  });
  assertEquals(nextKeepaliveAction({ ...heard, lag: 400 }, 1_400, options), {
    kind: "ping",
    at: 2_400,
  });
});

Deno.test("policy: pacing waits at most a timeout, so a quiet peer is still pinged", () => {
  const options = { interval: 1_000, timeout: 1_000 };
  // A lag at the meter's cap (interval + timeout) delays the ping by one timeout only.
  assertEquals(nextKeepaliveAction({ lastSeen: 0, pingSentAt: -1, lag: 2_000 }, 1_000, options), {
    kind: "wait",
    at: 2_000,
  });
});
