/**
 * Command-line flags of `deno task start`, parsed by hand (JSR's std/cli is out
 * of reach here, and the flag set is small). Internal to the program.
 *
 * @module
 */
import { type Cidr, parseCidr } from "./trusted_proxy.ts";

/**
 * What the flags asked for.
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
  /** `--max-connections N`, default {@linkcode DEFAULT_MAX_CONNECTIONS}. */
  maxConnections: number;
  /** `--max-connections-per-ip N`, default {@linkcode DEFAULT_MAX_CONNECTIONS_PER_IP}. */
  maxConnectionsPerIp: number;
  /**
   * `--max-connection-rate-per-ip N`: new sockets per address per second, 0
   * for no limit; default {@linkcode DEFAULT_MAX_CONNECTION_RATE_PER_IP}.
   */
  maxConnectionRatePerIp: number;
  /** `--tls-cert FILE`. */
  tlsCert?: string;
  /** `--tls-key FILE`. */
  tlsKey?: string;
  /** `--deflate`: permessage-deflate (RFC 7692) with clients that offer it. */
  deflate?: boolean;
  /** `--stats-interval MS`: time between stats lines, 0 for none. Default 5 000. */
  statsInterval: number;
  /** `--load-alert-factor F`: overloaded at a load average of F × CPUs. Default 2. */
  loadAlertFactor: number;
  /** `--shed-load`: refuse new WebSocket upgrades with 503 while overloaded. */
  shedLoad: boolean;
  /** `--presence-store`: where presence lives. Default `redis` with `--redis`, else `kv`. */
  presenceStore?: "memory" | "kv" | "redis";
  /** `--kv-path FILE`: the Deno KV file. Default {@linkcode DEFAULT_KV_PATH}. */
  kvPath: string;
  /** `--redis URL`: Redis shared by every node. */
  redis?: string;
  /** `--presence-timeout MS`: offline after this much silence. Default ping interval + timeout. */
  presenceTimeout?: number;
  /** `--away-after MS`: away after this long without a message (heartbeats do not count). */
  awayAfter?: number;
  /** `--help` / `-h`. */
  help: boolean;
  /** `--workers N`: server processes on the port, default 1 (no supervisor). */
  workers?: number;
  /** `--trusted-proxy CIDR` (repeatable, or comma-separated), parsed. */
  trustedProxies?: Cidr[];
}

/**
 * Open sockets the program holds before answering 503. A process here may
 * hold 20 000 files; the rest is headroom for the listener, the files the
 * demo reads, stdio and the sockets that are being refused (each needs an
 * fd for as long as its 503 takes).
 */
export const DEFAULT_MAX_CONNECTIONS = 18_000;

/**
 * Open sockets one address may hold before 429: enough for a large office
 * behind one NAT, while one client opening sockets in a loop cannot take
 * every slot in seconds. Load tests from 127.0.0.1 raise it.
 */
export const DEFAULT_MAX_CONNECTIONS_PER_IP = 1_000;

/**
 * New sockets per address per second, after a burst of 10 seconds' worth or
 * `--max-connections-per-ip` (whichever is more: an address may reopen at
 * once all it may hold, as after a restart). 100 a second is far above what
 * reconnecting people do, while one address connecting in a loop spends at
 * most ~1 % of a core on handshakes instead of all of it.
 */
export const DEFAULT_MAX_CONNECTION_RATE_PER_IP = 100;

/**
 * Where presence is kept by default: a Deno KV file next to the program's
 * working directory, so a restarted node finds (and clears) what a crashed
 * predecessor left.
 */
export const DEFAULT_KV_PATH = ".heartwire/presence.kv";

/** The presence stores `--presence-store` names. */
const PRESENCE_STORES = ["memory", "kv", "redis"] as const;

/**
 * The usage text printed by `--help` and after a bad flag.
 *
 * @example
 * ```ts
 * import { USAGE } from "./_cli.ts";
 * console.log(USAGE);
 * ```
 */
