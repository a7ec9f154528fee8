/**
 * The pure half of `deno task bench:all` (bench/all.ts): flags, the order
 * servers run in, summaries, and RESULTS.md with its hand-drawn SVG chart.
 * No I/O here, so test/bench_report_test.ts can check it on made-up numbers.
 *
 * @module
 */
import { intFlag, parseFlags } from "./load/_flags.ts";

/**
 * One scenario of the comparison.
 *
 * @example
 * ```ts
 * import { SCENARIOS } from "./_report.ts";
 * console.log(SCENARIOS.map((scenario) => scenario.id).join(","));
 * ```
 */
export interface Scenario {
  /** Short name, as given to `--scenarios`. */
  id: string;
  /** The table's row heading. */
  title: string;
  /** The chart's (short) group label. */
  short: string;
  /** What one unit of the rate is. */
  unit: string;
}

/**
 * Every scenario, in report order.
 *
 * @example
 * ```ts
 * import { SCENARIOS } from "./_report.ts";
 * const echo = SCENARIOS.filter((scenario) => scenario.id.startsWith("echo"));
 * ```
 */
export const SCENARIOS: Scenario[] = [
  { id: "echo-64x16", title: "echo 64 B, 16 in flight", short: "64 B ×16", unit: "msg/s" },
  { id: "echo-64x1", title: "echo 64 B, 1 in flight", short: "64 B ×1", unit: "msg/s" },
  { id: "echo-16kx16", title: "echo 16 KiB, 16 in flight", short: "16 KiB ×16", unit: "msg/s" },
  { id: "fanout", title: "fan-out to N subscribers", short: "fan-out", unit: "deliveries/s" },
  { id: "churn", title: "connection churn", short: "churn", unit: "upgrades+closes/s" },
];

/**
 * The peers, in column order. `raw` is the bare `Deno.listen` loop: the
 * ceiling, not a WebSocket server.
 *
 * @example
 * ```ts
 * import { PEERS } from "./_report.ts";
 * console.log(PEERS.find((peer) => peer.name === "raw")?.label);
 * ```
 */
export const PEERS: { name: string; label: string; color: string }[] = [
  { name: "heartwire", label: "heartwire", color: "#d9480f" },
  { name: "deno", label: "Deno native", color: "#495057" },
  { name: "node", label: "ws 8 / Node", color: "#2b8a3e" },
  { name: "bun", label: "Bun", color: "#e8a317" },
  { name: "raw", label: "bare Deno.listen loop", color: "#1c7ed6" },
];

/**
 * What bench/all.ts runs.
 *
 * @example
 * ```ts
 * import { parseAllOptions } from "./_report.ts";
 * const options = parseAllOptions(["--quick"]);
 * console.log(options.rounds, options.subscribers);
 * ```
 */
export interface AllOptions {
  quick: boolean;
  /** Rounds; each runs every scenario against every server, in a rotated order. */
  rounds: number;
  /** Time (ms) each run warms up before counting. */
  warmup: number;
  /** Time (ms) each run counts. */
  duration: number;
  /** Echo connections. */
  connections: number;
  /** Fan-out subscribers. */
  subscribers: number;
  /** Fan-out broadcasts outstanding. */
  window: number;
  /** Churn connections cycling at once. */
  concurrency: number;
  /** Scenario ids to run. */
  scenarios: string[];
  /** Server names to run. */
  servers: string[];
  /** Directory RESULTS.md and results.svg go to; undefined: a quick run writes none. */
  out?: string;
  /** The server whose bars the chart scales to 1.0 (`raw` when run, else `deno`). */
  baseline: string;
  /** A results.json of an earlier run: write its report again instead of measuring. */
  render?: string;
}

/**
 * Parses bench/all.ts's flags. `--quick` changes the defaults to a ~30 s smoke
 * run (1 round, short windows, 500 subscribers, nothing written unless
 * `--out` is given); explicit flags still win.
 *
 * @example
 * ```ts
 * import { parseAllOptions } from "./_report.ts";
 * parseAllOptions(["--rounds", "3", "--subscribers", "2000"]).rounds; // 3
 * ```
 */
