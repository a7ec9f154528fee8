/**
 * `deno task bench:detect`: dead-peer detection at scale. How long after a
 * peer goes silent does a server drop it, when many go silent at once among
 * many live ones, and does it drop any live one while at it? heartwire
 * against ws's isAlive recipe on Node and Deno's native `idleTimeout`, in the
 * same run, with the servers and load processes of `deno task bench:scale`
 * (scale.ts).
 *
 * For each server: open `--connections` idle connections that answer every
 * ping at once (bench/load/_scale_client.cjs, on Node), let pings flow for
 * `--hold` ms, then blackhole `--blackhole` of them at once, spread evenly
 * over all: they keep reading but discard everything, never answer a ping
 * again and send no FIN or RST — a peer whose network went away. The load
 * process times, for each, the span from its blackhole moment to the first
 * sign the server ended it (FIN, reset or close frame), on its own clock.
 * The run ends when every blackholed connection was dropped, or after
 * 3 × (interval + timeout).
 *
 * Reported per server: p50/p90/p99/max time to drop against the bound
 * interval + timeout, how many were never dropped, and false drops (live
 * connections the server ended, from the first open to the end).
 *
 * ```sh
 * deno task bench:detect [--connections 10000,2000] [--blackhole 1000,200] [--interval 1000]
 *   [--timeout 1000] [--hold 5000] [--clients N] [--servers heartwire,node,deno] [--json]
 * ```
 *
 * Bounds: heartwire pings after `interval` of silence (up to 10 % early,
 * `pingJitter`) and drops `timeout` after the ping was written, so a server
 * that keeps up drops a dead peer at most interval + timeout (+ its timer
 * heap's 5 ms coalescing) after it was last heard from — which is before
 * the blackhole. ws's recipe pings every `interval` in one pass and
 * terminates who did not answer by the next pass: at most 2 × interval
 * (the timeout is the interval). Deno's `idleTimeout` = (interval + timeout)
 * / 1000 s pings after half of it in silence and closes after the other
 * half: at most interval + timeout.
 *
 * @module
 */
import { intFlag, intListFlag, parseFlags } from "./_flags.ts";
import { output, startServer } from "./_servers.ts";
import { sleep } from "./_window.ts";
import type { ScaleMark } from "./_scale_client.ts";
import {
  freshLoopback,
  LoadProcess,
  loadProcesses,
  percentile,
  type ScaleOptions,
  type ScaleServer,
  scaleServer,
} from "./scale.ts";

/** A load process's mark once `blackhole` was asked (see _scale_client.cjs). */
interface DetectMark extends ScaleMark {
  /** Connections this process turned into dead peers. */
  blackholed: number;
  /** For each blackholed connection the server ended: ms from its blackhole moment to the end. */
  detectMs: number[];
}

interface DetectOptions extends ScaleOptions {
  blackhole: number;
}

/** What one server measured. */
interface DetectResult {
  server: string;
  connections: number;
  opened: number;
  failed: number;
  blackholed: number;
  /** Time to drop of each blackholed connection that was dropped (ms), ascending. */
  detectMs: number[];
  /** Blackholed connections still open when the run ended. */
  missed: number;
  /** Live connections the server ended. */
  falseDrops: number;
  /** The largest event-loop lag of any load process (ms): its timing is this coarse. */
  clientLagMs: number;
  /** Load average (1 min) when the blackhole began: what else the machine was doing. */
  loadAverage: number;
  /** What heartwire's stats said about the ends, if it said. */
  serverNote: string;
}

function loadAverage(): number {
  return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
}

async function runDetect(
  spec: ScaleServer,
  command: string[],
  hostname: string,
  options: DetectOptions,
): Promise<DetectResult> {
  const server = await startServer(command);
  const loads: LoadProcess[] = [];
  try {
    await sleep(500);
    const share = Math.ceil(options.connections / options.clients);
    const sizes: number[] = [];
    for (let left = options.connections; left > 0; left -= share) {
      sizes.push(Math.min(share, left));
      loads.push(new LoadProcess(hostname, server.port, Math.min(share, left), true));
    }
    await Promise.all(loads.map((load) => load.opened()));
    await sleep(options.hold);
    // Each process blackholes its share of the total, at (nearly) the same moment.
    let given = 0;
    const counts = sizes.map((size, i) => {
      const count = i === sizes.length - 1
        ? options.blackhole - given
        : Math.round(options.blackhole * size / options.connections);
      given += count;
      return count;
    });
    const load1 = loadAverage();
    const started = await Promise.all(
      loads.map((load, i) => load.mark(`blackhole ${counts[i]}`)),
    ) as DetectMark[];
    const blackholed = started.reduce((total, mark) => total + mark.blackholed, 0);
    const end = performance.now() + 3 * (options.interval + options.timeout);
    for (;;) {
      await sleep(100);
      const marks = await Promise.all(loads.map((load) => load.mark())) as DetectMark[];
      const detected = marks.reduce((total, mark) => total + mark.detectMs.length, 0);
      if (detected >= blackholed || performance.now() > end) break;
    }
    const last = await Promise.all(loads.map((load) => load.finish())) as DetectMark[];
    await server.stop();
    const detectMs = last.flatMap((mark) => mark.detectMs).sort((a, b) => a - b);
    return {
      server: spec.name,
      connections: options.connections,
      opened: last.reduce((total, mark) => total + mark.opened, 0),
      failed: last.reduce((total, mark) => total + mark.failed, 0),
      blackholed,
      detectMs,
      missed: blackholed - detectMs.length,
      falseDrops: last.reduce((total, mark) => total + mark.dropped, 0),
      clientLagMs: Math.max(...last.map((mark) => mark.maxLagMs)),
      loadAverage: load1,
      serverNote: /closed (\{.*\})/.exec(server.stderr())?.[1] ?? "",
    };
  } finally {
    for (const load of loads) load.kill();
    await server.stop();
  }
}

