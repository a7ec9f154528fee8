import { assert, assertEquals, assertGreater, assertLessOrEqual, assertThrows } from "@std/assert";
import { FrameDecoder } from "../protocol/frame_decoder.ts";
import {
  encodeFrame,
  encodeFrameHeader,
  FrameWriter,
  PreparedMessage,
} from "../protocol/frame_encoder.ts";
import { Opcode } from "../protocol/opcodes.ts";
import { bytesOf, concat, pattern } from "./_bytes.ts";
import { Random } from "./_random.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const RFC_KEY = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);

interface ParsedFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  key?: Uint8Array;
  payload: Uint8Array;
}

/**
 * A tiny, independent frame parser for checking the encoder's output: it
 * insists on minimal length encoding (§5.2) and unmasks masked payloads.
 */
function parseFrames(bytes: Uint8Array): ParsedFrame[] {
  const frames: ParsedFrame[] = [];
  let p = 0;
  while (p < bytes.length) {
    const b0 = bytes[p];
    const b1 = bytes[p + 1];
    let length = b1 & 0x7f;
    p += 2;
    if (length === 126) {
      length = (bytes[p] << 8) | bytes[p + 1];
      assert(length > 125, "16-bit length used for a short payload");
      p += 2;
    } else if (length === 127) {
      assertEquals(bytes[p] & 0x80, 0, "64-bit length has its top bit set");
      let value = 0;
      for (let i = 0; i < 8; i++) value = value * 256 + bytes[p + i];
      assert(value > 0xffff, "64-bit length used for a payload that fits 16 bits");
      length = value;
      p += 8;
    }
    let key: Uint8Array | undefined;
    if (b1 & 0x80) {
      key = bytes.slice(p, p + 4);
      p += 4;
    }
    assert(p + length <= bytes.length, "frame runs past the end of the bytes");
    const payload = bytes.slice(p, p + length);
    if (key) { for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3]; }
    p += length;
    frames.push({ fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0xf, key, payload });
  }
  return frames;
}

// --- encodeFrame / encodeFrameHeader ------------------------------------------

