/**
 * The dashboard feed and the monitoring routes, without a browser: history
 * replay, one encoded push per tick to every viewer, slow viewers skipped,
 * and a page that names nothing outside itself.
 */
import { assert, assertEquals, assertMatch, assertThrows } from "@std/assert";
import {
  DASHBOARD_CSP,
  DashboardFeed,
  dashboardPage,
  monitoringRoutes,
} from "../server/_dashboard.ts";
import type { WebSocketConnection } from "../server/connection.ts";
import { HeartwireMetrics, type MetricsSnapshot } from "../server/metrics.ts";
import { ManualClock } from "./_clock.ts";
import { sampleReader } from "./_prometheus.ts";

class Viewer {
  sent: string[] = [];
  bufferedAmount = 0;
  send(data: string): boolean {
    this.sent.push(data);
    return true;
  }
  get messages(): { type: string; snapshot?: MetricsSnapshot; snapshots?: MetricsSnapshot[] }[] {
    return this.sent.map((text) => JSON.parse(text));
  }
}
const asConnection = (viewer: Viewer) => viewer as unknown as WebSocketConnection;

Deno.test("dashboard feed: replays history to a new viewer, then pushes every interval", () => {
  const clock = new ManualClock();
  const metrics = new HeartwireMetrics({ processMetrics: false, now: () => clock.now() });
  const feed = new DashboardFeed(() => metrics.snapshot(), { interval: 1_000, history: 3, clock });
  const early = new Viewer();
  feed.open(asConnection(early)); // starts the timer: one snapshot at once
  assertEquals(early.messages.map((m) => m.type), ["history"]);
  assertEquals(early.messages[0].snapshots?.map((s) => s.connections.active), [0]);
  for (let i = 0; i < 4; i++) {
    metrics.connectionOpened();
    clock.advance(1_000);
  }
  assertEquals(early.sent.length, 5);
  assertEquals(early.messages[4].snapshot?.connections.active, 4);

  const late = new Viewer();
  feed.open(asConnection(late));
  const history = late.messages[0].snapshots!;
  assertEquals(history.map((s) => s.connections.active), [2, 3, 4]); // the last 3
  // The history is the same text the early viewer was pushed.
  assertEquals(JSON.stringify(history[2]), JSON.stringify(early.messages[4].snapshot));

  // A viewer that does not read misses pushes instead of queueing them.
  late.bufferedAmount = 2 * 1024 * 1024;
  clock.advance(1_000);
  assertEquals(late.sent.length, 1);
  assertEquals(early.sent.length, 6);

  feed.close(asConnection(early));
  clock.advance(1_000);
  assertEquals(early.sent.length, 6);
  assertEquals(feed.viewers.size, 1);
  feed.stop();
  assertEquals(clock.pending, 0);
  assertThrows(() => new DashboardFeed(() => metrics.snapshot(), { interval: 0 }), RangeError);
});

Deno.test("monitoring routes: /metrics parses, /stats is JSON, /dashboard carries its CSP", () => {
  const metrics = new HeartwireMetrics();
  metrics.connectionOpened();
  const routes = monitoringRoutes(metrics);
  assertEquals(Object.keys(routes).sort(), ["/dashboard", "/metrics", "/stats"]);

  const text = routes["/metrics"]();
  assertEquals(text.status, 200);
  assertEquals(text.contentType, "text/plain; version=0.0.4; charset=utf-8");
  assertEquals(sampleReader(text.body)("heartwire_connections_active"), 1);

  const stats = routes["/stats"]();
  assertEquals(stats.contentType, "application/json");
  assertEquals(JSON.parse(stats.body).connections.opened, 1);

  const page = routes["/dashboard"]();
  assertEquals(page.contentType, "text/html; charset=utf-8");
  assertEquals(page.headers?.["Content-Security-Policy"], DASHBOARD_CSP);
  assertMatch(DASHBOARD_CSP, /default-src 'none'/);
});

Deno.test("dashboard page: self-contained, and its feed path cannot break out of the script", () => {
  const page = dashboardPage();
  assert(page.includes('const FEED = "/dashboard/ws";'));
  // Nothing from elsewhere: no src/href attributes, no absolute URLs, no imports.
  assert(!/\s(src|href)=/i.test(page), "no src or href attributes");
  assert(!/https?:\/\/(?!www\.w3\.org)/.test(page), "no absolute URLs");
  assert(!/\bimport\b/.test(page), "no module imports");
  // The viewport meta makes it readable on a phone.
  assert(page.includes('name="viewport"'));
  const hostile = dashboardPage({ feedPath: "/x</script><script>alert(1)//" });
  assertEquals(hostile.split("</script>").length, page.split("</script>").length);
});
