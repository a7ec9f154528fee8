/**
 * permessage-deflate on chat-like JSON (200 B – 2 KB per message): heartwire's
 * {@linkcode PerMessageDeflate} on the `node:zlib` engine against `npm:ws`'s
 * `PerMessageDeflate`, in the same run, with the same zlib settings (level 6,
 * memLevel 8, 15-bit windows, no threshold).
 *
 * `deno bench --allow-all bench/deflate_bench.ts` times compressing and
 * decompressing {@linkcode BATCH} messages, with and without context
 * takeover; ws comes first in each group as the baseline. ws's codec is
 * asynchronous (a zlib stream per connection, callbacks, a concurrency
 * limiter); heartwire's is synchronous. Each side handles the messages of one
 * connection one after the other, as a server does.
 *
 * `deno run --allow-all bench/deflate_bench.ts` prints the compression ratio
 * of each configuration, the CPU time per message (process CPU time, all
 * threads, so zlib work on a thread pool counts and time lost to other
 * processes on a busy machine does not), and the memory a connection holds
 * after one message each way (RSS growth over {@linkcode CONNECTIONS}
 * connections, GC'd first).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import process from "node:process";
import { PerMessageDeflate as WsPerMessageDeflate } from "ws";
import { type DeflateParams, PerMessageDeflate } from "../protocol/deflate.ts";
import { zlibEngine } from "../server/_zlib_engine.ts";

const BATCH = 200;
const CONNECTIONS = 1000;
const MiB = 1024 * 1024;

/** Chat messages, 200 B to ~2 KB of JSON, deterministic. */
function chatMessages(count: number): Uint8Array[] {
  const words = [
    "hello",
    "ok",
    "see you",
    "lunch?",
    "the build is green",
    "deploying now",
    "can you review",
    "thanks!",
    "on my way",
    "meeting moved to 3pm",
  ];
  const encoder = new TextEncoder();
  let seed = 42;
  const next = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 8;
  const messages: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const sentences = 2 + next() % 140;
    const text = Array.from({ length: sentences }, () => words[next() % words.length]).join(". ");
    messages.push(encoder.encode(JSON.stringify({
      type: "message",
      topic: `team/${["general", "random", "dev", "ops"][next() % 4]}`,
      offset: 1000 + i,
      epoch: "k3j9x",
      from: { id: `user-${next() % 200}`, name: `User ${next() % 200}` },
      text,
      ts: 1_800_000_000_000 + i * 731,
    })));
  }
  return messages;
}

const messages = chatMessages(BATCH);
const bufferMessages = messages.map((message) => Buffer.from(message));

function params(noContextTakeover: boolean): DeflateParams {
  return {
    serverNoContextTakeover: noContextTakeover,
    clientNoContextTakeover: noContextTakeover,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: 15,
  };
}

function wsEnd(noContextTakeover: boolean, isServer: boolean): WsPerMessageDeflate {
  const end = new WsPerMessageDeflate({
    isServer,
    threshold: 0,
    maxPayload: MiB,
    serverNoContextTakeover: noContextTakeover,
    clientNoContextTakeover: noContextTakeover,
  });
  end.params = {
    server_no_context_takeover: noContextTakeover,
    client_no_context_takeover: noContextTakeover,
  };
  return end;
}

function wsCall(
  run: (done: (error: Error | null, result: Buffer) => void) => void,
): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    run((error, result) => error ? reject(error) : resolve(result))
  );
}

/** What each side's server end sends for the batch, for the decompression benches. */
async function compressedBy(noContextTakeover: boolean) {
  const ours = new PerMessageDeflate(params(noContextTakeover), zlibEngine, { threshold: 0 });
  const heartwire = messages.map((message) => ours.compress(message)!);
  ours.close();
  const ws = wsEnd(noContextTakeover, true);
  const theirs: Buffer[] = [];
  for (const message of bufferMessages) {
    theirs.push(await wsCall((done) => ws.compress(message, true, done)));
  }
  ws.cleanup();
  return { heartwire, ws: theirs };
}

function sum(arrays: Uint8Array[]): number {
  return arrays.reduce((total, array) => total + array.length, 0);
}

for (const noContextTakeover of [false, true]) {
  const mode = noContextTakeover ? "no context takeover" : "context takeover";
  const compressed = await compressedBy(noContextTakeover);

  Deno.bench({
    name: `ws compress ${BATCH}`,
    group: `compress, ${mode}`,
    baseline: true,
    async fn() {
      const ws = wsEnd(noContextTakeover, true);
      for (const message of bufferMessages) {
        await wsCall((done) => ws.compress(message, true, done));
      }
      ws.cleanup();
    },
  });
  Deno.bench({
    name: `heartwire compress ${BATCH}`,
    group: `compress, ${mode}`,
    fn() {
      const ours = new PerMessageDeflate(params(noContextTakeover), zlibEngine, { threshold: 0 });
      for (const message of messages) ours.compress(message);
      ours.close();
    },
  });
  Deno.bench({
    name: `ws decompress ${BATCH}`,
    group: `decompress, ${mode}`,
    baseline: true,
    async fn() {
      const ws = wsEnd(noContextTakeover, false);
      for (const payload of compressed.ws) {
        await wsCall((done) => ws.decompress(payload, true, done));
      }
      ws.cleanup();
    },
  });
  Deno.bench({
    name: `heartwire decompress ${BATCH}`,
    group: `decompress, ${mode}`,
    fn() {
      const ours = new PerMessageDeflate(params(noContextTakeover), zlibEngine, { role: "client" });
      for (const payload of compressed.heartwire) {
        if (!(ours.decompress(payload, MiB) instanceof Uint8Array)) throw new Error("inflate");
      }
      ours.close();
    },
  });
}

