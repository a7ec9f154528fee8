/**
 * Randomized tests of the frame codec (protocol/), seeded and bounded.
 *
 * - Round trip: random messages (text with 1- to 4-byte UTF-8, binary, empty),
 *   randomly fragmented, with ping/pong frames between the fragments, encoded
 *   with `encodeFrame` or `FrameWriter`, then pushed into a `FrameDecoder` in
 *   random chunks (1 byte up to everything at once): the decoder must give back
 *   exactly the messages that went in, in order.
 * - Robustness: random garbage and randomly mutated valid streams must never
 *   make the decoder throw; they yield events that end in at most one `close`
 *   or `error`, with a code RFC 6455 §7.4.1 allows, and the same events however
 *   the bytes are split.
 * - Cross-checks with `npm:ws`: frames from ws's `Sender` decode identically
 *   here (and match `encodeFrame` byte for byte), and our frames decode
 *   identically in ws's `Receiver`.
 *
 * Every iteration has its own seed, printed when it fails. To replay one:
 *
 * ```sh
 * HEARTWIRE_FUZZ_SEED=<seed> HEARTWIRE_FUZZ_ITERATIONS=1 deno test --allow-all test/fuzz_test.ts
 * ```
 *
 * For a longer run, raise `HEARTWIRE_FUZZ_ITERATIONS` (default 300).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { isDeepStrictEqual } from "node:util";
import { Receiver, Sender } from "ws";
import { assert, assertEquals, AssertionError } from "@std/assert";
import { encodeClosePayload, isValidCloseCode } from "../protocol/close.ts";
import {
  type DecoderEvent,
  FrameDecoder,
  type FrameDecoderOptions,
} from "../protocol/frame_decoder.ts";
import { encodeFrame, FrameWriter } from "../protocol/frame_encoder.ts";
import { Opcode } from "../protocol/opcodes.ts";
import { concat, utf8 } from "./_bytes.ts";
import { Random } from "./_random.ts";
import { UTF8_EDGE_CODE_POINTS } from "./_utf8_samples.ts";

// ---------------------------------------------------------------------------
// Seeds and iterations

function envNumber(name: string): number | undefined {
  let value: string | undefined;
  try {
    value = Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: use the defaults
  }
  if (value === undefined || value === "") return undefined;
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number < 0) {
    throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  }
  return number;
}

const ITERATIONS = envNumber("HEARTWIRE_FUZZ_ITERATIONS") ?? 300;
const BASE_SEED = (envNumber("HEARTWIRE_FUZZ_SEED") ?? 0x6eab_7a11) >>> 0;

/**
 * Registers a test named "fuzz <label>: <description>" that runs `body` once
 * per iteration, each with its own seed, and names the seed (and how to replay
 * it) in any failure. Iteration 0 uses the base seed, so
 * `HEARTWIRE_FUZZ_SEED=s HEARTWIRE_FUZZ_ITERATIONS=1` replays seed s alone.
 */
function fuzzTest(label: string, description: string, body: (random: Random) => void): void {
  const name = `fuzz ${label}`;
  Deno.test(`${name}: ${description}`, () => {
    for (let i = 0; i < ITERATIONS; i++) {
      const seed = (BASE_SEED + Math.imul(i, 0x9e37_79b9)) >>> 0;
      try {
        body(new Random(seed));
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new Error(
          `${name} failed with seed ${seed}; replay it with\n` +
            `  HEARTWIRE_FUZZ_SEED=${seed} HEARTWIRE_FUZZ_ITERATIONS=1 ` +
            `deno test --allow-all --filter "${name}" test/fuzz_test.ts\n${message}`,
          { cause: error },
        );
      }
    }
  });
}

// ---------------------------------------------------------------------------
// Random content

