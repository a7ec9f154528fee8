/**
 * Command-line flags of `deno task start`, parsed by hand (JSR's std/cli is out
 * of reach here, and the flag set is small).
 *
 * @module
 */

/**
 * What the flags asked for.
 *
 * @example
 * ```ts
 * import type { CliOptions } from "@heartwire/heartwire/server";
 * const options: CliOptions = { port: 8080, hostname: "0.0.0.0", help: false };
 * ```
 */
export interface CliOptions {
  /** `--port` (env PORT), default 8080. */
  port: number;
  /** `--hostname`, default 0.0.0.0. */
  hostname: string;
  /** `--ping-interval MS`. */
  pingInterval?: number;
  /** `--ping-timeout MS`. */
  pingTimeout?: number;
  /** `--max-payload BYTES`. */
  maxPayload?: number;
  /** `--tls-cert FILE`. */
  tlsCert?: string;
  /** `--tls-key FILE`. */
  tlsKey?: string;
  /** `--help` / `-h`. */
  help: boolean;
}

/**
 * The usage text printed by `--help` and after a bad flag.
 *
 * @example
 * ```ts
 * import { USAGE } from "@heartwire/heartwire/server";
 * console.log(USAGE);
 * ```
 */
export const USAGE = `Usage: deno task start [options]

Runs the heartwire WebSocket server (routes: /echo, /ws, /healthz).

Options:
  --port N              TCP port (default 8080, or env PORT)
  --hostname HOST       interface to listen on (default 0.0.0.0)
  --ping-interval MS    ping a connection after MS of silence (default 25000)
  --ping-timeout MS     drop it if nothing comes back within MS (default 10000)
  --max-payload BYTES   largest message accepted; bigger ones close with 1009 (default 1048576)
  --tls-cert FILE       PEM certificate: serve wss:// (needs --tls-key)
  --tls-key FILE        PEM private key (needs --tls-cert)
  -h, --help            show this help
`;

/**
 * A flag that could not be understood; its message says which and why.
 *
 * @example
 * ```ts
 * import { CliError, parseCliArgs } from "@heartwire/heartwire/server";
 * try {
 *   parseCliArgs(["--port", "http"]);
 * } catch (error) {
 *   console.log(error instanceof CliError); // true
 * }
 * ```
 */
export class CliError extends Error {
  /** Always "CliError". */
  override name: string = "CliError";
}

const NUMERIC: Record<string, "port" | "pingInterval" | "pingTimeout" | "maxPayload"> = {
  "--port": "port",
  "--ping-interval": "pingInterval",
  "--ping-timeout": "pingTimeout",
  "--max-payload": "maxPayload",
};
const TEXT: Record<string, "hostname" | "tlsCert" | "tlsKey"> = {
  "--hostname": "hostname",
  "--tls-cert": "tlsCert",
  "--tls-key": "tlsKey",
};

/**
 * Parses the server's flags (`--name value` or `--name=value`).
 *
 * @throws {CliError} on an unknown flag, a missing or malformed value, or
 * `--tls-cert` without `--tls-key` (and the reverse).
 *
 * @example
 * ```ts
 * import { parseCliArgs } from "@heartwire/heartwire/server";
 * parseCliArgs(["--port=9000", "--ping-interval", "5000"]).port; // 9000
 * ```
 */
export function parseCliArgs(
  args: string[],
  env: { PORT?: string } = {},
): CliOptions {
  const options: CliOptions = { port: 8080, hostname: "0.0.0.0", help: false };
  if (env.PORT !== undefined) options.port = parseNumber("PORT", env.PORT, 0, 65535);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "-h" || arg === "--help") {
      options.help = true;
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (!(name in NUMERIC) && !(name in TEXT)) throw new CliError(`unknown option ${arg}`);
    let value: string | undefined;
    if (eq > 0) value = arg.slice(eq + 1);
    else if (i + 1 < args.length && !args[i + 1].startsWith("--")) value = args[++i];
    if (value === undefined || value === "") throw new CliError(`${name} needs a value`);
    if (name in TEXT) {
      options[TEXT[name]] = value;
    } else {
      const key = NUMERIC[name];
      options[key] = key === "port"
        ? parseNumber(name, value, 0, 65535)
        : parseNumber(name, value, 1, Number.MAX_SAFE_INTEGER);
    }
  }
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
    throw new CliError("--tls-cert and --tls-key go together");
  }
  return options;
}

function parseNumber(name: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value)) throw new CliError(`${name} must be a whole number, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new CliError(`${name} must be between ${min} and ${max}`);
  return n;
}
