/**
 * Every program in examples/ runs as its README line says and does what it
 * claims: each is started as a subprocess on a free port (PORT=0; it prints
 * "listening on http://localhost:N/"), spoken to for real, and stopped.
 *
 * behind_nginx needs nginx, browser needs Chromium and npm (esbuild); `.ci/run`
 * installs both.
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { launchChromium } from "./_browser.ts";
import { freePort } from "./_port.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const NET = ["--allow-net", "--allow-env"];

interface Running {
  port: number;
  /** Everything printed so far. */
  output: () => string;
  /** SIGINT (the examples shut down gracefully on it), then the exit status. */
  stop: () => Promise<Deno.CommandStatus>;
}

/** Starts `deno run <permissions> examples/<file>` and waits for its "listening on" line. */
async function start(file: string, permissions: string[], port = 0): Promise<Running> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, `examples/${file}`],
    cwd: ROOT,
    env: { PORT: String(port), NO_COLOR: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let output = "";
  const reading = (async () => {
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) output += chunk;
  })();
  const deadline = Date.now() + 30_000;
  let listening: RegExpExecArray | null = null;
  while (!(listening = /listening on http:\/\/localhost:(\d+)\//.exec(output))) {
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await child.status;
      throw new Error(`examples/${file} did not start:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  let stopped: Promise<Deno.CommandStatus> | undefined;
  return {
    port: Number(listening[1]),
    output: () => output,
    stop() {
      return stopped ??= (async () => {
        child.kill("SIGINT");
        const status = await child.status;
        await reading;
        return status;
      })();
    },
  };
}

/** Runs a client example to its end with `stdin`, returning what it printed. */
async function runClient(file: string, args: string[], stdin = ""): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", `examples/${file}`, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  const { code, stdout, stderr } = await child.output();
  clearTimeout(timer);
  const text = new TextDecoder().decode(stdout);
  assertEquals(code, 0, `examples/${file} failed:\n${text}\n${new TextDecoder().decode(stderr)}`);
  return text;
}

/** Opens a WebSocket and collects its messages. */
async function connect(url: string): Promise<{ ws: WebSocket; next: () => Promise<unknown> }> {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const queue: unknown[] = [];
  const waiting: ((data: unknown) => void)[] = [];
  ws.onmessage = (e) => waiting.length ? waiting.shift()!(e.data) : queue.push(e.data);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
  });
  const next = () =>
    queue.length ? Promise.resolve(queue.shift()) : new Promise((resolve) => waiting.push(resolve));
  return { ws, next };
}

async function closed(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return;
  await new Promise((resolve) => ws.addEventListener("close", resolve, { once: true }));
}

Deno.test("examples/echo.ts echoes text and binary, answers HTTP, and stops on SIGINT", async () => {
  const server = await start("echo.ts", NET);
  const { ws, next } = await connect(`ws://127.0.0.1:${server.port}/echo`);
  ws.send("hello");
  assertEquals(await next(), "hello");
  ws.send(new Uint8Array([1, 2, 3]));
  assertEquals(new Uint8Array(await next() as ArrayBuffer), new Uint8Array([1, 2, 3]));
  const response = await fetch(`http://127.0.0.1:${server.port}/`);
  assertEquals(await response.json(), { try: `ws://localhost:${server.port}/echo` });
  // Shutdown closes the WebSocket with 1001 before the process exits.
  const closing = new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
  assertEquals((await server.stop()).code, 0);
  assertEquals((await closing).code, 1001);
});

Deno.test("examples/chat_presence.ts with chat_client.ts: chat comes back, presence sees the user", async () => {
  const server = await start("chat_presence.ts", NET);
  try {
    const url = `ws://127.0.0.1:${server.port}/ws`;
    const printed = await runClient("chat_client.ts", [url, "ann"], "hello, lobby\n");
    assertStringIncludes(printed, "connected as ann");
    assertStringIncludes(printed, "online: ann");
    assertStringIncludes(printed, "ann: hello, lobby");
    // Over HTTP: ann was seen (online still, or offline with last_seen once the close landed).
    const ann = await (await fetch(`http://127.0.0.1:${server.port}/presence/ann`)).json();
    assertEquals(ann.id, "ann");
    assert(ann.status === "online" || ann.last_seen > 0, JSON.stringify(ann));
    const nobody = await fetch(`http://127.0.0.1:${server.port}/presence/nobody`);
    assertEquals(nobody.status, 404);
    await nobody.body?.cancel();
  } finally {
    assertEquals((await server.stop()).code, 0);
  }
});

Deno.test("examples/hono.ts: Hono routes and a WebSocket with typed data on one port", async () => {
  const server = await start("hono.ts", NET);
  try {
    const hello = await fetch(`http://127.0.0.1:${server.port}/api/hello`);
    assertEquals(await hello.json(), { hello: "world", websockets: 0 });
    const anonymous = await fetch(`http://127.0.0.1:${server.port}/ws`);
    assertEquals(anonymous.status, 401);
    await anonymous.body?.cancel();
    const { ws, next } = await connect(`ws://127.0.0.1:${server.port}/ws?name=ann`);
    assertEquals(await next(), "welcome, ann");
    ws.send("hi");
    assertEquals(await next(), "ann said: hi");
    const counted = await fetch(`http://127.0.0.1:${server.port}/api/hello`);
    assertEquals((await counted.json()).websockets, 1);
    ws.close();
    await closed(ws);
  } finally {
    await server.stop();
  }
});

Deno.test("examples/acks_server.ts with acks_client.ts: replies, a publication, an error", async () => {
  const server = await start("acks_server.ts", NET);
  try {
    const printed = await runClient("acks_client.ts", [`ws://127.0.0.1:${server.port}/ws`]);
    assertStringIncludes(printed, 'add → {"sum":5}');
    assertStringIncludes(printed, "moved by ada to 1,2 (offset 1 in board)");
    assertStringIncludes(printed, 'move → {"ok":true}');
    assertStringIncludes(printed, "boom → error: this handler always fails");
  } finally {
    assertEquals((await server.stop()).code, 0);
  }
});

Deno.test("examples/behind_nginx.ts: chat and presence through nginx", async () => {
  const port = freePort();
  const proxy = await start("behind_nginx.ts", [
    ...NET,
    "--allow-run",
    "--allow-read",
    "--allow-write",
  ], port);
  try {
    assertEquals(proxy.port, port);
    const url = `ws://127.0.0.1:${port}/ws`;
    const printed = await runClient("chat_client.ts", [url, "bob"], "through the proxy\n");
    assertStringIncludes(printed, "bob: through the proxy");
    // A plain request through nginx reaches the same process.
    const bob = await (await fetch(`http://127.0.0.1:${port}/presence/bob`)).json();
    assertEquals(bob.id, "bob");
  } finally {
    assertEquals((await proxy.stop()).code, 0);
  }
});

Deno.test("examples/browser.ts: the page chats, says what happened when the server goes, and comes back", async () => {
  const permissions = [...NET, "--allow-read", "--allow-run"];
  let server = await start("browser.ts", permissions);
  const port = server.port;
  const browser = await launchChromium();
  const wait = { timeout: 15_000 };
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    const logged = (text: string) =>
      page.waitForFunction(
        `document.getElementById("log").textContent.includes(${JSON.stringify(text)})`,
        undefined,
        wait,
      );
    await page.goto(`http://127.0.0.1:${port}/?id=chromium`, wait);
    await page.waitForFunction(`document.body.dataset.state === "open"`, undefined, wait);
    await logged("connected as chromium");
    await page.fill("#text", "hello from the page");
    await page.click("button");
    await logged("chromium: hello from the page");

    // The server goes away (1001), then cannot be reached, then comes back on the same port.
    assertEquals((await server.stop()).code, 0);
    await logged("server shut down, retrying in");
    await logged("server unreachable, retrying in");
    server = await start("browser.ts", permissions, port);
    await page.waitForFunction(`document.body.dataset.state === "open"`, undefined, wait);
    assertEquals(errors, []);
    const lines = await page.$$eval("#log li", (items) => items.map((li) => li.textContent));
    assert(lines.some((line) => /retrying in \d+\.\d s$/.test(line!)), lines.join("\n"));
  } finally {
    await browser.close();
    await server.stop();
  }
});