export function parseAllOptions(args: string[]): AllOptions {
  const flags = parseFlags(args, [
    "quick",
    "rounds",
    "warmup",
    "duration",
    "connections",
    "subscribers",
    "window",
    "concurrency",
    "scenarios",
    "servers",
    "out",
    "baseline",
    "render",
  ]);
  const quick = flags.get("quick") === "true";
  const list = (flag: string, all: string[]) => {
    const text = flags.get(flag);
    if (text === undefined) return all;
    const names = text.split(",").map((part) => part.trim()).filter((part) => part !== "");
    for (const name of names) {
      if (!all.includes(name)) throw new Error(`unknown --${flag} entry ${name}; known: ${all}`);
    }
    return names;
  };
  const options: AllOptions = {
    quick,
    rounds: intFlag(flags, "rounds", quick ? 1 : 2),
    warmup: intFlag(flags, "warmup", quick ? 200 : 500),
    duration: intFlag(flags, "duration", quick ? 500 : 2_000),
    connections: intFlag(flags, "connections", 100),
    subscribers: intFlag(flags, "subscribers", quick ? 500 : 5_000),
    window: intFlag(flags, "window", 64),
    concurrency: intFlag(flags, "concurrency", 32),
    scenarios: list("scenarios", SCENARIOS.map((scenario) => scenario.id)),
    servers: list("servers", PEERS.map((peer) => peer.name)),
    out: flags.get("out") ?? (quick ? undefined : "bench"),
    baseline: "",
    render: flags.get("render"),
  };
  const servers = options.servers;
  options.baseline = flags.get("baseline") ??
    (servers.includes("raw") ? "raw" : servers.includes("deno") ? "deno" : servers[0]);
  if (!servers.includes(options.baseline)) {
    throw new Error(`--baseline ${options.baseline} is not among --servers ${servers}`);
  }
  if (options.rounds < 1) throw new Error("--rounds must be ≥ 1");
  if (options.subscribers < 1 || options.subscribers > 19_000) {
    // One process per side, 20 000 open files each on this machine.
    throw new Error("--subscribers must be between 1 and 19 000");
  }
  return options;
}

/**
 * `items` rotated left by `round` places: round r starts with item r, so no
 * server always runs first (on a cold machine) or last (on a hot one).
 *
 * @example
 * ```ts
 * import { rotate } from "./_report.ts";
 * rotate(["a", "b", "c"], 1); // ["b", "c", "a"]
 * ```
 */
export function rotate<T>(items: T[], round: number): T[] {
  if (items.length === 0) return [];
  const k = ((round % items.length) + items.length) % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/**
 * Median and range of some runs.
 *
 * @example
 * ```ts
 * import { summarize } from "./_report.ts";
 * summarize([3, 1, 2]); // { median: 2, min: 1, max: 3, runs: 3 }
 * ```
 */
export interface Summary {
  median: number;
  min: number;
  max: number;
  runs: number;
}

/**
 * The median (mean of the middle two for an even count) and range of
 * `values`, or undefined when there are none.
 *
 * @example
 * ```ts
 * import { summarize } from "./_report.ts";
 * summarize([10, 20]); // { median: 15, min: 10, max: 20, runs: 2 }
 * ```
 */
export function summarize(values: number[]): Summary | undefined {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const middle = sorted.length >> 1;
  const median = sorted.length % 2 === 1
    ? sorted[middle]
    : (sorted[middle - 1] + sorted[middle]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1], runs: sorted.length };
}

/**
 * Everything one scenario × server pair produced over the rounds.
 *
 * @example
 * ```ts
 * import type { Cell } from "./_report.ts";
 * const cell: Cell = { rates: [1000, 1100], serverCpu: [0.98], clientCpu: [0.6], problems: [] };
 * ```
 */
export interface Cell {
  /** One rate per successful run. */
  rates: number[];
  /** Server CPU (cores) per run. */
  serverCpu: number[];
  /** Generator CPU (cores) per run. */
  clientCpu: number[];
  /** Failed runs, errors and corrupt messages, as text. */
  problems: string[];
}

