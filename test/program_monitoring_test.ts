/**
 * Monitoring as the program (server/main.ts) composes it, in process with
 * injected load: `/metrics` and `/stats` of real traffic, the stats line,
 * and the load alert — one warning line, `heartwire_overloaded 1`, with
 * `--shed-load` new WebSockets refused with 503 + Retry-After while HTTP
 * and the dashboard's feed keep answering, then cleared with hysteresis.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import type { MetricsSnapshot } from "../server/metrics.ts";
import { startLocal } from "./_program.ts";
import { sampleReader } from "./_prometheus.ts";
import { RawClient, rawHttp, upgradeRequest } from "./_raw_client.ts";
import { sleep, waitFor } from "./_wait.ts";

async function scrape(origin: string): Promise<(name: string) => number> {
  const response = await fetch(`${origin}/metrics`);
  assertEquals(response.status, 200);
  assertMatch(response.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  return sampleReader(await response.text());
}

Deno.test("the program: /metrics and /stats of real traffic, and the stats line", async () => {
  const lines: string[] = [];
  const program = await startLocal(["--stats-interval=100"], {
    loadSource: () => 0.5,
    cpus: 2,
    log: (line) => lines.push(line),
    warn: () => {},
  });
  const port = program.server.addr.port;
  const origin = `http://127.0.0.1:${port}`;
  try {
    assertMatch(lines[0], /^heartwire listening on ws:.*dashboard http:.*\/dashboard\)$/);
    // /echo: one message and back.
    const echo = new WebSocket(`ws://127.0.0.1:${port}/echo`);
    const echoed = new Promise((resolve) => echo.onmessage = (e) => resolve(e.data));
    echo.onopen = () => echo.send("hi");
    assertEquals(await echoed, "hi");
    // /ws: the hub's welcome, then an app heartbeat.
    const hub = new WebSocket(`ws://127.0.0.1:${port}/ws?id=tester`);
    const types: string[] = [];
    hub.onmessage = (e) => types.push(JSON.parse(e.data).type);
    await waitFor(() => types.includes("welcome"));
    hub.send(JSON.stringify({ type: "heartbeat", id: 1 }));
    await waitFor(() => types.includes("heartbeat_ack"));

    const read = await scrape(origin);
    assertEquals(read("heartwire_connections_active"), 2);
    assertEquals(read("heartwire_connections_opened_total"), 2);
    assertEquals(read("heartwire_messages_received_total"), 2);
    assert(read("heartwire_messages_sent_total") >= 3); // echo, welcome, subscribed…, ack
    assertEquals(read("heartwire_app_heartbeats_total"), 1);
    assertEquals(read("heartwire_overloaded"), 0);
    assertEquals(read("heartwire_load1"), 0.5);
    assert(read("process_resident_memory_bytes") > 0);
    assert(read("process_cpu_seconds_total") > 0);

    const stats: MetricsSnapshot = await (await fetch(`${origin}/stats`)).json();
    assertEquals(stats.connections.active, 2);
    assertEquals(stats.messages.in, 2);
    assertEquals(stats.appHeartbeats, 1);
    assertEquals(stats.load1, 0.5);
    assertEquals(stats.overloaded, false);
    assertEquals((await fetch(`${origin}/healthz`)).status, 200);
    const dashboard = await fetch(`${origin}/dashboard`);
    assertMatch(dashboard.headers.get("content-security-policy")!, /default-src 'none'/);
    assertMatch(await dashboard.text(), /"\/dashboard\/ws"/);

    await waitFor(() => lines.some((l) => / 2 active, /.test(l)), 3_000);
    assertMatch(
      lines.find((l) => / 2 active, /.test(l))!,
      /^heartwire: 2 active, 2 total, \+\d+ opened, -0 closed, 0 timeouts, rtt -$/,
    );
    const closed = Promise.all([echo, hub].map((ws) => new Promise((r) => ws.onclose = r)));
    echo.close();
    hub.close();
    await closed;
    await waitFor(() => lines.some((l) => /^heartwire: 0 active, 2 total, /.test(l)), 3_000);
  } finally {
    await program.stop({ timeout: 500 });
  }
});

Deno.test("the program: the load alert with --shed-load refuses upgrades, not HTTP, and clears", async () => {
  let load = 1;
  const warnings: string[] = [];
  const program = await startLocal(["--stats-interval=0", "--load-alert-factor=2", "--shed-load"], {
    loadSource: () => load,
    loadInterval: 20,
    cpus: 2,
    log: () => {},
    warn: (line) => warnings.push(line),
  });
  const port = program.server.addr.port;
  const origin = `http://127.0.0.1:${port}`;
  try {
    const before = await RawClient.connect(port, "/echo");
    assertEquals(warnings, []);

    load = 4.5; // ≥ 2 × 2 CPUs
    await waitFor(() => program.load.overloaded);
    assertEquals(warnings.length, 1);
    assertMatch(
      warnings[0],
      /^heartwire: WARNING load 4\.50 ≥ 4\.00 \(2 × 2 CPUs\): overloaded; refusing new WebSocket connections$/,
    );
    const refused = await rawHttp(port, upgradeRequest(port, "/ws"));
    assertEquals(refused.status, 503);
    assertMatch(refused.head, /\r\nretry-after: 1\r\n/i);
    assertEquals((await rawHttp(port, upgradeRequest(port, "/echo"))).status, 503);
    // HTTP keeps answering, the dashboard's feed still connects, open connections stay.
    assertEquals((await fetch(`${origin}/healthz`)).status, 200);
    const read = await scrape(origin);
    assertEquals(read("heartwire_overloaded"), 1);
    assertEquals(read("heartwire_load1"), 4.5);
    const stats: MetricsSnapshot = await (await fetch(`${origin}/stats`)).json();
    assertEquals(stats.overloaded, true);
    assertEquals(stats.handshakesRefused["503"], 2);
    const viewer = await RawClient.connect(port, "/dashboard/ws");
    assertEquals((await viewer.next()).type, "text"); // the history
    await before.sendFrame(0x1, "still here");
    assertEquals((await before.next()).type, "text");

    // Hysteresis: a dip under the threshold but above 0.8 × it clears nothing.
    load = 3.5;
    await sleep(150);
    assert(program.load.overloaded);
    assertEquals(warnings.length, 1);
    load = 1;
    await waitFor(() => !program.load.overloaded);
    assertEquals(warnings.length, 2);
    assertMatch(warnings[1], /^heartwire: load 1\.00 < 3\.20: no longer overloaded/);
    const after = await RawClient.connect(port, "/echo");
    assertEquals((await scrape(origin))("heartwire_overloaded"), 0);
    for (const client of [before, viewer, after]) client.close();
  } finally {
    await program.stop({ timeout: 500 });
  }
});

Deno.test("the program: without --shed-load an overloaded server still accepts, and warns once", async () => {
  const warnings: string[] = [];
  const program = await startLocal(["--stats-interval=0"], {
    loadSource: () => 100,
    loadInterval: 20,
    cpus: 2,
    log: () => {},
    warn: (l) => warnings.push(l),
  });
  const port = program.server.addr.port;
  try {
    await waitFor(() => program.load.overloaded);
    await sleep(100); // several more samples
    assertEquals(warnings.length, 1);
    assertMatch(warnings[0], /: overloaded$/);
    const client = await RawClient.connect(port, "/echo");
    client.close();
  } finally {
    await program.stop({ timeout: 500 });
  }
});
