/**
 * The client against the real server and hub on loopback: server restarts
 * and a network that silently stops forwarding, with traffic flowing both
 * ways the whole time — a custom message type (`move`) from the client, its
 * publication (`moved`) and server ticks back. Every message must arrive
 * exactly once, in order, both ways — and client messages exactly once even
 * when the session expires meanwhile (the topic is recovered from history).
 */
import { assert, assertEquals } from "@std/assert";
import { ReconnectingSocket, type WebSocketConstructor } from "../client/mod.ts";
import { chat, Hub, type MemorySessionStore } from "../hub/mod.ts";
import type { Publication } from "../protocol/messages.ts";
import { retryAfterReason } from "../protocol/messages.ts";
import { serve, type Server } from "../server/server.ts";
import { BlackholeProxy } from "./_fault_proxy.ts";
import { waitFor } from "./_wait.ts";

const N = 120; // messages each way
const HEARTBEAT = { interval: 200, timeout: 300 };
const QUICK_BACKOFF = { minDelay: 50, initialDelay: 100, maxDelay: 400 };

/** The hub: chat, and a custom type `move` whose handler publishes `moved` and replies. */
function makeHub(grace: number): Hub {
  const hub = chat(new Hub({ heartbeat: HEARTBEAT, grace }));
  hub.on<{ text: string }>("move", async (ctx, move) => {
    const { offset } = await hub.publish("lobby", "moved", { from: ctx.clientId, text: move.text });
    return { offset };
  });
  return hub;
}

function sessionsOf(hub: Hub): MemorySessionStore {
  return hub.sessions as MemorySessionStore;
}

function startServer(app: Hub, port = 0): Server {
  return serve({
    port,
    hostname: "127.0.0.1",
    routes: { "/ws": app },
    closeTimeout: 300,
  });
}

/** Records what a client saw. */
function watch(socket: ReconnectingSocket) {
  const seen = {
    messages: [] as Publication[],
    opens: [] as boolean[],
    closes: [] as { at: number; code: number; reason: string }[],
  };
  socket.addEventListener("message", (event) => seen.messages.push(event.data));
  socket.addEventListener("open", (event) => seen.opens.push(event.detail.resumed));
  socket.addEventListener("close", (event) => {
    seen.closes.push({ at: Date.now(), code: event.detail.code, reason: event.detail.reason });
  });
  return seen;
}

/** Sends moves `c0..c{N-1}` from the client and publishes ticks `0..N-1` from the server, 1 of each per tick. */
function traffic(socket: ReconnectingSocket, app: Hub) {
  let i = 0;
  const timer = setInterval(() => {
    if (i >= N) return clearInterval(timer);
    socket.send("move", { text: `c${i}` });
    void app.publish("lobby", "tick", { n: i });
    i++;
  }, 8);
  return { sent: () => i, stop: () => clearInterval(timer) };
}

/** Every message exactly once, in order, both ways, and every client message acknowledged. */
async function assertExactlyOnce(socket: ReconnectingSocket, seen: ReturnType<typeof watch>) {
  const ticks = () => seen.messages.filter((m) => m.type === "tick");
  const chats = () => seen.messages.filter((m) => m.type === "moved");
  await waitFor(
    () => ticks().length >= N && chats().length >= N && socket.bufferedAmount === 0,
    10_000,
  );
  // Server → client: the ticks, each once, in order; offsets contiguous across reconnects.
  assertEquals(ticks().map((m) => m.n), [...Array(N).keys()]);
  assertEquals(seen.messages.map((m) => m.offset), seen.messages.map((_, i) => i + 1));
  // Client → server: each move processed once (one publication each, back to us), in order.
  assertEquals(chats().map((m) => m.text), [...Array(N).keys()].map((i) => `c${i}`));
}

/** A client against the real server, maybe through a {@linkcode BlackholeProxy}. */
interface Rig {
  app: Hub;
  /** The running server; a test that restarts it puts the new one here. */
  server: Server;
  proxy?: BlackholeProxy;
  socket: ReconnectingSocket;
  seen: ReturnType<typeof watch>;
  /** Starts the {@linkcode traffic}, stopped again at teardown. */
  startTraffic(): ReturnType<typeof traffic>;
}

interface RigOptions {
  /** The client's id. */
  id: string;
  /** How long the server keeps a detached session (ms). */
  grace: number;
  backoff: { minDelay: number; initialDelay: number; maxDelay: number };
  /** Connect through a {@linkcode BlackholeProxy} rather than straight to the server. */
  proxy?: boolean;
  /** The client's WebSocket class. Default Deno's. */
  WebSocket?: WebSocketConstructor;
}