/**
 * A whole bench:all run: cells by scenario id, then by server name.
 *
 * @example
 * ```ts
 * import type { Results } from "./_report.ts";
 * const empty: Results = { scenarios: [], servers: [], cells: {}, skipped: {} };
 * ```
 */
export interface Results {
  scenarios: string[];
  servers: string[];
  cells: Record<string, Record<string, Cell>>;
  /** Servers that could not run here, with the reason. */
  skipped: Record<string, string>;
}

/**
 * A rate in a few significant digits: `1.23 M`, `412 k`, `4.1 k`, `950`.
 *
 * @example
 * ```ts
 * import { formatRate } from "./_report.ts";
 * formatRate(412_345); // "412 k"
 * ```
 */
export function formatRate(value: number): string {
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)} M`;
  if (value >= 1e5) return `${Math.round(value / 1e3)} k`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)} k`;
  return String(Math.round(value));
}

/**
 * A ratio as `1.23×`, or `—` when it cannot be computed.
 *
 * @example
 * ```ts
 * import { formatRatio } from "./_report.ts";
 * formatRatio(2, 4); // "0.50×"
 * ```
 */
export function formatRatio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || b <= 0 ? "—" : `${(a / b).toFixed(2)}×`;
}

const scenarioOf = (id: string) => SCENARIOS.find((scenario) => scenario.id === id)!;
const peerOf = (name: string) =>
  PEERS.find((peer) => peer.name === name) ?? { name, label: name, color: "#868e96" };

/**
 * The median rate of one cell, if it has any run.
 *
 * @example
 * ```ts
 * import { medianOf, type Results } from "./_report.ts";
 * const results: Results = { scenarios: [], servers: [], cells: {}, skipped: {} };
 * medianOf(results, "churn", "deno"); // undefined
 * ```
 */
export function medianOf(results: Results, scenario: string, server: string): number | undefined {
  return summarize(results.cells[scenario]?.[server]?.rates ?? [])?.median;
}

/**
 * The results as Markdown tables: rates (median and range), the ratios
 * issue 13 sets goals for, the generator headroom check, and CPU use.
 *
 * @example
 * ```ts
 * import { renderTables } from "./_report.ts";
 * console.log(renderTables({ scenarios: [], servers: [], cells: {}, skipped: {} }));
 * ```
 */
