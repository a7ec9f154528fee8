/**
 * Child `deno` processes that tell the test they are ready on stdout.
 *
 * @module
 */

/** A started child and what it printed up to its ready mark. */
export interface ReadyChild {
  child: Deno.ChildProcess;
  /** Stdout up to and including the chunk holding the mark. */
  text: string;
  /** With `rest: "drain"`: settles once stdout has ended (the child exited). */
  drained: Promise<void>;
}

/** Options for {@linkcode spawnReady}. */
export interface SpawnReadyOptions {
  /** What on stdout says the child is ready; `"\n"`, its first line, by default. */
  mark?: string;
  /** What the child is, for the error if it exits before it is ready. */
  what?: string;
  /**
   * What happens to stdout after the mark: `"cancel"` (default) closes it,
   * `"drain"` reads and drops it until the child exits.
   */
  rest?: "cancel" | "drain";
}

/**
 * Runs `deno <args>` with stdout piped and stderr inherited, and resolves once
 * `mark` has appeared on its stdout.
 */
export async function spawnReady(
  args: string[],
  options: SpawnReadyOptions = {},
): Promise<ReadyChild> {
  const { mark = "\n", what = "the child", rest = "cancel" } = options;
  const child = new Deno.Command(Deno.execPath(), {
    args,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes(mark)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${what} exited before it was ready: ${text}`);
    text += value;
  }
  if (rest === "drain") {
    const drained = (async () => {
      while (!(await reader.read()).done) { /* discard */ }
    })();
    return { child, text, drained };
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  return { child, text, drained: Promise.resolve() };
}
