import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import { ManualClock } from "./_clock.ts";
import { Supervisor, type WorkerHandle } from "../server/_supervisor.ts";

/** A worker process that a test starts, readies, crashes and stops by hand. */
class FakeWorker implements WorkerHandle {
  readonly ready: Promise<void>;
  readonly exited: Promise<number>;
  signals: Deno.Signal[] = [];
  alive = true;
  #ready!: () => void;
  #fail!: (error: Error) => void;
  #exit!: (code: number) => void;

  constructor(readonly slot: number, readonly exitOnTerm = true) {
    this.ready = new Promise((resolve, reject) => {
      this.#ready = resolve;
      this.#fail = reject;
    });
    this.exited = new Promise((resolve) => this.#exit = resolve);
  }
  listen(): void {
    this.#ready();
  }
  crash(code = 1): void {
    this.alive = false;
    this.#fail(new Error("exited before listening"));
    this.#exit(code);
  }
  kill(signal: Deno.Signal): void {
    this.signals.push(signal);
    if (this.exitOnTerm && this.alive) {
      this.alive = false;
      this.#exit(0);
    }
  }
}

function rig(workers: number) {
  const clock = new ManualClock();
  const spawned: FakeWorker[] = [];
  const log: string[] = [];
  const supervisor = new Supervisor({
    workers,
    clock,
    log: (line) => log.push(line),
    spawn: (slot) => {
      const worker = new FakeWorker(slot);
      spawned.push(worker);
      return worker;
    },
  });
  const alive = () => spawned.filter((w) => w.alive);
  return { clock, spawned, log, supervisor, alive };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("supervisor: starts N workers and resolves once all listen", async () => {
  const { spawned, supervisor } = rig(3);
  let started = false;
  const start = supervisor.start().then(() => started = true);
  assertEquals(spawned.map((w) => w.slot), [0, 1, 2]);
  spawned[0].listen();
  spawned[1].listen();
  await tick();
  assertEquals(started, false);
  spawned[2].listen();
  await start;
  assertEquals(supervisor.running, 3);
  assertThrows(
    () => new Supervisor({ workers: 0, clock: new ManualClock(), spawn: () => spawned[0] }),
    RangeError,
  );
});

Deno.test("supervisor: a crashed worker is restarted with a growing backoff that resets when healthy", async () => {
  const { clock, spawned, log, supervisor } = rig(2);
  const start = supervisor.start();
  spawned.forEach((w) => w.listen());
  await start;
  spawned[1].crash(137);
  await tick();
  assertEquals(supervisor.running, 1);
  assertEquals(log.length, 1);
  clock.advance(99);
  assertEquals(spawned.length, 2); // not yet: the first delay is 100 ms
  clock.advance(1);
  assertEquals(spawned.length, 3);
  assertEquals(spawned[2].slot, 1);
  // Dies young again: the delay doubles.
  spawned[2].crash();
  await tick();
  clock.advance(199);
  assertEquals(spawned.length, 3);
  clock.advance(1);
  assertEquals(spawned.length, 4);
  // Runs long enough to count as healthy, then dies: back to 100 ms.
  spawned[3].listen();
  clock.advance(10_000);
  spawned[3].crash();
  await tick();
  clock.advance(100);
  assertEquals(spawned.length, 5);
  assertEquals(supervisor.crashes, 3);
  assertEquals(supervisor.running, 2);
});

Deno.test("supervisor: a rolling restart starts each new worker before stopping the old one", async () => {
  const { spawned, supervisor, alive } = rig(2);
  const start = supervisor.start();
  spawned.forEach((w) => w.listen());
  await start;
  const rolling = supervisor.rollingRestart();
  assertEquals(supervisor.rollingRestart(), rolling); // one at a time
  await tick();
  // The replacement for slot 0 exists; the old one still serves until it listens.
  assertEquals(spawned.length, 3);
  assertEquals(spawned[0].signals, []);
  assertEquals(alive().length, 3);
  spawned[2].listen();
  await tick();
  assertEquals(spawned[0].signals, ["SIGTERM"]);
  await tick();
  assertEquals(spawned.length, 4); // slot 1's replacement
  assertEquals(spawned[1].signals, []);
  spawned[3].listen();
  await rolling;
  assertEquals(spawned[1].signals, ["SIGTERM"]);
  assertEquals(alive().map((w) => w.slot), [0, 1]);
  assertEquals(supervisor.crashes, 0); // the drained workers were not counted as crashes
  assertEquals(supervisor.running, 2);
});

Deno.test("supervisor: a replacement that fails to start leaves the old worker serving", async () => {
  const { spawned, supervisor, log } = rig(1);
  const start = supervisor.start();
  spawned[0].listen();
  await start;
  const rolling = supervisor.rollingRestart();
  spawned[1].crash(1);
  await rolling;
  assertEquals(spawned[0].signals, []);
  assertEquals(spawned[0].alive, true);
  assertEquals(supervisor.running, 1);
  assertEquals(log.some((line) => line.includes("keeping the old one")), true);
});

Deno.test("supervisor: shutdown forwards the signal and waits; nothing restarts after it", async () => {
  const { clock, spawned, supervisor } = rig(2);
  const start = supervisor.start();
  spawned.forEach((w) => w.listen());
  await start;
  await supervisor.shutdown("SIGINT");
  assertEquals(spawned.map((w) => w.signals), [["SIGINT"], ["SIGINT"]]);
  clock.advance(60_000);
  assertEquals(spawned.length, 2);
  assertEquals(supervisor.crashes, 0);
});

Deno.test("supervisor: start rejects when a worker cannot listen", async () => {
  const { spawned, supervisor } = rig(1);
  const start = supervisor.start();
  spawned[0].crash(1);
  await assertRejects(() => start, Error, "exited before listening");
  await supervisor.shutdown();
});