async function report(): Promise<void> {
  const plain = sum(messages);
  console.log(
    `${BATCH} chat messages, ${plain} bytes (${Math.round(plain / BATCH)} B average)\n`,
  );
  console.log("| | heartwire bytes | ratio | ws bytes | ratio |");
  console.log("|---|---|---|---|---|");
  for (const noContextTakeover of [false, true]) {
    const { heartwire, ws } = await compressedBy(noContextTakeover);
    const mode = noContextTakeover ? "no context takeover" : "context takeover";
    const ours = sum(heartwire);
    const theirs = sum(ws);
    console.log(
      `| ${mode} | ${ours} | ${(ours / plain).toFixed(3)} | ${theirs} | ${
        (theirs / plain).toFixed(3)
      } |`,
    );
  }

  // CPU time per message, best of several rounds.
  const cpu = async (run: () => void | Promise<void>) => {
    let best = Infinity;
    for (let round = 0; round < 15; round++) {
      const start = process.cpuUsage();
      await run();
      const used = process.cpuUsage(start);
      best = Math.min(best, (used.user + used.system) / BATCH);
    }
    return best;
  };
  console.log(`\nCPU µs per message, best of 15 rounds of ${BATCH}:\n`);
  console.log("| | heartwire | ws | ws / heartwire |");
  console.log("|---|---|---|---|");
  for (const noContextTakeover of [false, true]) {
    const mode = noContextTakeover ? "no context takeover" : "context takeover";
    const compressed = await compressedBy(noContextTakeover);
    const rows: [string, () => void, () => Promise<void>][] = [
      ["compress", () => {
        const ours = new PerMessageDeflate(params(noContextTakeover), zlibEngine, { threshold: 0 });
        for (const message of messages) ours.compress(message);
        ours.close();
      }, async () => {
        const ws = wsEnd(noContextTakeover, true);
        for (const message of bufferMessages) {
          await wsCall((done) => ws.compress(message, true, done));
        }
        ws.cleanup();
      }],
      ["decompress", () => {
        const ours = new PerMessageDeflate(params(noContextTakeover), zlibEngine, {
          role: "client",
        });
        for (const payload of compressed.heartwire) ours.decompress(payload, MiB);
        ours.close();
      }, async () => {
        const ws = wsEnd(noContextTakeover, false);
        for (const payload of compressed.ws) {
          await wsCall((done) => ws.decompress(payload, true, done));
        }
        ws.cleanup();
      }],
    ];
    for (const [name, ours, theirs] of rows) {
      const heartwire = await cpu(ours);
      const ws = await cpu(theirs);
      console.log(
        `| ${name}, ${mode} | ${heartwire.toFixed(1)} | ${ws.toFixed(1)} | ${
          (ws / heartwire).toFixed(2)
        } |`,
      );
    }
  }

  // Memory a connection holds after one message each way.
  const gc = (globalThis as { gc?: () => void }).gc;
  const rss = () => {
    gc?.();
    return Deno.memoryUsage().rss;
  };
  const message = messages[0];
  console.log(`\nRSS per connection after one message each way (${CONNECTIONS} connections):\n`);
  console.log("| server / client context | heartwire | ws |");
  console.log("|---|---|---|");
  const modes: [string, DeflateParams][] = [
    ["both keep context", params(false)],
    ["server none, client keeps (the default)", {
      ...params(false),
      serverNoContextTakeover: true,
    }],
    ["neither", params(true)],
  ];
  for (const [mode, agreed] of modes) {
    const client = new PerMessageDeflate(agreed, zlibEngine, { role: "client", threshold: 0 });
    const compressed = client.compress(message)!;
    client.close();
    let before = rss();
    const ours: PerMessageDeflate[] = [];
    for (let i = 0; i < CONNECTIONS; i++) {
      const end = new PerMessageDeflate(agreed, zlibEngine, { threshold: 0 });
      end.compress(message);
      end.decompress(compressed, MiB);
      ours.push(end);
    }
    const heartwire = (rss() - before) / CONNECTIONS;
    before = rss();
    const theirs: WsPerMessageDeflate[] = [];
    const wsCompressed = Buffer.from(compressed);
    for (let i = 0; i < CONNECTIONS; i++) {
      const end = new WsPerMessageDeflate({ isServer: true, threshold: 0, maxPayload: MiB });
      end.params = {
        server_no_context_takeover: agreed.serverNoContextTakeover,
        client_no_context_takeover: agreed.clientNoContextTakeover,
      };
      await wsCall((done) => end.compress(Buffer.from(message), true, done));
      await wsCall((done) => end.decompress(wsCompressed, true, done));
      theirs.push(end);
    }
    const ws = (rss() - before) / CONNECTIONS;
    console.log(
      `| ${mode} | ${(heartwire / 1024).toFixed(1)} KB (estimate ${
        (ours[0].retainedBytes / 1024).toFixed(1)
      }) | ${(ws / 1024).toFixed(1)} KB |`,
    );
    for (const end of ours) end.close();
    for (const end of theirs) end.cleanup();
  }
  if (gc === undefined) {
    console.log("\n(run with --v8-flags=--expose-gc for steadier memory figures)");
  }
}

if (import.meta.main) await report();
