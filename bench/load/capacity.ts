/**
 * `deno task bench:capacity`: how many idle WebSocket connections the program
 * holds across `--workers` processes on one port (as `--workers N` runs them:
 * `reusePort`, under the Supervisor), each with a heartbeat, and what that
 * costs: RSS per connection and the CPU the heartbeats take.
 *
 * The heartbeat is the client's by default, as a browser's app heartbeat
 * is: every connection pings every `--heartbeat` ms (from a random phase)
 * and the server answers each with a pong, while its own keepalive
 * (`--ping-interval`, default 5 000, timeout the same) stays quiet because
 * the peer is heard from. With `--heartbeat 0` the servers ping instead, every
 * `--ping-interval` ms, and the clients answer; a client that falls behind
 * (opening thousands of connections on a busy machine) then misses pongs
 * and is dropped, which the report counts.
 *
 * One process may hold 20 000 open files here, so neither side fits in one:
 * the workers split the connections (the kernel spreads them), and the load
 * comes from `--clients` processes, each connecting from its own loopback
 * source address (127.0.0.2, .3, …) so that no one address runs out of
 * ephemeral ports (~28 000 per destination). Each client process is this
 * script with `--client`: it opens its share `--batch` at a time, completes
 * each handshake (RFC 6455 §4.1), answers every ping with a masked pong, and
 * reports when asked.
 *
 * The run: start the workers; read their RSS (the baseline); open every
 * connection; settle; read RSS again and the CPU time (utime + stime, from
 * /proc) of every process over `--hold` ms of pure heartbeats; count the
 * pings answered and the connections the servers dropped; stop everything.
 *
 * ```sh
 * deno task bench:capacity [--connections 70000] [--workers 4] [--clients 5]
 *   [--heartbeat 1000] [--ping-interval 5000] [--hold 10000] [--batch 250] [--settle 3000]
 * ```
 *
 * @module
 */
import net from "node:net";
import { FrameDecoder } from "../../protocol/frame_decoder.ts";
import { encodeFrame } from "../../protocol/frame_encoder.ts";
import { buildUpgradeRequest, generateKey } from "../../protocol/handshake.ts";
import { commandWorker, Supervisor, type WorkerHandle } from "../../server/_supervisor.ts";
import { systemClock } from "../../server/timer_heap.ts";
import { intFlag, parseFlags } from "./_flags.ts";
import { readMemory } from "./_proc.ts";

const MAIN = new URL("../../server/main.ts", import.meta.url).pathname;
const SELF = new URL(import.meta.url).pathname;
/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ). */
const USER_HZ = 100;

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // The command name may hold spaces: fields are counted after its ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / USER_HZ; // utime, stime
}

/** What a client process reports. */
interface ClientReport {
  opened: number;
  failed: number;
  open: number;
  dropped: number;
  /** Pings of the server's, answered. */
  pings: number;
  /** Pongs to our own heartbeat pings. */
  pongs: number;
  errors: string[];
}

const PING = new Uint8Array(0);

// ---------------------------------------------------------------- client side

/**
 * One idle connection from `source`: handshake, then a ping every
 * `heartbeat` ms (from a random phase) if it is not 0, and a pong for every
 * ping of the server's.
 */
function openIdle(
  port: number,
  source: string,
  heartbeat: number,
  report: ClientReport,
  closing: { value: boolean },
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress: source });
    let head: Uint8Array | undefined = new Uint8Array(0);
    let decoder: FrameDecoder | undefined;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("no handshake within 30 s"));
    }, 30_000);
    const frames = (bytes: Uint8Array) => {
      decoder ??= new FrameDecoder({ role: "client" });
      for (const event of decoder.push(bytes)) {
        if (event.type === "ping") {
          report.pings++;
          socket.write(encodeFrame(0xa, event.data, { mask: true }));
        } else if (event.type === "pong") {
          report.pongs++;
        } else if (event.type === "close" || event.type === "error") {
          socket.destroy();
        }
      }
    };
    socket.on("connect", () => {
      socket.write(
        buildUpgradeRequest({ host: `127.0.0.1:${port}`, path: "/echo", key: generateKey() }),
      );
    });
    socket.on("data", (chunk: Uint8Array) => {
      if (head === undefined) return frames(chunk);
      const joined = new Uint8Array(head.length + chunk.length);
      joined.set(head);
      joined.set(chunk, head.length);
      const text = new TextDecoder().decode(joined);
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) {
        head = joined;
        return;
      }
      head = undefined;
      clearTimeout(timer);
      if (!text.startsWith("HTTP/1.1 101")) {
        socket.destroy();
        return reject(new Error(text.split("\r\n", 1)[0]));
      }
      report.open++;
      resolve(socket);
      if (heartbeat > 0) {
        const beat = () => socket.write(encodeFrame(0x9, PING, { mask: true }));
        const phase = setTimeout(() => {
          beat();
          const every = setInterval(beat, heartbeat);
          socket.on("close", () => clearInterval(every));
        }, Math.random() * heartbeat);
        socket.on("close", () => clearTimeout(phase));
      }
      const rest = joined.subarray(new TextEncoder().encode(text.slice(0, end + 4)).length);
      if (rest.length > 0) frames(rest);
    });
    socket.on("error", (error: Error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on("close", () => {
      if (head === undefined) {
        report.open--;
        if (!closing.value) report.dropped++;
      }
    });
  });
}

