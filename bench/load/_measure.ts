/**
 * One measurement: start a server subprocess, run a load generator as a
 * second subprocess (so each has its own core), sample both processes' CPU
 * time over the generator's counted window, stop the server.
 *
 * A generator prints JSON lines on stdout: `{"phase":"measuring"}` when its
 * counted window opens, `{"phase":"measured"}` when it closes, and one last
 * object holding its result. Used by run.ts (echo) and bench/all.ts (every
 * scenario).
 *
 * @module
 */
import { clockTicks, cpuSeconds } from "./_proc.ts";
import { lines, type RunningServer, startServer, tail } from "./_servers.ts";

/**
 * What {@linkcode measureWith} saw.
 *
 * @example
 * ```ts
 * import type { ProcessMeasurement } from "./_measure.ts";
 * const busy = (m: ProcessMeasurement<unknown>) => (m.clientCpu ?? 0) > 0.95;
 * ```
 */
export interface ProcessMeasurement<R> {
  /** The generator's result line, parsed. */
  result?: R;
  /** Server CPU over the counted window, in cores (1 = one core busy). */
  serverCpu?: number;
  /** Generator CPU over the counted window, in cores. */
  clientCpu?: number;
  /** Why there is no result (server did not start, generator failed). */
  error?: string;
}

/**
 * Starts `server`, runs the generator `deno run <generator(port)>`, and
 * returns its result with both processes' CPU use.
 *
 * @example
 * ```ts ignore
 * import { measureWith } from "./_measure.ts";
 * const m = await measureWith(["deno", "run", "--allow-net", "servers/raw_echo.ts"], (port) => [
 *   "--allow-net", "client.ts", "--port", String(port), "--masked-echo",
 * ]);
 * console.log(m.result, m.serverCpu, m.clientCpu);
 * ```
 */
export async function measureWith<R>(
  server: string[],
  generator: (port: number) => string[],
): Promise<ProcessMeasurement<R>> {
  const ticks = await clockTicks();
  const measurement: ProcessMeasurement<R> = {};
  let running: RunningServer;
  try {
    running = await startServer(server);
  } catch (error) {
    measurement.error = String(error);
    return measurement;
  }
  try {
    const client = new Deno.Command(Deno.execPath(), {
      args: ["run", ...generator(running.port)],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const clientErrors = tail(client.stderr);
    let start: { wall: number; server: number; client: number } | undefined;
    for await (const line of lines(client.stdout)) {
      let message;
      try {
        message = JSON.parse(line);
      } catch {
        continue; // a stray log line
      }
      if (message.phase === "measuring") {
        start = {
          wall: performance.now(),
          server: cpuSeconds(running.pid, ticks),
          client: cpuSeconds(client.pid, ticks),
        };
      } else if (message.phase === "measured" && start !== undefined) {
        const wall = (performance.now() - start.wall) / 1000;
        measurement.serverCpu = (cpuSeconds(running.pid, ticks) - start.server) / wall;
        measurement.clientCpu = (cpuSeconds(client.pid, ticks) - start.client) / wall;
      } else if (message.phase === undefined) {
        measurement.result = message as R;
      }
    }
    const status = await client.status;
    await clientErrors.done;
    if (!status.success || measurement.result === undefined) {
      measurement.error = `generator exited with ${status.code}: ${clientErrors.text()}`;
    }
  } catch (error) {
    measurement.error = String(error);
  } finally {
    await running.stop();
  }
  if (measurement.error && running.stderr()) measurement.error += `\nserver: ${running.stderr()}`;
  return measurement;
}
