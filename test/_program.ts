/**
 * Running the server program (server/main.ts) as `deno task start` does.
 *
 * @module
 */

/** The program's path. */
export const MAIN = new URL("../server/main.ts", import.meta.url).pathname;

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