/** Runs `test` against a fresh rig and tears it all down afterwards, whatever happened. */
async function withRig(options: RigOptions, test: (rig: Rig) => Promise<void>): Promise<void> {
  const app = makeHub(options.grace);
  const server = startServer(app);
  const proxy = options.proxy ? new BlackholeProxy(server.addr.port) : undefined;
  const port = proxy?.port ?? server.addr.port;
  const socket = new ReconnectingSocket(`ws://127.0.0.1:${port}/ws`, {
    id: options.id,
    backoff: options.backoff,
    WebSocket: options.WebSocket,
  });
  let flow: ReturnType<typeof traffic> | undefined;
  const rig: Rig = {
    app,
    server,
    proxy,
    socket,
    seen: watch(socket),
    startTraffic() {
      flow = traffic(socket, app);
      return flow;
    },
  };
  try {
    await test(rig);
  } finally {
    flow?.stop();
    socket.close();
    if (proxy) await proxy.close();
    // Straight to the server: let the client's closing handshake end its connection first.
    else await waitFor(() => rig.server.connections.size === 0).catch(() => {});
    await rig.server.shutdown({ timeout: 500 });
    app.dispose();
  }
}

Deno.test("client: server killed and restarted on the same port mid-stream, nothing lost or doubled", async () => {
  await withRig({ id: "alice", grace: 30_000, backoff: QUICK_BACKOFF }, async (rig) => {
    const { app, socket, seen } = rig;
    const port = rig.server.addr.port;
    await waitFor(() => seen.opens.length === 1);
    const flow = rig.startTraffic();

    // 1. Killed: TCP dropped without a close frame, the port closed for a while.
    await waitFor(() => flow.sent() >= N / 4);
    for (const ws of rig.server.connections) ws.terminate();
    await rig.server.shutdown({ timeout: 0 });
    await new Promise((resolve) => setTimeout(resolve, 300)); // refused attempts meanwhile
    rig.server = startServer(app, port);
    await waitFor(() => seen.opens.length === 2, 5_000);

    // 2. Restarted politely: close 1012 with a retry hint, honoured.
    await waitFor(() => flow.sent() >= N / 2);
    const restartAt = Date.now();
    await rig.server.shutdown({ code: 1012, reason: retryAfterReason(300), timeout: 1_000 });
    rig.server = startServer(app, port);
    await waitFor(() => seen.opens.length === 3, 5_000);
    assert(Date.now() - restartAt >= 300, "the retry-after hint was not honoured");

    await assertExactlyOnce(socket, seen);
    assertEquals(seen.opens, [false, true, true]); // both reconnects resumed the session
    assertEquals(seen.closes.map((c) => c.code), [1006, 1012]);
  });
});

Deno.test("client: a blackholed path is found by the heartbeat and replaced, nothing lost or doubled", async () => {
  const options = { id: "bob", grace: 30_000, backoff: QUICK_BACKOFF, proxy: true };
  await withRig(options, async ({ server, proxy, socket, seen, startTraffic }) => {
    await waitFor(() => seen.opens.length === 1);
    const flow = startTraffic();
    await waitFor(() => flow.sent() >= N / 3);
    const cut = Date.now();
    proxy!.blackhole(); // no FIN, no RST: only the heartbeat can tell
    await waitFor(() => seen.closes.length === 1, 5_000);
    const detected = seen.closes[0].at - cut;
    assertEquals(seen.closes[0].reason, "heartbeat timeout");
    // Bound: interval + timeout, plus scheduling slack on a busy machine.
    assert(
      detected <= HEARTBEAT.interval + HEARTBEAT.timeout + 400,
      `detected after ${detected} ms`,
    );
    // New connections through the proxy forward again: the client comes back on its own.
    await waitFor(() => seen.opens.length === 2, 5_000);
    await assertExactlyOnce(socket, seen);
    assertEquals(seen.opens, [false, true]);
    // The server kept one live socket for the session: the stale one was replaced.
    await waitFor(() => server.connections.size === 1, 2_000);
  });
});

/**
 * Another member of the lobby, straight to the server: it sees every chat of
 * `from` the server processed, once per processing.
 */
