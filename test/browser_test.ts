/**
 * End to end in real headless Chromium: the demo page with the bundled
 * client connects to `/ws`, exchanges heartbeats and chat, survives a server
 * restart, and emulated offline/online.
 *
 * Needs Debian's `chromium` (`apt-get install -y chromium`; `.ci/run` installs
 * it) and npm access once for esbuild and playwright-core.
 */
import { chromium } from "playwright-core";
import { assert, assertEquals } from "@std/assert";
import { bundle } from "../client/_bundle.ts";
import { retryAfterReason } from "../protocol/messages.ts";
import { WsApp } from "../server/app.ts";
import { demoRoutes } from "../server/demo.ts";
import { serve, type Server } from "../server/server.ts";

const CHROMIUM = "/usr/bin/chromium";
const WAIT = { timeout: 10_000 };

// The page must run the client as it is now, not a stale dist/.
await bundle();

interface DemoState {
  state: string;
  rtt: number | null;
  heartbeats: number;
  reconnects: number;
  retries: number;
  chats: { text: string; seq: number }[];
}

Deno.test("browser: the demo page connects, beats, chats, survives a restart and offline", async () => {
  const app = new WsApp({ heartbeat: { interval: 300, timeout: 600 }, grace: 30_000 });
  const start = (port = 0): Server =>
    serve({ port, hostname: "127.0.0.1", routes: { "/ws": app }, httpRoutes: demoRoutes() });
  let server = start();
  const port = server.addr.port;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--headless=new", "--disable-gpu"],
    timeout: 20_000,
  });
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    const demo = () =>
      page.evaluate(() => {
        const { socket: _, ...state } =
          (globalThis as unknown as { heartwireDemo: DemoState & { socket: unknown } })
            .heartwireDemo;
        return state as DemoState;
      });
    const until = (condition: string) => page.waitForFunction(condition, undefined, WAIT);
    const chat = async (text: string) => {
      await page.fill("#text", text);
      await page.click("form button:not([type])");
    };

    await page.goto(`http://127.0.0.1:${port}/?id=chromium`, WAIT);
    await until(`heartwireDemo.state === "open"`);
    // Heartbeats flow: the server's 300 ms interval was adopted.
    await until(`heartwireDemo.heartbeats >= 3`);
    const first = await demo();
    assert(first.rtt !== null && first.rtt >= 0 && first.rtt < 1_000, `rtt ${first.rtt}`);
    assertEquals(await page.textContent("#rtt"), `${first.rtt} ms`);

    await chat("hello");
    await until(`heartwireDemo.chats.some((m) => m.text === "hello")`);

    // Server restart with a retry hint; the page resumes its session.
    await server.shutdown({ code: 1012, reason: retryAfterReason(200), timeout: 2_000 });
    app.publish("lobby", "chat", { from: "server", text: "while you were away", room: "lobby" });
    server = start(port);
    await until(`heartwireDemo.reconnects === 1 && heartwireDemo.state === "open"`);
    await until(`heartwireDemo.chats.some((m) => m.text === "while you were away")`);
    await chat("after restart");
    await until(`heartwireDemo.chats.some((m) => m.text === "after restart")`);

    // Emulated offline: no retries burnt while offline; a message typed meanwhile is kept.
    await context.setOffline(true);
    await until(`!navigator.onLine && heartwireDemo.state === "offline"`);
    const retriesOffline = (await demo()).retries;
    await chat("typed offline");
    await page.waitForTimeout(1_500); // several heartbeat timeouts
    assertEquals((await demo()).retries, retriesOffline);
    await context.setOffline(false);
    await until(`navigator.onLine && heartwireDemo.state === "open"`);
    await until(`heartwireDemo.chats.some((m) => m.text === "typed offline")`);

    const end = await demo();
    const texts = end.chats.map((m) => m.text);
    assertEquals(texts, ["hello", "while you were away", "after restart", "typed offline"]);
    const seqs = end.chats.map((m) => m.seq);
    assertEquals(seqs, [...seqs].sort((a, b) => a - b)); // in order, none twice
    assertEquals(new Set(seqs).size, seqs.length);
    assertEquals(errors, []);
    await page.screenshot({ path: "/tmp/heartwire-demo.png" });
  } finally {
    await browser.close();
    await server.shutdown({ timeout: 500 });
    app.dispose();
  }
});
