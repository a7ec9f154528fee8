/**
 * Workers on one port, as `--workers N` runs them: real program processes
 * (server/main.ts with HEARTWIRE_WORKER set, so `reusePort`) under the
 * Supervisor. A worker killed with SIGKILL is restarted while the other keeps
 * the port answering; a rolling restart replaces every worker while a poller
 * opens fresh connections to /healthz, and not one of them is refused.
 */
import { assert, assertEquals, assertRejects } from "@std/assert";
import { commandWorker, Supervisor, type WorkerHandle } from "../server/_supervisor.ts";
import { systemClock } from "../server/timer_heap.ts";
import { freePort } from "./_port.ts";
import { workerArgs } from "./_program.ts";
import { waitFor } from "./_wait.ts";

/**
 * Whether Linux hands the connections queued on a closing SO_REUSEPORT
 * listener to another one (`net.ipv4.tcp_migrate_req`, Linux ≥ 5.14).
 */
async function migratesRequests(): Promise<boolean> {
  try {
    return (await Deno.readTextFile("/proc/sys/net/ipv4/tcp_migrate_req")).trim() === "1";
  } catch {
    return false;
  }
}

/** Two program workers on one port, each handle kept for the test to kill. */
async function startWorkers(port: number) {
  // The health poller opens ~600 sockets a second from one address: over the
  // program's default connection rate, which is not what is tested here.
  const spawn = commandWorker(
    workerArgs(["--hostname=127.0.0.1", `--port=${port}`, "--max-connection-rate-per-ip=0"]),
  );
  const handles: WorkerHandle[] = [];
  const log: string[] = [];
  const supervisor = new Supervisor({
    workers: 2,
    clock: systemClock,
    restartDelay: 50,
    log: (line) => log.push(line),
    spawn: (slot) => {
      const handle = spawn(slot);
      handles.push(handle);
      return handle;
    },
  });
  await supervisor.start();
  return { supervisor, handles, log };
}

