/**
 * The supervisor behind `--workers N`: N server processes share one port
 * (`reusePort`, so the kernel spreads new connections over them), and this
 * keeps N of them running.
 *
 * - A worker that dies is started again, after a backoff that grows while it
 *   keeps dying young (a crash loop must not spin a core); its clients
 *   reconnect meanwhile and land on the others.
 * - A rolling restart (SIGHUP) replaces the workers one at a time: the new one
 *   is listening before the old one is told to drain, so the port never stops
 *   answering.
 * - Shutdown forwards the signal and waits for every worker to exit.
 *
 * Processes are reached through {@linkcode WorkerSpawner}, so the logic is
 * tested with fakes and the program supplies real `Deno.Command` children.
 *
 * @module
 */
import type { Clock } from "../protocol/clock.ts";
import { systemClock } from "./timer_heap.ts";

/** A running worker, as the supervisor sees it. */
export interface WorkerHandle {
  /** Resolves once the worker accepts connections. */
  readonly ready: Promise<void>;
  /** Resolves with the exit code when the process has ended. */
  readonly exited: Promise<number>;
  /** Sends a signal (SIGTERM: drain and exit). */
  kill(signal: Deno.Signal): void;
  /** The process id, where there is a process (for RSS and CPU readings). */
  readonly pid?: number;
}

/** Starts worker number `slot` (0-based). */
export type WorkerSpawner = (slot: number) => WorkerHandle;

/** Options for {@linkcode Supervisor}. */
export interface SupervisorOptions {
  /** How many workers to keep running. */
  workers: number;
  /** Starts one worker process. */
  spawn: WorkerSpawner;
  /** Time and timers for the restart backoff. */
  clock: Clock;
  /** Where the supervisor's own lines go. Default console.error. */
  log?: (line: string) => void;
  /** First restart delay after a crash (ms). Default 100. */
  restartDelay?: number;
  /** Largest restart delay (ms). Default 5 000. */
  maxRestartDelay?: number;
  /** A worker that ran this long (ms) was healthy: its backoff starts over. Default 10 000. */
  healthyAfter?: number;
}

interface Slot {
  worker: WorkerHandle | undefined;
  startedAt: number;
  delay: number;
  /** Workers being replaced on purpose: their exit is not a crash. */
  retiring: Set<WorkerHandle>;
}

/** Keeps `workers` processes running; see the module notes. */
export class Supervisor {
  #options: Required<SupervisorOptions>;
  #slots: Slot[] = [];
  #stopping = false;
  #rolling: Promise<void> | undefined;
  /** Crashes since start, for the tests and the log. */
  crashes = 0;

  constructor(options: SupervisorOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1) {
      throw new RangeError(`workers must be a positive integer; got ${options.workers}`);
    }
    this.#options = {
      log: (line) => console.error(line),
      restartDelay: 100,
      maxRestartDelay: 5_000,
      healthyAfter: 10_000,
      ...options,
    };
  }

  /** Starts every worker; resolves when all of them are listening. */
  async start(): Promise<void> {
    const ready: Promise<void>[] = [];
    for (let slot = 0; slot < this.#options.workers; slot++) {
      this.#slots.push({
        worker: undefined,
        startedAt: 0,
        delay: this.#options.restartDelay,
        retiring: new Set(),
      });
      ready.push(this.#launch(slot).ready);
    }
    await Promise.all(ready);
  }

  /** How many workers are running now. */
  get running(): number {
    return this.#slots.filter((slot) => slot.worker !== undefined).length;
  }

  /**
   * Replaces every worker, one at a time: start the new one, wait until it
   * listens, then tell the old one to drain (SIGTERM). If a new worker fails
   * to come up, the old one keeps serving and the restart stops there.
   */
  rollingRestart(): Promise<void> {
    this.#rolling ??= this.#roll().finally(() => this.#rolling = undefined);
    return this.#rolling;
  }

  async #roll(): Promise<void> {
    for (let slot = 0; slot < this.#slots.length && !this.#stopping; slot++) {
      const state = this.#slots[slot];
      const old = state.worker;
      if (old) state.retiring.add(old);
      const fresh = this.#launch(slot);
      try {
        await fresh.ready;
      } catch (error) {
        this.#options.log(`heartwire: worker ${slot} did not start: ${error}; keeping the old one`);
        state.retiring.add(fresh);
        fresh.kill("SIGTERM");
        if (old) {
          state.retiring.delete(old);
          state.worker = old;
        }
        return;
      }
      if (old) {
        old.kill("SIGTERM");
        await old.exited;
        state.retiring.delete(old);
      }
    }
  }

  /** Forwards `signal` to every worker and resolves when all have exited. */
  async shutdown(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    this.#stopping = true;
    const exits: Promise<number>[] = [];
    for (const state of this.#slots) {
      for (const worker of [state.worker, ...state.retiring]) {
        if (!worker) continue;
        try {
          worker.kill(signal);
        } catch {
          // already gone
        }
        exits.push(worker.exited);
      }
    }
    await Promise.all(exits);
  }

  #launch(slot: number): WorkerHandle {
    const state = this.#slots[slot];
    const worker = this.#options.spawn(slot);
    state.worker = worker;
    state.startedAt = this.#options.clock.now();
    worker.ready.catch(() => {}); // awaited by start()/roll(); a crash is handled below
    worker.exited.then((code) => this.#exited(slot, worker, code));
    return worker;
  }

  #exited(slot: number, worker: WorkerHandle, code: number): void {
    const state = this.#slots[slot];
    if (state.retiring.has(worker)) return; // replaced on purpose
    if (state.worker === worker) state.worker = undefined;
    if (this.#stopping) return;
    this.crashes++;
    const now = this.#options.clock.now();
    if (now - state.startedAt >= this.#options.healthyAfter) {
      state.delay = this.#options.restartDelay;
    }
    const delay = state.delay;
    state.delay = Math.min(state.delay * 2, this.#options.maxRestartDelay);
    this.#options.log(
      `heartwire: worker ${slot} exited with code ${code}; restarting in ${delay} ms`,
    );
    this.#options.clock.setTimeout(() => {
      if (!this.#stopping && state.worker === undefined) this.#launch(slot);
    }, delay);
  }
}