async function client(flags: Map<string, string>): Promise<void> {
  const port = intFlag(flags, "port", 0);
  const count = intFlag(flags, "count", 0);
  const batch = intFlag(flags, "batch", 250);
  const source = flags.get("source") ?? "127.0.0.2";
  const heartbeat = intFlag(flags, "heartbeat", 0);
  const report: ClientReport = {
    opened: 0,
    failed: 0,
    open: 0,
    dropped: 0,
    pings: 0,
    pongs: 0,
    errors: [],
  };
  const closing = { value: false };
  const sockets: net.Socket[] = [];
  for (let started = 0; started < count; started += batch) {
    const size = Math.min(batch, count - started);
    const results = await Promise.allSettled(
      Array.from({ length: size }, () => openIdle(port, source, heartbeat, report, closing)),
    );
    for (const result of results) {
      if (result.status === "fulfilled") {
        sockets.push(result.value);
        report.opened++;
      } else {
        report.failed++;
        const message = String((result.reason as Error)?.message ?? result.reason);
        if (report.errors.length < 5 && !report.errors.includes(message)) {
          report.errors.push(message);
        }
      }
    }
  }
  console.log(JSON.stringify(report));
  // The parent writes a line to get a report, and closes stdin to stop us.
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  for await (const _ of lines) console.log(JSON.stringify(report));
  closing.value = true;
  for (const socket of sockets) socket.destroy();
  Deno.exit(0);
}

// ---------------------------------------------------------------- parent side

