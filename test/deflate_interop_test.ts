/**
 * permessage-deflate over real sockets against real clients: npm `ws`
 * (`perMessageDeflate: true`) and headless Chromium.
 *
 * The server here is a minimal echo built from the sans-I/O pieces alone —
 * {@linkcode negotiateDeflate}, {@linkcode PerMessageDeflate},
 * {@linkcode FrameDecoder} with `inflate`, {@linkcode FrameWriter.compressed}
 * — so the codec's wire behaviour is tested apart from the connection layer
 * that will carry it. It echoes each message compressed when the extension is
 * on, and counts the compressed messages it received.
 *
 * (Deno's own WebSocket client, as of 2.9, offers no extension, so it has
 * nothing to test here.)
 */
import { assertEquals, assertGreater } from "@std/assert";
import { launchChromium } from "./_browser.ts";
import WebSocketWs from "ws";
import { buildUpgradeResponse } from "../protocol/handshake.ts";
import { type DeflateOptions, negotiateDeflate, PerMessageDeflate } from "../protocol/deflate.ts";
import { FrameDecoder } from "../protocol/frame_decoder.ts";
import { FrameWriter } from "../protocol/frame_encoder.ts";
import { Opcode } from "../protocol/opcodes.ts";
import { zlibEngine } from "../server/_zlib_engine.ts";

const encoder = new TextEncoder();
const MAX_MESSAGE = 1024 * 1024;

interface EchoServer {
  url: string;
  /** Per connection: the extension response sent and the compressed messages received. */
  connections: {
    extensions: string | null;
    compressedIn: number;
    compressedOut: number;
    closeCode?: number;
  }[];
  close(): Promise<void>;
}

function echoServer(options: DeflateOptions = {}): EchoServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connections: EchoServer["connections"] = [];
  const tasks: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) tasks.push(serveOne(conn).catch(() => {}));
  })();

  async function serveOne(conn: Deno.Conn): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    let head = "";
    let rest = new Uint8Array(0);
    while (!head.includes("\r\n\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) return conn.close();
      head += new TextDecoder().decode(buffer.subarray(0, n));
      const end = head.indexOf("\r\n\r\n");
      if (end >= 0) rest = buffer.slice(encoder.encode(head.slice(0, end + 4)).length, n);
    }
    const headers = new Headers();
    for (const line of head.split("\r\n").slice(1)) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
    const agreement = negotiateDeflate(headers.get("sec-websocket-extensions"), options);
    const record: EchoServer["connections"][number] = {
      extensions: agreement?.response ?? null,
      compressedIn: 0,
      compressedOut: 0,
    };
    connections.push(record);
    const deflate = agreement && new PerMessageDeflate(agreement.params, zlibEngine, options);
    await writeAll(
      conn,
      encoder.encode(buildUpgradeResponse(headers.get("sec-websocket-key")!, {
        headers: agreement ? { "Sec-WebSocket-Extensions": agreement.response } : {},
      })),
    );
    const decoder = new FrameDecoder({
      role: "server",
      maxMessageSize: MAX_MESSAGE,
      inflate: deflate &&
        ((payload, maxLength) => {
          record.compressedIn++;
          return deflate.decompress(payload, maxLength);
        }),
    });
    const writer = new FrameWriter({ role: "server" });
    try {
      let input = rest;
      while (true) {
        for (const event of decoder.push(input)) {
          if (event.type === "text" || event.type === "binary") {
            const bytes = event.type === "text" ? encoder.encode(event.data) : event.data;
            const compressed = deflate?.compress(bytes);
            const opcode = event.type === "text" ? Opcode.Text : Opcode.Binary;
            if (compressed) {
              writer.compressed(opcode, compressed);
              record.compressedOut++;
            } else if (event.type === "text") writer.text(event.data);
            else writer.binary(event.data);
          } else if (event.type === "ping") {
            writer.pong(event.data);
          } else if (event.type === "close" || event.type === "error") {
            record.closeCode = event.code;
            writer.close(event.code === 1005 ? 1000 : event.code, "");
          }
        }
        for (const chunk of writer.takeChunks()) await writeAll(conn, chunk);
        if (decoder.done) break;
        const n = await conn.read(buffer);
        if (n === null) break;
        input = buffer.subarray(0, n);
      }
    } finally {
      deflate?.close();
      conn.close();
    }
  }

  return {
    url: `ws://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/`,
    connections,
    async close() {
      listener.close();
      await accepting.catch(() => {});
      await Promise.all(tasks);
    },
  };
}

function overThreshold(message: string | Uint8Array): boolean {
  return (typeof message === "string" ? encoder.encode(message) : message).length >= 128;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
}

function chat(i: number): string {
  return JSON.stringify({
    type: "chat",
    topic: "room-1",
    from: `user-${i % 7}`,
    text: `message ${i}: ${"lorem ipsum dolor sit amet ".repeat(1 + i % 30)}`,
    ts: 1_800_000_000_000 + i,
  });
}