function observe(port: number, from: string) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?id=observer`);
  const processed: string[] = [];
  let quiet = false;
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    const kind = message.type === "chat" || message.type === "moved";
    if (kind && message.from === from) processed.push(message.text);
    if (message.type === "heartbeat_ack" && message.id === "last") quiet = true;
  };
  const closed = new Promise((resolve) => ws.onclose = resolve);
  return {
    processed,
    open: () => ws.readyState === WebSocket.OPEN,
    /**
     * Once every chat is acked: the server broadcasts a chat before acking
     * it, so a duplicate would reach the observer before this answer.
     */
    async settle(): Promise<void> {
      ws.send('{"type":"heartbeat","id":"last"}');
      await waitFor(() => quiet, 2_000);
    },
    async close(): Promise<void> {
      ws.close();
      await closed;
    },
  };
}

/** Deno's WebSocket, except that every server ack on the first connection is lost. */
function losingFirstAcks(): WebSocketConstructor {
  let connections = 0;
  return class {
    readonly #ws: WebSocket;
    onmessage: ((event: never) => void) | null = null;
    onclose: ((event: never) => void) | null = null;
    onerror: ((event: never) => void) | null = null;

    constructor(url: string, protocols?: string | string[]) {
      const loseAcks = ++connections === 1;
      const ws = this.#ws = new WebSocket(url, protocols);
      ws.onmessage = (event) => {
        if (loseAcks && (event.data as string).startsWith('{"type":"ack"')) return;
        (this.onmessage as ((event: MessageEvent) => void) | null)?.(event);
      };
      ws.onclose = (event) => (this.onclose as ((event: CloseEvent) => void) | null)?.(event);
      ws.onerror = (event) => (this.onerror as ((event: Event) => void) | null)?.(event);
    }

    get readyState(): number {
      return this.#ws.readyState;
    }

    send(data: string): void {
      this.#ws.send(data);
    }

    close(code?: number, reason?: string): void {
      this.#ws.close(code, reason);
    }
  };
}

Deno.test("client: session removed while live, its acks lost: resumed, told last_cseq, nothing doubled", async () => {
  const options = {
    id: "dave",
    grace: 30_000,
    backoff: QUICK_BACKOFF,
    WebSocket: losingFirstAcks(),
  };
  await withRig(options, async ({ app, server, socket, seen }) => {
    const failures: unknown[] = [];
    socket.addEventListener("resume_failed", (event) => failures.push(event.detail));
    const observer = observe(server.addr.port, "dave");
    try {
      await waitFor(() => seen.opens.length === 1 && observer.open());
      for (const text of ["a", "b", "c"]) socket.send({ type: "chat", text });
      const old = socket.session!;
      const session = sessionsOf(app).get(old)!;
      await waitFor(() => session.lastCseq === 3); // processed; the acks never arrive
      assertEquals(socket.bufferedAmount > 0, true);
      sessionsOf(app).remove(session);
      await waitFor(() => seen.opens.length === 2, 5_000);
      assertEquals(seen.closes.map((c) => [c.code, c.reason]), [[4001, "session ended"]]);
      assertEquals(failures, [{
        session: old,
        reason: "unknown or expired session",
        lastCseq: 3,
        dropped: 3,
        resent: 0,
      }]);
      socket.send({ type: "chat", text: "d" });
      await waitFor(() => socket.bufferedAmount === 0, 2_000);
      await observer.settle();
      assertEquals(observer.processed, ["a", "b", "c", "d"]);
    } finally {
      await observer.close();
    }
  });
});

Deno.test("client: session taken over while its acks were lost: a new session, last_cseq from the close, no ping-pong", async () => {
  const options = {
    id: "erin",
    grace: 30_000,
    backoff: QUICK_BACKOFF,
    WebSocket: losingFirstAcks(),
  };
  await withRig(options, async ({ app, server, socket, seen }) => {
    const failures: unknown[] = [];
    socket.addEventListener("resume_failed", (event) => failures.push(event.detail));
    const observer = observe(server.addr.port, "erin");
    let tab: WebSocket | undefined;
    try {
      await waitFor(() => seen.opens.length === 1 && observer.open());
      for (const text of ["a", "b", "c"]) socket.send({ type: "chat", text });
      const old = socket.session!;
      await waitFor(() => sessionsOf(app).get(old)!.lastCseq === 3);
      // Another tab resumes the same session.
      tab = new WebSocket(`ws://127.0.0.1:${server.addr.port}/ws?id=erin&session=${old}`);
      const tabClosed = new Promise((resolve) => tab!.onclose = resolve);
      const tabWelcome = new Promise<{ resumed: boolean }>((resolve) => {
        tab!.onmessage = (event) => resolve(JSON.parse(event.data));
      });
      assertEquals((await tabWelcome).resumed, true);
      await waitFor(() => seen.opens.length === 2, 5_000);
      assertEquals(seen.closes.map((c) => [c.code, c.reason]), [[4000, "last_cseq=3"]]);
      assertEquals(failures, [{
        session: old,
        reason: "session taken over",
        lastCseq: 3,
        dropped: 3,
        resent: 0,
      }]);
      assert(socket.session !== old, "a new session");
      socket.send({ type: "chat", text: "d" });
      await waitFor(() => socket.bufferedAmount === 0, 2_000);
      await observer.settle();
      assertEquals(observer.processed, ["a", "b", "c", "d"]);
      // The tab keeps the session: the client did not take it back.
      assertEquals(tab.readyState, WebSocket.OPEN);
      assertEquals(sessionsOf(app).get(old)!.attached, true);
      tab.close();
      await tabClosed;
    } finally {
      if (tab && tab.readyState !== WebSocket.CLOSED) tab.close();
      await observer.close();
    }
  });
});