/**
 * A real worker: `deno <args>` as a child process with `HEARTWIRE_WORKER` set
 * to its slot. It counts as ready at its first stdout line containing
 * `listening`; its output is passed through, each line prefixed with the slot.
 * Its stdin is a pipe this process keeps open: EOF there tells the worker
 * that its supervisor is gone.
 */
export function commandWorker(args: string[]): WorkerSpawner {
  return (slot) => {
    const child = new Deno.Command(Deno.execPath(), {
      args,
      env: { [WORKER_ENV]: String(slot) },
      // Held open and never written: the worker reads EOF when this process
      // is gone, however it died, and does not outlive it (see main.ts).
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lifeline = child.stdin.getWriter();
    let ready!: () => void;
    let failed!: (error: Error) => void;
    const readyPromise = new Promise<void>((resolve, reject) => {
      ready = resolve;
      failed = reject;
    });
    (async () => {
      let pending = "";
      const decoder = new TextDecoder();
      for await (const chunk of child.stdout) {
        pending += decoder.decode(chunk, { stream: true });
        let newline: number;
        while ((newline = pending.indexOf("\n")) >= 0) {
          const line = pending.slice(0, newline);
          pending = pending.slice(newline + 1);
          console.log(`[worker ${slot}] ${line}`);
          if (line.includes("listening")) ready();
        }
      }
    })().catch(() => {});
    const exited = child.status.then((status) => {
      lifeline.close().catch(() => {});
      failed(new Error(`worker ${slot} exited with code ${status.code} before listening`));
      return status.code;
    });
    return {
      ready: readyPromise,
      exited,
      kill: (signal) => child.kill(signal),
      pid: child.pid,
    };
  };
}

/** The environment variable that tells a worker process which slot it has. */
export const WORKER_ENV = "HEARTWIRE_WORKER";

/** Options for {@linkcode runWorkers}. */
export interface RunWorkersOptions {
  /** How many workers to keep running. */
  workers: number;
  /** The `deno` arguments of one worker (`run`, permissions, the program, its flags). */
  args: string[];
  /** Where the supervisor's own lines go. Default console.error. */
  log?: (line: string) => void;
}

/**
 * The program's supervisor process: starts the workers, restarts crashed
 * ones, and maps signals — SIGHUP to a rolling restart, SIGTERM and SIGINT
 * forwarded to every worker (each drains its clients) and then exit.
 * Resolves with the supervisor once every worker listens.
 */
export async function runWorkers(options: RunWorkersOptions): Promise<Supervisor> {
  const log = options.log ?? ((line: string) => console.error(line));
  const supervisor = new Supervisor({
    workers: options.workers,
    spawn: commandWorker(options.args),
    clock: systemClock,
    log,
  });
  await supervisor.start();
  Deno.addSignalListener("SIGHUP", () => {
    log("heartwire: SIGHUP: restarting the workers one by one");
    supervisor.rollingRestart().then(() => log("heartwire: rolling restart done"));
  });
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => {
      supervisor.shutdown(signal).then(() => Deno.exit(0));
    });
  }
  return supervisor;
}
