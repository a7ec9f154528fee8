/**
 * Keeps `deno task bench:all` working: its pure half (flags, rotation,
 * summaries, the Markdown tables and the hand-drawn SVG chart) on made-up
 * numbers, and short real runs of the fan-out and churn generators against
 * heartwire in this process.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes, assertThrows } from "@std/assert";
import {
  type Cell,
  formatRate,
  formatRatio,
  parseAllOptions,
  renderChart,
  renderResultsPage,
  renderTables,
  type Results,
  rotate,
  summarize,
} from "../bench/_report.ts";
import { runFanout } from "../bench/fanout/client.ts";
import { fanoutRoutes } from "../bench/fanout/servers/heartwire_fanout.ts";
import { runChurn } from "../bench/churn/client.ts";
import { echoHandler, serve, type WebSocketHandler } from "../server/mod.ts";

const cell = (rates: number[]): Cell => ({
  rates,
  serverCpu: rates.map(() => 0.9),
  clientCpu: rates.map(() => 0.5),
  problems: [],
});

/** Made-up results: heartwire twice Deno native, the bare loop 4×, Bun missing. */
const SAMPLE: Results = {
  scenarios: ["echo-64x16", "churn"],
  servers: ["heartwire", "deno", "bun", "raw"],
  cells: {
    "echo-64x16": {
      heartwire: cell([200_000, 180_000, 220_000]),
      deno: cell([100_000, 100_000]),
      raw: { ...cell([400_000]), clientCpu: [0.97] },
    },
    churn: {
      heartwire: cell([3_000]),
      deno: cell([2_000]),
      raw: cell([1_000]), // slower than the servers: the headroom check must say NO
    },
  },
  skipped: { bun: "bun is not on PATH" },
};

Deno.test("bench:all flags: --quick shrinks the defaults, explicit flags win, typos fail", () => {
  const full = parseAllOptions([]);
  assertEquals([full.rounds, full.subscribers, full.out], [2, 5_000, "bench"]);
  assertEquals(full.servers, ["heartwire", "deno", "node", "bun", "raw"]);
  assertEquals(full.baseline, "raw");
  assertEquals(parseAllOptions(["--servers", "heartwire,deno"]).baseline, "deno");
  assertThrows(
    () => parseAllOptions(["--servers", "deno", "--baseline", "bun"]),
    Error,
    "baseline",
  );
  const quick = parseAllOptions(["--quick"]);
  assertEquals([quick.rounds, quick.subscribers, quick.out], [1, 500, undefined]);
  assert(quick.duration < full.duration);
  const custom = parseAllOptions(["--quick", "--rounds=3", "--servers", "deno,heartwire"]);
  assertEquals([custom.rounds, custom.servers], [3, ["deno", "heartwire"]]);
  assertThrows(() => parseAllOptions(["--servers", "nginx"]), Error, "unknown --servers");
  assertThrows(() => parseAllOptions(["--scenarios", "echo"]), Error, "unknown --scenarios");
  assertThrows(() => parseAllOptions(["--subscribers", "50000"]), Error, "19 000");
  assertThrows(() => parseAllOptions(["--rounds", "0"]), Error, "rounds");
});

Deno.test("bench:all: rotation, median and range, number formats", () => {
  assertEquals(rotate(["a", "b", "c"], 0), ["a", "b", "c"]);
  assertEquals(rotate(["a", "b", "c"], 1), ["b", "c", "a"]);
  assertEquals(rotate(["a", "b", "c"], 5), ["c", "a", "b"]);
  assertEquals(summarize([3, 1, 2]), { median: 2, min: 1, max: 3, runs: 3 });
  assertEquals(summarize([10, 40, 20, 30]), { median: 25, min: 10, max: 40, runs: 4 });
  assertEquals(summarize([]), undefined);
  assertEquals(
    [formatRate(1_234_567), formatRate(412_345), formatRate(4_150), formatRate(950)],
    ["1.23 M", "412 k", "4.2 k", "950"],
  );
  assertEquals([formatRatio(1, 4), formatRatio(1, undefined), formatRatio(1, 0)], [
    "0.25×",
    "—",
    "—",
  ]);
});

Deno.test("bench:all tables: medians with ranges, ratios, headroom verdicts, skipped peers", () => {
  const text = renderTables(SAMPLE);
  // heartwire's median of [200k, 180k, 220k] with its range; Bun is n/a.
  assertStringIncludes(text, "| echo 64 B, 16 in flight, msg/s | 200 k (180 k–220 k) | 100 k ");
  assertStringIncludes(text, "| n/a |");
  assertStringIncludes(text, "| echo 64 B, 16 in flight | 2.00× | — | 0.50× |");
  assertStringIncludes(text, "| churn | 1.50× | — | 3.00× |".replace("churn", "connection churn"));
  assertMatch(
    text,
    /echo 64 B, 16 in flight \| 400 k \| 200 k \(heartwire\) \| yes \(2\.00×\) \| 0\.50 \|/,
  );
  assertMatch(text, /connection churn \| 1\.0 k \| 3\.0 k \(heartwire\) \| NO \(0\.33×\)/);
  assertStringIncludes(text, "Bun not run: bun is not on PATH");
  assertStringIncludes(text, "0.90 / 0.50");
  // The generator was busy in the bare loop's echo runs: that figure is flagged, no other.
  assertStringIncludes(text, "| 400 k † |");
  assertEquals(text.match(/ †/g)?.length, 1);
  assertStringIncludes(text, "† the generator used ≥ 0.90 core");
});