/** Opens a ws client, echoes `messages` one at a time, and closes. */
async function wsEcho(
  url: string,
  clientOptions: Record<string, unknown> | boolean,
  messages: (string | Uint8Array)[],
): Promise<{ extensions: string; echoed: (string | Uint8Array)[]; code: number }> {
  const ws = new WebSocketWs(url, { perMessageDeflate: clientOptions });
  const echoed: (string | Uint8Array)[] = [];
  const replies: ((value: void) => void)[] = [];
  ws.on("message", (data: Uint8Array, isBinary: boolean) => {
    echoed.push(isBinary ? new Uint8Array(data) : new TextDecoder().decode(data));
    replies.shift()?.();
  });
  const closed = new Promise<number>((resolve) => ws.on("close", (code: number) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    ws.on("open", () => resolve());
    ws.on("error", reject);
  });
  for (const message of messages) {
    const reply = new Promise<void>((resolve) => replies.push(resolve));
    ws.send(message);
    await reply;
  }
  ws.close(1000);
  return { extensions: ws.extensions, echoed, code: await closed };
}

Deno.test("interop: ws client with permessage-deflate, both directions, several policies", async () => {
  const messages: (string | Uint8Array)[] = [];
  for (let i = 0; i < 60; i++) messages.push(chat(i));
  messages.push(new Uint8Array(200_000).map((_, i) => i % 251)); // binary, several TCP reads
  messages.push("é".repeat(100_000)); // multibyte text
  const policies: [Record<string, unknown> | boolean, DeflateOptions, string][] = [
    [true, {}, "permessage-deflate; server_no_context_takeover"],
    [
      { serverMaxWindowBits: 10, clientMaxWindowBits: 9, threshold: 0 },
      { serverNoContextTakeover: false },
      "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
    ],
    [
      { clientMaxWindowBits: true, threshold: 0 },
      { serverNoContextTakeover: false, clientMaxWindowBits: 11, serverMaxWindowBits: 12 },
      "permessage-deflate; server_max_window_bits=12; client_max_window_bits=11",
    ],
    [
      { clientNoContextTakeover: true, threshold: 0 },
      {},
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    ],
  ];
  for (const [clientOptions, serverOptions, expected] of policies) {
    const server = echoServer(serverOptions);
    try {
      const result = await wsEcho(server.url, clientOptions, messages);
      assertEquals(server.connections[0].extensions, expected);
      assertEquals(result.extensions, "permessage-deflate"); // ws lists names only
      assertEquals(result.echoed, messages);
      assertEquals(result.code, 1000);
      // ws compresses messages of 1 KiB and more by default, all with threshold 0.
      assertGreater(server.connections[0].compressedIn, 0);
      // Every message from the 128-byte threshold on went out compressed.
      assertEquals(server.connections[0].compressedOut, messages.filter(overThreshold).length);
    } finally {
      await server.close();
    }
  }
});

Deno.test("interop: a ws client's decompression bomb is refused with 1009", async () => {
  const server = echoServer();
  try {
    const ws = new WebSocketWs(server.url, { perMessageDeflate: true });
    await new Promise((resolve, reject) => {
      ws.on("open", resolve);
      ws.on("error", reject);
    });
    const closed = new Promise<number>((resolve) =>
      ws.on("close", (code: number) => resolve(code))
    );
    ws.send(new Uint8Array(64 * MAX_MESSAGE)); // 64 MiB of zeros: ~64 KiB on the wire
    assertEquals(await closed, 1009);
    assertEquals(server.connections[0].closeCode, 1009);
  } finally {
    await server.close();
  }
});

Deno.test("interop: a client that does not offer the extension gets none", async () => {
  const server = echoServer();
  try {
    const result = await wsEcho(server.url, false, [chat(1), chat(2)]);
    assertEquals(result.extensions, "");
    assertEquals(server.connections[0].extensions, null);
    assertEquals(result.echoed, [chat(1), chat(2)]);
  } finally {
    await server.close();
  }
});

Deno.test("interop: Chromium negotiates permessage-deflate and round-trips messages", async () => {
  const server = echoServer({ clientMaxWindowBits: 12 });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const messages = Array.from({ length: 40 }, (_, i) => chat(i));
    const result = await page.evaluate(
      ([url, messages]) =>
        new Promise<{ extensions: string; echoed: string[]; binary: number[] }>(
          (resolve, reject) => {
            const ws = new WebSocket(url as string);
            ws.binaryType = "arraybuffer";
            const echoed: string[] = [];
            let binary: number[] = [];
            let i = 0;
            const list = messages as string[];
            ws.onopen = () => ws.send(list[i++]);
            ws.onerror = () => reject(new Error("websocket error"));
            ws.onmessage = (event) => {
              if (typeof event.data !== "string") {
                binary = Array.from(new Uint8Array(event.data).subarray(0, 8));
                ws.close(1000);
                resolve({ extensions: ws.extensions, echoed, binary });
                return;
              }
              echoed.push(event.data);
              if (i < list.length) ws.send(list[i++]);
              else ws.send(new Uint8Array(100_000).map((_, k) => k % 7));
            };
          },
        ),
      [server.url, messages],
    );
    assertEquals(
      result.extensions,
      "permessage-deflate; server_no_context_takeover; client_max_window_bits=12",
    );
    assertEquals(server.connections[0].extensions, result.extensions);
    assertEquals(result.echoed, messages);
    assertEquals(result.binary, [0, 1, 2, 3, 4, 5, 6, 0]);
    // Chromium compresses what it sends once the extension is on.
    assertGreater(server.connections[0].compressedIn, 0);
    assertEquals(server.connections[0].compressedOut, messages.filter(overThreshold).length + 1);
  } finally {
    await browser.close();
    await server.close();
  }
});