Deno.test("client: session expired while its acks were lost: no client message processed twice", async () => {
  const options = {
    id: "carol",
    // Grace far shorter than the client's backoff: the session is gone when it comes back.
    grace: 50,
    backoff: { minDelay: 600, initialDelay: 600, maxDelay: 600 },
    proxy: true,
  };
  await withRig(options, async ({ server, proxy, socket, seen, startTraffic }) => {
    const failures: { lastCseq?: number; dropped: number; resent: number }[] = [];
    socket.addEventListener("resume_failed", (event) => failures.push(event.detail));
    const observer = observe(server.addr.port, "carol");
    try {
      await waitFor(() => seen.opens.length === 1 && observer.open());
      const flow = startTraffic();
      await waitFor(() => flow.sent() >= N / 4);
      // Server → client goes dark: chats still arrive and are processed, their acks never return.
      proxy!.blackhole(["toClient"]);
      await waitFor(() => seen.closes.length === 1, 5_000);
      assertEquals(seen.closes[0].reason, "heartbeat timeout");
      await waitFor(() => seen.opens.length === 2, 5_000);
      assertEquals(seen.opens, [false, false], "the session had expired: a new one");
      assertEquals(failures.length, 1);
      const [failure] = failures;
      assert(failure.lastCseq !== undefined && failure.lastCseq >= N / 4, `${failure.lastCseq}`);
      assert(failure.dropped > 0, "some chats were processed whose acks were lost");
      await waitFor(() => flow.sent() >= N && socket.bufferedAmount === 0, 10_000);
      await observer.settle();
      // Each move processed exactly once, in order, across the two sessions.
      assertEquals(observer.processed, [...Array(N).keys()].map((i) => `c${i}`));
      // And the new session recovered the topic from history: nothing lost the other way.
      await assertExactlyOnce(socket, seen);
    } finally {
      await observer.close();
    }
  });
});

Deno.test("client: a restart that loses the hub's history is reported as recovered:false, then goes on", async () => {
  let hub = makeHub(30_000);
  let server = startServer(hub);
  const port = server.addr.port;
  const socket = new ReconnectingSocket(`ws://127.0.0.1:${port}/ws`, {
    id: "frank",
    backoff: QUICK_BACKOFF,
  });
  const seen = watch(socket);
  const positions: { topic: string; offset: number; recovered?: boolean }[] = [];
  socket.addEventListener("subscribed", (event) => positions.push(event.detail));
  try {
    await waitFor(() => seen.opens.length === 1 && socket.topics.has("lobby"));
    for (let n = 0; n < 3; n++) await hub.publish("lobby", "tick", { n });
    await waitFor(() => seen.messages.length === 3);
    // A new process: new hub, new histories (new epochs), no sessions.
    await server.shutdown({ timeout: 500 });
    hub.dispose();
    hub = makeHub(30_000);
    server = startServer(hub, port);
    await waitFor(() => seen.opens.length === 2, 5_000);
    await waitFor(() => positions.some((p) => p.topic === "lobby" && p.recovered === false));
    await hub.publish("lobby", "tick", { n: 3 });
    await waitFor(() => seen.messages.length === 4);
    assertEquals(seen.messages.map((m) => [m.n, m.offset]), [[0, 1], [1, 2], [2, 3], [3, 1]]);
  } finally {
    socket.close();
    await waitFor(() => server.connections.size === 0).catch(() => {});
    await server.shutdown({ timeout: 500 });
    hub.dispose();
  }
});
