/**
 * The program behind `deno task start`: composes the library's `serve()` with
 * the demo page, `/healthz`, `/echo`, the WebSocket app on `/ws`, and
 * monitoring: `/metrics`, `/stats`, `/dashboard` (fed over `/dashboard/ws`),
 * the stats line and the load alert; and presence (`/presence`, and online
 * status on `/ws`) on Deno KV by default, or memory, or Redis.
 *
 * @module
 */
import { CliError, type CliOptions, parseCliArgs, USAGE } from "./_cli.ts";
import { DashboardFeed, monitoringRoutes, toResponse } from "./_dashboard.ts";
import { demoRoutes } from "./_demo.ts";
import { StatsLine } from "./_stats_line.ts";
import { CloseCode } from "../protocol/close.ts";
import {
  echoHandler,
  HeartwireMetrics,
  LoadMonitor,
  serve,
  type ServeOptions,
  type Server,
  type ShutdownOptions,
} from "./mod.ts";
import { chat, Hub, openPresence, type Presence, presenceFetch } from "../hub/mod.ts";
import { connectRedisBackend, type RedisBackend } from "../hub/redis/mod.ts";
import { runWorkers, WORKER_ENV } from "./_supervisor.ts";

/** The dashboard's feed: a WebSocket route, never shed (the operator wants to see the overload). */
const FEED_PATH = "/dashboard/ws";

/**
 * What a test may replace in the program; the defaults are what
 * `deno task start` uses.
 */
export interface ProgramOptions {
  /** PEM certificate and key (already read). */
  tls?: ServeOptions["tls"];
  /** The one-minute load average. Default `Deno.loadavg()` (with `--allow-sys=loadavg`). */
  loadSource?: () => number | undefined;
  /** Time between load samples (ms). Default 5 000. */
  loadInterval?: number;
  /** CPUs the load alert scales by. Default the machine's. */
  cpus?: number;
  /** Time between dashboard pushes (ms). Default 1 000. */
  dashboardInterval?: number;
  /** Where the stats lines and the listening line go. Default `console.log`. */
  log?: (line: string) => void;
  /** Where the load alert's lines go. Default `console.warn`. */
  warn?: (line: string) => void;
  /** Where contained errors go. Default `console.error`. */
  onError?: (error: unknown) => void;
  /** A presence tracker to use instead of opening the one the flags describe (tests). */
  presence?: Presence;
  /** The hub's Redis backend (`--redis`), already connected; closed by the caller. */
  redis?: RedisBackend;
}

/** The running program. */
export interface Program {
  /** The server. */
  readonly server: Server;
  /** Everything counted. */
  readonly metrics: HeartwireMetrics;
  /** The load alert. */
  readonly load: LoadMonitor;
  /** The `/ws` app. */
  readonly hub: Hub;
  /** Who is online. */
  readonly presence: Presence;
  /** Stops the timers, shuts the server down with `options`, disposes of the hub. */
  stop(options?: ShutdownOptions): Promise<void>;
}

/**
 * Starts the program as `cli` describes.
 *
 * @throws whatever opening the presence store throws (a KV file that cannot
 * be written, Redis unreachable), then whatever `serve()` throws (a port in
 * use, a bad certificate); nothing is left running when it throws.
 */
