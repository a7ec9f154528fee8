/**
 * The program as operators run it for scale: `--workers 2 --redis URL` (a
 * supervisor and two workers on one port, sessions, topic history and
 * fan-out in a real redis-server). 20 clients chat while SIGHUP replaces the
 * workers one by one: every client resumes its session on whichever worker
 * it lands on, and receives every chat message exactly once, in order —
 * what memory stores cannot give across workers.
 */
import { assert, assertEquals } from "@std/assert";
import { ReconnectingSocket } from "../client/mod.ts";
import { freePort } from "./_port.ts";
import { mainArgs } from "./_program.ts";
import { RedisServer } from "./_redis.ts";
import { waitFor } from "./_wait.ts";

Deno.test("program --workers 2 --redis: a rolling restart under chat loses and doubles nothing", async () => {
  const CLIENTS = 20;
  const ROUNDS = 30;
  const redis = await RedisServer.start();
  const port = freePort();
  const [run, ...rest] = mainArgs([
    "--workers=2",
    `--redis=${redis.url}`,
    "--hostname=127.0.0.1",
    `--port=${port}`,
    "--stats-interval=0",
  ]);
  const child = new Deno.Command(Deno.execPath(), {
    args: [run, "--allow-run", "--unstable-net", ...rest],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const reading = (async () => {
    for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) out += text;
  })();
  let err = "";
  const readingErr = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) err += text;
  })();
  const clients: {
    socket: ReconnectingSocket;
    offsets: number[];
    texts: string[];
    opens: boolean[];
    following: boolean;
  }[] = [];
  try {
    await waitFor(() => out.includes("2 workers listening"), 30_000).catch(() => {
      throw new Error(`the program did not start:\n${out}\n${err}`);
    });
    for (let i = 0; i < CLIENTS; i++) {
      const socket = new ReconnectingSocket(`ws://127.0.0.1:${port}/ws`, {
        id: `c${i}`,
        backoff: { minDelay: 10, initialDelay: 100, maxDelay: 200 },
        window: null,
        document: null,
      });
      const client = {
        socket,
        offsets: [] as number[],
        texts: [] as string[],
        opens: [] as boolean[],
        following: false,
      };
      socket.addEventListener("subscribed", (event) => {
        if (event.detail.topic === "lobby") client.following = true;
      });
      socket.on<{ text: string }>("chat", (message) => {
        client.offsets.push(message.offset);
        client.texts.push(message.text);
      });
      socket.addEventListener("open", (event) => client.opens.push(event.detail.resumed));
      clients.push(client);
    }
    await waitFor(() => clients.every((c) => c.opens.length === 1), 10_000);
    // Welcomed, and following "lobby" from its current offset: a chat published
    // before a client's position was read is, by design, not that client's to get.
    await waitFor(() => clients.every((c) => c.following), 10_000);
    const requests: Promise<unknown>[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, client] of clients.entries()) {
        requests.push(client.socket.request("chat", { text: `c${i}-${round}` }));
      }
      if (round === 5) child.kill("SIGHUP");
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    await waitFor(() => err.includes("rolling restart done"), 15_000);
    // Every old worker is gone; its clients come back within the retry hint's window (3 s).
    await waitFor(() => clients.every((c) => c.opens.length > 1), 10_000);
    await Promise.race([
      Promise.all(requests),
      new Promise((_, reject) => setTimeout(() => reject(new Error("acks missing")), 15_000)),
    ]);
    const total = CLIENTS * ROUNDS;
    await waitFor(() => clients.every((c) => c.texts.length >= total), 10_000).catch((error) => {
      const short = clients.map((c, i) => ({ i, got: c.texts.length, opens: c.opens }))
        .filter((c) => c.got < total);
      throw new Error(`${error.message}; short: ${JSON.stringify(short)}\n${err.slice(-3000)}`);
    });
    const moved = clients.filter((c) => c.opens.length > 1);
    console.log(
      `${moved.length} of ${CLIENTS} clients moved worker (${
        clients.reduce((n, c) => n + c.opens.length - 1, 0)
      } reconnects), all resumed; ${total} messages each, exactly once`,
    );
    assertEquals(moved.length, CLIENTS); // every worker was replaced
    for (const client of clients) {
      // Every reconnect resumed the session (it lives in Redis).
      assert(client.opens.slice(1).every((resumed) => resumed), String(client.opens));
      // Every chat message once, in offset order, none missing.
      assertEquals(client.offsets, client.offsets.map((_, k) => client.offsets[0] + k));
      assertEquals(client.texts.length, total);
      assertEquals(new Set(client.texts).size, total);
    }
    child.kill("SIGTERM");
    assertEquals((await child.status).code, 0);
  } finally {
    for (const client of clients) client.socket.close();
    try {
      child.kill("SIGKILL");
    } catch {
      // exited
    }
    await child.status;
    // The workers exit once their supervisor is gone (their stdin closes);
    // their output pipes end with them.
    await Promise.race([
      Promise.all([reading, readingErr]),
      new Promise((resolve) => setTimeout(resolve, 10_000)),
    ]);
    await redis.stop();
  }
});