export function renderTables(results: Results): string {
  const out: string[] = [];
  const servers = results.servers;
  let generatorBound = false;
  out.push(
    `| scenario | ${servers.map((name) => peerOf(name).label).join(" | ")} |`,
    `|---|${servers.map(() => "---:").join("|")}|`,
  );
  for (const id of results.scenarios) {
    const cells = servers.map((name) => {
      if (results.skipped[name] !== undefined) return "n/a";
      const summary = summarize(results.cells[id]?.[name]?.rates ?? []);
      if (summary === undefined) return "failed";
      const range = summary.runs > 1
        ? ` (${formatRate(summary.min)}–${formatRate(summary.max)})`
        : "";
      const generator = summarize(results.cells[id]?.[name]?.clientCpu ?? [])?.median;
      const bound = generator !== undefined && generator >= GENERATOR_BOUND;
      if (bound) generatorBound = true;
      return `${formatRate(summary.median)}${range}${bound ? " †" : ""}`;
    });
    out.push(`| ${scenarioOf(id).title}, ${scenarioOf(id).unit} | ${cells.join(" | ")} |`);
  }
  if (generatorBound) {
    out.push(
      "",
      `† the generator used ≥ ${GENERATOR_BOUND.toFixed(2)} core there: it, not the server, ` +
        "may have set that pace (a lower bound for the server).",
    );
  }

  const others = ["deno", "bun", "node", "raw"].filter((name) => servers.includes(name));
  if (servers.includes("heartwire") && others.length > 0) {
    out.push(
      "",
      "heartwire's median as a ratio of each peer's median:",
      "",
      `| scenario | ${others.map((name) => `÷ ${peerOf(name).label}`).join(" | ")} |`,
      `|---|${others.map(() => "---:").join("|")}|`,
    );
    for (const id of results.scenarios) {
      const mine = medianOf(results, id, "heartwire");
      const ratios = others.map((name) => formatRatio(mine, medianOf(results, id, name)));
      out.push(`| ${scenarioOf(id).title} | ${ratios.join(" | ")} |`);
    }
  }

  if (servers.includes("raw")) {
    out.push(
      "",
      "Generator headroom: the bare loop does the least work per message, so the same",
      "generator must drive it faster than any WebSocket server. Where it does not (a",
      "native server such as Bun can out-write a Deno loop), the generator's CPU in the",
      "fastest server's runs says whether the generator kept up: well under 1.00 core",
      "while the server is near it means the server set the pace.",
      "",
      "| scenario | bare loop | fastest server | bare loop ahead | generator CPU there |",
      "|---|---:|---:|---|---:|",
    );
    for (const id of results.scenarios) {
      const raw = medianOf(results, id, "raw");
      let best: { name: string; rate: number } | undefined;
      for (const name of servers) {
        const rate = medianOf(results, id, name);
        if (name === "raw" || rate === undefined) continue;
        if (best === undefined || rate > best.rate) best = { name, rate };
      }
      const ahead = raw === undefined || best === undefined
        ? "—"
        : raw > best.rate
        ? `yes (${formatRatio(raw, best.rate)})`
        : `NO (${formatRatio(raw, best.rate)})`;
      const generatorCpu = best === undefined
        ? undefined
        : summarize(results.cells[id]?.[best.name]?.clientCpu ?? [])?.median;
      const fastest = best === undefined
        ? "—"
        : `${formatRate(best.rate)} (${peerOf(best.name).label})`;
      out.push(
        `| ${scenarioOf(id).title} | ${raw === undefined ? "—" : formatRate(raw)} | ${fastest} | ` +
          `${ahead} | ${generatorCpu === undefined ? "—" : generatorCpu.toFixed(2)} |`,
      );
    }
  }

  out.push(
    "",
    "CPU over the counted window, median (cores; 1.00 = one core busy), server / generator:",
    "",
    `| scenario | ${servers.map((name) => peerOf(name).label).join(" | ")} |`,
    `|---|${servers.map(() => "---:").join("|")}|`,
  );
  for (const id of results.scenarios) {
    const cells = servers.map((name) => {
      const cell = results.cells[id]?.[name];
      const server = summarize(cell?.serverCpu ?? []);
      const client = summarize(cell?.clientCpu ?? []);
      return server === undefined || client === undefined
        ? "—"
        : `${server.median.toFixed(2)} / ${client.median.toFixed(2)}`;
    });
    out.push(`| ${scenarioOf(id).title} | ${cells.join(" | ")} |`);
  }

  const problems: string[] = [];
  for (const id of results.scenarios) {
    for (const name of servers) {
      for (const problem of results.cells[id]?.[name]?.problems ?? []) {
        problems.push(`- ${scenarioOf(id).title}, ${peerOf(name).label}: ${problem}`);
      }
    }
  }
  for (const [name, reason] of Object.entries(results.skipped)) {
    problems.push(`- ${peerOf(name).label} not run: ${reason}`);
  }
  if (problems.length > 0) out.push("", "Problems:", "", ...problems);
  return out.join("\n");
}

/** Generator CPU (cores, median) from which a figure is flagged as maybe generator-bound. */
const GENERATOR_BOUND = 0.9;

const escapeXml = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** A round step (1, 2 or 5 × 10ⁿ) giving about `ticks` grid lines up to `max`. */
function niceStep(max: number, ticks: number): number {
  const raw = max / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const factor of [1, 2, 5, 10]) if (factor * power >= raw) return factor * power;
  return 10 * power;
}

/**
 * The chart: for each scenario, a group of bars, one per server, each its
 * median divided by `baseline`'s median in the same scenario (so the
 * baseline's bar is 1.0, drawn as a dashed line), with whiskers over the
 * range of the runs. Hand-written SVG, no library.
 *
 * @example
 * ```ts
 * import { renderChart } from "./_report.ts";
 * const svg = renderChart({
 *   scenarios: ["churn"],
 *   servers: ["heartwire", "deno"],
 *   cells: {
 *     churn: {
 *       heartwire: { rates: [3000], serverCpu: [], clientCpu: [], problems: [] },
 *       deno: { rates: [2000], serverCpu: [], clientCpu: [], problems: [] },
 *     },
 *   },
 *   skipped: {},
 * }, "deno");
 * ```
 */