export async function startProgram(
  cli: CliOptions,
  options: ProgramOptions = {},
): Promise<Program> {
  const { tls } = options;
  const log = options.log ?? console.log;
  const pingInterval = cli.pingInterval ?? 25_000;
  const pingTimeout = cli.pingTimeout ?? 10_000;
  const metrics = new HeartwireMetrics();
  const presence = options.presence ?? await openProgramPresence(cli, pingInterval + pingTimeout);
  const ownPresence = options.presence === undefined;

  // /ws: the hub with chat in "lobby"; the app heartbeat a browser is told
  // to use matches the ping timing, and a client named with ?id= is online.
  // With --redis, topics, sessions and fan-out are shared by every node.
  const redis = options.redis;
  const stores = redis
    ? { history: redis.history, sessions: redis.sessions, broker: redis.broker }
    : {};
  const hub = chat(
    new Hub({
      heartbeat: { interval: pingInterval, timeout: pingTimeout },
      metrics,
      presence,
      ...stores,
    }),
    { topic: "lobby" },
  );

  const load = new LoadMonitor({
    factor: cli.loadAlertFactor,
    cpus: options.cpus,
    interval: options.loadInterval,
    loadSource: options.loadSource,
    log: options.warn,
    action: cli.shedLoad ? "refusing new WebSocket connections" : undefined,
  });
  metrics.watchLoad(load);
  const feed = new DashboardFeed(() => metrics.snapshot(), {
    interval: options.dashboardInterval,
  });
  const monitoring = monitoringRoutes(metrics, { feedPath: FEED_PATH });
  const pages: Record<string, (request: Request) => Response | Promise<Response>> = {
    ...demoRoutes(),
    // Degraded while Redis is away: a balancer should prefer other nodes.
    "/healthz": () =>
      redis && !redis.healthy
        ? new Response("degraded: redis unreachable\n", { status: 503 })
        : new Response("ok\n"),
  };
  for (const [path, answer] of Object.entries(monitoring)) pages[path] = () => toResponse(answer());

  const appFetch = (request: Request) => {
    const path = new URL(request.url).pathname;
    const page = pages[path];
    if (page) return page(request);
    return new Response(`no route for ${path}\n`, { status: 404 });
  };
  // GET /presence?topic=… and /presence/<id>; everything else is a page.
  const fetch = presenceFetch(presence, {
    fallback: appFetch,
    onError: options.onError,
  });

  let server: Server;
  try {
    server = serve({
      port: cli.port,
      hostname: cli.hostname,
      tls,
      pingInterval,
      pingTimeout,
      maxPayload: cli.maxPayload,
      deflate: cli.deflate,
      maxConnections: cli.maxConnections,
      maxConnectionsPerIp: cli.maxConnectionsPerIp,
      maxConnectionRatePerIp: cli.maxConnectionRatePerIp || undefined,
      // --workers: every worker binds the port the supervisor gave them.
      reusePort: Deno.env.get(WORKER_ENV) !== undefined,
      trustedProxies: cli.trustedProxies,
      metrics,
      routes: { "/ws": hub, "/echo": echoHandler, [FEED_PATH]: feed },
      // --shed-load: while overloaded, new WebSockets wait; HTTP (/metrics,
      // /healthz) and the dashboard's feed keep answering.
      refuseUpgrade: cli.shedLoad
        ? (_request, path) =>
          load.overloaded && path !== FEED_PATH
            ? {
              status: 503,
              reason: "overloaded, try again later",
              headers: { "Retry-After": String(load.retryAfterSeconds) },
            }
            : undefined
        : undefined,
      fetch,
      onListen(addr) {
        const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
        const origin = `${host}:${addr.port}`;
        const http = `${tls ? "https" : "http"}://${origin}`;
        log(
          `heartwire listening on ${tls ? "wss" : "ws"}://${origin}/ws ` +
            `(also /echo; demo page ${http}/, dashboard ${http}/dashboard)`,
        );
      },
      onError: options.onError ?? ((error) => console.error("heartwire:", error)),
    });
  } catch (error) {
    hub.dispose();
    feed.stop();
    if (ownPresence) await closePresence(presence);
    throw error;
  }

  const stats = new StatsLine(() => metrics.snapshot(), { interval: cli.statsInterval, log });
  stats.start();
  load.start();

  return {
    server,
    metrics,
    load,
    hub,
    presence,
    async stop(shutdown: ShutdownOptions = {}) {
      stats.stop();
      load.stop();
      feed.stop();
      await server.shutdown(shutdown);
      // Messages whose cseq is recorded are carried out before the stores close.
      await hub.drain();
      hub.dispose();
      if (ownPresence) await closePresence(presence);
    },
  };
}

/**
 * Opens the presence store the flags name and starts its tracker. On Deno KV
 * the node id is stable per port, so a node restarted after a crash clears
 * its predecessor's users at once instead of waiting out its lease.
 */
async function openProgramPresence(cli: CliOptions, defaultTimeout: number): Promise<Presence> {
  const kind = cli.presenceStore ?? (cli.redis ? "redis" : "kv");
  if (kind === "kv") {
    const dir = cli.kvPath.slice(0, Math.max(0, cli.kvPath.lastIndexOf("/")));
    if (dir) await Deno.mkdir(dir, { recursive: true });
  }
  const worker = Deno.env.get("HEARTWIRE_WORKER");
  return await openPresence({
    kind,
    kvPath: cli.kvPath,
    redisUrl: cli.redis,
    // Port 0 (a test) picks a new port each time: nothing to take over.
    nodeId: kind === "kv" && cli.port !== 0
      ? `kv-${cli.port}${worker ? `-${worker}` : ""}`
      : undefined,
    presenceTimeout: cli.presenceTimeout ?? defaultTimeout,
    awayAfter: cli.awayAfter,
  });
}

