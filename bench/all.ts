/**
 * `deno task bench:all`: every scenario against every peer, written up as
 * bench/RESULTS.md with a chart (bench/results.svg) this script draws itself.
 *
 * Scenarios (bench/_report.ts): echo 64 B with 16 and 1 in flight and 16 KiB
 * with 16 (bench/load/client.ts), fan-out to N subscribers
 * (bench/fanout/client.ts) and connection churn (bench/churn/client.ts).
 * Peers (bench/load/_servers.ts): heartwire, Deno native, ws 8 on Node, Bun
 * (found or installed with npm, see findBun), and the bare `Deno.listen`
 * loop as the ceiling. Each run starts its server as one process and its
 * generator as another (measureWith), so each has a core of its own on a
 * 2-core machine.
 *
 * Every round runs every scenario against every server, the servers in an
 * order rotated by one each round; the report gives the median and range.
 *
 * ```sh
 * deno task bench:all [--quick] [--rounds 2] [--warmup 500] [--duration 2000]
 *   [--connections 100] [--subscribers 5000] [--window 64] [--concurrency 32]
 *   [--scenarios echo-64x16,echo-64x1,echo-16kx16,fanout,churn]
 *   [--servers heartwire,deno,node,bun,raw] [--baseline raw] [--out bench]
 * deno task bench:all --render bench/results.json [--baseline deno]   # re-draw, no runs
 * ```
 *
 * The defaults take about 3–4 minutes; `--quick` (1 round, short windows,
 * 500 subscribers) about 30 s and writes nothing unless `--out` is given.
 *
 * @module
 */
import { findBun, findWsPackage, output, SERVERS, type ServerSpec } from "./load/_servers.ts";
import { measureWith } from "./load/_measure.ts";
import { echoGeneratorArgs } from "./load/run.ts";
import type { LoadResult } from "./load/client.ts";
import type { FanoutResult } from "./fanout/client.ts";
import type { ChurnResult } from "./churn/client.ts";
import {
  type AllOptions,
  type Cell,
  formatRate,
  parseAllOptions,
  renderChart,
  renderResultsPage,
  renderTables,
  type Results,
  rotate,
  type RunInfo,
  SCENARIOS,
} from "./_report.ts";

const file = (path: string) => new URL(path, import.meta.url).pathname;

interface RunOutcome {
  rate?: number;
  serverCpu?: number;
  clientCpu?: number;
  problems: string[];
}

/** Message size and messages in flight of each echo scenario. */
const ECHO_SHAPES: Record<string, { size: number; inflight: number }> = {
  "echo-64x16": { size: 64, inflight: 16 },
  "echo-64x1": { size: 64, inflight: 1 },
  "echo-16kx16": { size: 16 * 1024, inflight: 16 },
};

/** One run of scenario `id` against `spec` (whose command is `command`). */
async function runOne(
  id: string,
  spec: ServerSpec,
  command: string[],
  options: AllOptions,
): Promise<RunOutcome> {
  const timing = { warmup: options.warmup, duration: options.duration };
  const masked = spec.maskedEcho ? ["--masked-echo"] : [];
  const common = (port: number) => [
    "--port",
    String(port),
    "--warmup",
    String(timing.warmup),
    "--duration",
    String(timing.duration),
    ...masked,
  ];
  if (id.startsWith("echo-")) {
    const { size, inflight } = ECHO_SHAPES[id];
    const m = await measureWith<LoadResult>(command, (port) =>
      echoGeneratorArgs(port, {
        connections: options.connections,
        size,
        inflight,
        ...timing,
        maskedEcho: spec.maskedEcho,
      }));
    const problems = m.error ? [m.error.split("\n")[0]] : [];
    if (m.result?.corrupt) problems.push(`${m.result.corrupt} corrupt echoes`);
    problems.push(...(m.result?.errors ?? []));
    return { rate: m.result?.msgPerSec, ...cpu(m), problems };
  }
  if (id === "fanout") {
    const m = await measureWith<FanoutResult>(command, (port) => [
      "--allow-net",
      file("fanout/client.ts"),
      "--subscribers",
      String(options.subscribers),
      "--window",
      String(options.window),
      ...common(port),
    ]);
    const problems = m.error ? [m.error.split("\n")[0]] : [];
    if (m.result?.corrupt) problems.push(`${m.result.corrupt} deliveries out of order or wrong`);
    problems.push(...(m.result?.errors ?? []));
    return { rate: m.result?.rate, ...cpu(m), problems };
  }
  const m = await measureWith<ChurnResult>(command, (port) => [
    "--allow-net",
    file("churn/client.ts"),
    "--concurrency",
    String(options.concurrency),
    ...common(port),
  ]);
  const problems = m.error ? [m.error.split("\n")[0]] : [];
  if (m.result?.failures) problems.push(`${m.result.failures} failed cycles`);
  problems.push(...(m.result?.errors ?? []).slice(0, 2));
  return { rate: m.result?.rate, ...cpu(m), problems };
}

