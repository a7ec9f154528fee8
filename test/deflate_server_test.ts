/**
 * permessage-deflate through `serve({ deflate })`: the handshake header, RSV1
 * on the wire both ways, the limits, and npm `ws` and Chromium as clients.
 */
import { assertEquals, assertStringIncludes } from "@std/assert";
import { launchChromium } from "./_browser.ts";
import { upgradeRequest } from "./_raw_client.ts";
import WebSocketWs from "ws";
import { negotiateDeflate, PerMessageDeflate } from "../protocol/deflate.ts";
import { type DecoderEvent, FrameDecoder } from "../protocol/frame_decoder.ts";
import { FrameWriter } from "../protocol/frame_encoder.ts";
import { Opcode } from "../protocol/opcodes.ts";
import { parseCliArgs } from "../server/_cli.ts";
import { zlibEngine } from "../server/_zlib_engine.ts";
import { echoHandler, serve, type ServeOptions } from "../server/server.ts";

const encoder = new TextEncoder();

function echoServer(options: Partial<ServeOptions> = {}) {
  const extensions: string[] = [];
  return {
    server: serve({
      port: 0,
      hostname: "127.0.0.1",
      deflate: true,
      routes: {
        "/echo": {
          ...echoHandler,
          open(ws) {
            extensions.push(ws.extensions);
          },
        },
      },
      ...options,
    }),
    extensions,
  };
}

/** A client by hand: the handshake with `offer`, then frames both ways, bytes visible. */
async function rawClient(port: number, offer?: string) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const headers: Record<string, string> = offer ? { "Sec-WebSocket-Extensions": offer } : {};
  await conn.write(encoder.encode(upgradeRequest(port, "/echo", headers)));
  const buffer = new Uint8Array(256 * 1024);
  let received = new Uint8Array(0);
  const read = async () => {
    const n = await conn.read(buffer);
    if (n === null) return false;
    const joined = new Uint8Array(received.length + n);
    joined.set(received);
    joined.set(buffer.subarray(0, n), received.length);
    received = joined;
    return true;
  };
  let end = -1;
  while ((end = new TextDecoder().decode(received).indexOf("\r\n\r\n")) < 0) await read();
  const head = new TextDecoder().decode(received.subarray(0, end));
  received = received.slice(end + 4);
  const answer = /sec-websocket-extensions: *([^\r\n]*)/i.exec(head)?.[1];
  const agreement = answer === undefined ? undefined : negotiateDeflate(answer, {
    serverNoContextTakeover: false,
  });
  const deflate = agreement &&
    new PerMessageDeflate(agreement.params, zlibEngine, { role: "client", threshold: 0 });
  const decoder = new FrameDecoder({
    role: "client",
    maxMessageSize: 16 * 1024 * 1024,
    inflate: deflate && ((payload, maxLength) => deflate.decompress(payload, maxLength)),
  });
  return {
    head,
    answer,
    deflate,
    async send(bytes: Uint8Array) {
      for (let offset = 0; offset < bytes.length;) {
        offset += await conn.write(bytes.subarray(offset));
      }
    },
    /** The next event, and the first byte of the frame it came in. */
    async next(): Promise<{ event: DecoderEvent; firstByte: number }> {
      while (received.length < 2) if (!(await read())) throw new Error("eof");
      const firstByte = received[0];
      while (true) {
        const events = decoder.push(received);
        received = new Uint8Array(0);
        if (events.length > 0) return { event: events[0], firstByte };
        if (!(await read())) throw new Error("eof");
      }
    },
    close() {
      conn.close();
      deflate?.close();
    },
  };
}

Deno.test("serve({ deflate }): negotiated, compressed both ways on the wire", async () => {
  const { server, extensions } = echoServer();
  const client = await rawClient(server.addr.port, "permessage-deflate; client_max_window_bits");
  try {
    assertEquals(client.answer, "permessage-deflate; server_no_context_takeover");
    const text = JSON.stringify({ type: "chat", text: "hello ".repeat(100) });
    for (let i = 0; i < 3; i++) {
      const writer = new FrameWriter({ role: "client" });
      writer.compressed(Opcode.Text, client.deflate!.compress(encoder.encode(text))!);
      await client.send(writer.take());
      const { event, firstByte } = await client.next();
      assertEquals(event, { type: "text", data: text });
      assertEquals(firstByte, 0xc1); // FIN, RSV1, text: the echo went out compressed
    }
    // Below the threshold: sent plain, RSV1 clear.
    const writer = new FrameWriter({ role: "client" });
    writer.text("hi");
    await client.send(writer.take());
    assertEquals(await client.next(), { event: { type: "text", data: "hi" }, firstByte: 0x81 });
    assertEquals(extensions, ["permessage-deflate; server_no_context_takeover"]);
  } finally {
    client.close();
    await server.shutdown();
  }
});

