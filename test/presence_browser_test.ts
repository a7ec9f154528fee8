/**
 * Presence end to end in real headless Chromium: two demo pages, each in its
 * own browser context, see each other in "who is online"; one goes offline
 * (emulated) and the other sees it leave within heartbeat interval + timeout
 * (plus one presence sweep), then join again when it reconnects.
 *
 * Chromium's offline emulation stops the page's WebSocket messages but its
 * network stack still answers the server's pings, so it is the hub's
 * presence timeout on app heartbeats, not keepalive, that sees the page go.
 *
 * Needs Debian's `chromium` (`apt-get install -y chromium`; `.ci/run` installs
 * it) and npm access once for esbuild and playwright-core.
 */
import { launchChromium } from "./_browser.ts";
import { assert, assertEquals } from "@std/assert";
import { bundle } from "../client/_bundle.ts";
import { chat, Hub } from "../hub/mod.ts";
import { MemoryPresenceStore, Presence, presenceFetch } from "../hub/presence/mod.ts";
import { demoRoutes } from "../server/_demo.ts";
import { serve } from "../server/server.ts";

const WAIT = { timeout: 10_000 };
/** The hub's heartbeat, announced to the pages. */
const HEARTBEAT = { interval: 300, timeout: 600 };
/**
 * What the client itself waits before it calls a connection dead: a live page
 * beats every interval, so it never flickers offline.
 */
const PRESENCE_TIMEOUT = HEARTBEAT.interval + HEARTBEAT.timeout;
/** The presence tracker's sweep period here (its default: a third of the timeout, at most 1 s). */
const SWEEP = PRESENCE_TIMEOUT / 3;
/** Scheduling slack on a loaded 2-core machine: page polling, event delivery. */
const SLACK = 1_000;

// The pages must run the client as it is now, not a stale dist/.
await bundle();

interface PresenceNote {
  type: string;
  id: string;
  reason?: string;
  at: number;
}

Deno.test("browser presence: two pages see each other; one goes offline, leaves, and comes back", async () => {
  const presence = new Presence({
    store: new MemoryPresenceStore(),
    presenceTimeout: PRESENCE_TIMEOUT,
    awayAfter: 0,
  });
  await presence.start();
  const hub = chat(new Hub({ heartbeat: HEARTBEAT, presence }));
  const pages = demoRoutes();
  // GET /presence… from the tracker, the demo page for the rest: one standard fetch handler.
  const http = presenceFetch(presence, {
    fallback: (request) =>
      pages[new URL(request.url).pathname]?.(request) ?? new Response(null, { status: 404 }),
  });
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    pingInterval: HEARTBEAT.interval,
    pingTimeout: HEARTBEAT.timeout,
    routes: { "/ws": hub },
    fetch: http,
  });
  const origin = `http://127.0.0.1:${server.addr.port}`;
  const browser = await launchChromium();
  try {
    const open = async (id: string) => {
      const context = await browser.newContext();
      const page = await context.newPage();
      const errors: string[] = [];
      page.on("pageerror", (error) => errors.push(error.message));
      await page.goto(`${origin}/?id=${id}`, WAIT);
      await page.waitForFunction(`heartwireDemo.state === "open"`, undefined, WAIT);
      return { context, page, errors };
    };
    const alice = await open("alice");
    const bob = await open("bob");
    const until = (condition: string) => alice.page.waitForFunction(condition, undefined, WAIT);
    const notes = () =>
      alice.page.evaluate(() =>
        (globalThis as unknown as { heartwireDemo: { presence: PresenceNote[] } }).heartwireDemo
          .presence
      );

    // Both online, on alice's page and over HTTP.
    await until(`heartwireDemo.people.alice === "online" && heartwireDemo.people.bob === "online"`);
    assertEquals(await alice.page.textContent('#who li[data-id="bob"]'), "bob ");
    const before = await (await fetch(`${origin}/presence?topic=lobby`)).json();
    assertEquals(before.members.map((m: { id: string }) => m.id).sort(), ["alice", "bob"]);

    // Bob's network goes away: alice sees him leave within interval + timeout (+ a sweep).
    const offlineAt = Date.now();
    await bob.context.setOffline(true);
    await until(`heartwireDemo.people.bob === "offline"`);
    const left = (await notes()).find((n) => n.type === "leave" && n.id === "bob")!;
    const took = left.at - offlineAt;
    const bound = PRESENCE_TIMEOUT + SWEEP + SLACK;
    assert(took <= bound, `bob left after ${took} ms, more than ${bound}`);
    assert(["timeout", "closed"].includes(left.reason!), `reason ${left.reason}`);
    console.log(`bob seen leaving after ${took} ms (reason ${left.reason})`);
    assert((await alice.page.textContent('#who li[data-id="bob"]'))!.includes("offline, seen"));
    const gone = await fetch(`${origin}/presence/bob`);
    assertEquals([gone.status, (await gone.json()).status], [200, "offline"]);
    const nobody = await fetch(`${origin}/presence/nobody`);
    assertEquals([nobody.status, await nobody.json()], [404, {
      error: "unknown user",
      id: "nobody",
    }]);

    // Back online: bob reconnects at once and alice sees him join.
    await bob.context.setOffline(false);
    await until(`heartwireDemo.people.bob === "online"`);
    await bob.page.waitForFunction(`heartwireDemo.people.alice === "online"`, undefined, WAIT);
    const bobNotes = (await notes()).filter((n) => n.id === "bob").map((n) => n.type);
    assertEquals(bobNotes, ["join", "leave", "join"]);
    assertEquals(alice.errors, []);
    assertEquals(bob.errors, []);
    await alice.page.screenshot({ path: "/tmp/heartwire-presence.png" });
  } finally {
    await browser.close();
    await server.shutdown({ timeout: 500 });
    hub.dispose();
    await presence.close();
  }
});
