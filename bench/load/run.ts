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
 * - `deno`: Deno.serve + Deno.upgradeWebSocket echo;
 * - `heartwire`: serve() with default options, route /echo;
 * - `node`: ws 8 on Node (skipped if `node` or ws is missing);
 * - `bun`: Bun.serve WebSocket (skipped unless `bun` is on PATH).
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
import {
  lines,
  output,
  type RunningServer,
  selectServers,
  SERVERS,
  type ServerSpec,
  startServer,
  tail,
} from "./_servers.ts";

const deno = Deno.execPath();
const file = (path: string) => new URL(path, import.meta.url).pathname;

let clockTicks = 100;

/** User + system CPU seconds a process has used so far (Linux /proc). */
function cpuSeconds(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return NaN;
  }
}

interface Measurement {
  server: string;
  inflight: number;
  result?: LoadResult;
  serverCpu?: number;
  clientCpu?: number;
  error?: string;
}

interface RunOptions {
  connections: number;
  size: number;
  warmup: number;
  duration: number;
}

async function measure(
  spec: ServerSpec,
  command: string[],
  inflight: number,
  options: RunOptions,
): Promise<Measurement> {
  const measurement: Measurement = { server: spec.name, inflight };
  let server: RunningServer;
  try {
    server = await startServer(command);
  } catch (error) {
    measurement.error = String(error);
    return measurement;
  }
  try {
    const args = [
      "run",
      "--allow-net",
      file("client.ts"),
      "--port",
      String(server.port),
      "--connections",
      String(options.connections),
      "--inflight",
      String(inflight),
      "--size",
      String(options.size),
      "--warmup",
      String(options.warmup),
      "--duration",
      String(options.duration),
    ];
    if (spec.maskedEcho) args.push("--masked-echo");
    const client = new Deno.Command(deno, { args, stdout: "piped", stderr: "piped" }).spawn();
    const clientErrors = tail(client.stderr);
    let start: { wall: number; server: number; client: number } | undefined;
    for await (const line of lines(client.stdout)) {
      const message = JSON.parse(line);
      if (message.phase === "measuring") {
        start = {
          wall: performance.now(),
          server: cpuSeconds(server.pid),
          client: cpuSeconds(client.pid),
        };
      } else if (message.phase === "measured" && start !== undefined) {
        const wall = (performance.now() - start.wall) / 1000;
        measurement.serverCpu = (cpuSeconds(server.pid) - start.server) / wall;
        measurement.clientCpu = (cpuSeconds(client.pid) - start.client) / wall;
      } else if ("msgPerSec" in message) {
        measurement.result = message;
      }
    }
    const status = await client.status;
    await clientErrors.done;
    if (!status.success || measurement.result === undefined) {
      measurement.error = `client exited with ${status.code}: ${clientErrors.text()}`;
    }
  } catch (error) {
    measurement.error = String(error);
  } finally {
    await server.stop();
  }
  if (measurement.error && server.stderr()) measurement.error += `\nserver: ${server.stderr()}`;
  return measurement;
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
  out.push(
    "",
    "The raw TCP row is the generator's headroom check: it must go well past heartwire. " +
      "A client CPU near 100% means the generator, not the server, set that row's pace.",
  );
  return out.join("\n");
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
  clockTicks = Number(await output("getconf", ["CLK_TCK"])) || 100;

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
