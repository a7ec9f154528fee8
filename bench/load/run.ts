/**
 * `deno task bench:load`: echo throughput of heartwire against its peers.
 *
 * For every in-flight setting and every server, the runner starts the server
 * as a subprocess (it prints `listening <port>`), runs the load client
 * (client.ts) as a second subprocess so each has its own core, samples both
 * processes' CPU time over the counted window, and stops the server. It then
 * prints one table of msg/s and the ratios issue 4 sets goals for.
 *
 * Servers (bench/load/servers/, listed in _servers.ts):
 * - `raw`: Deno.listen read→write loop, no WebSocket parsing (the ceiling);
 * - `floor` (only when named): the raw loop plus the string round trip every echo needs;
 * - `deno`: Deno.serve + Deno.upgradeWebSocket echo;
 * - `heartwire`: serve() with default options, route /echo;
 * - `node`: ws 8 on Node (skipped if `node` or ws is missing);
 * - `bun`: Bun.serve WebSocket (`$BUN`, `bun` on PATH, or installed once with npm: findBun).
 * - `heartwire-metrics`: heartwire counting into `HeartwireMetrics`, only when
 *   named. Name it with `heartwire` several times in ABBA order
 *   (`--servers heartwire,heartwire-metrics,heartwire-metrics,heartwire`), and
 *   the report adds the metrics-on / metrics-off ratio of each pair.
 *
 * Memory per idle connection is idle.ts (`deno task bench:idle`).
 *
 * ```sh
 * deno task bench:load [--connections 100] [--inflight 16,1] [--size 64]
 *   [--warmup 1000] [--duration 3000] [--servers raw,deno,heartwire,node,bun] [--json]
 * ```
 *
 * @module
 */
import { intFlag, intListFlag, parseFlags } from "./_flags.ts";
import type { LoadResult } from "./client.ts";
import { selectServers, SERVERS, type ServerSpec } from "./_servers.ts";
import { measureWith } from "./_measure.ts";

const file = (path: string) => new URL(path, import.meta.url).pathname;

interface Measurement {
  server: string;
  inflight: number;
  result?: LoadResult;
  serverCpu?: number;
  clientCpu?: number;
  error?: string;
}

export interface RunOptions {
  connections: number;
  size: number;
  warmup: number;
  duration: number;
}

/** The generator's `deno run` arguments for one echo run against `port`. */
export function echoGeneratorArgs(
  port: number,
  options: RunOptions & { inflight: number; maskedEcho?: boolean },
): string[] {
  const args = [
    "--allow-net",
    file("client.ts"),
    "--port",
    String(port),
    "--connections",
    String(options.connections),
    "--inflight",
    String(options.inflight),
    "--size",
    String(options.size),
    "--warmup",
    String(options.warmup),
    "--duration",
    String(options.duration),
  ];
  if (options.maskedEcho) args.push("--masked-echo");
  return args;
}

async function measure(
  spec: ServerSpec,
  command: string[],
  inflight: number,
  options: RunOptions,
): Promise<Measurement> {
  const m = await measureWith<LoadResult>(
    command,
    (port) => echoGeneratorArgs(port, { ...options, inflight, maskedEcho: spec.maskedEcho }),
  );
  return { server: spec.name, inflight, ...m };
}

const GOALS: Record<number, number> = { 16: 3, 1: 1 };

const percent = (value: number | undefined) =>
  value === undefined || Number.isNaN(value) ? "?" : `${Math.round(value * 100)}%`;
const thousands = (value: number) => value.toLocaleString("en-US");

function ratio(a: Measurement | undefined, b: Measurement | undefined): number | undefined {
  const x = a?.result?.msgPerSec, y = b?.result?.msgPerSec;
  return x !== undefined && y !== undefined && y > 0 ? x / y : undefined;
}

