/**
 * Presence under 10 000 users heartbeating every second.
 *
 * Two modes:
 *
 * - `deno bench --allow-all bench/presence_bench.ts` — the cost of one
 *   heartbeat through the tracker (`touch`, memory only) against the floor, a
 *   `Map` holding `lastSeen`.
 * - `deno run --allow-all bench/presence_bench.ts --load [--seconds S]` — for
 *   memory, Deno KV and a throwaway redis-server: 10 000 users heartbeat once a
 *   second for S seconds (default 10) through a real tracker
 *   (`presenceTimeout` 15 s, so one `lastSeen` write per user per 5 s). Prints
 *   store writes/s next to the heartbeats/s a write-per-message design would
 *   cost and the throttling bound users / interval, and the CPU of this
 *   process (tracker + store client) and of redis-server, as % of one core —
 *   next to the peer the seeds describe, one Redis write per heartbeat.
 *
 * @module
 */
import process from "node:process";
import {
  KvPresenceStore,
  MemoryPresenceStore,
  Presence,
  type PresenceStore,
  RedisPresenceStore,
} from "../hub/presence/mod.ts";
import { RedisServer } from "../test/_redis.ts";
import { clockTicks, cpuSeconds } from "./load/_proc.ts";

const USERS = 10_000;
const HEARTBEAT_MS = 1_000;
const PRESENCE_TIMEOUT = 15_000;
const WRITE_INTERVAL = PRESENCE_TIMEOUT / 3;

function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1_000;
}

/** utime + stime of another process, in ms. */
async function processCpuMs(pid: number): Promise<number> {
  return cpuSeconds(pid, await clockTicks()) * 1_000;
}

interface LoadResult {
  store: string;
  writesPerSecond: number;
  cpuPercent: number;
  serverCpuPercent?: number;
}

async function load(
  name: string,
  store: PresenceStore,
  seconds: number,
  serverPid?: number,
): Promise<LoadResult> {
  const presence = new Presence({ store, presenceTimeout: PRESENCE_TIMEOUT, awayAfter: 0 });
  await presence.start();
  for (let u = 0; u < USERS; u++) presence.join("lobby", `user${u}`, `c${u}`, { name: `U${u}` });
  await presence.flush();
  // Heartbeats spread evenly: a tenth of the users every 100 ms.
  let slice = 0;
  const timer = setInterval(() => {
    for (let u = slice; u < USERS; u += 10) presence.touch(`user${u}`, `c${u}`);
    slice = (slice + 1) % 10;
  }, HEARTBEAT_MS / 10);
  const writes0 = store.writes;
  const cpu0 = cpuMs();
  const server0 = serverPid ? await processCpuMs(serverPid) : 0;
  const t0 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1_000));
  await presence.flush();
  const elapsed = performance.now() - t0;
  const result: LoadResult = {
    store: name,
    writesPerSecond: (store.writes - writes0) / (elapsed / 1_000),
    cpuPercent: ((cpuMs() - cpu0) / elapsed) * 100,
  };
  if (serverPid) {
    result.serverCpuPercent = ((await processCpuMs(serverPid) - server0) / elapsed) * 100;
  }
  clearInterval(timer);
  await presence.close();
  await store.close();
  return result;
}

/** The peer: the seeds' pattern, one Redis write of lastSeen per heartbeat (pipelined). */
async function naiveRedis(url: string, seconds: number, serverPid?: number): Promise<LoadResult> {
  const { createClient } = await import("npm:redis@5");
  const client = createClient({ url });
  await client.connect();
  let writes = 0;
  let slice = 0;
  const timer = setInterval(() => {
    const now = String(Date.now());
    for (let u = slice; u < USERS; u += 10) {
      client.hSet("naive:lastSeen", `user${u}`, now).catch(() => {});
      writes++;
    }
    slice = (slice + 1) % 10;
  }, HEARTBEAT_MS / 10);
  const cpu0 = cpuMs();
  const server0 = serverPid ? await processCpuMs(serverPid) : 0;
  const writes0 = writes;
  const t0 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1_000));
  const elapsed = performance.now() - t0;
  const result: LoadResult = {
    store: "redis, write per heartbeat (peer)",
    writesPerSecond: (writes - writes0) / (elapsed / 1_000),
    cpuPercent: ((cpuMs() - cpu0) / elapsed) * 100,
  };
  if (serverPid) {
    result.serverCpuPercent = ((await processCpuMs(serverPid) - server0) / elapsed) * 100;
  }
  clearInterval(timer);
  await client.close();
  return result;
}