Deno.test("encodeFrameHeader uses the minimal 7-, 16- or 64-bit length (§5.2)", () => {
  assertEquals(encodeFrameHeader(Opcode.Binary, 0), bytesOf(0x82, 0x00));
  assertEquals(encodeFrameHeader(Opcode.Binary, 125), bytesOf(0x82, 0x7d));
  assertEquals(encodeFrameHeader(Opcode.Binary, 126), bytesOf(0x82, 0x7e, 0x00, 0x7e));
  assertEquals(encodeFrameHeader(Opcode.Binary, 65535), bytesOf(0x82, 0x7e, 0xff, 0xff));
  assertEquals(
    encodeFrameHeader(Opcode.Binary, 65536),
    bytesOf(0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00),
  );
  assertEquals(
    encodeFrameHeader(Opcode.Binary, 2 ** 32 + 5),
    bytesOf(0x82, 0x7f, 0, 0, 0, 0x01, 0, 0, 0, 0x05),
  );
  assertEquals(
    encodeFrameHeader(Opcode.Binary, Number.MAX_SAFE_INTEGER),
    bytesOf(0x82, 0x7f, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
  );
});

Deno.test("encodeFrameHeader sets FIN and appends the masking key", () => {
  assertEquals(encodeFrameHeader(Opcode.Text, 3, { fin: false }), bytesOf(0x01, 0x03));
  assertEquals(
    encodeFrameHeader(Opcode.Text, 5, { mask: RFC_KEY }),
    bytesOf(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d),
  );
  const random = encodeFrameHeader(Opcode.Text, 300, { mask: true });
  assertEquals(random.length, 8);
  assertEquals(random.subarray(0, 4), bytesOf(0x81, 0xfe, 0x01, 0x2c));
});

Deno.test("encodeFrameHeader rejects a bad opcode or length", () => {
  assertThrows(() => encodeFrameHeader(16, 0), RangeError);
  assertThrows(() => encodeFrameHeader(-1, 0), RangeError);
  assertThrows(() => encodeFrameHeader(Opcode.Text, -1), RangeError);
  assertThrows(() => encodeFrameHeader(Opcode.Text, 1.5), RangeError);
  assertThrows(() => encodeFrameHeader(Opcode.Text, 2 ** 53), RangeError);
});

Deno.test("encodeFrame reproduces the RFC 6455 §5.7 examples byte for byte", () => {
  const hello = encoder.encode("Hello");
  // A single-frame unmasked text message.
  assertEquals(encodeFrame(Opcode.Text, hello), bytesOf(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f));
  // A single-frame masked text message.
  assertEquals(
    encodeFrame(Opcode.Text, hello, { mask: RFC_KEY }),
    bytesOf(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58),
  );
  // A fragmented unmasked text message.
  assertEquals(
    encodeFrame(Opcode.Text, encoder.encode("Hel"), { fin: false }),
    bytesOf(0x01, 0x03, 0x48, 0x65, 0x6c),
  );
  assertEquals(
    encodeFrame(Opcode.Continuation, encoder.encode("lo")),
    bytesOf(0x80, 0x02, 0x6c, 0x6f),
  );
  // Unmasked ping, and the masked pong answering it.
  assertEquals(encodeFrame(Opcode.Ping, hello), bytesOf(0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f));
  assertEquals(
    encodeFrame(Opcode.Pong, hello, { mask: RFC_KEY }),
    bytesOf(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58),
  );
  // 256 bytes and 64 KiB binary messages in a single unmasked frame.
  const frame256 = encodeFrame(Opcode.Binary, pattern(256));
  assertEquals(frame256.subarray(0, 4), bytesOf(0x82, 0x7e, 0x01, 0x00));
  assertEquals(frame256.subarray(4), pattern(256));
  const frame64k = encodeFrame(Opcode.Binary, pattern(65536));
  assertEquals(frame64k.subarray(0, 10), bytesOf(0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00));
  assertEquals(frame64k.length, 10 + 65536);
});

Deno.test("encodeFrame with mask: true draws a key and masks every payload length", () => {
  for (const size of [0, 1, 2, 3, 4, 5, 7, 125, 126, 1000]) {
    const payload = pattern(size);
    const frame = encodeFrame(Opcode.Binary, payload, { mask: true });
    const [parsed] = parseFrames(frame);
    assert(parsed.key, "masked frame has a key");
    assertEquals(parsed.payload, payload);
  }
  // The caller's payload is never modified.
  const payload = pattern(10);
  encodeFrame(Opcode.Binary, payload, { mask: RFC_KEY });
  assertEquals(payload, pattern(10));
});

Deno.test("encodeFrame is permissive so tests can build broken frames", () => {
  assertEquals(encodeFrame(0x3, new Uint8Array(0)), bytesOf(0x83, 0x00));
  assertEquals(encodeFrame(Opcode.Ping, bytesOf(1), { fin: false }), bytesOf(0x09, 0x01, 0x01));
  assertEquals(encodeFrame(Opcode.Ping, pattern(200)).subarray(0, 4), bytesOf(0x89, 126, 0, 200));
  assertThrows(() => encodeFrame(0x10, new Uint8Array(0)), RangeError);
  assertThrows(() => encodeFrame(Opcode.Text, bytesOf(1), { mask: bytesOf(1, 2, 3) }), RangeError);
});

// --- FrameWriter -----------------------------------------------------------------

Deno.test("FrameWriter batches frames and take() returns them concatenated", () => {
  const writer = new FrameWriter({ role: "server" });
  assertEquals(writer.length, 0);
  writer.text("Hello");
  writer.binary(bytesOf(1, 2, 3));
  writer.ping(encoder.encode("p"));
  writer.pong();
  writer.close(1000, "bye");
  assertEquals(writer.length, 7 + 5 + 3 + 2 + 7);
  const batch = writer.take();
  assertEquals(writer.length, 0);
  const expected = [
    encodeFrame(Opcode.Text, encoder.encode("Hello")),
    encodeFrame(Opcode.Binary, bytesOf(1, 2, 3)),
    encodeFrame(Opcode.Ping, encoder.encode("p")),
    encodeFrame(Opcode.Pong, new Uint8Array(0)),
    bytesOf(0x88, 0x05, 0x03, 0xe8, 0x62, 0x79, 0x65),
  ];
  assertEquals(batch, new Uint8Array(expected.flatMap((frame) => [...frame])));
  assertEquals(writer.take().length, 0);
});

Deno.test("FrameWriter take() view stays intact until the next take()", () => {
  const writer = new FrameWriter({ role: "server", initialCapacity: 64 });
  writer.text("first batch");
  const first = writer.take();
  const copy = first.slice();
  // Fill the other buffer, including past its capacity (it must grow).
  writer.text("second batch, which overwrites nothing");
  writer.binary(pattern(500));
  assertEquals(first, copy);
  const second = writer.take();
  assertEquals(parseFrames(second).length, 2);
  assertEquals(
    decoder.decode(parseFrames(second)[0].payload),
    "second batch, which overwrites nothing",
  );
  // The third batch reuses the first buffer: the first view is now stale by contract,
  // but the second must still be intact while the third is being written.
  const secondCopy = second.slice();
  writer.text("third");
  assertEquals(second, secondCopy);
  assertEquals(decoder.decode(parseFrames(writer.take())[0].payload), "third");
});

Deno.test("FrameWriter grows for large payloads and lets a huge buffer go after take()", () => {
  // copyThreshold: Infinity copies even a 2 MiB payload into the batch buffer.
  const writer = new FrameWriter({
    role: "server",
    initialCapacity: 1024,
    copyThreshold: Infinity,
  });
  const big = pattern(2 * 1024 * 1024);
  writer.text("before");
  writer.binary(big);
  const huge = writer.take();
  const frames = parseFrames(huge);
  assertEquals(frames.length, 2);
  assertEquals(frames[1].payload, big);
  assertGreater(huge.buffer.byteLength, 2 * 1024 * 1024);
  writer.text("small");
  writer.take();
  // The huge buffer comes round again: it must have been replaced by a small one.
  writer.text("small again");
  const again = writer.take();
  assertLessOrEqual(again.buffer.byteLength, 1024);
  assertEquals(decoder.decode(parseFrames(again)[0].payload), "small again");
});

Deno.test("FrameWriter rejects bad options", () => {
  assertThrows(() => new FrameWriter({ role: "server", initialCapacity: 0 }), RangeError);
  assertThrows(() => new FrameWriter({ role: "server", fragmentSize: 0 }), RangeError);
  assertThrows(() => new FrameWriter({ role: "server", fragmentSize: 1.5 }), RangeError);
  assertThrows(() => new FrameWriter({ role: "server", copyThreshold: 0 }), RangeError);
  assertThrows(() => new FrameWriter({ role: "server", copyThreshold: -1 }), RangeError);
  assertThrows(() => new FrameWriter({ role: "server", copyThreshold: 1.5 }), RangeError);
  new FrameWriter({ role: "server", copyThreshold: Infinity });
});

Deno.test("FrameWriter text() encodes ASCII, multibyte text and lone surrogates", () => {
  const samples = [
    "",
    "a",
    '{"type":"heartbeat","id":1}',
    "a".repeat(32), // the longest string of the short ASCII path
    "a".repeat(31) + "é", // non-ASCII at the very end of a short string
    "a".repeat(33),
    "héllo",
    "€ and 😀",
    "日本語テキスト",
    "\uD800",
    "x\uDC00y",
    "😀\uD83D",
  ];
  for (const role of ["server", "client"] as const) {
    const writer = new FrameWriter({ role, initialCapacity: 16 });
    for (const text of samples) writer.text(text);
    const frames = parseFrames(writer.take());
    assertEquals(frames.length, samples.length);
    frames.forEach((frame, i) => {
      assertEquals(frame.opcode, Opcode.Text);
      assert(frame.fin);
      assertEquals(frame.key !== undefined, role === "client");
      assertEquals(frame.payload, encoder.encode(samples[i]), `${role} sample ${i}`);
    });
    // Lone surrogates become U+FFFD (EF BF BD): 3 bytes for 1 code unit.
    assertEquals(frames[9].payload, bytesOf(0xef, 0xbf, 0xbd));
  }
});

Deno.test("FrameWriter text() gets the length form right where UTF-8 length ≠ string length", () => {
  const cases = [
    "a".repeat(125), // 125 bytes: 7-bit
    "a".repeat(126), // 126 bytes: 16-bit
    "é".repeat(62) + "a", // 63 characters, 125 bytes
    "é".repeat(63), // 63 characters, 126 bytes: header grows after encoding
    "€".repeat(42), // 42 characters, 126 bytes
    "\uD800".repeat(42), // 42 lone surrogates → 126 bytes of U+FFFD
    "😀".repeat(32), // 64 code units, 128 bytes
    "a".repeat(65535),
    "a".repeat(65536),
    "é".repeat(32767) + "a", // 65535 bytes
    "é".repeat(32768), // 32768 characters, 65536 bytes: 16-bit guess, 64-bit needed
    "€".repeat(21846), // 65538 bytes
  ];
  for (const role of ["server", "client"] as const) {
    const writer = new FrameWriter({ role, initialCapacity: 64 });
    for (const text of cases) writer.text(text);
    const frames = parseFrames(writer.take());
    assertEquals(frames.length, cases.length);
    frames.forEach((frame, i) => {
      const expected = encoder.encode(cases[i]);
      assertEquals(frame.payload.length, expected.length, `${role} case ${i}`);
      assertEquals(frame.payload, expected, `${role} case ${i}`);
      assertEquals(frame.key !== undefined, role === "client");
    });
  }
});

Deno.test("FrameWriter text() matches encodeFrame exactly for the header sizes", () => {
  for (const text of ["é".repeat(63), "é".repeat(32768), "a".repeat(100)]) {
    const writer = new FrameWriter({ role: "server" });
    writer.text(text);
    assertEquals(writer.take(), encodeFrame(Opcode.Text, encoder.encode(text)));
  }
});

Deno.test("FrameWriter fragmentSize splits data messages into continuation frames (§5.4)", () => {
  const writer = new FrameWriter({ role: "server", fragmentSize: 4 });
  writer.binary(pattern(10));
  writer.text("€uro€"); // 9 bytes: fragments split inside characters, which §5.4 allows
  writer.binary(pattern(4)); // exactly one fragment's worth: not split
  writer.binary(new Uint8Array(0));
  writer.ping(pattern(20)); // control frames are never fragmented (§5.5)
  const frames = parseFrames(writer.take());
  const shape = frames.map((f) => [f.opcode, f.fin, f.payload.length]);
  assertEquals(shape, [
    [Opcode.Binary, false, 4],
    [Opcode.Continuation, false, 4],
    [Opcode.Continuation, true, 2],
    [Opcode.Text, false, 4],
    [Opcode.Continuation, false, 4],
    [Opcode.Continuation, true, 1],
    [Opcode.Binary, true, 4],
    [Opcode.Binary, true, 0],
    [Opcode.Ping, true, 20],
  ]);
  const joined = (from: number, to: number) =>
    new Uint8Array(frames.slice(from, to).flatMap((f) => [...f.payload]));
  assertEquals(joined(0, 3), pattern(10));
  assertEquals(decoder.decode(joined(3, 6)), "€uro€");
});

Deno.test("FrameWriter fragmentSize: short text that fits is sent whole", () => {
  const writer = new FrameWriter({ role: "client", fragmentSize: 10 });
  writer.text("abcdefghij"); // 10 bytes, although 3 × length exceeds the fragment size
  writer.text("abcdefghijk");
  const frames = parseFrames(writer.take());
  assertEquals(frames.map((f) => [f.opcode, f.fin]), [
    [Opcode.Text, true],
    [Opcode.Text, false],
    [Opcode.Continuation, true],
  ]);
  assertEquals(decoder.decode(frames[0].payload), "abcdefghij");
  assert(frames.every((f) => f.key !== undefined), "client fragments are masked");
});

Deno.test("FrameWriter client frames are masked, each with its own key (§5.3)", () => {
  const writer = new FrameWriter({ role: "client" });
  const count = 1100; // more than one 4 KiB pool of keys
  for (let i = 0; i < count; i++) writer.binary(pattern(i % 40));
  const frames = parseFrames(writer.take());
  assertEquals(frames.length, count);
  const keys = new Set<string>();
  frames.forEach((frame, i) => {
    assert(frame.key, `frame ${i} is masked`);
    keys.add(frame.key.join(","));
    assertEquals(frame.payload, pattern(i % 40));
  });
  // 1100 random 32-bit keys: a handful of collisions at most, practically none.
  assertGreater(keys.size, count - 5);
  // The caller's buffer is not masked in place.
  const data = pattern(16);
  writer.binary(data);
  assertEquals(data, pattern(16));
});

Deno.test("FrameWriter server frames are never masked", () => {
  const writer = new FrameWriter({ role: "server" });
  writer.text("hi");
  writer.binary(pattern(300));
  writer.ping();
  writer.close(1001);
  for (const frame of parseFrames(writer.take())) assertEquals(frame.key, undefined);
});

Deno.test("FrameWriter control frames: 125-byte limit and close payloads", () => {
  const writer = new FrameWriter({ role: "server" });
  writer.ping(pattern(125));
  assertThrows(() => writer.ping(pattern(126)), RangeError, "at most 125");
  assertThrows(() => writer.pong(pattern(126)), RangeError, "at most 125");
  writer.close();
  writer.close(4001, "hi");
  assertThrows(() => writer.close(1005), RangeError);
  assertThrows(() => writer.close(1000, "x".repeat(124)), RangeError);
  const frames = parseFrames(writer.take());
  assertEquals(frames.map((f) => f.opcode), [Opcode.Ping, Opcode.Close, Opcode.Close]);
  assertEquals(frames[0].payload, pattern(125));
  assertEquals(frames[1].payload.length, 0);
  assertEquals(frames[2].payload, bytesOf(0x0f, 0xa1, 0x68, 0x69));
  assert(frames.every((f) => f.fin && f.rsv === 0));
});

// --- FrameWriter chunks: large payloads without a copy ----------------------------

Deno.test("FrameWriter takeChunks() keeps small frames together and large payloads apart", () => {
  const writer = new FrameWriter({ role: "server", copyThreshold: 1000 });
  const big1 = pattern(1000); // exactly the threshold: referenced
  const big2 = pattern(70_000);
  writer.text("a");
  writer.binary(big1);
  writer.ping(bytesOf(1));
  writer.binary(pattern(999)); // just below: copied
  writer.binary(big2);
  writer.close(1000);
  assertEquals(writer.length, 3 + (4 + 1000) + 3 + (4 + 999) + (10 + 70_000) + 4);
  const chunks = writer.takeChunks();
  assertEquals(writer.length, 0);
  assertEquals(chunks.length, 5);
  assertEquals(chunks.map((chunk) => chunk.length), [3 + 4, 1000, 3 + 4 + 999 + 10, 70_000, 4]);
  // The payloads are the caller's arrays themselves.
  assert(chunks[1] === big1, "big1 is referenced, not copied");
  assert(chunks[3] === big2, "big2 is referenced, not copied");
  const frames = parseFrames(concat(chunks));
  assertEquals(frames.map((f) => [f.opcode, f.payload.length]), [
    [Opcode.Text, 1],
    [Opcode.Binary, 1000],
    [Opcode.Ping, 1],
    [Opcode.Binary, 999],
    [Opcode.Binary, 70_000],
    [Opcode.Close, 2],
  ]);
  assertEquals(frames[4].payload, big2);
  assertEquals(writer.takeChunks(), []);
});

Deno.test("FrameWriter server: a large payload is referenced until written", () => {
  const writer = new FrameWriter({ role: "server" }); // default threshold: 16 KiB
  const backing = pattern(100_000);
  const payload = backing.subarray(1000, 1000 + 32 * 1024);
  writer.binary(payload);
  const [header, body] = writer.takeChunks();
  assertEquals(header.length, 4);
  assertEquals(header, bytesOf(0x82, 126, 0x80, 0x00));
  assert(body.buffer === backing.buffer, "same memory as the caller's array");
  assertEquals([body.byteOffset, body.length], [1000, 32 * 1024]);
  // Which is why the caller must not modify it before the write: it shows.
  payload[0] ^= 0xff;
  assertEquals(body[0], payload[0]);
  // 16 KiB - 1 is still copied.
  const small = pattern(16 * 1024 - 1);
  writer.binary(small);
  const chunks = writer.takeChunks();
  assertEquals(chunks.length, 1);
  assert(chunks[0].buffer !== small.buffer, "a small payload is copied");
});

Deno.test("FrameWriter fragments of a large message are referenced slices of it (§5.4)", () => {
  const writer = new FrameWriter({ role: "server", fragmentSize: 40_000, copyThreshold: 20_000 });
  const data = pattern(90_000); // 40 000 + 40 000 + 10 000 (copied: below the threshold)
  writer.binary(data);
  const chunks = writer.takeChunks();
  // [header 1] [fragment 1] [header 2] [fragment 2] [header 3 + fragment 3]
  assertEquals(chunks.map((chunk) => chunk.length), [4, 40_000, 4, 40_000, 4 + 10_000]);
  for (const [i, chunk] of [chunks[1], chunks[3]].entries()) {
    assert(chunk.buffer === data.buffer, `fragment ${i} is not copied`);
    assertEquals([chunk.byteOffset, chunk.length], [i * 40_000, 40_000]);
  }
  const frames = parseFrames(concat(chunks));
  assertEquals(frames.map((f) => [f.opcode, f.fin]), [
    [Opcode.Binary, false],
    [Opcode.Continuation, false],
    [Opcode.Continuation, true],
  ]);
  assertEquals(new Uint8Array(frames.flatMap((f) => [...f.payload])), data);
});

Deno.test("FrameWriter take() joins the chunks; a batch of small frames needs no copy", () => {
  const script = (writer: FrameWriter) => {
    writer.text("before");
    writer.binary(pattern(5000));
    writer.pong(bytesOf(7));
    writer.binary(pattern(300));
    writer.text("after");
  };
  const chunked = new FrameWriter({ role: "server", copyThreshold: 256 });
  script(chunked);
  const chunks = chunked.takeChunks();
  assertEquals(chunks.length, 5);
  const joined = new FrameWriter({ role: "server", copyThreshold: 256 });
  script(joined);
  const length = joined.length;
  const bytes = joined.take();
  assertEquals(bytes.length, length);
  assertEquals(bytes, concat(chunks));
  // And the same bytes as a writer that copies everything.
  const copying = new FrameWriter({ role: "server", copyThreshold: Infinity });
  script(copying);
  assertEquals(copying.take(), bytes);
  // Small frames only: take() is the single chunk itself, a view of the batch buffer.
  joined.text("small");
  const view = joined.take();
  assertLessOrEqual(view.length, view.buffer.byteLength);
  assertEquals(view.byteLength, 7);
  assertEquals(view.buffer.byteLength, 64, "the default initial capacity");
});

Deno.test("FrameWriter chunks stay intact when the buffer is replaced mid-batch and until the next take", () => {
  const writer = new FrameWriter({ role: "server", initialCapacity: 64, copyThreshold: 100 });
  const big = pattern(200);
  writer.binary(pattern(40)); // 42 bytes of the 64
  writer.binary(big); // its 4-byte header fills the buffer to 46: chunk cut here
  writer.binary(pattern(60)); // does not fit: a new buffer, the old one left to its chunk
  const first = writer.takeChunks();
  assertEquals(first.length, 3);
  assert(first[0].buffer !== first[2].buffer, "the run moved to a new buffer");
  const firstBytes = concat(first);
  // The next batch fills the other buffer, growing it, while the first is written.
  writer.text("z".repeat(50));
  writer.binary(pattern(150));
  writer.text("w".repeat(90));
  assertEquals(concat(first), firstBytes);
  const second = writer.takeChunks();
  const frames = parseFrames(concat([...first, ...second]));
  assertEquals(frames.map((f) => f.payload.length), [40, 200, 60, 50, 150, 90]);
  assertEquals(frames[0].payload, pattern(40));
  assertEquals(frames[1].payload, big);
  assertEquals(frames[2].payload, pattern(60));
  assertEquals(decoder.decode(frames[5].payload), "w".repeat(90));
});

Deno.test("FrameWriter client: large payloads are still copied and masked (§5.3)", () => {
  const writer = new FrameWriter({ role: "client", copyThreshold: 1024 });
  const fits = pattern(4096);
  writer.text("hi");
  writer.binary(fits);
  // Fits in the batch buffer: copied there, like any client payload.
  let chunks = writer.takeChunks();
  assertEquals(chunks.length, 1);
  let frames = parseFrames(chunks[0]);
  assert(frames[1].key, "masked");
  assertEquals(frames[1].payload, fits);
  assertEquals(fits, pattern(4096), "the caller's array is not masked in place");

  // Past the 1 MiB the buffer may keep: a private masked copy, as a chunk of its own.
  const huge = pattern(1536 * 1024);
  writer.text("hi");
  writer.binary(huge);
  chunks = writer.takeChunks();
  assertEquals(chunks.length, 2);
  assert(chunks[1] !== huge && chunks[1].buffer !== huge.buffer, "copied");
  assertEquals(chunks[1].length, huge.length);
  assertEquals(huge, pattern(1536 * 1024), "the caller's array is not masked in place");
  assertLessOrEqual(chunks[0].buffer.byteLength, 1024 * 1024);
  frames = parseFrames(concat(chunks));
  assert(frames[1].key, "masked");
  assertEquals(frames[1].payload, huge);
});

Deno.test("FrameWriter text too large for the batch buffer is encoded into a chunk of its own", () => {
  for (const role of ["server", "client"] as const) {
    const writer = new FrameWriter({ role });
    const huge = "é".repeat(400_000) + "😀".repeat(1000); // 3 × length > 1 MiB
    writer.text("small");
    writer.text(huge);
    writer.text("small again");
    const chunks = writer.takeChunks();
    assertEquals(chunks.length, 3, role);
    assertEquals(chunks[1].length, encoder.encode(huge).length, "right-sized");
    for (const chunk of [chunks[0], chunks[2]]) {
      assertLessOrEqual(chunk.buffer.byteLength, 16 * 1024, "the batch buffer did not grow");
    }
    const frames = parseFrames(concat(chunks));
    assertEquals(frames.map((f) => decoder.decode(f.payload)), ["small", huge, "small again"]);
    assert(frames.every((f) => (f.key !== undefined) === (role === "client")), role);
  }
});

Deno.test("FrameWriter keeps batch buffers within 1 MiB for a batch of large messages", () => {
  // Text: encoded into the batch buffer while it fits (faster), then into arrays of their own.
  const writer = new FrameWriter({ role: "server" });
  const text = "a".repeat(64 * 1024);
  for (let i = 0; i < 32; i++) writer.text(text);
  const chunks = writer.takeChunks();
  assertGreater(chunks.length, 1);
  for (const chunk of chunks) assertLessOrEqual(chunk.buffer.byteLength, 1024 * 1024);
  const frames = parseFrames(concat(chunks));
  assertEquals(frames.length, 32);
  assert(frames.every((f) => f.payload.length === text.length));
  // Binary: every payload referenced, only the headers copied.
  const payload = pattern(64 * 1024);
  for (let i = 0; i < 32; i++) writer.binary(payload);
  const binary = writer.takeChunks();
  assertEquals(binary.length, 64);
  assert(binary.filter((_, i) => i % 2 === 1).every((chunk) => chunk === payload));
});

Deno.test("FrameWriter mixed small and large batches decode to the same messages", () => {
  type Sent = { type: "text"; data: string } | { type: "binary" | "ping"; data: Uint8Array };
  for (let seed = 1; seed <= 40; seed++) {
    const random = new Random(seed);
    const role = seed % 2 === 0 ? "server" : "client";
    const writer = new FrameWriter({
      role,
      initialCapacity: 16 + random.below(512),
      copyThreshold: 1 + random.below(3000),
      fragmentSize: random.below(3) === 0 ? 1 + random.below(5000) : undefined,
    });
    const reader = new FrameDecoder({
      role: role === "server" ? "client" : "server",
      maxMessageSize: 1 << 24,
    });
    const sent: Sent[] = [];
    const received: Sent[] = [];
    const receive = (chunks: Uint8Array[]) => {
      // The peer may get any chunk split anywhere; feed each in two pieces.
      for (const chunk of chunks) {
        const cut = random.below(chunk.length + 1);
        for (const part of [chunk.subarray(0, cut), chunk.subarray(cut)]) {
          for (const event of reader.push(part)) {
            if (event.type === "text") received.push({ type: "text", data: event.data });
            else if (event.type === "binary" || event.type === "ping") {
              received.push({ type: event.type, data: event.data.slice() });
            } else throw new Error(`unexpected ${event.type}`);
          }
        }
      }
    };
    let pending: Uint8Array[] | undefined;
    for (let i = 0; i < 60; i++) {
      const size = random.below(4) === 0 ? random.below(20_000) : random.below(200);
      const kind = random.below(5);
      if (kind === 0) {
        const data = pattern(random.below(126));
        writer.ping(data);
        sent.push({ type: "ping", data });
      } else if (kind === 1) {
        const data = "é€😀ab".repeat(size / 5 + 1).slice(0, size).replace(/[\uD800-\uDBFF]$/, "");
        writer.text(data);
        sent.push({ type: "text", data });
      } else {
        const data = pattern(size + 7).subarray(7); // a view with an offset
        writer.binary(data);
        sent.push({ type: "binary", data: data.slice() });
      }
      if (random.below(4) === 0) {
        // Writes lag one batch behind, as in a connection: the previous
        // batch is delivered only after the next one has been filled.
        const length = writer.length;
        const chunks = writer.takeChunks();
        assertEquals(chunks.reduce((sum, chunk) => sum + chunk.length, 0), length);
        assert(chunks.every((chunk) => chunk.length > 0), "no empty chunks");
        if (pending) receive(pending);
        pending = chunks;
      }
    }
    if (pending) receive(pending);
    receive(writer.takeChunks());
    // Message by message, so that a failure names the message and does not
    // print a diff of megabytes.
    assertEquals(received.length, sent.length, `seed ${seed}`);
    sent.forEach((message, i) => {
      const got = received[i];
      assertEquals(got.type, message.type, `seed ${seed}, message ${i}`);
      const same = typeof message.data === "string"
        ? got.data === message.data
        : got.data instanceof Uint8Array && sameBytes(got.data, message.data);
      assert(same, `seed ${seed}, message ${i}: ${message.type} payload differs`);
    });
  }
});

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

Deno.test("FrameWriter: a connection that only pings and pongs holds a few hundred bytes", () => {
  const keepalive = new FrameWriter({ role: "server" });
  for (let i = 0; i < 10; i++) {
    keepalive.ping(pattern(8));
    // Both batch buffers stay at the default 64 B: a keepalive ping is 10 B.
    assertEquals(keepalive.take().buffer.byteLength, 64);
  }
  const writer = new FrameWriter({ role: "server" });
  for (let i = 0; i < 10; i++) {
    writer.ping(pattern(8));
    writer.pong(pattern(125));
    const batch = writer.take();
    // The largest control frames grow them to 256 B, never to 16 KiB.
    assertEquals(batch.buffer.byteLength, 256);
  }
});

Deno.test("PreparedMessage encodes one unmasked frame, text or binary", () => {
  const text = new PreparedMessage("héllo");
  assertEquals(text.frame, encodeFrame(Opcode.Text, encoder.encode("héllo")));
  assertEquals(text.opcode, Opcode.Text);
  const data = pattern(70_000);
  const binary = new PreparedMessage(data);
  assertEquals(binary.frame, encodeFrame(Opcode.Binary, data));
  data[0] ^= 0xff; // the caller's array was copied
  assertEquals(binary.frame[10], pattern(1)[0]);
});

Deno.test("FrameWriter.prepared queues the shared frame by reference, in order", () => {
  const shared = new PreparedMessage("news");
  const a = new FrameWriter({ role: "server" });
  const b = new FrameWriter({ role: "server" });
  a.text("before");
  a.prepared(shared);
  a.text("after");
  b.prepared(shared);
  assertEquals(a.length, 8 + shared.frame.length + 7);
  const chunks = a.takeChunks();
  assertEquals(chunks.length, 3);
  assert(chunks[1] === shared.frame, "copied, not referenced");
  assert(b.takeChunks()[0] === shared.frame);
  const events = new FrameDecoder({ role: "client" }).push(concat(chunks));
  assertEquals(events.map((e) => e.type === "text" && e.data), ["before", "news", "after"]);
});

Deno.test("FrameWriter.prepared refuses a client writer: its frames are masked (§5.3)", () => {
  const writer = new FrameWriter({ role: "client" });
  assertThrows(() => writer.prepared(new PreparedMessage("x")), TypeError);
});