export function renderChart(results: Results, baseline: string): string {
  const servers = PEERS.map((peer) => peer.name).filter((name) => results.servers.includes(name));
  const width = 820, height = 400;
  const left = 56, right = 16, top = 64, bottom = 56;
  const plotWidth = width - left - right, plotHeight = height - top - bottom;

  interface Bar {
    name: string;
    ratio?: number;
    low?: number;
    high?: number;
  }
  const groups = results.scenarios.map((id) => {
    const base = medianOf(results, id, baseline);
    const bars: Bar[] = servers.map((name) => {
      const summary = summarize(results.cells[id]?.[name]?.rates ?? []);
      if (summary === undefined || base === undefined || base <= 0) return { name };
      return {
        name,
        ratio: summary.median / base,
        low: summary.min / base,
        high: summary.max / base,
      };
    });
    return { id, bars };
  });
  const highest = Math.max(1, ...groups.flatMap((group) => group.bars.map((bar) => bar.high ?? 0)));
  const step = niceStep(highest, 5);
  const yMax = Math.ceil(highest / step) * step;
  const y = (value: number) => top + plotHeight - (value / yMax) * plotHeight;
  const f = (value: number) => value.toFixed(1);

  const svg: string[] = [];
  svg.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">` +
      `${escapeXml(`Throughput relative to ${peerOf(baseline).label} (= 1.0)`)}</text>`,
    `<text x="${left}" y="40" fill="#495057">` +
      "median of the rounds; whiskers span the fastest and slowest run</text>",
  );
  // Grid and y axis.
  for (let value = 0; value <= yMax + step / 2; value += step) {
    svg.push(
      `<line x1="${left}" x2="${width - right}" y1="${f(y(value))}" y2="${f(y(value))}" ` +
        `stroke="#e9ecef"/>`,
      `<text x="${left - 6}" y="${f(y(value) + 4)}" text-anchor="end" fill="#495057">` +
        `${Number(value.toFixed(6))}×</text>`,
    );
  }
  svg.push(
    `<line x1="${left}" x2="${width - right}" y1="${f(y(1))}" y2="${f(y(1))}" ` +
      `stroke="#212529" stroke-dasharray="5 4"/>`,
  );
  // Bars.
  const groupWidth = plotWidth / Math.max(1, groups.length);
  const barWidth = (groupWidth * 0.8) / Math.max(1, servers.length);
  groups.forEach((group, g) => {
    const x0 = left + g * groupWidth + groupWidth * 0.1;
    group.bars.forEach((bar, b) => {
      const x = x0 + b * barWidth;
      const color = peerOf(bar.name).color;
      const middle = x + barWidth / 2;
      if (bar.ratio === undefined) {
        svg.push(
          `<text x="${f(middle)}" y="${f(y(0) - 4)}" text-anchor="middle" font-size="9" ` +
            `fill="#868e96">n/a</text>`,
        );
        return;
      }
      const label = `${peerOf(bar.name).label}, ${scenarioOf(group.id).title}: ` +
        `${bar.ratio.toFixed(2)}× (${bar.low!.toFixed(2)}–${bar.high!.toFixed(2)})`;
      svg.push(
        `<rect class="bar" x="${f(x + 1)}" y="${f(y(bar.ratio))}" width="${f(barWidth - 2)}" ` +
          `height="${f(y(0) - y(bar.ratio))}" fill="${color}"><title>${escapeXml(label)}</title>` +
          `</rect>`,
      );
      if (bar.high! > bar.low!) {
        svg.push(
          `<line x1="${f(middle)}" x2="${f(middle)}" y1="${f(y(bar.high!))}" ` +
            `y2="${f(y(bar.low!))}" stroke="#212529"/>`,
        );
      }
      svg.push(
        `<text x="${f(middle)}" y="${f(y(Math.max(bar.ratio, bar.high!)) - 4)}" ` +
          `text-anchor="middle" font-size="9">${bar.ratio.toFixed(bar.ratio < 10 ? 2 : 1)}</text>`,
      );
    });
    svg.push(
      `<text x="${f(left + g * groupWidth + groupWidth / 2)}" y="${f(y(0) + 18)}" ` +
        `text-anchor="middle">${escapeXml(scenarioOf(group.id).short)}</text>`,
    );
  });
  svg.push(
    `<line x1="${left}" x2="${width - right}" y1="${f(y(0))}" y2="${f(y(0))}" stroke="#212529"/>`,
  );
  // Legend, along the bottom.
  let legendX = left;
  for (const name of servers) {
    const label = peerOf(name).label;
    svg.push(
      `<rect x="${legendX}" y="${height - 22}" width="12" height="12" ` +
        `fill="${peerOf(name).color}"/>`,
      `<text x="${legendX + 16}" y="${height - 12}">${escapeXml(label)}</text>`,
    );
    legendX += 28 + label.length * 6.5;
  }
  svg.push("</svg>");
  return svg.join("\n") + "\n";
}