function randomCodePoint(random: Random): number {
  const kind = random.below(20);
  if (kind < 9) return random.below(0x80); // 1 byte
  if (kind < 12) return random.between(0x80, 0x7ff); // 2 bytes
  if (kind < 15) {
    // 3 bytes, skipping the surrogates, which UTF-8 cannot encode
    const code = random.between(0x800, 0xffff - 0x800);
    return code < 0xd800 ? code : code + 0x800;
  }
  if (kind < 19) return random.between(0x10000, 0x10ffff); // 4 bytes
  return random.pick(UTF8_EDGE_CODE_POINTS);
}

/** Random text whose UTF-8 form is about `byteLength` bytes long. */
function randomText(random: Random, byteLength: number): string {
  const parts: string[] = [];
  let bytes = 0;
  while (bytes < byteLength) {
    const code = randomCodePoint(random);
    bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
    parts.push(String.fromCodePoint(code));
  }
  return parts.join("");
}

/**
 * A payload size: often tiny or empty, often around the 7-bit/16-bit length
 * boundaries (125/126, 65535/65536, §5.2), rarely large.
 */
function randomSize(random: Random, large: boolean): number {
  const kind = random.below(100);
  if (kind < 10) return 0;
  if (kind < 40) return random.between(1, 16);
  if (kind < 70) return random.between(17, 300);
  if (kind < 80) return random.pick([124, 125, 126, 127]);
  if (kind < 97 || !large) return random.between(301, 4000);
  return random.pick([65_535, 65_536, random.between(60_000, 70_000)]);
}

// ---------------------------------------------------------------------------
// Expected events and a random conversation

/** A decoder event with its payload copied into a plain array, for comparison. */
type Observed =
  | { type: "text"; data: string }
  | { type: "binary" | "ping" | "pong"; data: number[] }
  | { type: "close" | "error"; code: number; reason?: string };

function observe(event: DecoderEvent): Observed {
  switch (event.type) {
    case "text":
      return { type: "text", data: event.data };
    case "binary":
    case "ping":
    case "pong":
      return { type: event.type, data: Array.from(event.data) };
    case "close":
      return { type: "close", code: event.code, reason: event.reason };
    case "error":
      // The reason is free text; the code is what the RFC fixes.
      return { type: "error", code: event.code };
  }
}

/** One frame to send: a fragment of a data message, or a control frame. */
interface FrameSpec {
  opcode: number;
  fin: boolean;
  payload: Uint8Array;
}

/** A random conversation: the frames that carry it, and the events they must decode to. */
interface Conversation {
  frames: FrameSpec[];
  expected: Observed[];
}

/** Valid close codes (§7.4) to send. */
const CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1014, 3000, 4999];

function randomControl(random: Random): FrameSpec {
  return {
    opcode: random.chance(0.5) ? Opcode.Ping : Opcode.Pong,
    fin: true,
    payload: random.bytes(random.chance(0.2) ? 125 : random.between(0, 20)),
  };
}

/**
 * Random messages, each cut into random fragments (cuts may fall inside a
 * UTF-8 character, and fragments may be empty), with ping and pong frames
 * slipped in between fragments (§5.4) and between messages, and sometimes a
 * close frame at the end (§5.5.1).
 */