Deno.test("serve({ deflate }): RSV1 without the extension, a bomb, a compressed ping", async () => {
  const { server } = echoServer({ maxPayload: 64 * 1024 });
  try {
    const cases: [string | undefined, (deflate?: PerMessageDeflate) => Uint8Array, number][] = [
      // The client offered nothing, so RSV1 means nothing (RFC 6455 §5.2).
      [undefined, () => {
        const writer = new FrameWriter({ role: "client" });
        writer.compressed(Opcode.Text, new Uint8Array([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]));
        return writer.take();
      }, 1002],
      // 16 MiB of zeros, ~16 KiB on the wire, against a 64 KiB limit.
      ["permessage-deflate", (deflate) => {
        const writer = new FrameWriter({ role: "client" });
        writer.compressed(Opcode.Binary, deflate!.compress(new Uint8Array(16 * 1024 * 1024))!);
        return writer.take();
      }, 1009],
      // RFC 7692 §6.1: control frames are never compressed.
      ["permessage-deflate", () => new Uint8Array([0xc9, 0x80, 1, 2, 3, 4]), 1002],
    ];
    for (const [offer, frame, code] of cases) {
      const client = await rawClient(server.addr.port, offer);
      try {
        await client.send(frame(client.deflate));
        const { event } = await client.next();
        assertEquals(event.type, "close");
        assertEquals((event as { code: number }).code, code);
      } finally {
        client.close();
      }
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("serve(): without the option no extension is negotiated", async () => {
  const { server, extensions } = echoServer({ deflate: false });
  const client = await rawClient(server.addr.port, "permessage-deflate");
  try {
    assertEquals(client.answer, undefined);
    const writer = new FrameWriter({ role: "client" });
    writer.text("plain");
    await client.send(writer.take());
    assertEquals((await client.next()).event, { type: "text", data: "plain" });
    assertEquals(extensions, [""]);
  } finally {
    client.close();
    await server.shutdown();
  }
});

Deno.test("serve({ deflate }): npm ws client, context takeover both ways", async () => {
  const { server, extensions } = echoServer({
    deflate: { serverNoContextTakeover: false, clientMaxWindowBits: 12 },
  });
  try {
    const ws = new WebSocketWs(`ws://127.0.0.1:${server.addr.port}/echo`, {
      perMessageDeflate: { threshold: 0 },
    });
    const messages = Array.from(
      { length: 50 },
      (_, i) => `{"n":${i},"text":"${"ab".repeat(i * 20)}"}`,
    );
    const echoed: string[] = [];
    const done = new Promise<void>((resolve, reject) => {
      ws.on("error", reject);
      ws.on("message", (data: Uint8Array) => {
        echoed.push(new TextDecoder().decode(data));
        if (echoed.length === messages.length) resolve();
      });
    });
    await new Promise((resolve) => ws.on("open", resolve));
    for (const message of messages) ws.send(message);
    await done;
    const closed = new Promise((resolve) => ws.on("close", resolve));
    ws.close(1000);
    await closed;
    assertEquals(echoed, messages);
    assertEquals(extensions, ["permessage-deflate; client_max_window_bits=12"]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("serve({ deflate }): Chromium negotiates and echoes", async () => {
  const { server, extensions } = echoServer();
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const text = JSON.stringify({ type: "chat", text: "bonjour ".repeat(200) });
    const result = await page.evaluate(
      ([url, text]) =>
        new Promise<{ extensions: string; echoed: string }>((resolve, reject) => {
          const ws = new WebSocket(url);
          ws.onerror = () => reject(new Error("websocket error"));
          ws.onopen = () => ws.send(text);
          ws.onmessage = (event) => {
            resolve({ extensions: ws.extensions, echoed: event.data });
            ws.close();
          };
        }),
      [`ws://127.0.0.1:${server.addr.port}/echo`, text],
    );
    assertStringIncludes(result.extensions, "permessage-deflate");
    assertEquals(result.echoed, text);
    assertEquals(extensions, [result.extensions]);
  } finally {
    await browser.close();
    await server.shutdown();
  }
});

Deno.test("--deflate turns the option on", () => {
  assertEquals(parseCliArgs(["--deflate", "--port", "9000"]).deflate, true);
  assertEquals(parseCliArgs([]).deflate, undefined);
});
