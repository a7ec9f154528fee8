/**
 * The program behind `deno task start`.
 *
 * @module
 */
import { CliError, parseCliArgs, USAGE } from "./cli.ts";
import { serve } from "./server.ts";

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
  const tls = cli.tlsCert && cli.tlsKey
    ? { cert: await Deno.readTextFile(cli.tlsCert), key: await Deno.readTextFile(cli.tlsKey) }
    : undefined;
  const server = serve({
    port: cli.port,
    hostname: cli.hostname,
    tls,
    pingInterval: cli.pingInterval,
    pingTimeout: cli.pingTimeout,
    maxPayload: cli.maxPayload,
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
  const stop = () => {
    server.shutdown().then(() => Deno.exit(0));
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

if (import.meta.main) await main();
