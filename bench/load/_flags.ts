/**
 * A tiny `--name value` / `--name=value` flag parser shared by the load
 * harness scripts (the repo has no @std/cli, and these need only a few flags).
 *
 * @module
 */

/** Flags by name (without the dashes); a flag with no value maps to "true". */
export type Flags = Map<string, string>;

/**
 * Parses `args` and rejects any flag not in `known`.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./_flags.ts";
 * parseFlags(["--port", "8080", "--masked-echo"], ["port", "masked-echo"]);
 * // Map { "port" => "8080", "masked-echo" => "true" }
 * ```
 */
export function parseFlags(args: string[], known: string[]): Flags {
  const flags: Flags = new Map();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith("--")) throw new Error(`unexpected argument ${arg}`);
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    if (!known.includes(name)) throw new Error(`unknown flag --${name}`);
    if (eq !== -1) {
      flags.set(name, arg.slice(eq + 1));
    } else if (i + 1 < args.length && !args[i + 1].startsWith("--")) {
      flags.set(name, args[++i]);
    } else {
      flags.set(name, "true");
    }
  }
  return flags;
}

/**
 * A non-negative integer flag, or `fallback` when absent.
 *
 * @example
 * ```ts
 * import { intFlag, parseFlags } from "./_flags.ts";
 * intFlag(parseFlags(["--size", "64"], ["size"]), "size", 32); // 64
 * ```
 */
export function intFlag(flags: Flags, name: string, fallback: number): number {
  const text = flags.get(name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(`--${name} must be a non-negative integer, got ${text}`);
  }
  return value;
}

/**
 * A comma-separated list of non-negative integers, e.g. `--inflight 16,1`.
 *
 * @example
 * ```ts
 * import { intListFlag, parseFlags } from "./_flags.ts";
 * intListFlag(parseFlags(["--inflight", "16,1"], ["inflight"]), "inflight", [1]); // [16, 1]
 * ```
 */
export function intListFlag(flags: Flags, name: string, fallback: number[]): number[] {
  const text = flags.get(name);
  if (text === undefined) return fallback;
  return text.split(",").map((part) => intFlag(new Map([[name, part.trim()]]), name, 0));
}
