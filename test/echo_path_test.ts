/**
 * The echo hot path's shortcuts (issue 13), each against the plain result:
 * the decoder's small-payload unmasking loop and its cached scratch views,
 * its one-slot event lists, the writer's ASCII loop and one-slot chunk lists,
 * and the server writing a read's replies before it reads again.
 */
import { assert, assertEquals } from "@std/assert";
import { type DecoderEvent, FrameDecoder } from "../protocol/frame_decoder.ts";
import { encodeFrame, FrameWriter } from "../protocol/frame_encoder.ts";
import { Opcode } from "../protocol/opcodes.ts";
import { echoHandler } from "../server/server.ts";
import { concat } from "./_bytes.ts";
import { startConnection } from "./_connection.ts";

const encoder = new TextEncoder();
const KEY = new Uint8Array([0x9a, 0x3c, 0xe1, 0x47]);

/** `length` characters of varied ASCII, so a shifted or mis-unmasked byte shows. */
function ascii(length: number, seed = 0): string {
  let text = "";
  for (let i = 0; i < length; i++) text += String.fromCharCode(32 + ((i * 7 + seed) % 95));
  return text;
}

function maskedText(text: string): Uint8Array {
  return encodeFrame(Opcode.Text, encoder.encode(text), { mask: KEY });
}

Deno.test("decoder: masked text of every length to 300 and past the cached views", () => {
  const decoder = new FrameDecoder({ role: "server" });
  // Every tail (length mod 4), the byte loop and set() + applyMask on either
  // side of 256 bytes, and lengths whose views are and are not cached.
  const lengths = [...Array.from({ length: 301 }, (_, i) => i), 1023, 1024, 1025, 3000];
  for (const length of lengths) {
    const text = ascii(length, length);
    assertEquals(decoder.push(maskedText(text)), [{ type: "text", data: text }], `${length}`);
  }
  // Many frames in one chunk, of alternating lengths: each uses the scratch in turn.
  const texts = lengths.slice(0, 40).map((length) => ascii(length, 3));
  const events = decoder.push(concat(texts.map(maskedText)));
  assertEquals(events, texts.map((data) => ({ type: "text", data })));
});

Deno.test("decoder: a scratch that grows drops its old views", () => {
  const decoder = new FrameDecoder({ role: "server" });
  const short = ascii(100, 1);
  assertEquals(decoder.push(maskedText(short)), [{ type: "text", data: short }]);
  const long = ascii(40_000, 2); // grows the shared scratch
  assertEquals(decoder.push(maskedText(long)), [{ type: "text", data: long }]);
  const other = ascii(100, 5); // same length as before: must not see the old buffer
  assertEquals(decoder.push(maskedText(other)), [{ type: "text", data: other }]);
});

Deno.test("decoder: multibyte and invalid UTF-8 through the short-payload path", () => {
  const decoder = new FrameDecoder({ role: "server" });
  const text = "héllo wörld — ✓ 𝄞";
  assertEquals(decoder.push(maskedText(text)), [{ type: "text", data: text }]);
  const bad = encodeFrame(Opcode.Text, new Uint8Array([0x61, 0xff, 0x62]), { mask: KEY });
  const [event] = decoder.push(bad);
  assertEquals(event.type, "error");
  assertEquals((event as { code: number }).code, 1007);
});

Deno.test("decoder: every push returns a list of its own", () => {
  const decoder = new FrameDecoder({ role: "server" });
  const first = decoder.push(maskedText("a"));
  const empty: DecoderEvent[] = decoder.push(new Uint8Array(0));
  const partial: DecoderEvent[] = decoder.push(maskedText("bc").subarray(0, 3));
  assertEquals(empty.length, 0);
  assertEquals(partial.length, 0);
  assert(empty !== partial);
  empty.push({ type: "text", data: "not the decoder's" });
  const second = decoder.push(maskedText("bc").subarray(3));
  assertEquals(first, [{ type: "text", data: "a" }]);
  assertEquals(second, [{ type: "text", data: "bc" }]);
  const both: DecoderEvent[] = decoder.push(concat([maskedText("d"), maskedText("e")]));
  assertEquals(both.map((event) => event.type === "text" && event.data), ["d", "e"]);
});

