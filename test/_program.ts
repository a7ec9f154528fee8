/**
 * Running the server program (server/main.ts): as `deno task start` does, in a
 * child process, or in this process with injected load.
 *
 * @module
 */
import { parseCliArgs } from "../server/_cli.ts";
import { type Program, type ProgramOptions, startProgram } from "../server/main.ts";
import { spawnReady } from "./_child.ts";

/** The program's path. */
const MAIN = new URL("../server/main.ts", import.meta.url).pathname;

/** The `deno` arguments that run the program with `args`. */
export function mainArgs(args: string[]): string[] {
  return [
    "run",
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-sys=loadavg",
    MAIN,
    ...args,
  ];
}

/** Runs the program with `args` to its end: its exit code and output. */
export async function runMain(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: mainArgs(args),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/**
 * Starts the program with `args` in the background and resolves once it
 * printed its "listening" line; the caller kills it (`child.kill`) and awaits
 * `child.status`.
 */
export async function spawnProgram(args: string[]): Promise<Deno.ChildProcess> {
  const { child } = await spawnReady(mainArgs(args), { mark: "listening", what: "the program" });
  return child;
}

/**
 * The `deno` arguments of one `--workers` worker running the program with
 * `args` (it binds its port with `reusePort`: run it with HEARTWIRE_WORKER
 * set, as commandWorker() does). Presence in memory: the workers of a test
 * share no file.
 */
export function workerArgs(args: string[]): string[] {
  const [run, ...rest] = mainArgs(["--presence-store=memory", ...args]);
  return [run, "--unstable-net", ...rest];
}

/**
 * Starts the program in this process on a free loopback port with presence in
 * memory, `args` added to its command line.
 */
export function startLocal(args: string[], options: ProgramOptions): Promise<Program> {
  const base = ["--presence-store=memory", "--port=0", "--hostname=127.0.0.1"];
  return startProgram(parseCliArgs([...base, ...args]), options);
}
