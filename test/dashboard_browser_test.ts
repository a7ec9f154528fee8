/**
 * The dashboard in real headless Chromium: `/dashboard` and its feed served
 * by `serve()`, metrics driven by a script (connections opening and closing
 * for every reason, messages, pongs with RTTs); every chart must show
 * non-zero data, nothing may be loaded from elsewhere, and screenshots (desktop
 * and phone) are saved to a temp dir.
 *
 * The second test runs the real program composition (server/main.ts's
 * `startProgram`) under real loopback traffic: echo clients that come and
 * go, clients that break the protocol, short ping timing so RTTs flow.
 *
 * Needs Debian's `chromium` (`.ci/run` installs it) and npm access once for
 * playwright-core.
 */
import { launchChromium, pollPage } from "./_browser.ts";
import { assert, assertEquals } from "@std/assert";
import { DashboardFeed, monitoringRoutes, toResponse } from "../server/_dashboard.ts";
import { CLOSE_REASONS, HeartwireMetrics } from "../server/metrics.ts";
import { serve } from "../server/server.ts";
import { Opcode } from "../protocol/opcodes.ts";
import { startLocal } from "./_program.ts";
import { RawClient } from "./_raw_client.ts";
import { sleep } from "./_wait.ts";

const WAIT = { timeout: 15_000 };

/** Moves the metrics as a busy server would, a step every 50 ms. */
function script(metrics: HeartwireMetrics): () => void {
  let step = 0;
  const causes = [
    { code: 1000, cause: "peer" },
    { code: 1006, cause: "timeout" },
    { code: 1002, cause: "protocol" },
    { code: 1008, cause: "slow" },
    { code: 1001, cause: "local" },
    { code: 4000, cause: "local" },
    { code: 1011, cause: "error" },
  ];
  const timer = setInterval(() => {
    step++;
    const opening = 3 + (step % 7);
    for (let i = 0; i < opening; i++) metrics.connectionOpened();
    for (let i = 0; i < 40 + 30 * Math.sin(step / 10); i++) {
      metrics.messageIn();
      metrics.messageOut();
      metrics.bytesRead(70);
      metrics.bytesWritten(66);
    }
    for (let i = 0; i < 5; i++) {
      metrics.pingSent();
      metrics.pongReceived(2 + Math.random() * 8 + (i === 4 ? 40 : 0));
    }
    metrics.appHeartbeat(3);
    // Close a little fewer than were opened: the active count climbs.
    const closing = opening - 1;
    for (let i = 0; i < closing; i++) {
      metrics.connectionClosed(causes[(step + i) % 3 === 0 ? (step + i) % causes.length : 0]);
    }
    metrics.eventLoopLag.set(Math.random() * 4);
  }, 50);
  return () => clearInterval(timer);
}

Deno.test("browser: the dashboard draws live charts from its feed", async () => {
  const metrics = new HeartwireMetrics();
  const stopScript = script(metrics);
  const feed = new DashboardFeed(() => metrics.snapshot(), { interval: 250 });
  feed.start();
  const pages = monitoringRoutes(metrics);
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    routes: { "/dashboard/ws": feed },
    fetch: (request) => toResponse(pages[new URL(request.url).pathname]?.()),
  });
  const origin = `http://127.0.0.1:${server.addr.port}`;
  const dir = await Deno.makeTempDir({ prefix: "heartwire-dashboard-" });
  const browser = await launchChromium();
  try {
    // Some history exists before the page opens: it must be drawn at once.
    await sleep(1_000);
    const page = await browser.newPage({
      viewport: { width: 1280, height: 900 },
      colorScheme: "dark",
    });
    const errors: string[] = [];
    const requests: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(message.text()); // CSP violations land here
    });
    page.on("request", (request) => requests.push(request.url()));

    // The page's CSP forbids eval(), so no waitForFunction: see pollPage.
    const until = (expression: string) => pollPage(page, expression, WAIT.timeout);

    await page.goto(`${origin}/dashboard`, WAIT);
    await until(`heartwireDashboard.connected && heartwireDashboard.messages >= 2`);
    // Every chart has drawn non-zero data.
    for (const chart of ["connections", "messages", "rtt", "closes", "process", "reasons"]) {
      await until(`(heartwireDashboard.charts[${JSON.stringify(chart)}]?.max ?? 0) > 0`);
    }
    // Enough points for lines, then the pictures.
    await until(`heartwireDashboard.points.length >= 12`);
    const active = Number((await page.textContent("#t-active"))!.replace(/\D/g, ""));
    assert(active > 0, `active tile shows ${active}`);
    const rtt = await page.textContent("#t-rtt");
    assert(/\d/.test(rtt ?? ""), `rtt tile shows ${rtt}`);
    const reasonRows = await page.locator(".reason").count();
    assertEquals(reasonRows, CLOSE_REASONS.length);

    const desktop = `${dir}/dashboard-desktop.png`;
    await page.screenshot({ path: desktop, fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.emulateMedia({ colorScheme: "light" });
    await page.waitForTimeout(600); // a couple of pushes, redrawn at the new size
    const phone = `${dir}/dashboard-phone.png`;
    await page.screenshot({ path: phone, fullPage: true });
    // Readable on a phone: nothing wider than the screen.
    const overflow = await page.evaluate(`document.documentElement.scrollWidth`);
    assert(Number(overflow) <= 390, `page is ${overflow} px wide on a 390 px screen`);
    console.log(`screenshots: ${desktop} ${phone}`);

    assertEquals(errors, []);
    assertEquals(requests.filter((url) => !url.startsWith(origin)), []);
    await page.close();
  } finally {
    await browser.close();
    stopScript();
    feed.stop();
    await server.shutdown({ timeout: 500 });
  }
});

