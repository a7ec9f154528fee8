/**
 * The real program, as `deno task start` runs it: logs its URL, serves /echo
 * to Deno's WebSocket, shuts down gracefully on SIGTERM, serves wss:// with a
 * certificate made here by openssl.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { spawnReady } from "./_child.ts";
import { freePort } from "./_port.ts";
import { mainArgs, runMain } from "./_program.ts";
import { sampleReader } from "./_prometheus.ts";
import { waitFor } from "./_wait.ts";

/** Starts the server program and resolves once it printed its URL. */
async function start(args: string[]) {
  const { child, text } = await spawnReady(mainArgs(["--port", "0", ...args]), {
    what: "the server",
  });
  const line = text.split("\n")[0];
  const port = Number(line.match(/:(\d+)\/ws /)?.[1]);
  return { child, line, port };
}

function echoOnce(
  url: string,
  message: string,
): Promise<{ echoed: string; closed: Promise<CloseEvent> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const closed = new Promise<CloseEvent>((r) => ws.addEventListener("close", (e) => r(e)));
    ws.onopen = () => ws.send(message);
    ws.onmessage = (e) => resolve({ echoed: e.data, closed });
    ws.onerror = () => reject(new Error("websocket error"));
  });
}

Deno.test("deno task start: logs its URL, echoes, and exits 0 on SIGINT after sending 1001", async () => {
  const { child, line, port } = await start(["--hostname", "127.0.0.1"]);
  assertMatch(
    line,
    /^heartwire listening on ws:\/\/127\.0\.0\.1:\d+\/ws \(also \/echo; demo page http:\/\/127\.0\.0\.1:\d+\/, dashboard http:\/\/127\.0\.0\.1:\d+\/dashboard\)$/,
  );
  const { echoed, closed } = await echoOnce(`ws://127.0.0.1:${port}/echo`, "ping me");
  assertEquals(echoed, "ping me");
  child.kill("SIGINT");
  assertEquals((await closed).code, 1001);
  assertEquals((await child.status).code, 0);
});

Deno.test("deno task start: stats lines on stdout, /metrics with the load average, /stats", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: mainArgs(["--port", "0", "--hostname", "127.0.0.1", "--stats-interval", "200"]),
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const reading = (async () => {
    let rest = "";
    for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + text).split("\n");
      rest = parts.pop()!;
      lines.push(...parts);
    }
  })();
  const stderr = new Response(child.stderr).text();
  try {
    await waitFor(() => lines.filter((l) => l.startsWith("heartwire: ")).length >= 2, 10_000)
      .catch(() => {
        throw new Error(`no stats lines: ${lines.join("\n")}`);
      });
    const port = Number(lines[0].match(/:(\d+)\/ws /)?.[1]);
    assertMatch(
      lines.find((l) => l.startsWith("heartwire: "))!,
      /^heartwire: 0 active, 0 total, \+0 opened, -0 closed, 0 timeouts, rtt -( , OVERLOADED.*)?/,
    );
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const value = sampleReader(text);
    // --allow-sys=loadavg is granted as by `deno task start`: the load average is read.
    assert(Number.isFinite(value("heartwire_load1")), "heartwire_load1 is a number");
    assert(value("process_resident_memory_bytes") > 0);
    assertEquals(value("heartwire_connections_active"), 0);
    const stats = await (await fetch(`http://127.0.0.1:${port}/stats`)).json();
    assertEquals(stats.connections.opened, 0);
  } finally {
    child.kill("SIGTERM");
    assertEquals((await child.status).code, 0);
    await reading;
  }
  // On a machine this busy the alert may have fired; nothing else may be said.
  for (const line of (await stderr).split("\n").filter(Boolean)) {
    assertMatch(line, /^heartwire: (WARNING load|load .* no longer overloaded)/);
  }
});