function report(
  measurements: Measurement[],
  skipped: string[],
  options: RunOptions,
  inflights: number[],
) {
  const out: string[] = [];
  out.push(
    `heartwire load benchmark: ${options.connections} connections, ${options.size} B text ` +
      `messages, ${options.warmup} ms warm-up + ${options.duration} ms counted, 127.0.0.1, ` +
      `${navigator.hardwareConcurrency} cores`,
    "",
    "| server | in flight | msg/s | server CPU | client CPU | corrupt | errors |",
    "|---|---:|---:|---:|---:|---:|---|",
  );
  for (const m of measurements) {
    const label = SERVERS.find((spec) => spec.name === m.server)!.label;
    if (m.result === undefined) {
      out.push(`| ${label} | ${m.inflight} | failed | | | | ${m.error?.split("\n")[0]} |`);
      continue;
    }
    out.push(
      `| ${label} | ${m.inflight} | ${thousands(m.result.msgPerSec)} | ${percent(m.serverCpu)} | ` +
        `${percent(m.clientCpu)} | ${m.result.corrupt} | ${m.result.errors.join("; ")} |`,
    );
  }
  for (const reason of skipped) out.push(`| ${reason} | | skipped | | | | |`);

  const find = (server: string, inflight: number) =>
    measurements.find((m) => m.server === server && m.inflight === inflight);
  const fmt = (value: number | undefined) => value === undefined ? "?" : `${value.toFixed(2)}×`;
  out.push(
    "",
    "| in flight | heartwire / Deno native | goal | heartwire / raw TCP |",
    "|---:|---:|---|---:|",
  );
  for (const inflight of inflights) {
    const vsDeno = ratio(find("heartwire", inflight), find("deno", inflight));
    // Issue 4's goals (100 connections, 64 B): ≥ 3× at 16 in flight, ≥ 1.0× at 1.
    const goal = GOALS[inflight];
    const verdict = goal === undefined || vsDeno === undefined
      ? ""
      : vsDeno >= goal
      ? " met"
      : " MISSED";
    out.push(
      `| ${inflight} | ${fmt(vsDeno)} | ${goal === undefined ? "—" : `≥ ${goal.toFixed(1)}×`}` +
        `${verdict} | ` +
        `${fmt(ratio(find("heartwire", inflight), find("raw", inflight)))} |`,
    );
  }
  const overhead = metricsOverhead(measurements, inflights);
  if (overhead.length > 0) out.push("", ...overhead);
  out.push(
    "",
    "The raw TCP row is the generator's headroom check: it must go well past heartwire. " +
      "A client CPU near 100% means the generator, not the server, set that row's pace.",
  );
  return out.join("\n");
}

/**
 * Metrics on / off: each `heartwire-metrics` run against the `heartwire` run
 * next to it (the same in-flight setting), as msg/s and as messages per
 * second of server CPU. On a machine shared with other work the second is
 * the steadier: contention cuts a run's rate and its CPU share together.
 */
function metricsOverhead(measurements: Measurement[], inflights: number[]): string[] {
  const out: string[] = [];
  const perCpu = (m: Measurement) => m.result!.msgPerSec / (m.serverCpu ?? NaN);
  const median = (values: number[]) => {
    const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  };
  for (const inflight of inflights) {
    // Consecutive runs of the two, two at a time: ABBA order cancels a drift or a
    // second-run effect that always running B second would count as B's cost.
    const runs = measurements.filter((m) =>
      m.inflight === inflight && m.result && m.server.startsWith("heartwire")
    );
    const pairs: { rate: number; cpu: number }[] = [];
    for (let i = 0; i + 1 < runs.length; i += 2) {
      const on = [runs[i], runs[i + 1]].find((m) => m.server === "heartwire-metrics");
      const off = [runs[i], runs[i + 1]].find((m) => m.server === "heartwire");
      if (!on || !off) continue;
      pairs.push({
        rate: on.result!.msgPerSec / off.result!.msgPerSec,
        cpu: perCpu(on) / perCpu(off),
      });
    }
    if (pairs.length === 0) continue;
    if (out.length === 0) {
      out.push(
        "| in flight | pairs | metrics on / off, msg/s (median; each pair) | " +
          "msg per server CPU-s (median; each pair) |",
        "|---:|---:|---|---|",
      );
    }
    const list = (values: number[]) => values.map((v) => v.toFixed(3)).join(", ");
    const rates = pairs.map((p) => p.rate), cpus = pairs.map((p) => p.cpu);
    out.push(
      `| ${inflight} | ${pairs.length} | ${median(rates).toFixed(3)}× (${list(rates)}) | ` +
        `${median(cpus).toFixed(3)}× (${list(cpus)}) |`,
    );
  }
  return out;
}

async function main(): Promise<void> {
  const flags = parseFlags(Deno.args, [
    "connections",
    "inflight",
    "size",
    "warmup",
    "duration",
    "servers",
    "json",
  ]);
  const options: RunOptions = {
    connections: intFlag(flags, "connections", 100),
    size: intFlag(flags, "size", 64),
    warmup: intFlag(flags, "warmup", 1_000),
    duration: intFlag(flags, "duration", 3_000),
  };
  const inflights = intListFlag(flags, "inflight", [16, 1]);
  const specs = selectServers(flags.get("servers"));

  const runnable: { spec: ServerSpec; command: string[] }[] = [];
  const skipped: string[] = [];
  for (const spec of specs) {
    const command = await spec.command();
    if (Array.isArray(command)) runnable.push({ spec, command });
    else skipped.push(`${spec.label}: ${command.skip}`);
  }

  const measurements: Measurement[] = [];
  // In-flight outermost: the rows that are compared with each other run close together in time.
  for (const inflight of inflights) {
    for (const { spec, command } of runnable) {
      const m = await measure(spec, command, inflight, options);
      const rate = m.result ? `${thousands(m.result.msgPerSec)} msg/s` : `failed: ${m.error}`;
      console.error(`${spec.name} × ${inflight} in flight: ${rate}`);
      measurements.push(m);
    }
  }
  console.log(report(measurements, skipped, options, inflights));
  if (flags.get("json") === "true") console.log(JSON.stringify({ options, measurements }, null, 2));
}

if (import.meta.main) await main();
