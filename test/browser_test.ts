/**
 * End to end in real headless Chromium: the demo page with the bundled
 * client connects to the hub on `/ws`, exchanges heartbeats and chat,
 * survives a server restart, emulated offline/online, and a page reload
 * (the session persists in sessionStorage).
 *
 * Needs Debian's `chromium` (`apt-get install -y chromium`; `.ci/run` installs
 * it) and npm access once for esbuild and playwright-core.
 */
import { launchChromium } from "./_browser.ts";
import { assert, assertEquals } from "@std/assert";
import { bundle } from "../client/_bundle.ts";
import { retryAfterReason } from "../protocol/messages.ts";
import { chat as chatHandler, Hub } from "../hub/mod.ts";
import { demoRoutes } from "../server/_demo.ts";
import { serve, type Server } from "../server/server.ts";

const WAIT = { timeout: 10_000 };

// The page must run the client as it is now, not a stale dist/.
await bundle();

interface DemoState {
  state: string;
  rtt: number | null;
  heartbeats: number;
  reconnects: number;
  retries: number;
  chats: { text: string; offset: number }[];
}

Deno.test("browser: the demo page connects, beats, chats, survives a restart, offline and a reload", async () => {
  const app = chatHandler(new Hub({ heartbeat: { interval: 300, timeout: 600 }, grace: 30_000 }));
  const pages = demoRoutes();
  const start = (port = 0): Server =>
    serve({
      port,
      hostname: "127.0.0.1",
      routes: { "/ws": app },
      fetch: (request) =>
        pages[new URL(request.url).pathname]?.(request) ?? new Response(null, { status: 404 }),
    });
  let server = start();
  const port = server.addr.port;
  const browser = await launchChromium();
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
    // The page shows the RTT it measured: read both in one turn (a heartbeat every 300 ms moves it).
    const shown = await page.evaluate(() => {
      const page = globalThis as unknown as {
        heartwireDemo: DemoState;
        document: { querySelector(selector: string): { textContent: string | null } | null };
      };
      return {
        text: page.document.querySelector("#rtt")?.textContent,
        rtt: page.heartwireDemo.rtt,
      };
    });
    assertEquals(shown.text, `${shown.rtt} ms`);

    await chat("hello");
    await until(`heartwireDemo.chats.some((m) => m.text === "hello")`);

    // Server restart with a retry hint; the page resumes its session.
    await server.shutdown({ code: 1012, reason: retryAfterReason(200), timeout: 2_000 });
    await app.publish("lobby", "chat", { from: "server", text: "while you were away", ts: 0 });
    server = start(port);
    await until(`heartwireDemo.reconnects === 1 && heartwireDemo.state === "open"`);
    // The log says what happened, not "socket error".
    const log = await page.textContent("#log");
    assert(/server restarting \(1012 retry-after=200\), retrying in \d+\.\d s/.test(log!), log!);
    assert(log!.includes("reconnected, session resumed"), log!);
    assert(!log!.includes("socket error"), log!);
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
    const offsets = end.chats.map((m) => m.offset);
    assertEquals(offsets, [1, 2, 3, 4]); // in order, none twice, none missed

    // A reload keeps the session (persist): resumed, and only what is new arrives.
    await page.reload(WAIT);
    await until(`heartwireDemo.state === "open"`);
    assertEquals(await page.textContent("#state"), "open (session resumed)");
    await chat("after reload");
    await until(`heartwireDemo.chats.some((m) => m.text === "after reload")`);
    assertEquals((await demo()).chats.map((m) => [m.offset, m.text]), [[5, "after reload"]]);
    assertEquals(errors, []);
    await page.screenshot({ path: "/tmp/heartwire-demo.png" });
  } finally {
    await browser.close();
    await server.shutdown({ timeout: 500 });
    app.dispose();
  }
});