/** The 1-minute load average, 0 if unknown. */
function loadAverage(): number {
  try {
    return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]) || 0;
  } catch {
    return 0;
  }
}

function cpu(m: { serverCpu?: number; clientCpu?: number }) {
  return { serverCpu: m.serverCpu, clientCpu: m.clientCpu };
}

/** The machine, as the report's header states it. */
async function describeMachine(): Promise<string[]> {
  const here = new URL("..", import.meta.url).pathname;
  const commit = await output("git", ["-C", here, "rev-parse", "--short", "HEAD"]);
  const dirty = await output("git", ["-C", here, "status", "--porcelain", "--untracked-files=no"]);
  const read = (path: string) => {
    try {
      return Deno.readTextFileSync(path);
    } catch {
      return "";
    }
  };
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(read("/proc/cpuinfo"))?.[1] ?? "unknown";
  const memKb = Number(/^MemTotal:\s*(\d+)/m.exec(read("/proc/meminfo"))?.[1] ?? NaN);
  const os = /^PRETTY_NAME="?([^"\n]+)"?/m.exec(read("/etc/os-release"))?.[1] ?? Deno.build.os;
  const nproc = (await output("nproc", [])) ?? String(navigator.hardwareConcurrency);
  const node = (await output("node", ["--version"])) ?? "not found";
  const bun = await findBun();
  const bunVersion = typeof bun === "string" ? await output(bun, ["--version"]) : null;
  const ws = /\/ws\/([^/]+)\//.exec((await findWsPackage()) ?? "")?.[1] ?? "n/a";
  const load = read("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  return [
    `CPU: ${nproc} × ${cpuModel} (nproc ${nproc})`,
    `Memory: ${Number.isFinite(memKb) ? `${(memKb / 1024 / 1024).toFixed(1)} GiB` : "unknown"}`,
    `OS: ${os}, kernel ${Deno.osRelease()}`,
    `Deno ${Deno.version.deno} (V8 ${Deno.version.v8}), Node ${node} with ws ${ws}, ` +
    `Bun ${bunVersion ?? "n/a"}`,
    `Load average at start (1, 5, 15 min): ${load || "unknown"}`,
    `heartwire commit: ${commit ?? "unknown"}${dirty ? " (with uncommitted changes)" : ""}`,
  ];
}

/** Writes RESULTS.md, results.svg and results.json into `out`. */
async function write(out: string, results: Results, info: RunInfo, options: AllOptions) {
  await Deno.mkdir(out, { recursive: true });
  await Deno.writeTextFile(`${out}/results.svg`, renderChart(results, options.baseline));
  await Deno.writeTextFile(`${out}/RESULTS.md`, renderResultsPage(results, info));
  await Deno.writeTextFile(
    `${out}/results.json`,
    JSON.stringify({ info, options, results }, null, 2) + "\n",
  );
  // Formatted as `deno task check` expects the repo's files to be (it formats SVG too).
  const files = ["RESULTS.md", "results.svg", "results.json"].map((name) => `${out}/${name}`);
  await output(Deno.execPath(), ["fmt", "--quiet", ...files]);
  console.error(`wrote ${out}/RESULTS.md, results.svg and results.json`);
}

