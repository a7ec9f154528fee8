/**
 * The cost of a publication across nodes through Redis, against two peers
 * measured in the same run on a throwaway redis-server: a bare `PUBLISH`
 * (what socket.io's Redis adapter sends per broadcast: no history, no
 * offsets, no gap detection) and the least a history-keeping engine does per
 * publication (offset counter, list append and trim, TTL, PUBLISH in one Lua
 * script).
 *
 * `deno run --allow-all bench/redis_bench.ts [--count N]`
 *
 * - throughput: N publications (default 5 000), 64 in flight, from one
 *   connection, in 5 interleaved rounds (medians);
 * - latency: N publications one after another, from the publish call on node
 *   A to the delivery on node B (p50, p99).
 *
 * heartwire's publication is one Lua script (offset, append, trim, TTL,
 * PUBLISH) and its delivery goes through the broker's order check.
 *
 * @module
 */
import { RedisBroker, RedisHistory } from "../hub/redis/mod.ts";
import { RedisServer } from "../test/_redis.ts";

const count = Number(Deno.args[Deno.args.indexOf("--count") + 1]) || 5_000;
const IN_FLIGHT = 64;
const ROUNDS = 5;
const text = (offset: number) =>
  `{"type":"chat","topic":"lobby","offset":${offset},"from":"alice","text":"${"x".repeat(80)}"}`;
const head = `{"type":"chat","topic":"lobby","offset":`;
const tail = `,"from":"alice","text":"${"x".repeat(80)}"}`;
const encode = Object.assign(text, { head, tail });

/**
 * The least a broker that keeps a history must do per publication (as a
 * streams-based engine does): count the offset, append, trim by count,
 * refresh the TTL, PUBLISH. heartwire adds the epoch, the byte cap and
 * making the text around the offset.
 */
const MINIMAL = `
local offset = redis.call('HINCRBY', KEYS[1], 'top', 1)
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -1000, -1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return offset`;

const redis = await RedisServer.start();
const { createClient } = await import("npm:redis@5");
const connect = () => createClient({ url: redis.url }).connect();
const [a, b, bSub] = await Promise.all([connect(), connect(), connect()]);

/** Publications per second of `once`, `count` of them with IN_FLIGHT at a time. */
async function throughput(once: (i: number) => Promise<unknown>): Promise<number> {
  const start = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < count) await once(next++);
  }));
  return count / ((performance.now() - start) / 1_000);
}

const median = (values: number[]) => [...values].sort((x, y) => x - y)[values.length >> 1];

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function latency(
  label: string,
  publish: () => Promise<unknown>,
  delivered: (resolve: () => void) => void,
) {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    const arrived = new Promise<void>((resolve) => delivered(resolve));
    await publish();
    await arrived;
    times.push(performance.now() - start);
  }
  times.sort((x, y) => x - y);
  const [p50, p99] = [percentile(times, 0.5), percentile(times, 0.99)];
  console.log(`${label.padEnd(44)} p50 ${p50.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms`);
  return p50;
}

try {
  // Warm-up (JIT, Redis' script cache), not reported.
  const warm = new RedisHistory(a, { prefix: "warm:", publish: true });
  for (let i = 0; i < 2_000; i++) {
    await Promise.all([a.sendCommand(["PUBLISH", "warm", text(1)]), warm.append("t", encode)]);
    await a.sendCommand(["EVAL", MINIMAL, "2", "w:h", "w:l", text(1), "86400000", "w:p"]);
  }
  console.log(`${count} publications of ${text(1).length} bytes, ${ROUNDS} rounds, medians\n`);
  const sha = await a.sendCommand(["SCRIPT", "LOAD", MINIMAL]) as string;
  const history = new RedisHistory(a, { prefix: "bench:", publish: true });
  const runs: Record<string, () => Promise<unknown>> = {
    "PUBLISH (no history)": () => a.sendCommand(["PUBLISH", "bare", text(1)]),
    "minimal history script (offset, list, TTL)": () =>
      a.sendCommand(["EVALSHA", sha, "2", "m:h", "m:l", text(1), "86400000", "m:p"]),
    "heartwire append + PUBLISH (Lua)": () => history.append("t", encode),
  };
  // Interleaved rounds: a busy machine slows every side of a round alike.
  const rates: Record<string, number[]> = {};
  const ratios: number[][] = [[], []];
  for (let round = 0; round < ROUNDS; round++) {
    const here: number[] = [];
    for (const [label, once] of Object.entries(runs)) {
      here.push(await throughput(once));
      (rates[label] ??= []).push(here.at(-1)!);
    }
    ratios[0].push(here[2] / here[0]);
    ratios[1].push(here[2] / here[1]);
  }
  for (const [label, values] of Object.entries(rates)) {
    console.log(`${label.padEnd(44)} ${Math.round(median(values)).toLocaleString("en")} /s`);
  }
  console.log(`  heartwire / PUBLISH: ${median(ratios[0]).toFixed(2)}×`);
  console.log(`  heartwire / minimal history script: ${median(ratios[1]).toFixed(2)}×\n`);

  let wake: (() => void) | undefined;
  await bSub.subscribe("bare", () => wake?.());
  const floor = await latency(
    "PUBLISH → subscriber",
    () => a.sendCommand(["PUBLISH", "bare", text(1)]),
    (resolve) => wake = resolve,
  );
  const broker = new RedisBroker(new RedisHistory(b, { prefix: "bench:" }), bSub);
  broker.listener = { publication: () => wake?.(), lost: () => {} };
  await broker.subscribe("lat");
  const hub = await latency(
    "heartwire node A publish → node B broker",
    () => history.append("lat", encode),
    (resolve) => wake = resolve,
  );
  console.log(`  ratio heartwire / floor: ${(hub / floor).toFixed(2)}× the latency`);
} finally {
  for (const client of [a, b, bSub]) client.destroy();
  await redis.stop();
}
