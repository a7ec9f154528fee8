import { assertEquals, assertStringIncludes, assertThrows } from "@std/assert";
import { CliError, parseCliArgs } from "../server/_cli.ts";
import { runMain } from "./_program.ts";

Deno.test("defaults: port 8080 on 0.0.0.0, PORT from the environment", () => {
  assertEquals(parseCliArgs([]), {
    port: 8080,
    hostname: "0.0.0.0",
    maxConnections: 18_000,
    maxConnectionsPerIp: 1_000,
    maxConnectionRatePerIp: 100,
    statsInterval: 5_000,
    loadAlertFactor: 2,
    shedLoad: false,
    kvPath: ".heartwire/presence.kv",
    help: false,
  });
  assertEquals(parseCliArgs([], { PORT: "9001" }).port, 9001);
  assertEquals(parseCliArgs(["--port", "9002"], { PORT: "9001" }).port, 9002);
});

Deno.test("every flag in both spellings", () => {
  const parsed = parseCliArgs([
    "--port=1",
    "--hostname",
    "::1",
    "--ping-interval",
    "5000",
    "--ping-timeout=2000",
    "--max-payload",
    "4096",
    "--tls-cert",
    "c.pem",
    "--tls-key=k.pem",
    "--max-connections",
    "500",
    "--max-connections-per-ip=20",
    "--max-connection-rate-per-ip",
    "0",
    "--stats-interval",
    "0",
    "--load-alert-factor=1.5",
    "--shed-load",
  ]);
  assertEquals(parsed, {
    port: 1,
    hostname: "::1",
    pingInterval: 5000,
    pingTimeout: 2000,
    maxPayload: 4096,
    tlsCert: "c.pem",
    tlsKey: "k.pem",
    maxConnections: 500,
    maxConnectionsPerIp: 20,
    maxConnectionRatePerIp: 0,
    statsInterval: 0,
    loadAlertFactor: 1.5,
    shedLoad: true,
    kvPath: ".heartwire/presence.kv",
    help: false,
  });
  assertEquals(parseCliArgs(["-h"]).help, true);
  // A switch before a flag with a value, and the other spelling of each.
  const other = parseCliArgs(["--shed-load", "--stats-interval=250", "--load-alert-factor", "3"]);
  assertEquals([other.shedLoad, other.statsInterval, other.loadAlertFactor], [true, 250, 3]);
});

Deno.test("bad flags are CliErrors that say what is wrong", () => {
  assertThrows(() => parseCliArgs(["--prot", "1"]), CliError, "unknown option --prot");
  assertThrows(() => parseCliArgs(["--port"]), CliError, "--port needs a value");
  assertThrows(() => parseCliArgs(["--port", "eighty"]), CliError, "whole number");
  assertThrows(() => parseCliArgs(["--port", "70000"]), CliError, "between 0 and 65535");
  assertThrows(() => parseCliArgs(["--ping-interval", "0"]), CliError, "between 1");
  assertThrows(() => parseCliArgs(["--ping-timeout", "-5"]), CliError, 'whole number, got "-5"');
  assertThrows(() => parseCliArgs(["--tls-cert", "c.pem"]), CliError, "go together");
  assertThrows(() => parseCliArgs([], { PORT: "x" }), CliError, "PORT");
  assertThrows(() => parseCliArgs(["--max-connections", "0"]), CliError, "between 1");
  assertThrows(() => parseCliArgs(["--max-connections", "lots"]), CliError, "whole number");
  assertThrows(() => parseCliArgs(["--max-connections-per-ip"]), CliError, "needs a value");
  assertThrows(() => parseCliArgs(["--max-connections-per-ip=1.5"]), CliError, "whole number");
  assertThrows(() => parseCliArgs(["--stats-interval", "-1"]), CliError, "whole number");
  assertThrows(() => parseCliArgs(["--stats-interval", "5s"]), CliError, "whole number");
  assertThrows(() => parseCliArgs(["--stats-interval"]), CliError, "needs a value");
  assertThrows(() => parseCliArgs(["--load-alert-factor", "0"]), CliError, "above 0");
  assertThrows(() => parseCliArgs(["--load-alert-factor=-2"]), CliError, "above 0");
  assertThrows(() => parseCliArgs(["--load-alert-factor", "two"]), CliError, "above 0");
  assertThrows(() => parseCliArgs(["--load-alert-factor", "1e3"]), CliError, "above 0");
  assertThrows(() => parseCliArgs(["--load-alert-factor"]), CliError, "needs a value");
  assertThrows(() => parseCliArgs(["--shed-load=yes"]), CliError, "takes no value");
  assertThrows(() => parseCliArgs(["--presence-store", "disk"]), CliError, "memory, kv or redis");
  assertThrows(() => parseCliArgs(["--presence-store"]), CliError, "memory, kv or redis");
  assertThrows(() => parseCliArgs(["--presence-store=redis"]), CliError, "needs --redis");
  assertThrows(
    () => parseCliArgs(["--redis", "localhost:6379"]),
    CliError,
    "redis:// or rediss://",
  );
  assertThrows(() => parseCliArgs(["--presence-timeout", "0"]), CliError, "between 1");
  assertThrows(() => parseCliArgs(["--away-after", "-1"]), CliError, "whole number");
  assertThrows(() => parseCliArgs(["--kv-path"]), CliError, "needs a value");
});