/**
 * The `p` quantile of the times to drop, counting a connection never dropped
 * as infinitely late (so a p99 with more than 1 % missed is ∞).
 */
function quantile(r: DetectResult, p: number): number {
  const all = [...r.detectMs, ...Array(r.missed).fill(Infinity)];
  return all.length === 0 ? NaN : percentile(all, p);
}

const ms = (value: number) => Number.isFinite(value) ? `${Math.round(value)} ms` : "∞";

function report(results: DetectResult[], skipped: string[], options: DetectOptions): string {
  const bound = options.interval + options.timeout;
  const out: string[] = [
    `Dead-peer detection: idle WebSockets answering every ping, then some blackholed at once ` +
    `(no more reads acted on, no pongs, no FIN); interval ${options.interval} ms, timeout ` +
    `${options.timeout} ms (bound interval + timeout = ${bound} ms; goal p99 ≤ ${
      bound + 50
    } ms); ` +
    `${options.hold / 1000} s of pings before; load on Node in separate processes; 127.x.y.z ` +
    `loopback; ${navigator.hardwareConcurrency} cores shared by server and load (and whatever ` +
    `else runs: load average at the blackhole is given)`,
    "",
    "| server | connections | blackholed | p50 | p90 | p99 | max | never dropped | " +
    "false drops | max client lag | load avg |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of results) {
    const label = scaleServer(r.server).label;
    out.push(
      `| ${label} | ${r.opened.toLocaleString("en-US")} | ${r.blackholed} | ` +
        `${ms(quantile(r, 0.5))} | ${ms(quantile(r, 0.9))} | ${ms(quantile(r, 0.99))} | ` +
        `${ms(r.missed > 0 ? Infinity : r.detectMs.at(-1) ?? NaN)} | ${r.missed} | ` +
        `${r.falseDrops} | ${r.clientLagMs} ms | ${r.loadAverage.toFixed(1)} |`,
    );
  }
  for (const reason of skipped) out.push(`| ${reason} | skipped | | | | | | | | | |`);
  out.push("");
  for (const r of results) {
    const p99 = quantile(r, 0.99);
    out.push(
      `${r.server} @ ${r.connections}: p99 − (interval + timeout) = ${
        Number.isFinite(p99) ? `${Math.round(p99 - bound)} ms` : "∞"
      } (goal ≤ 50 ms), false drops ${r.falseDrops} (goal 0): ${
        p99 <= bound + 50 && r.falseDrops === 0 ? "met" : "missed"
      }`,
    );
    if (r.serverNote) out.push(`${r.server} @ ${r.connections}: server ends ${r.serverNote}`);
  }
  for (const connections of new Set(results.map((r) => r.connections))) {
    const of = (name: string) =>
      results.find((r) => r.server === name && r.connections === connections);
    const hw = of("heartwire");
    if (hw === undefined) continue;
    for (const peer of ["node", "deno"]) {
      const p = of(peer);
      if (p === undefined) continue;
      const ratio = (q: number) => (quantile(hw, q) / quantile(p, q)).toFixed(2);
      out.push(
        `${connections.toLocaleString("en-US")}: heartwire / ${peer} time to drop: ` +
          `p50 ${ratio(0.5)}×, p99 ${ratio(0.99)}× (lower is better)`,
      );
    }
  }
  return out.join("\n");
}

async function main(): Promise<void> {
  const flags = parseFlags(Deno.args, [
    "connections",
    "blackhole",
    "interval",
    "timeout",
    "hold",
    "clients",
    "servers",
    "json",
  ]);
  const counts = intListFlag(flags, "connections", [10_000, 2_000]);
  const blackholes = intListFlag(flags, "blackhole", counts.map((n) => Math.round(n / 10)));
  if (counts.some((n) => !(n >= 1 && n <= 19_000))) {
    throw new RangeError("--connections: each count between 1 and 19 000 (20 000 files/process)");
  }
  if (blackholes.length !== counts.length || blackholes.some((b, i) => !(b <= counts[i]))) {
    throw new RangeError("--blackhole: one count per --connections count, each at most it");
  }
  if ((await output("node", ["--version"])) === null) {
    throw new Error("the load generator runs on Node: node is not on PATH");
  }
  const base = {
    interval: intFlag(flags, "interval", 1_000),
    timeout: intFlag(flags, "timeout", 1_000),
    hold: intFlag(flags, "hold", 5_000),
    settle: 0,
  };
  const names = (flags.get("servers") ?? "heartwire,node,deno").split(",");
  const results: DetectResult[] = [];
  const skipped: string[] = [];
  for (const [index, connections] of counts.entries()) {
    const clients = loadProcesses(flags, connections);
    for (const name of names) {
      const spec = scaleServer(name);
      const hostname = freshLoopback();
      const options = { ...base, connections, clients, blackhole: blackholes[index] };
      const command = await spec.command(hostname, options);
      if (!Array.isArray(command)) {
        if (index === 0) skipped.push(`${spec.label}: ${command.skip}`);
        continue;
      }
      const r = await runDetect(spec, command, hostname, options);
      console.error(
        `${name} @ ${connections}: ${r.blackholed} blackholed, p50 ${ms(quantile(r, 0.5))}, ` +
          `p99 ${ms(quantile(r, 0.99))}, never dropped ${r.missed}, false drops ${r.falseDrops}`,
      );
      results.push(r);
    }
  }
  console.log(report(results, skipped, { ...base, connections: 0, clients: 0, blackhole: 0 }));
  if (flags.get("json") === "true") console.log(JSON.stringify(results, null, 2));
}

if (import.meta.main) await main();