for (const signal of ["SIGTERM", "SIGHUP"] as const) {
  Deno.test(`${signal} is a restart: clients get 1012 with a retry hint in the window, and it exits 0`, async () => {
    const { child, port } = await start(["--hostname", "127.0.0.1"]);
    const { closed } = await echoOnce(`ws://127.0.0.1:${port}/echo`, "hi");
    child.kill(signal);
    const event = await closed;
    assertEquals(event.code, 1012);
    const hint = /^retry-after=(\d+)$/.exec(event.reason);
    assert(hint, `a retry hint, got "${event.reason}"`);
    assert(Number(hint[1]) <= 3_000, event.reason);
    assertEquals((await child.status).code, 0);
  });
}

Deno.test("--workers 2 without shared hub stores is refused with a clear message, exit 2", async () => {
  const { code, stderr } = await runMain(["--workers", "2", "--port", "0"]);
  assertEquals(code, 2);
  assertStringIncludes(
    stderr,
    "--workers 2 needs hub stores shared by the workers: add --redis URL",
  );
});

Deno.test("a port in use or an unreadable certificate is a clear error, not a stack trace", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = String((taken.addr as Deno.NetAddr).port);
    const inUse = await runMain(["--hostname", "127.0.0.1", "--port", port]);
    assertEquals(inUse.code, 1);
    assertMatch(inUse.stderr, new RegExp(`^heartwire: cannot listen on 127\\.0\\.0\\.1:${port}: `));
  } finally {
    taken.close();
  }
  const noCert = await runMain([
    "--tls-cert",
    "/nonexistent/c.pem",
    "--tls-key",
    "/nonexistent/k.pem",
  ]);
  assertEquals(noCert.code, 2);
  assertMatch(noCert.stderr, /^heartwire: cannot read the TLS certificate or key: /);
});

Deno.test("wss:// with a self-signed certificate made by openssl", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const made = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        // rustls refuses a CA certificate as the server's own (CaUsedAsEndEntity).
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    assertEquals(made.code, 0, "openssl failed");
    const { child, line, port } = await start([
      "--hostname",
      "127.0.0.1",
      "--tls-cert",
      `${dir}/cert.pem`,
      "--tls-key",
      `${dir}/key.pem`,
    ]);
    assertMatch(line, /^heartwire listening on wss:/);
    // Deno's client must trust our certificate: a child process with --cert.
    const client = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        "--cert",
        `${dir}/cert.pem`,
        `
        const ws = new WebSocket("wss://localhost:${port}/echo");
        ws.onopen = () => ws.send("over tls");
        ws.onmessage = (e) => { console.log(e.data); ws.close(); };
        ws.onerror = (e) => { console.error(e.message); Deno.exit(1); };
      `,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(new TextDecoder().decode(client.stdout).trim(), "over tls");
    assertEquals(client.code, 0);
    child.kill("SIGTERM");
    assertEquals((await child.status).code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task start: presence on Deno KV by default; a ?id= client is online at /presence/<id>", async () => {
  const dir = await Deno.makeTempDir();
  const { child, port } = await start([
    "--hostname",
    "127.0.0.1",
    "--kv-path",
    `${dir}/nested/presence.kv`,
  ]);
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?id=carol`);
    await new Promise((resolve, reject) => {
      ws.onmessage = resolve; // the welcome: the session is open
      ws.onerror = () => reject(new Error("websocket error"));
    });
    const online = await fetch(`http://127.0.0.1:${port}/presence/carol`);
    assertEquals(online.status, 200);
    const user = await online.json();
    assertEquals(user.status, "online");
    const unknown = await fetch(`http://127.0.0.1:${port}/presence/nobody`);
    assertEquals(unknown.status, 404);
    assert("error" in await unknown.json());
    const closed = new Promise((resolve) => ws.onclose = resolve);
    ws.close();
    await closed;
    // The KV file is where --kv-path said, its folder made on the way.
    assert((await Deno.stat(`${dir}/nested/presence.kv`)).isFile);
  } finally {
    child.kill("SIGTERM");
    assertEquals((await child.status).code, 0);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task start: an unreachable Redis is a clear error and exit 1", async () => {
  // A port nobody listens on: the connection is refused at once.
  const port = freePort();
  const { code, stderr } = await runMain(["--port", "0", "--redis", `redis://127.0.0.1:${port}`]);
  assertEquals(code, 1);
  assertMatch(stderr, /cannot open the presence store/);
});