/**
 * Real traffic against the program every 100 ms: echo clients open, send a
 * few messages and close (normal); every third round one sends an unmasked
 * frame (1002, protocol error). A few stay open throughout.
 */
function traffic(port: number): () => Promise<void> {
  const url = `ws://127.0.0.1:${port}/echo`;
  const open = (): Promise<WebSocket> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.onopen = () => resolve(ws);
      ws.onerror = () => reject(new Error("websocket error"));
    });
  const resident: Promise<WebSocket>[] = [open(), open(), open()];
  const pending = new Set<Promise<unknown>>();
  let round = 0;
  let stopped = false;
  const timer = setInterval(() => {
    if (stopped) return;
    round++;
    const work = (async () => {
      const ws = await open();
      const echoed = new Promise((resolve) => {
        let n = 0;
        ws.onmessage = () => ++n === 5 && resolve(undefined);
      });
      for (let i = 0; i < 5; i++) ws.send(`message ${round}.${i}`);
      await echoed;
      const closed = new Promise((resolve) => ws.onclose = resolve);
      ws.close(1000);
      await closed;
      if (round % 3 === 0) {
        const rude = await RawClient.connect(port);
        await rude.sendFrame(Opcode.Text, "unmasked", { mask: false });
        await rude.nextClose();
        rude.close();
      }
    })().catch(() => {});
    pending.add(work);
    work.finally(() => pending.delete(work));
  }, 100);
  return async () => {
    stopped = true;
    clearInterval(timer);
    await Promise.all(pending);
    for (const ws of await Promise.all(resident)) ws.close();
  };
}

Deno.test("browser: the program's dashboard under real traffic", async () => {
  const program = await startLocal([
    "--stats-interval=0",
    "--ping-interval=100",
    "--ping-timeout=2000",
  ], { dashboardInterval: 250, loadSource: () => 0.7, cpus: 2, log: () => {}, warn: () => {} });
  const port = program.server.addr.port;
  const origin = `http://127.0.0.1:${port}`;
  const stopTraffic = traffic(port);
  const dir = await Deno.makeTempDir({ prefix: "heartwire-dashboard-" });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(message.text());
    });
    // The page's CSP forbids eval(), so no waitForFunction: see pollPage.
    const until = (expression: string) => pollPage(page, expression, WAIT.timeout);
    await page.goto(`${origin}/dashboard`, WAIT);
    await until(`heartwireDashboard.connected`);
    for (const chart of ["connections", "messages", "rtt", "closes", "process", "reasons"]) {
      await until(`(heartwireDashboard.charts[${JSON.stringify(chart)}]?.max ?? 0) > 0`);
    }
    await until(`heartwireDashboard.points.length >= 8`);
    // The tiles show what the server counted.
    const active = Number((await page.textContent("#t-active"))!.replace(/\D/g, ""));
    assert(active >= 3, `active tile shows ${active}`); // three resident clients (+ the viewer)
    const total = Number((await page.textContent("#t-total"))!.replace(/\D/g, ""));
    assert(total > active, `total tile shows ${total}`);
    assert(/\d/.test((await page.textContent("#t-rtt")) ?? ""), "rtt tile has a figure");
    assertEquals(await page.textContent("#load"), "load ok · 0.70");
    const snapshot = program.metrics.snapshot();
    assert(snapshot.connections.closedByReason.normal > 0);
    assert(snapshot.connections.closedByReason.protocol_error > 0);
    assert(snapshot.rtt.ping.count > 0);

    const shot = `${dir}/dashboard-program.png`;
    await page.screenshot({ path: shot, fullPage: true });
    assert((await Deno.stat(shot)).size > 10_000, "the screenshot has content");
    console.log(`screenshot: ${shot}`);
    assertEquals(errors, []);
    await page.close();
  } finally {
    await browser.close();
    await stopTraffic();
    await program.stop({ timeout: 500 });
  }
});