Deno.test("bench:all chart: bars are medians over the baseline's, drawn to scale", () => {
  const svg = renderChart(SAMPLE, "deno");
  assert(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  assert(svg.trimEnd().endsWith("</svg>"));
  const bars = [
    ...svg.matchAll(/<rect class="bar" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"/g),
  ]
    .map((match) => Number(match[1]));
  // echo: heartwire 2, deno 1, raw 4; churn: heartwire 1.5, deno 1, raw 0.5; Bun: none.
  assertEquals(bars.length, 6);
  const unit = bars[1];
  assert(unit > 0);
  const ratios = bars.map((height) => Math.round((height / unit) * 100) / 100);
  assertEquals(ratios, [2, 1, 4, 1.5, 1, 0.5]);
  assertEquals(svg.match(/>n\/a</g)?.length, 2); // Bun, in both groups
  assertStringIncludes(svg, "relative to Deno native");
  // Labels are escaped: no raw "<" inside text.
  for (const text of svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)) assert(!text[1].includes(">"));
});

Deno.test("bench:all page: date, command, machine and the chart link", () => {
  const page = renderResultsPage(SAMPLE, {
    date: "2026-11-27T17:00:00Z",
    command: "deno task bench:all --rounds 3",
    machine: ["CPU: 2 × Test CPU"],
    settings: ["Rounds: 3"],
    chart: "results.svg",
    warnings: ["the machine was busy"],
  });
  assertStringIncludes(page, "- Date: 2026-11-27T17:00:00Z");
  assertStringIncludes(page, "> **Warning:** the machine was busy");
  assertStringIncludes(page, "`deno task bench:all --rounds 3`");
  assertStringIncludes(page, "- CPU: 2 × Test CPU");
  assertStringIncludes(page, "](results.svg)");
  assertStringIncludes(page, renderTables(SAMPLE));
});

Deno.test("fan-out generator: every subscriber gets every broadcast, in order", async () => {
  const server = serve({ port: 0, hostname: "127.0.0.1", routes: fanoutRoutes() });
  try {
    const result = await runFanout({
      port: server.addr.port,
      subscribers: 40,
      window: 4,
      warmup: 50,
      duration: 300,
    });
    assertEquals(result.errors, []);
    assertEquals(result.corrupt, 0);
    assert(result.deliveries > 0 && result.broadcastsPerSec > 0, JSON.stringify(result));
    // Each completed broadcast is 40 deliveries; outstanding ones straddle the window's ends.
    assert(
      Math.abs(result.deliveries - 40 * result.broadcastsPerSec * result.durationMs / 1000) <
        40 * 4 * 2 + 40,
    );
  } finally {
    await server.shutdown({ timeout: 1_000 });
  }
});

Deno.test("fan-out generator: a server that skips a broadcast is caught", async () => {
  const routes = fanoutRoutes();
  let seen = 0;
  const publish = routes["/pub"];
  const skipping: WebSocketHandler = {
    message(ws, data) {
      // Drop the third broadcast, then pass the rest on.
      if (data !== "?" && ++seen === 3) return;
      publish.message!(ws, data);
    },
  };
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    routes: { ...routes, "/pub": skipping },
  });
  try {
    const result = await runFanout({
      port: server.addr.port,
      subscribers: 5,
      window: 4,
      warmup: 50,
      duration: 200,
    });
    assert(result.corrupt > 0, `a gap went unnoticed: ${JSON.stringify(result)}`);
    assert(result.errors.some((error) => error.includes("never reached everyone")));
  } finally {
    await server.shutdown({ timeout: 1_000 });
  }
});

Deno.test("churn generator: cycles upgrades and close handshakes against heartwire", async () => {
  const server = serve({ port: 0, hostname: "127.0.0.1", routes: { "/echo": echoHandler } });
  try {
    const result = await runChurn({
      port: server.addr.port,
      concurrency: 4,
      warmup: 50,
      duration: 300,
    });
    assertEquals(result.errors, []);
    assertEquals(result.failures, 0);
    assert(result.cycles > 0 && result.rate > 0, JSON.stringify(result));
    assert(server.stats.upgraded >= result.cycles);
  } finally {
    await server.shutdown({ timeout: 1_000 });
  }
});