/**
 * Where and how the run happened, for the report's header.
 *
 * @example
 * ```ts
 * import type { RunInfo } from "./_report.ts";
 * const info: RunInfo = { date: "2026-01-01T00:00:00Z", command: "deno task bench:all",
 *   machine: ["2 cores"], settings: ["2 rounds"], chart: "results.svg" };
 * ```
 */
export interface RunInfo {
  /** ISO date and time the run started. */
  date: string;
  /** The exact command. */
  command: string;
  /** One line each: cores, CPU, memory, OS, runtime versions, load. */
  machine: string[];
  /** One line each: rounds, windows, connection counts. */
  settings: string[];
  /** The chart's file name, relative to RESULTS.md. */
  chart: string;
  /** Caveats to print prominently, e.g. a busy machine. */
  warnings?: string[];
}

/**
 * The whole of RESULTS.md.
 *
 * @example
 * ```ts
 * import { renderResultsPage } from "./_report.ts";
 * const page = renderResultsPage({ scenarios: [], servers: [], cells: {}, skipped: {} }, {
 *   date: "2026-01-01T00:00:00Z", command: "deno task bench:all", machine: [], settings: [],
 *   chart: "results.svg",
 * });
 * ```
 */
export function renderResultsPage(results: Results, info: RunInfo): string {
  return [
    "# heartwire benchmark results",
    "",
    "Generated by `deno task bench:all` (bench/all.ts); do not edit by hand. Every server runs",
    "as its own process, the load generator (bench/load/client.ts, bench/fanout/client.ts,",
    "bench/churn/client.ts: raw TCP on heartwire's protocol/) as another, over 127.0.0.1.",
    "Rates are medians over the rounds with the range in parentheses; servers run in a",
    "rotated order each round. Compare ratios within this run, not absolute numbers across",
    "machines.",
    "",
    `- Date: ${info.date}`,
    `- Command: \`${info.command}\``,
    ...info.machine.map((line) => `- ${line}`),
    ...info.settings.map((line) => `- ${line}`),
    "",
    ...(info.warnings ?? []).flatMap((line) => [`> **Warning:** ${line}`, ""]),
    `![throughput of each server relative to the chart's baseline](${info.chart})`,
    "",
    renderTables(results),
    "",
    "Scenarios:",
    "",
    "- **echo**: every connection keeps 16 (or 1) text messages in flight; a reply",
    "  replaces each echo at once. msg/s counts correct echoes.",
    "- **fan-out**: N connections on `/sub`, one publisher on `/pub`; every published",
    "  message goes to all N (heartwire: a `ws.send` loop over `serve()` connections until",
    "  hub/ topics land; Bun: `server.publish`; ws: the README's broadcast loop; Deno: a",
    "  `socket.send` loop). The publisher keeps a window of broadcasts outstanding. deliveries/s",
    "  counts messages received, each checked for order and content.",
    "- **churn**: workers each loop open TCP → upgrade → close frame → the server's close",
    "  frame → close TCP. The bare loop answers the upgrade and echoes the close frame.",
    "",
  ].join("\n");
}