function randomConversation(random: Random, options: { large: boolean }): Conversation {
  const frames: FrameSpec[] = [];
  const expected: Observed[] = [];
  const control = () => {
    const frame = randomControl(random);
    frames.push(frame);
    expected.push({
      type: frame.opcode === Opcode.Ping ? "ping" : "pong",
      data: Array.from(frame.payload),
    });
  };

  const count = random.between(1, 8);
  for (let m = 0; m < count; m++) {
    if (random.chance(0.2)) control();
    const isText = random.chance(0.5);
    const size = randomSize(random, options.large);
    const text = isText ? randomText(random, size) : undefined;
    const bytes = text !== undefined ? utf8(text) : random.bytes(size);
    const opcode = isText ? Opcode.Text : Opcode.Binary;

    const cuts = random.chance(0.6) ? [] : Array.from(
      { length: random.between(1, 5) },
      () => random.between(0, bytes.length),
    ).sort((a, b) => a - b);
    cuts.push(bytes.length);
    let start = 0;
    for (let f = 0; f < cuts.length; f++) {
      if (f > 0 && random.chance(0.3)) control(); // inside a fragmented message (§5.4)
      frames.push({
        opcode: f === 0 ? opcode : Opcode.Continuation,
        fin: f === cuts.length - 1,
        payload: bytes.subarray(start, cuts[f]),
      });
      start = cuts[f];
    }
    // The message is delivered once its last fragment is in, after the control
    // frames that came between its fragments.
    expected.push(
      text !== undefined
        ? { type: "text", data: text }
        : { type: "binary", data: Array.from(bytes) },
    );
  }
  if (random.chance(0.3)) control();
  if (random.chance(0.3)) {
    if (random.chance(0.2)) {
      frames.push({ opcode: Opcode.Close, fin: true, payload: new Uint8Array(0) });
      expected.push({ type: "close", code: 1005, reason: "" }); // §7.1.5: no status code
    } else {
      const code = random.pick(CLOSE_CODES);
      let reason = randomText(random, random.between(0, 40));
      while (utf8(reason).length > 123) reason = reason.slice(0, -1);
      frames.push({ opcode: Opcode.Close, fin: true, payload: encodeClosePayload(code, reason) });
      expected.push({ type: "close", code, reason });
    }
  }
  return { frames, expected };
}

/** A random 4-byte masking key from the seeded generator, so a seed replays exactly. */
function randomKey(random: Random): Uint8Array {
  return random.bytes(4);
}

/** The frames encoded one by one with `encodeFrame`, masked with seeded keys if `masked`. */
function encodeFrames(random: Random, frames: FrameSpec[], masked: boolean): Uint8Array {
  return concat(frames.map((frame) =>
    encodeFrame(frame.opcode, frame.payload, {
      fin: frame.fin,
      mask: masked ? randomKey(random) : false,
    })
  ));
}

/**
 * The same conversation written by a `FrameWriter`, the way a connection
 * writes: whole messages (fragmented by the writer if `fragmentSize` says so)
 * and control frames between messages. Returns the bytes and the events they
 * must decode to.
 */
function writeWithFrameWriter(
  random: Random,
  role: "server" | "client",
): { bytes: Uint8Array; expected: Observed[] } {
  const fragmentSize = random.chance(0.5) ? undefined : random.between(1, 2000);
  const writer = new FrameWriter({ role, fragmentSize, initialCapacity: random.between(16, 256) });
  const parts: Uint8Array[] = [];
  const expected: Observed[] = [];
  // take() hands out a view that the writer reuses two takes later: copy it.
  const take = () => parts.push(writer.take().slice());
  const count = random.between(1, 8);
  for (let m = 0; m < count; m++) {
    if (random.chance(0.2)) {
      const frame = randomControl(random);
      if (frame.opcode === Opcode.Ping) writer.ping(frame.payload);
      else writer.pong(frame.payload);
      expected.push({
        type: frame.opcode === Opcode.Ping ? "ping" : "pong",
        data: Array.from(frame.payload),
      });
    }
    const size = randomSize(random, true);
    if (random.chance(0.5)) {
      const text = randomText(random, size);
      writer.text(text);
      expected.push({ type: "text", data: text });
    } else {
      const bytes = random.bytes(size);
      writer.binary(bytes);
      expected.push({ type: "binary", data: Array.from(bytes) });
    }
    if (random.chance(0.5)) take();
  }
  if (random.chance(0.3)) {
    writer.close(1000, "bye");
    expected.push({ type: "close", code: 1000, reason: "bye" });
  }
  take();
  return { bytes: concat(parts), expected };
}

/**
 * A random stream for a decoder in `role`, from the other side (a server reads
 * masked client frames, a client unmasked server frames, §5.1): a conversation
 * encoded frame by frame, or written by a `FrameWriter`. Returns the bytes and
 * the events they must decode to.
 */