Deno.test("writer: short text by the ASCII loop, non-ASCII anywhere falls back", () => {
  for (const role of ["server", "client"] as const) {
    const writer = new FrameWriter({ role });
    const decoder = new FrameDecoder({ role: role === "server" ? "client" : "server" });
    const texts: string[] = [];
    for (let length = 0; length <= 70; length++) texts.push(ascii(length, length));
    // A non-ASCII character first, in the middle and last, at the loop's limit and past it.
    for (const length of [32, 64, 65]) {
      for (const at of [0, length >> 1, length - 1]) {
        const chars = [...ascii(length, at)];
        chars[at] = "é";
        texts.push(chars.join(""));
      }
    }
    for (const text of texts) writer.text(text);
    const events = decoder.push(writer.take());
    assertEquals(events, texts.map((data) => ({ type: "text", data })), role);
  }
});

Deno.test("writer: a batch of small frames is a one-slot list; a large payload still its own chunk", () => {
  const writer = new FrameWriter({ role: "server", copyThreshold: 1024 });
  assertEquals(writer.takeChunks(), []);
  writer.text("a");
  const one = writer.takeChunks();
  assertEquals(one.length, 1);
  const big = new Uint8Array(2048).fill(7);
  writer.text("b");
  writer.binary(big);
  writer.text("c");
  const three = writer.takeChunks();
  assertEquals(three.length, 3);
  assert(three[1] === big);
  writer.text("d");
  const again = writer.takeChunks();
  assertEquals(again.length, 1);
  assert(again !== three);
  const events = new FrameDecoder({ role: "client" }).push(concat([...three, ...again]));
  assertEquals(events.map((event) => event.type), ["text", "binary", "text", "text"]);
});

/** An in-memory socket that logs each read and write as it is issued. */
class LoggingConn {
  readonly remoteAddr: Deno.NetAddr = { transport: "tcp", hostname: "127.0.0.1", port: 1 };
  readonly log: string[] = [];
  #inputs: Uint8Array[];
  constructor(inputs: Uint8Array[]) {
    this.#inputs = inputs;
  }
  read(buffer: Uint8Array): Promise<number | null> {
    this.log.push("read");
    const input = this.#inputs.shift();
    if (input === undefined) return Promise.resolve(null);
    buffer.set(input);
    return Promise.resolve(input.length);
  }
  write(chunk: Uint8Array): Promise<number> {
    this.log.push(`write ${chunk.length}`);
    return Promise.resolve(chunk.length);
  }
  close(): void {
    this.log.push("close");
  }
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
}

Deno.test("server: a read's replies are written, in one write, before the next read", async () => {
  // Two reads of two messages each, then EOF.
  const conn = new LoggingConn([
    concat([maskedText("ab"), maskedText("cd")]),
    concat([maskedText("ef"), maskedText("gh")]),
  ]);
  const { heap, ended } = startConnection(conn as unknown as Deno.Conn, echoHandler);
  const info = await ended;
  heap.clear();
  assertEquals(info.cause, "peer");
  // Each echo batch is two 4-byte frames.
  assertEquals(conn.log, ["read", "write 8", "read", "write 8", "read", "close"]);
});

Deno.test("server: once both close frames are through, no read is left for close() to cancel", async () => {
  // The peer's close (1000) arrives; the server echoes it and ends TCP. A read
  // issued after the echo would be cancelled by close(), and Deno builds an
  // Error with a stack trace for every cancelled read (connection churn).
  const close = encodeFrame(Opcode.Close, new Uint8Array([0x03, 0xe8]), { mask: KEY });
  const conn = new LoggingConn([close, maskedText("never read")]);
  const { heap, ended } = startConnection(conn as unknown as Deno.Conn, echoHandler);
  const info = await ended;
  heap.clear();
  assertEquals([info.code, info.wasClean], [1000, true]);
  assertEquals(conn.log, ["read", "write 4", "close"]);
});

Deno.test("server: a close that came with the head is echoed with no read at all", async () => {
  // The client's close frame arrived in the same read as its upgrade request:
  // the handshake is over before the read loop starts, so it never reads.
  const close = encodeFrame(Opcode.Close, new Uint8Array([0x03, 0xe8]), { mask: KEY });
  const conn = new LoggingConn([maskedText("never read")]);
  const { heap, ended } = startConnection(conn as unknown as Deno.Conn, echoHandler, undefined, {
    initial: close,
  });
  const info = await ended;
  heap.clear();
  assertEquals([info.code, info.wasClean], [1000, true]);
  assertEquals(conn.log, ["write 4", "close"]);
});
