/**
 * The program behind `deno task start`: composes the library's `serve()` with
 * the demo page, `/healthz`, `/echo` and the WebSocket app on `/ws`.
 *
 * @module
 */
import { CliError, parseCliArgs, USAGE } from "./_cli.ts";
import { demoRoutes } from "./_demo.ts";
import { CloseCode } from "../protocol/close.ts";
import { retryAfterReason } from "../protocol/messages.ts";
import { echoHandler, serve, type ServeOptions, type Server, type ShutdownOptions } from "./mod.ts";
import { chat, Hub } from "../hub/mod.ts";

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
  const pingInterval = cli.pingInterval ?? 25_000;
  const pingTimeout = cli.pingTimeout ?? 10_000;

  // /ws: the hub with chat in "lobby"; the app heartbeat a browser is told
  // to use matches the ping timing.
  const hub = chat(new Hub({ heartbeat: { interval: pingInterval, timeout: pingTimeout } }), {
    topic: "lobby",
  });

  const pages: Record<string, (request: Request) => Response | Promise<Response>> = {
    ...demoRoutes(),
    "/healthz": () => new Response("ok\n"),
  };
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
      routes: { "/ws": hub, "/echo": echoHandler },
      fetch(request) {
        const page = pages[new URL(request.url).pathname];
        if (page) return page(request);
        return new Response(`no route for ${new URL(request.url).pathname}\n`, { status: 404 });
      },
      onListen(addr) {
        const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
        const origin = `${host}:${addr.port}`;
        console.log(
          `heartwire listening on ${tls ? "wss" : "ws"}://${origin}/ws ` +
            `(also /echo; demo page ${tls ? "https" : "http"}://${origin}/)`,
        );
      },
      onError(error) {
        console.error("heartwire:", error);
      },
    });
  } catch (error) {
    // Port in use, no permission, bad certificate: say so, exit non-zero.
    fail(1, `cannot listen on ${cli.hostname}:${cli.port}: ${(error as Error).message}`);
  }
  const stop = (options: ShutdownOptions) => () => {
    server.shutdown(options).then(() => Deno.exit(0));
  };
  // SIGINT/SIGTERM: going away (1001). SIGHUP: a restart (1012), and clients
  // are told to wait a moment so they do not all reconnect at once.
  Deno.addSignalListener("SIGINT", stop({ code: CloseCode.GoingAway }));
  Deno.addSignalListener("SIGTERM", stop({ code: CloseCode.GoingAway }));
  Deno.addSignalListener(
    "SIGHUP",
    stop({ code: CloseCode.ServiceRestart, reason: retryAfterReason(RESTART_RETRY_AFTER) }),
  );
}

/** How long (ms) clients are asked to wait after a SIGHUP restart. */
const RESTART_RETRY_AFTER = 1_000;

function fail(code: number, message: string): never {
  console.error(`heartwire: ${message}`);
  Deno.exit(code);
}

if (import.meta.main) await main();