function randomStream(
  random: Random,
  role: "server" | "client",
): { bytes: Uint8Array; expected: Observed[] } {
  if (random.chance(0.5)) {
    const { frames, expected } = randomConversation(random, { large: true });
    return { bytes: encodeFrames(random, frames, role === "server"), expected };
  }
  return writeWithFrameWriter(random, role === "server" ? "client" : "server");
}

/** Cuts `bytes` into chunks: all at once, byte by byte, small pieces, or any sizes. */
function randomChunks(random: Random, bytes: Uint8Array): Uint8Array[] {
  const strategy = random.below(4);
  if (strategy === 0 || bytes.length === 0) return [bytes];
  const maxChunk = strategy === 1 && bytes.length <= 8192
    ? 1
    : strategy === 2
    ? 16
    : Math.max(1, bytes.length);
  const chunks: Uint8Array[] = [];
  for (let start = 0; start < bytes.length;) {
    const size = Math.min(random.between(1, maxChunk), bytes.length - start);
    chunks.push(bytes.subarray(start, start + size));
    start += size;
  }
  return chunks;
}

/** Pushes the chunks into `decoder` and returns every event, observed after the last push. */
function decodeChunks(decoder: FrameDecoder, chunks: Uint8Array[]): DecoderEvent[] {
  const events: DecoderEvent[] = [];
  for (const chunk of chunks) events.push(...decoder.push(chunk));
  return events;
}

/** Compares event lists with a short, readable message on the first difference. */
function assertSameEvents(actual: Observed[], expected: Observed[], what: string): void {
  const describe = (e: Observed | undefined) => {
    if (e === undefined) return "nothing";
    if ("code" in e) return `${e.type} ${e.code} ${JSON.stringify(e.reason ?? "")}`;
    if (e.type === "text") return `text of ${e.data.length} UTF-16 units`;
    return `${e.type} of ${e.data.length} bytes`;
  };
  const length = Math.max(actual.length, expected.length);
  for (let i = 0; i < length; i++) {
    if (isDeepStrictEqual(actual[i], expected[i])) continue;
    // Payloads can be 64 KiB: name the first difference rather than print a diff.
    let detail = "";
    const a = actual[i], e = expected[i];
    if (a !== undefined && e !== undefined && a.type === e.type && "data" in a && "data" in e) {
      let at = 0;
      while (at < a.data.length && a.data[at] === e.data[at]) at++;
      detail = `; they differ from index ${at} on`;
    }
    throw new AssertionError({
      message: `${what}: event ${i} is ${describe(a)}, expected ${describe(e)}${detail}`,
    });
  }
}

// ---------------------------------------------------------------------------
// Round trip

fuzzTest(
  "round trip",
  "encoded conversations decode to the same messages, however split",
  (random) => {
    const role = random.chance(0.75) ? "server" : "client";
    const { bytes, expected } = randomStream(random, role);
    // Bytes after a close frame must be ignored (§5.5.1: nothing follows a close).
    const closed = expected.at(-1)?.type === "close";
    const trailer = closed && random.chance(0.5) ? random.bytes(random.between(1, 50)) : null;
    const stream = trailer === null ? bytes : concat([bytes, trailer]);
    const pristine = stream.slice();

    const decoder = new FrameDecoder({ role });
    const events = decodeChunks(decoder, randomChunks(random, stream));
    assertSameEvents(events.map(observe), expected, `${role} decoder`);
    assertEquals(decoder.done, closed, "done exactly when a close frame arrived");
    // push() never writes to its input (it unmasks into its own memory).
    assert(stream.every((byte, i) => byte === pristine[i]), "the decoder modified its input");
  },
);