async function runLoad(seconds: number): Promise<void> {
  const results: LoadResult[] = [];
  results.push(await load("memory", new MemoryPresenceStore(), seconds));
  const dir = await Deno.makeTempDir({ prefix: "presence_bench_" });
  try {
    results.push(await load("kv", await KvPresenceStore.open(`${dir}/p.db`), seconds));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const redis = await RedisServer.start();
  try {
    const pid = redis.pid;
    results.push(await load("redis", await RedisPresenceStore.open(redis.url), seconds, pid));
    results.push(await naiveRedis(redis.url, seconds, pid));
  } finally {
    await redis.stop();
  }
  const heartbeats = USERS / (HEARTBEAT_MS / 1_000);
  const bound = USERS / (WRITE_INTERVAL / 1_000);
  console.log(
    `${USERS} users, heartbeat every ${HEARTBEAT_MS} ms, write interval ${WRITE_INTERVAL} ms, ${seconds} s per store`,
  );
  console.log(
    `peer (one write per heartbeat): ${heartbeats} writes/s; bound users/interval: ${bound}/s`,
  );
  for (const r of results) {
    const ratio = (r.writesPerSecond / heartbeats).toFixed(3);
    const server = r.serverCpuPercent === undefined
      ? ""
      : `, redis-server ${r.serverCpuPercent.toFixed(1)} %`;
    console.log(
      `${r.store.padEnd(8)} ${r.writesPerSecond.toFixed(0).padStart(6)} writes/s ` +
        `(${ratio} × peer, ≤ bound: ${r.writesPerSecond <= bound * 1.05 ? "yes" : "NO"}), ` +
        `CPU ${r.cpuPercent.toFixed(1)} % of one core${server}`,
    );
  }
  const tracked = results.find((r) => r.store === "redis")!;
  const peer = results.at(-1)!;
  console.log(
    `redis: presence ${tracked.cpuPercent.toFixed(1)} % + server ${
      tracked.serverCpuPercent?.toFixed(1)
    } % ` +
      `vs peer ${peer.cpuPercent.toFixed(1)} % + server ${
        peer.serverCpuPercent?.toFixed(1)
      } % of one core ` +
      `(${
        ((tracked.cpuPercent + (tracked.serverCpuPercent ?? 0)) /
          (peer.cpuPercent + (peer.serverCpuPercent ?? 0))).toFixed(2)
      } × peer)`,
  );
}

if (Deno.args.includes("--load")) {
  const i = Deno.args.indexOf("--seconds");
  await runLoad(i >= 0 ? Number(Deno.args[i + 1]) : 10);
} else {
  // Per-heartbeat cost of the tracker against the floor: one Map lookup and a timestamp store.
  const presence = new Presence({ presenceTimeout: PRESENCE_TIMEOUT });
  const users = Array.from({ length: USERS }, (_, u) => `user${u}`);
  const conns = Array.from({ length: USERS }, (_, u) => `c${u}`);
  for (let u = 0; u < USERS; u++) presence.connect(users[u], conns[u]);
  const floor = new Map(users.map((user) => [user, { lastSeen: 0 }]));

  Deno.bench(
    "10 000 heartbeats: Map lastSeen (floor)",
    { group: "heartbeat", baseline: true },
    () => {
      for (let u = 0; u < USERS; u++) floor.get(users[u])!.lastSeen = Date.now();
    },
  );

  Deno.bench("10 000 heartbeats: tracker touch (throttled)", { group: "heartbeat" }, () => {
    for (let u = 0; u < USERS; u++) presence.touch(users[u], conns[u]);
  });
}