async function closePresence(presence: Presence): Promise<void> {
  await presence.close();
  await presence.store.close();
}

async function main(): Promise<void> {
  let cli;
  try {
    cli = parseCliArgs(Deno.args, { PORT: Deno.env.get("PORT") });
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    console.error(`heartwire: ${error.message}\n\n${USAGE}`);
    Deno.exit(2);
  }
  if (cli.help) {
    console.log(USAGE);
    return;
  }
  let tls: ServeOptions["tls"];
  if (cli.tlsCert && cli.tlsKey) {
    try {
      tls = {
        cert: await Deno.readTextFile(cli.tlsCert),
        key: await Deno.readTextFile(cli.tlsKey),
      };
    } catch (error) {
      fail(2, `cannot read the TLS certificate or key: ${(error as Error).message}`);
    }
  }
  if ((cli.workers ?? 1) > 1 && Deno.env.get(WORKER_ENV) === undefined) return await supervise(cli);
  let presence: Presence;
  try {
    presence = await openProgramPresence(
      cli,
      (cli.pingInterval ?? 25_000) + (cli.pingTimeout ?? 10_000),
    );
  } catch (error) {
    // A KV file that cannot be opened, Redis unreachable: say which, exit non-zero.
    fail(1, `cannot open the presence store: ${(error as Error).message}`);
  }
  let redis: RedisBackend | undefined;
  if (cli.redis) {
    try {
      redis = await connectRedisBackend(cli.redis);
    } catch (error) {
      await closePresence(presence);
      fail(1, `cannot connect to Redis at ${cli.redis}: ${(error as Error).message}`);
    }
  }
  let program: Program;
  try {
    program = await startProgram(cli, { tls, presence, redis });
  } catch (error) {
    // Port in use, no permission, bad certificate: say so, exit non-zero.
    await closePresence(presence);
    await redis?.close();
    fail(1, `cannot listen on ${cli.hostname}:${cli.port}: ${(error as Error).message}`);
  }
  const stop = (options: ShutdownOptions) => () => {
    program.stop(options)
      .then(() => closePresence(presence))
      .then(() => redis?.close())
      .then(() => Deno.exit(0));
  };
  // SIGINT: going away (1001). SIGTERM (a deploy, or the supervisor
  // draining a worker) and SIGHUP: a restart (1012), each client told its
  // own wait within the window, so they do not all reconnect at once.
  const restart = stop({ code: CloseCode.ServiceRestart, retryAfter: RESTART_RETRY_WINDOW });
  Deno.addSignalListener("SIGINT", stop({ code: CloseCode.GoingAway }));
  Deno.addSignalListener("SIGTERM", restart);
  Deno.addSignalListener("SIGHUP", restart);
  if (Deno.env.get(WORKER_ENV) !== undefined) {
    // The supervisor holds our stdin open and never writes: EOF means it is
    // gone (even killed with SIGKILL), and a worker must not outlive it.
    (async () => {
      for await (const _ of Deno.stdin.readable) {
        // nothing is ever sent
      }
    })().catch(() => {}).finally(restart);
  }
}

/** Clients closed by a restart come back spread over this window (ms). */
const RESTART_RETRY_WINDOW = 3_000;

/** `--workers N` (N > 1): this process supervises N copies of itself on one port. */
async function supervise(cli: CliOptions): Promise<void> {
  // Without shared stores each worker would keep its own sessions and
  // topics: a client that lands on another worker loses its session, and
  // chat published on one worker never reaches the others. Refused rather
  // than silently split; with --redis the hub's stores live in Redis.
  if (cli.redis === undefined) {
    fail(
      2,
      `--workers ${cli.workers} needs hub stores shared by the workers: add --redis URL, ` +
        "or run one process per port behind a proxy",
    );
  }
  let port = cli.port;
  if (port === 0) {
    // Every worker must bind the same port: pick one for them.
    const probe = Deno.listen({ hostname: cli.hostname, port: 0 });
    port = (probe.addr as Deno.NetAddr).port;
    probe.close();
  }
  await runWorkers({
    workers: cli.workers!,
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-sys=loadavg",
      "--unstable-net",
      "--unstable-kv",
      new URL(import.meta.url).pathname,
      ...Deno.args,
      `--port=${port}`,
    ],
  });
  console.log(`heartwire: ${cli.workers} workers listening on port ${port}`);
}

function fail(code: number, message: string): never {
  console.error(`heartwire: ${message}`);
  Deno.exit(code);
}

if (import.meta.main) await main();