Deno.test("fuzz regression: a leading U+FEFF stays in a text message and a close reason", () => {
  // Found by the round trip above: TextDecoder drops a leading byte-order mark
  // unless told not to, and in WebSocket text it is content (§5.6, §5.5.1).
  const key = new Uint8Array([1, 2, 3, 4]);
  const decoder = new FrameDecoder({ role: "server" });
  const events = decoder.push(concat([
    encodeFrame(Opcode.Text, utf8("\uFEFFhi"), { mask: key }),
    encodeFrame(Opcode.Close, encodeClosePayload(1000, "\uFEFFbye"), { mask: key }),
  ]));
  assertEquals(events, [
    { type: "text", data: "\uFEFFhi" },
    { type: "close", code: 1000, reason: "\uFEFFbye" },
  ]);
});

// ---------------------------------------------------------------------------
// Robustness

/** Applies 1 to 4 random mutations: flipped bits, new or lost bytes, truncation. */
function mutate(random: Random, input: Uint8Array): Uint8Array {
  let bytes: Uint8Array = input.slice();
  const count = random.between(1, 4);
  for (let m = 0; m < count; m++) {
    const at = random.below(bytes.length + 1);
    switch (random.below(7)) {
      case 0: // flip one bit
        if (at < bytes.length) bytes[at] ^= 1 << random.below(8);
        break;
      case 1: // a byte that means something in a header
        if (at < bytes.length) {
          bytes[at] = random.pick([0x00, 0x01, 0x7d, 0x7e, 0x7f, 0x80, 0x81, 0x88, 0xff]);
        }
        break;
      case 2: // any byte
        if (at < bytes.length) bytes[at] = random.below(256);
        break;
      case 3: // insert random bytes
        bytes = concat([
          bytes.subarray(0, at),
          random.bytes(random.between(1, 8)),
          bytes.subarray(at),
        ]);
        break;
      case 4: // delete a range
        bytes = concat([bytes.subarray(0, at), bytes.subarray(at + random.between(1, 8))]);
        break;
      case 5: // truncate
        bytes = bytes.slice(0, at);
        break;
      case 6: { // repeat a range
        const end = Math.min(bytes.length, at + random.between(1, 20));
        bytes = concat([bytes.subarray(0, end), bytes.subarray(at, end), bytes.subarray(end)]);
        break;
      }
    }
  }
  return bytes;
}

/** Codes a decoder may fail with: protocol error, invalid UTF-8, too big (§7.4.1). */
const DECODER_ERROR_CODES = [1002, 1007, 1009];

/** Checks the shape of what a decoder made of arbitrary input. */
function assertWellFormed(events: Observed[], decoder: FrameDecoder): void {
  events.forEach((event, i) => {
    const last = i === events.length - 1;
    if (event.type === "error") {
      assert(last, `an error at ${i} of ${events.length} events: it must be the last`);
      assert(DECODER_ERROR_CODES.includes(event.code), `error code ${event.code}`);
    } else if (event.type === "close") {
      assert(last, `a close at ${i} of ${events.length} events: it must be the last`);
      assert(event.code === 1005 || isValidCloseCode(event.code), `close code ${event.code}`);
    } else if (event.type === "text") {
      assert(event.data.isWellFormed(), "a text message with a lone surrogate");
    } else if (event.type === "ping" || event.type === "pong") {
      assert(event.data.length <= 125, `a ${event.type} of ${event.data.length} bytes`);
    }
  });
  const ended = events.length > 0 && ["close", "error"].includes(events.at(-1)!.type);
  assertEquals(decoder.done, ended, "done exactly after a close or error");
  if (ended) assertEquals(decoder.push(new Uint8Array([0x81, 0x00])), [], "input after the end");
}

