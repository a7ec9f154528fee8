/**
 * What Linux's /proc tells about another process: CPU time used and memory
 * held, for the benchmarks that put a server and its load in processes of
 * their own.
 *
 * @module
 */
import { output } from "./_servers.ts";

let ticks: number | undefined;

/**
 * Clock ticks per second, the unit of /proc/<pid>/stat's CPU times
 * (`getconf CLK_TCK`, 100 if that fails).
 *
 * @example
 * ```ts
 * import { clockTicks } from "./_proc.ts";
 * console.log(await clockTicks()); // 100 on most Linux systems
 * ```
 */
export async function clockTicks(): Promise<number> {
  ticks ??= Number(await output("getconf", ["CLK_TCK"])) || 100;
  return ticks;
}

/**
 * User + system CPU seconds a process has used so far, NaN if unknown (the
 * process is gone, or this is not Linux).
 *
 * @example
 * ```ts
 * import { clockTicks, cpuSeconds } from "./_proc.ts";
 * console.log(cpuSeconds(Deno.pid, await clockTicks()));
 * ```
 */
export function cpuSeconds(pid: number, ticks: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / ticks;
  } catch {
    return NaN;
  }
}

/**
 * A process's resident set size and its peak, in bytes, from
 * /proc/<pid>/status (VmRSS, VmHWM). Throws if the process is gone.
 *
 * @example
 * ```ts
 * import { readMemory } from "./_proc.ts";
 * const { rss } = readMemory(Deno.pid);
 * console.log(`${(rss / 2 ** 20).toFixed(1)} MiB`);
 * ```
 */
export function readMemory(pid: number): { rss: number; peak: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const field = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(status);
    if (match === null) throw new Error(`no ${name} in /proc/${pid}/status`);
    return Number(match[1]) * 1024;
  };
  return { rss: field("VmRSS"), peak: field("VmHWM") };
}