/** An echo client that records how it ended. */
async function openEcho(port: number) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/echo`);
  const closed = new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => ws.send("hi");
    ws.onmessage = () => resolve();
    ws.onerror = () => reject(new Error("echo failed"));
  });
  let ended: CloseEvent | undefined;
  closed.then((event) => ended = event);
  return { ws, closed, ended: () => ended };
}

/**
 * Opens new TCP connections to /healthz (three at a time) until stopped; counts
 * answers, refusals and any other failure (a reset, say).
 */
function pollHealth(port: number) {
  const counts = { ok: 0, refused: 0, other: [] as string[], failedAt: [] as number[] };
  let running = true;
  const request = new TextEncoder().encode(
    "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
  );
  const loop = async () => {
    const buffer = new Uint8Array(1024);
    while (running) {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        try {
          await conn.write(request);
          let text = "";
          for (;;) {
            const n = await conn.read(buffer);
            if (n === null) break;
            text += new TextDecoder().decode(buffer.subarray(0, n));
          }
          if (text.startsWith("HTTP/1.1 200")) counts.ok++;
          else {
            counts.other.push(text.split("\r\n", 1)[0] || "(empty answer)");
            counts.failedAt.push(Date.now());
          }
        } finally {
          conn.close();
        }
      } catch (error) {
        if (error instanceof Deno.errors.ConnectionRefused) counts.refused++;
        else {
          counts.other.push(String(error));
          counts.failedAt.push(Date.now());
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
  };
  const done = Promise.all([loop(), loop(), loop()]);
  return {
    counts,
    stop: async () => {
      running = false;
      await done;
      return counts;
    },
  };
}

Deno.test("workers: a worker killed with SIGKILL is restarted; its clients reconnect to the other at once", async () => {
  const port = freePort();
  const { supervisor, handles, log } = await startWorkers(port);
  const poller = pollHealth(port);
  try {
    const clients = await Promise.all(Array.from({ length: 20 }, () => openEcho(port)));
    const killedAt = Date.now();
    handles[0].kill("SIGKILL");
    await handles[0].exited;
    // The kernel spread 20 connections over both workers (all on one: p ≈ 2⁻¹⁹).
    await waitFor(() => clients.some((c) => c.ended() !== undefined), 2_000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const dropped = clients.filter((c) => c.ended() !== undefined);
    assert(dropped.length > 0 && dropped.length < clients.length, `${dropped.length} dropped`);
    for (const client of dropped) assertEquals(client.ended()!.wasClean, false); // no close frame
    // Their clients come back at once: the other worker answers on the same port.
    const again = await Promise.all(dropped.map(() => openEcho(port)));
    // And the dead worker is replaced.
    await waitFor(() => handles.length === 3 && supervisor.running === 2, 5_000);
    await handles[2].ready;
    assertEquals(supervisor.crashes, 1);
    assert(log.some((line) => line.includes("worker 0 exited")), log.join("\n"));
    const counts = await poller.stop();
    assertEquals(counts.refused, 0);
    // A check the killed worker had accepted dies with it; none after that.
    assert(counts.other.length <= 3, String(counts.other));
    assert(counts.failedAt.every((at) => at - killedAt < 200), "failures after the kill");
    assert(counts.ok > 10, `${counts.ok} health checks answered`);
    for (const client of [...clients, ...again]) client.ws.close();
  } finally {
    await poller.stop();
    await supervisor.shutdown();
  }
});

Deno.test("workers: a rolling restart never leaves the port unanswered; old clients get 1012 with a hint", async () => {
  const port = freePort();
  const { supervisor, handles } = await startWorkers(port);
  const poller = pollHealth(port);
  try {
    const clients = await Promise.all(Array.from({ length: 20 }, () => openEcho(port)));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const before = poller.counts.ok;
    await supervisor.rollingRestart();
    assertEquals(handles.length, 4);
    assertEquals(supervisor.running, 2);
    // Every client was on an old worker: each was told to come back, in its own time.
    const events = await Promise.all(clients.map((c) => c.closed));
    const hints = events.map((event) => {
      assertEquals(event.code, 1012);
      const hint = /^retry-after=(\d+)$/.exec(event.reason);
      assert(hint, event.reason);
      return Number(hint[1]);
    });
    assert(hints.every((ms) => ms <= 3_000), String(hints));
    assert(new Set(hints).size > 10, `hints spread: ${hints}`);
    // The new workers answer.
    (await openEcho(port)).ws.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const counts = await poller.stop();
    console.log(
      `rolling restart: ${counts.ok - before} health checks answered during it, ` +
        `${counts.refused} refused, ${counts.other.length} failed`,
    );
    // Never refused: a new worker listens before an old one stops.
    assertEquals(counts.refused, 0);
    if (await migratesRequests()) {
      assertEquals(counts.other, []);
    } else {
      // Without tcp_migrate_req, Linux resets the connections still queued
      // on a listener that closes (SO_REUSEPORT): a few, never a refusal.
      assert(
        counts.other.every((failure) => failure.startsWith("ConnectionReset")),
        counts.other.join(),
      );
      assert(counts.other.length <= Math.max(3, counts.ok / 20), `${counts.other.length} resets`);
    }
    assert(counts.ok - before > 15, `${counts.ok - before} answered during the restart`);
  } finally {
    await poller.stop();
    await supervisor.shutdown();
  }
});

Deno.test("workers: the supervisor process maps SIGHUP to a rolling restart and SIGTERM to a drain", async () => {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      new URL("./_supervise_fixture.ts", import.meta.url).pathname,
      `${port}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const until = async (needle: string) => {
    while (!text.includes(needle)) {
      const { value, done } = await output.read();
      if (done) throw new Error(`supervisor ended before "${needle}": ${text}`);
      text += value;
    }
  };
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  (async () => {
    for (;;) {
      const { value, done } = await stderr.read();
      if (done) return;
      log += value;
    }
  })();
  try {
    await until("supervisor: workers listening");
    const before = await Promise.all(Array.from({ length: 10 }, () => openEcho(port)));
    const poller = pollHealth(port);
    child.kill("SIGHUP");
    for (const client of before) assertEquals((await client.closed).code, 1012);
    await waitFor(() => log.includes("rolling restart done"), 5_000);
    const counts = await poller.stop();
    assertEquals(counts.refused, 0);
    // The new workers serve; SIGTERM drains them (1012) and the supervisor exits 0.
    const after = await Promise.all(Array.from({ length: 10 }, () => openEcho(port)));
    child.kill("SIGTERM");
    for (const client of after) assertEquals((await client.closed).code, 1012);
    assertEquals((await child.status).code, 0);
    await assertRejects(() => Deno.connect({ hostname: "127.0.0.1", port }));
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // exited
    }
    await child.status;
    await output.cancel().catch(() => {});
  }
});

Deno.test("workers: a supervisor killed with SIGKILL leaves no worker behind", async () => {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      new URL("./_supervise_fixture.ts", import.meta.url).pathname,
      `${port}`,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const output = child.stdout.pipeThrough(new TextDecoderStream());
  let text = "";
  const reading = (async () => {
    for await (const chunk of output) text += chunk;
  })();
  try {
    await waitFor(() => text.includes("supervisor: workers listening"), 15_000);
    const client = await openEcho(port);
    child.kill("SIGKILL");
    // The workers see their lifeline (stdin) close, drain and exit: the port
    // closes, and the output pipe they shared ends.
    assertEquals((await client.closed).code, 1012);
    await waitFor(async () => {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return false;
      } catch {
        return true;
      }
    }, 8_000);
    await reading;
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone
    }
    await child.status;
  }
});