fuzzTest(
  "robustness",
  "garbage and mutated streams end in one close or error at most, never a throw",
  (random) => {
    const role = random.chance(0.75) ? "server" : "client";
    let input: Uint8Array;
    if (random.chance(0.25)) {
      // Pure garbage; often behind a plausible first byte so it gets past byte 0.
      input = random.bytes(random.between(0, 300));
      if (input.length > 0 && random.chance(0.5)) input[0] = random.pick([0x81, 0x82, 0x01, 0x89]);
      if (input.length > 1 && random.chance(0.5)) input[1] = (input[1] & 0x7f) | 0x80;
    } else {
      const conversation = randomConversation(random, { large: false });
      input = mutate(random, encodeFrames(random, conversation.frames, role === "server"));
    }
    const options: FrameDecoderOptions = { role };
    if (random.chance(0.3)) options.maxMessageSize = random.between(0, 2000);
    if (random.chance(0.3)) options.maxFrameSize = random.between(0, 1000);

    // Decoded whole and decoded in random pieces, the events must be the same.
    const whole = new FrameDecoder(options);
    const wholeEvents = whole.push(input).map(observe);
    assertWellFormed(wholeEvents, whole);
    const split = new FrameDecoder(options);
    const splitEvents = decodeChunks(split, randomChunks(random, input)).map(observe);
    assertSameEvents(splitEvents, wholeEvents, "split vs whole");
    assertWellFormed(splitEvents, split);
  },
);

// ---------------------------------------------------------------------------
// Cross-checks with npm:ws

/** One frame built by ws's `Sender.frame()`, masked with `key` unless it is null. */
function wsFrame(frame: FrameSpec, key: Uint8Array | null): Uint8Array {
  const parts: Buffer[] = Sender.frame(Buffer.from(frame.payload), {
    fin: frame.fin,
    opcode: frame.opcode,
    rsv1: false,
    mask: key !== null,
    readOnly: true, // mask a copy, not our payload
    maskBuffer: Buffer.alloc(4),
    generateMask: (mask: Buffer) => mask.set(key!),
  });
  return concat(parts);
}

fuzzTest(
  "ws Sender",
  "frames from ws's Sender decode identically and match encodeFrame",
  (random) => {
    const role = random.chance(0.75) ? "server" : "client";
    const { frames, expected } = randomConversation(random, { large: true });
    const parts = frames.map((frame) => {
      const key = role === "server" ? randomKey(random) : null;
      const fromWs = wsFrame(frame, key);
      assertEquals(
        encodeFrame(frame.opcode, frame.payload, { fin: frame.fin, mask: key ?? false }),
        fromWs,
        `encodeFrame differs from ws for opcode ${frame.opcode}, ${frame.payload.length} bytes`,
      );
      return fromWs;
    });
    const decoder = new FrameDecoder({ role });
    const events = decodeChunks(decoder, randomChunks(random, concat(parts)));
    assertSameEvents(events.map(observe), expected, `${role} decoder on ws frames`);
  },
);

/** Feeds chunks to a ws Receiver and records what it reports, as decoder events would be. */
function decodeWithWs(role: "server" | "client", chunks: Uint8Array[]): Observed[] {
  const receiver = new Receiver({ isServer: role === "server", maxPayload: 0 });
  const events: Observed[] = [];
  const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  receiver.on("message", (data: Buffer, isBinary: boolean) => {
    events.push(
      isBinary
        ? { type: "binary", data: Array.from(data) }
        : { type: "text", data: utf8.decode(data) },
    );
  });
  receiver.on("ping", (data: Buffer) => events.push({ type: "ping", data: Array.from(data) }));
  receiver.on("pong", (data: Buffer) => events.push({ type: "pong", data: Array.from(data) }));
  receiver.on("conclude", (code: number, reason: Buffer) => {
    events.push({ type: "close", code, reason: utf8.decode(reason) });
  });
  for (const chunk of chunks) {
    // ws unmasks in place: give it a copy. _write() is the stream's synchronous core.
    receiver._write(Buffer.from(chunk), null, (error?: Error) => {
      if (error) throw new Error(`ws rejected our frames: ${error.message}`);
    });
  }
  return events;
}

fuzzTest("ws Receiver", "our frames decode identically in ws's Receiver", (random) => {
  const role = random.chance(0.75) ? "server" : "client";
  const { bytes, expected } = randomStream(random, role);
  const events = decodeWithWs(role, randomChunks(random, bytes));
  assertSameEvents(events, expected, `ws ${role} Receiver on our frames`);
});