export const USAGE = `Usage: deno task start [options]

Runs the heartwire server: the demo page on /, the WebSocket app on /ws,
an echo endpoint on /echo, a health check on /healthz, and monitoring:
/metrics (Prometheus), /stats (JSON) and the live /dashboard.

Options:
  --port N              TCP port (default 8080, or env PORT)
  --hostname HOST       interface to listen on (default 0.0.0.0)
  --ping-interval MS    ping a connection after MS of silence (default 25000)
  --ping-timeout MS     drop it if nothing comes back within MS (default 10000)
  --max-payload BYTES   largest message accepted; bigger ones close with 1009 (default 1048576)
  --max-connections N   open sockets before new ones get 503 (default ${DEFAULT_MAX_CONNECTIONS})
  --max-connections-per-ip N
                        open sockets per client address before 429 (default ${DEFAULT_MAX_CONNECTIONS_PER_IP})
  --max-connection-rate-per-ip N
                        new sockets per client address per second before 429, after a
                        burst of as many as it may hold; 0 for no limit (default ${DEFAULT_MAX_CONNECTION_RATE_PER_IP})
  --tls-cert FILE       PEM certificate: serve wss:// (needs --tls-key)
  --tls-key FILE        PEM private key (needs --tls-cert)
  --deflate             compress messages with clients that offer permessage-deflate (RFC 7692)
  --stats-interval MS   print a stats line every MS, 0 for none (default 5000)
  --load-alert-factor F warn once the 1-minute load average reaches F × CPUs (default 2)
  --shed-load           while overloaded, refuse new WebSocket upgrades with 503 + Retry-After
  --presence-store memory|kv|redis
                        where presence lives (default kv; redis when --redis is given)
  --kv-path FILE        Deno KV file for presence (default ${DEFAULT_KV_PATH})
  --redis URL           Redis shared by every node (redis://host:port)
  --presence-timeout MS offline after MS without a heartbeat (default ping interval + timeout)
  --away-after MS       away after MS without a message, 0 never (default 300000)
  --workers N           N processes share the port under a supervisor: a crashed one is
                        restarted, SIGHUP restarts them one by one (default 1)
  --trusted-proxy CIDR  believe Forwarded / X-Forwarded-For from these proxies (repeatable,
                        or comma-separated), so per-IP limits count clients, not the proxy
  -h, --help            show this help
`;

/**
 * A flag that could not be understood; its message says which and why.
 *
 * @example
 * ```ts
 * import { CliError, parseCliArgs } from "./_cli.ts";
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

type NumericOption =
  | "port"
  | "pingInterval"
  | "pingTimeout"
  | "maxPayload"
  | "maxConnections"
  | "maxConnectionsPerIp"
  | "maxConnectionRatePerIp"
  | "statsInterval"
  | "presenceTimeout"
  | "awayAfter"
  | "workers";
const NUMERIC: Record<string, NumericOption> = {
  "--port": "port",
  "--ping-interval": "pingInterval",
  "--ping-timeout": "pingTimeout",
  "--max-payload": "maxPayload",
  "--max-connections": "maxConnections",
  "--max-connections-per-ip": "maxConnectionsPerIp",
  "--max-connection-rate-per-ip": "maxConnectionRatePerIp",
  "--stats-interval": "statsInterval",
  "--presence-timeout": "presenceTimeout",
  "--away-after": "awayAfter",
  "--workers": "workers",
};
/** Numeric flags for which 0 means "off". */
const ZERO_ALLOWED = new Set<NumericOption>([
  "statsInterval",
  "awayAfter",
  "maxConnectionRatePerIp",
]);
/** Flags that take a decimal number. */
const DECIMAL: Record<string, "loadAlertFactor"> = {
  "--load-alert-factor": "loadAlertFactor",
};
/** Flags that take no value. */
const SWITCH: Record<string, "shedLoad"> = {
  "--shed-load": "shedLoad",
};
const TEXT: Record<string, "hostname" | "tlsCert" | "tlsKey" | "kvPath" | "redis"> = {
  "--hostname": "hostname",
  "--tls-cert": "tlsCert",
  "--tls-key": "tlsKey",
  "--kv-path": "kvPath",
  "--redis": "redis",
};