Deno.test("presence flags: store, KV path, Redis URL, timeouts", () => {
  const defaults = parseCliArgs([]);
  assertEquals(defaults.presenceStore, undefined); // kv, or redis when --redis is given
  assertEquals(defaults.kvPath, ".heartwire/presence.kv");
  const set = parseCliArgs([
    "--presence-store=redis",
    "--redis",
    "redis://127.0.0.1:6390",
    "--kv-path",
    "/tmp/p.kv",
    "--presence-timeout=40000",
    "--away-after",
    "0",
  ]);
  assertEquals(
    [set.presenceStore, set.redis, set.kvPath, set.presenceTimeout, set.awayAfter],
    ["redis", "redis://127.0.0.1:6390", "/tmp/p.kv", 40_000, 0],
  );
  assertEquals(parseCliArgs(["--presence-store", "memory"]).presenceStore, "memory");
});

Deno.test("the program: a bad flag prints usage to stderr and exits 2", async () => {
  const { code, stderr } = await runMain(["--bogus"]);
  assertEquals(code, 2);
  assertStringIncludes(stderr, "unknown option --bogus");
  assertStringIncludes(stderr, "Usage: deno task start");
});

Deno.test("the program: a bad --max-connections or monitoring flag prints usage and exits 2", async () => {
  for (
    const args of [
      ["--max-connections", "-1"],
      ["--max-connections-per-ip=none"],
      ["--stats-interval", "soon"],
      ["--load-alert-factor", "0"],
      ["--shed-load=1"],
      ["--presence-store", "carrier-pigeon"],
      ["--presence-store=redis"],
    ]
  ) {
    const { code, stderr } = await runMain(args);
    assertEquals(code, 2);
    assertStringIncludes(stderr, args[0].split("=")[0]);
    assertStringIncludes(stderr, "Usage: deno task start");
  }
});

Deno.test("the program: --help prints usage and exits 0", async () => {
  const { code, stdout } = await runMain(["--help"]);
  assertEquals(code, 0);
  assertStringIncludes(stdout, "--ping-interval MS");
  assertStringIncludes(stdout, "--max-connections N");
  assertStringIncludes(stdout, "--max-connections-per-ip N");
  assertStringIncludes(stdout, "--stats-interval MS");
  assertStringIncludes(stdout, "--load-alert-factor F");
  assertStringIncludes(stdout, "--shed-load");
});

Deno.test("--workers N and --trusted-proxy CIDR (repeatable, comma-separated)", () => {
  const parsed = parseCliArgs([
    "--workers",
    "4",
    "--trusted-proxy",
    "127.0.0.1",
    "--trusted-proxy=10.0.0.0/8,::1",
  ]);
  assertEquals(parsed.workers, 4);
  assertEquals(parsed.trustedProxies?.map((range) => range.bits), [32, 8, 128]);
  assertThrows(() => parseCliArgs(["--workers", "0"]), CliError, "between 1");
  assertThrows(
    () => parseCliArgs(["--trusted-proxy", "10.0.0.0/40"]),
    CliError,
    "--trusted-proxy: bad prefix length",
  );
  assertThrows(() => parseCliArgs(["--trusted-proxy", "nginx"]), CliError, "not an IP address");
  assertThrows(() => parseCliArgs(["--trusted-proxy"]), CliError, "needs a value");
});