async function main(): Promise<void> {
  const options = parseAllOptions(Deno.args);
  if (options.render !== undefined) {
    // Re-render an earlier run (after a change to the report's layout), measuring nothing.
    const saved = JSON.parse(await Deno.readTextFile(options.render));
    const baseline = Deno.args.some((arg) => arg.startsWith("--baseline"))
      ? options.baseline
      : saved.options.baseline ?? "deno";
    await write(options.out ?? "bench", saved.results, saved.info, { ...saved.options, baseline });
    return;
  }
  const started = new Date();
  const command = ["deno task bench:all", ...Deno.args].join(" ");

  const results: Results = {
    scenarios: options.scenarios,
    servers: [],
    cells: {},
    skipped: {},
  };
  const runnable: { spec: ServerSpec; echo: string[]; fanout: string[] }[] = [];
  for (const name of options.servers) {
    const spec = SERVERS.find((candidate) => candidate.name === name)!;
    results.servers.push(name);
    const echo = await spec.command("echo");
    const fanout = await spec.command("fanout");
    if (!Array.isArray(echo) || !Array.isArray(fanout)) {
      const reason = Array.isArray(echo) ? fanout : echo;
      results.skipped[name] = Array.isArray(reason) ? "cannot start" : reason.skip;
      continue;
    }
    runnable.push({ spec, echo, fanout });
  }
  for (const id of options.scenarios) {
    results.cells[id] = {};
    for (const { spec } of runnable) {
      results.cells[id][spec.name] = { rates: [], serverCpu: [], clientCpu: [], problems: [] };
    }
  }
  const machine = await describeMachine();
  const loadAtStart = loadAverage();

  for (let round = 0; round < options.rounds; round++) {
    for (const id of options.scenarios) {
      for (const { spec, echo, fanout } of rotate(runnable, round)) {
        const outcome = await runOne(id, spec, id === "fanout" ? fanout : echo, options);
        const cell: Cell = results.cells[id][spec.name];
        if (outcome.rate !== undefined) cell.rates.push(outcome.rate);
        if (outcome.serverCpu !== undefined) cell.serverCpu.push(outcome.serverCpu);
        if (outcome.clientCpu !== undefined) cell.clientCpu.push(outcome.clientCpu);
        for (const problem of outcome.problems) {
          if (!cell.problems.includes(problem)) cell.problems.push(problem);
        }
        const unit = SCENARIOS.find((scenario) => scenario.id === id)!.unit;
        console.error(
          `round ${round + 1}/${options.rounds} ${id} ${spec.name}: ` +
            (outcome.rate === undefined
              ? `failed ${outcome.problems[0] ?? ""}`
              : `${formatRate(outcome.rate)} ${unit}`),
        );
      }
    }
  }

  const settings = [
    `Rounds: ${options.rounds}; each run ${options.warmup} ms warm-up + ` +
    `${options.duration} ms counted`,
    `Echo: ${options.connections} connections; fan-out: ${options.subscribers} subscribers, ` +
    `${options.window} broadcasts outstanding, 64 B; churn: ${options.concurrency} at once`,
    `Load average at the end: ${
      (() => {
        try {
          return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
        } catch {
          return "unknown";
        }
      })()
    }`,
  ];
  const warnings: string[] = [];
  const cores = navigator.hardwareConcurrency;
  const loadAtEnd = loadAverage();
  // Our own server and generator add about 2 to the load while we run.
  if (loadAtStart > cores / 2 || loadAtEnd > 2 + cores / 2) {
    warnings.push(
      `other work shared the machine during this run (load average ${loadAtStart.toFixed(1)} ` +
        `at the start, ${loadAtEnd.toFixed(1)} at the end, on ${cores} cores, of which this ` +
        "run's server and generator account for about 2 at the end): the figures below are " +
        "unreliable. Re-run on a quiet machine.",
    );
  }
  const info: RunInfo = {
    warnings,
    date: started.toISOString().replace(/\.\d+Z$/, "Z"),
    command,
    machine,
    settings,
    chart: "results.svg",
  };
  console.log(renderTables(results));
  if (options.out !== undefined) await write(options.out, results, info, options);
}

if (import.meta.main) await main();