/**
 * Parses the server's flags (`--name value` or `--name=value`; a switch
 * such as `--shed-load` takes none).
 *
 * @throws {CliError} on an unknown flag, a missing or malformed value, a
 * value given to a switch, or `--tls-cert` without `--tls-key` (and the reverse).
 *
 * @example
 * ```ts
 * import { parseCliArgs } from "./_cli.ts";
 * parseCliArgs(["--port=9000", "--ping-interval", "5000"]).port; // 9000
 * ```
 */
export function parseCliArgs(
  args: string[],
  env: { PORT?: string } = {},
): CliOptions {
  const options: CliOptions = {
    port: 8080,
    hostname: "0.0.0.0",
    maxConnections: DEFAULT_MAX_CONNECTIONS,
    maxConnectionsPerIp: DEFAULT_MAX_CONNECTIONS_PER_IP,
    maxConnectionRatePerIp: DEFAULT_MAX_CONNECTION_RATE_PER_IP,
    statsInterval: 5_000,
    loadAlertFactor: 2,
    shedLoad: false,
    kvPath: DEFAULT_KV_PATH,
    help: false,
  };
  if (env.PORT !== undefined) options.port = parseNumber("PORT", env.PORT, 0, 65535);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "-h" || arg === "--help") {
      options.help = true;
      continue;
    }
    if (arg === "--deflate") {
      options.deflate = true;
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (name in SWITCH) {
      if (eq > 0) throw new CliError(`${name} takes no value`);
      options[SWITCH[name]] = true;
      continue;
    }
    if (name === "--presence-store") {
      const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
      const store = PRESENCE_STORES.find((kind) => kind === value);
      if (!store) {
        throw new CliError(`--presence-store must be memory, kv or redis, got "${value ?? ""}"`);
      }
      options.presenceStore = store;
      continue;
    }
    if (
      !(name in NUMERIC) && !(name in TEXT) && !(name in DECIMAL) && name !== "--trusted-proxy"
    ) {
      throw new CliError(`unknown option ${arg}`);
    }
    let value: string | undefined;
    if (eq > 0) value = arg.slice(eq + 1);
    else if (i + 1 < args.length && !args[i + 1].startsWith("--")) value = args[++i];
    if (value === undefined || value === "") throw new CliError(`${name} needs a value`);
    if (name === "--trusted-proxy") {
      options.trustedProxies ??= [];
      for (const entry of value.split(",")) {
        try {
          options.trustedProxies.push(parseCidr(entry));
        } catch (error) {
          throw new CliError(`--trusted-proxy: ${(error as Error).message}`);
        }
      }
    } else if (name in TEXT) {
      options[TEXT[name]] = value;
    } else if (name in DECIMAL) {
      options[DECIMAL[name]] = parseDecimal(name, value);
    } else {
      const key = NUMERIC[name];
      options[key] = key === "port"
        ? parseNumber(name, value, 0, 65535)
        : parseNumber(name, value, ZERO_ALLOWED.has(key) ? 0 : 1, Number.MAX_SAFE_INTEGER);
    }
  }
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
    throw new CliError("--tls-cert and --tls-key go together");
  }
  if (options.redis !== undefined && !/^rediss?:\/\/./.test(options.redis)) {
    throw new CliError(`--redis must be a redis:// or rediss:// URL, got "${options.redis}"`);
  }
  if (options.presenceStore === "redis" && options.redis === undefined) {
    throw new CliError("--presence-store redis needs --redis URL");
  }
  return options;
}

/** A positive decimal such as `2` or `1.5` (no sign, no exponent). */
function parseDecimal(name: string, value: string): number {
  if (!/^\d+(\.\d+)?$/.test(value) || Number(value) <= 0 || Number(value) > 1_000) {
    throw new CliError(`${name} must be a number above 0 and at most 1000, got "${value}"`);
  }
  return Number(value);
}

function parseNumber(name: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value)) throw new CliError(`${name} must be a whole number, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new CliError(`${name} must be between ${min} and ${max}`);
  return n;
}
