/**
 * The restart storm (seed 003's fixed five-second reconnect, all clients at
 * once): 1 000 ReconnectingSockets on a program worker, which is told to
 * stop (SIGTERM) after a second worker already listens on the same port
 * (`reusePort`, as in a rolling restart). The old worker closes every
 * connection with 1012 and a retry hint drawn for each from its 3 s window.
 * The clients' own backoff is cut to nothing here, so what spreads them is
 * the server's hint alone.
 *
 * The test prints two histograms: when each client planned to come back
 * (the moment it saw the close plus the delay it chose), and when it was
 * back (welcome received). It fails if the plans bunch up; the arrivals
 * also depend on how busy this process and machine are, so they are held to
 * a looser bound.
 */
import { assert, assertEquals } from "@std/assert";
import { ReconnectingSocket } from "../client/mod.ts";
import { commandWorker } from "../server/_supervisor.ts";
import { freePort } from "./_port.ts";
import { workerArgs } from "./_program.ts";
import { waitFor } from "./_wait.ts";

const CLIENTS = 1_000;
const WINDOW = 3_000; // ms: the program's restart hint window
const BUCKET = 100; // ms

function histogram(title: string, times: number[]): { widest: number; spread: number } {
  const buckets = new Array(Math.ceil((WINDOW + 1_000) / BUCKET)).fill(0);
  for (const ms of times) buckets[Math.min(buckets.length - 1, Math.floor(ms / BUCKET))]++;
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q: number) => Math.round(sorted[Math.floor(q * (sorted.length - 1))]);
  console.log(`${title} (${times.length} clients, ${BUCKET} ms buckets, one # per 5):`);
  for (let b = 0; b < buckets.length; b++) {
    if (buckets[b] === 0 && b * BUCKET > at(1)) break;
    console.log(
      `${String(b * BUCKET).padStart(5)} ms ${String(buckets[b]).padStart(4)} ${
        "#".repeat(buckets[b] / 5)
      }`,
    );
  }
  console.log(`  p10 ${at(0.1)} ms, p50 ${at(0.5)} ms, p90 ${at(0.9)} ms, last ${at(1)} ms`);
  return { widest: Math.max(...buckets), spread: at(0.9) - at(0.1) };
}

Deno.test("restart storm: 1 000 clients dropped with 1012 come back spread over the hint window", async () => {
  const port = freePort();
  const spawn = commandWorker(
    workerArgs(["--hostname=127.0.0.1", `--port=${port}`, "--max-connections-per-ip=5000"]),
  );
  const old = spawn(0);
  let fresh: ReturnType<typeof spawn> | undefined;
  const sockets: ReconnectingSocket[] = [];
  const planned: number[] = [];
  const back: number[] = [];
  const hints: number[] = [];
  try {
    await old.ready;
    let restartAt = Infinity;
    for (let i = 0; i < CLIENTS; i++) {
      const socket = new ReconnectingSocket(`ws://127.0.0.1:${port}/ws`, {
        id: `c${i}`,
        // No client jitter: only the server's hint spreads the reconnects.
        backoff: { minDelay: 0, initialDelay: 1, maxDelay: 1 },
        window: null,
        document: null,
      });
      socket.addEventListener("close", (event) => {
        const hint = /^retry-after=(\d+)$/.exec(event.detail.reason);
        if (event.detail.code === 1012 && hint) hints.push(Number(hint[1]));
      });
      socket.addEventListener("reconnecting", (event) => {
        if (Date.now() >= restartAt) planned.push(Date.now() - restartAt + event.detail.delay);
      });
      socket.addEventListener("open", () => {
        if (Date.now() >= restartAt) back.push(Date.now() - restartAt);
      });
      sockets.push(socket);
      // A batch at a time: the listen queue is not what is measured here.
      if (i % 100 === 99) await waitFor(() => sockets.every((s) => s.readyState === 1), 10_000);
    }

    fresh = spawn(1);
    await fresh.ready;
    restartAt = Date.now();
    old.kill("SIGTERM");
    await waitFor(() => back.length === CLIENTS, WINDOW + 10_000);
    assertEquals(await old.exited, 0);
    assertEquals(hints.length, CLIENTS);
    assert(hints.every((ms) => ms <= WINDOW), "every hint within the window");

    const plan = histogram("reconnects planned after the restart", planned);
    const arrival = histogram("clients back (welcome) after the restart", back);
    // The plans: no 100 ms holds a quarter, and the window is used.
    assert(plan.widest <= CLIENTS / 4, `${plan.widest} planned in one ${BUCKET} ms`);
    assert(plan.spread >= WINDOW / 2, `planned p10..p90 ${plan.spread} ms`);
    // The arrivals: spread too, whatever else the machine is doing.
    assert(arrival.widest <= CLIENTS / 2, `${arrival.widest} back in one ${BUCKET} ms`);
    assert(arrival.spread >= WINDOW / 4, `arrivals p10..p90 ${arrival.spread} ms`);
  } finally {
    for (const socket of sockets) socket.close();
    for (const worker of [old, fresh]) {
      try {
        worker?.kill("SIGKILL");
      } catch {
        // already gone
      }
      await worker?.exited;
    }
  }
});