/** A client process: its reports, line by line, and a way to ask for one. */
function startClient(
  port: number,
  count: number,
  options: { batch: number; source: string; heartbeat: number },
) {
  const { batch, source, heartbeat } = options;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-env",
      SELF,
      "--client",
      `--port=${port}`,
      `--count=${count}`,
      `--batch=${batch}`,
      `--source=${source}`,
      `--heartbeat=${heartbeat}`,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const writer = child.stdin.getWriter();
  let pending = "";
  const next = async (): Promise<ClientReport> => {
    for (;;) {
      const newline = pending.indexOf("\n");
      if (newline >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        return JSON.parse(line);
      }
      const { value, done } = await reader.read();
      if (done) throw new Error(`client ${source} ended`);
      pending += value;
    }
  };
  return {
    pid: child.pid,
    next,
    async ask(): Promise<ClientReport> {
      await writer.write(new TextEncoder().encode("report\n"));
      return await next();
    },
    async stop(): Promise<void> {
      await writer.close().catch(() => {});
      await child.status;
      await reader.cancel().catch(() => {});
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const thousands = (n: number) => Math.round(n).toLocaleString("en-US");
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

async function parent(flags: Map<string, string>): Promise<void> {
  const connections = intFlag(flags, "connections", 70_000);
  const workers = intFlag(flags, "workers", 4);
  const clients = intFlag(flags, "clients", 5);
  const heartbeat = intFlag(flags, "heartbeat", 1_000);
  const pingInterval = intFlag(flags, "ping-interval", 5_000);
  const hold = intFlag(flags, "hold", 10_000);
  const batch = intFlag(flags, "batch", 250);
  const settle = intFlag(flags, "settle", 3_000);
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();

  const spawn = commandWorker([
    "run",
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-sys=loadavg",
    "--unstable-net",
    MAIN,
    "--presence-store=memory",
    "--stats-interval=0",
    "--hostname=127.0.0.1",
    `--port=${port}`,
    `--ping-interval=${pingInterval}`,
    // A quiet peer that answers is pinged every max(interval, timeout) ms.
    `--ping-timeout=${pingInterval}`,
    "--max-connections=19500",
    "--max-connections-per-ip=100000",
  ]);
  const handles: WorkerHandle[] = [];
  const supervisor = new Supervisor({
    workers,
    clock: systemClock,
    spawn: (slot) => {
      const handle = spawn(slot);
      handles.push(handle);
      return handle;
    },
  });
  await supervisor.start();
  const pids = handles.map((handle) => handle.pid!);
  await sleep(1_000);
  const before = pids.map((pid) => readMemory(pid).rss);

  const share = Math.ceil(connections / clients);
  const started = performance.now();
  const loaders = Array.from(
    { length: clients },
    (_, k) =>
      startClient(port, Math.min(share, connections - k * share), {
        batch,
        source: `127.0.0.${k + 2}`,
        heartbeat,
      }),
  );
  try {
    const opened = await Promise.all(loaders.map((loader) => loader.next()));
    const openMs = performance.now() - started;
    await sleep(settle);
    const after = pids.map((pid) => readMemory(pid).rss);
    const first = await Promise.all(loaders.map((loader) => loader.ask()));
    const cpu0 = pids.map(cpuSeconds);
    const clientCpu0 = loaders.map((loader) => cpuSeconds(loader.pid));
    const t0 = performance.now();
    await sleep(hold);
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = pids.map(cpuSeconds);
    const clientCpu1 = loaders.map((loader) => cpuSeconds(loader.pid));
    const last = await Promise.all(loaders.map((loader) => loader.ask()));

    const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
    const open = sum(last.map((r) => r.open));
    const pings = sum(last.map((r) => r.pings)) - sum(first.map((r) => r.pings));
    const pongs = sum(last.map((r) => r.pongs)) - sum(first.map((r) => r.pongs));
    const beats = pings + pongs; // ping-pong round trips, whoever pinged
    const target = open * 1000 / (heartbeat > 0 ? heartbeat : pingInterval);
    const serverCpu = (sum(cpu1) - sum(cpu0)) / seconds;
    const clientCpu = (sum(clientCpu1) - sum(clientCpu0)) / seconds;
    const grown = sum(after) - sum(before);
    console.log(
      `\nbench:capacity — ${workers} workers on one port; ` +
        (heartbeat > 0
          ? `each client pings every ${heartbeat} ms (server keepalive ${pingInterval} ms)`
          : `the servers ping every ${pingInterval} ms`),
    );
    console.log(
      `connections: ${thousands(sum(opened.map((r) => r.opened)))} of ${thousands(connections)} ` +
        `opened in ${(openMs / 1000).toFixed(1)} s (${
          thousands(sum(opened.map((r) => r.failed)))
        } ` +
        `failed, ${thousands(sum(opened.map((r) => r.dropped)))} dropped while opening), ` +
        `${thousands(open)} still open after ${(hold / 1000).toFixed(0)} s of heartbeats ` +
        `(${thousands(sum(last.map((r) => r.dropped)))} dropped by the servers)`,
    );
    const errors = [...new Set(opened.flatMap((r) => r.errors))];
    if (errors.length > 0) console.log(`failures: ${errors.join("; ")}`);
    console.log(
      `worker RSS: ${before.map(mib).join(", ")} before → ${after.map(mib).join(", ")} ` +
        `(${mib(sum(after))} in all)`,
    );
    console.log(
      `RSS per connection: ${(grown / Math.max(1, open) / 1024).toFixed(1)} KiB ` +
        `(growth of the workers' RSS / connections open)`,
    );
    console.log(
      `heartbeats: ${thousands(beats / seconds)} ping-pongs/s (${thousands(pongs / seconds)} ` +
        `client pings answered, ${thousands(pings / seconds)} server pings answered; ` +
        `target ${thousands(target)}/s); workers' CPU ${(serverCpu * 100).toFixed(0)} % of one ` +
        `core (${(serverCpu * 1e6 / Math.max(1, beats / seconds)).toFixed(1)} µs per ping-pong), ` +
        `clients' CPU ${(clientCpu * 100).toFixed(0)} %`,
    );
  } finally {
    await Promise.all(loaders.map((loader) => loader.stop()));
    await supervisor.shutdown();
  }
}

if (import.meta.main) {
  const flags = parseFlags(Deno.args, [
    "client",
    "port",
    "count",
    "batch",
    "source",
    "connections",
    "workers",
    "clients",
    "ping-interval",
    "heartbeat",
    "hold",
    "settle",
  ]);
  if (flags.has("client")) await client(flags);
  else await parent(flags);
}
