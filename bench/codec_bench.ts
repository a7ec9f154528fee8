/**
 * Frame codec throughput: heartwire's {@linkcode FrameDecoder} and
 * {@linkcode FrameWriter} against `npm:ws`'s `Receiver` and `Sender`, measured
 * in the same run. Each group puts ws first as the baseline, so `deno bench`
 * prints how many times faster (or slower) heartwire is.
 *
 * Decode: a buffer of {@linkcode FRAMES} masked client frames (what a server
 * reads), pushed in one piece; both sides decode every message and the run
 * checks that each produced all {@linkcode FRAMES} messages.
 *
 * Fairness notes:
 * - ws's `Receiver` is a Writable stream; we call its `_write()` directly,
 *   skipping the stream machinery that `write()` adds, which favours ws.
 * - ws unmasks its input in place. Running it again on the same buffer would
 *   XOR the payloads back, so the masking key has every high bit clear and the
 *   text is ASCII: masked or not, the bytes stay valid UTF-8 and ws does the
 *   same work on every run. heartwire never writes to its input.
 * - Text: heartwire validates UTF-8 and returns a string; ws validates (with
 *   `buffer.isUtf8` from 24 bytes up, its JS loop below that — neither
 *   `utf-8-validate` nor `bufferutil` is installed, so unmasking is ws's JS
 *   loop too) and returns a Buffer, which the listener turns into the string
 *   an application needs with `toString()`.
 *
 * Encode: {@linkcode FRAMES} unmasked server frames. ws's `Sender.frame()`
 * returns the header and a reference to the payload for a vectored write, so
 * it copies nothing. `FrameWriter.takeChunks()` is what a heartwire
 * connection writes: small frames copied into one batch buffer (one write),
 * payloads from its `copyThreshold` (16 KiB) on referenced like ws's, each
 * after its header. `encodeFrameHeader` is heartwire's one-call equivalent of
 * ws's. (`encodeFrame`, which returns each frame in a new buffer of its own,
 * is meant for tests and left out.)
 *
 * Run: `deno bench --allow-all bench/codec_bench.ts`
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { Receiver, Sender } from "ws";
import { Connection } from "../protocol/connection.ts";
import { FrameDecoder } from "../protocol/frame_decoder.ts";
import { encodeFrame, encodeFrameHeader, FrameWriter } from "../protocol/frame_encoder.ts";

/** Messages per benchmark iteration, for both libraries. */
const FRAMES = 64;
/** High bits clear: XORing ASCII with it gives ASCII (see the module notes). */
const MASK_KEY = new Uint8Array([0x37, 0x7a, 0x21, 0x3d]);
/** Payload sizes: a small message, a typical one, and one just past the 16-bit length form. */
const SIZES = [
  { label: "16 B", size: 16 },
  { label: "1 KiB", size: 1024 },
  { label: "64 KiB", size: 65_536 },
];

/** ASCII text that looks like JSON traffic, `length` bytes long. */
function asciiPayload(length: number): Uint8Array {
  const pattern = '{"type":"chat","seq":12345,"text":"hello, heartwire"}';
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = pattern.charCodeAt(i % pattern.length);
  return bytes;
}

/** {@linkcode FRAMES} masked frames of `payload`, concatenated. */
function maskedFrames(opcode: number, payload: Uint8Array): Uint8Array {
  const frame = encodeFrame(opcode, payload, { mask: MASK_KEY });
  const frames = new Uint8Array(frame.length * FRAMES);
  for (let i = 0; i < FRAMES; i++) frames.set(frame, i * frame.length);
  return frames;
}

/** What the message listeners saw, so the work they do cannot be optimized away. */
let wsMessages = 0;
let wsTextLength = 0;

/** A ws server-side Receiver; text messages become strings as an application needs them. */
// deno-lint-ignore no-explicit-any
function wsReceiver(): any {
  const receiver = new Receiver({ isServer: true, maxPayload: 1 << 24 });
  receiver.on("message", (data: Buffer, isBinary: boolean) => {
    if (!isBinary) wsTextLength += data.toString().length;
    wsMessages++;
  });
  receiver.on("error", (error: Error) => {
    throw error;
  });
  return receiver;
}

/** Runs ws on `input` and returns how many messages it delivered. */
// deno-lint-ignore no-explicit-any
function wsDecode(receiver: any, input: Buffer): number {
  wsMessages = 0;
  receiver._write(input, null, (error?: Error) => {
    if (error) throw error;
  });
  return wsMessages;
}

function check(library: string, label: string, got: number): void {
  if (got !== FRAMES) throw new Error(`${library} ${label}: ${got} messages, not ${FRAMES}`);
}

for (const kind of ["binary", "text"] as const) {
  for (const { label, size } of SIZES) {
    const group = `decode ${kind} ${label}`;
    const frames = maskedFrames(kind === "text" ? 0x1 : 0x2, asciiPayload(size));
    const wsInput = Buffer.from(frames); // a copy: ws unmasks it in place
    const ws = wsReceiver();
    const decoder = new FrameDecoder({ role: "server", maxMessageSize: 1 << 24 });

    // One checked run each before measuring.
    check("ws", group, wsDecode(ws, wsInput));
    check("heartwire", group, decoder.push(frames).length);

    Deno.bench({
      name: `ws Receiver (${group})`,
      group,
      baseline: true,
      fn() {
        if (wsDecode(ws, wsInput) !== FRAMES) throw new Error("ws lost messages");
      },
    });
    Deno.bench({
      name: `heartwire FrameDecoder (${group})`,
      group,
      fn() {
        if (decoder.push(frames).length !== FRAMES) throw new Error("heartwire lost messages");
      },
    });
  }
}

for (const { label, size } of SIZES) {
  const group = `encode binary ${label}`;
  const payload = asciiPayload(size);
  const wsPayload = Buffer.from(payload);
  const wsOptions = { fin: true, opcode: 0x2, mask: false, readOnly: false, rsv1: false };
  const writer = new FrameWriter({ role: "server" });

  Deno.bench({
    name: `ws Sender.frame (${group})`,
    group,
    baseline: true,
    fn() {
      let bytes = 0;
      for (let i = 0; i < FRAMES; i++) {
        for (const part of Sender.frame(wsPayload, wsOptions)) bytes += part.length;
      }
      if (bytes < FRAMES * size) throw new Error("ws wrote too little");
    },
  });
  Deno.bench({
    name: `heartwire FrameWriter (${group})`,
    group,
    fn() {
      for (let i = 0; i < FRAMES; i++) writer.binary(payload);
      let bytes = 0;
      for (const chunk of writer.takeChunks()) bytes += chunk.length;
      if (bytes < FRAMES * size) throw new Error("heartwire wrote too little");
    },
  });
  Deno.bench({
    name: `heartwire encodeFrameHeader (${group})`,
    group,
    fn() {
      let bytes = 0;
      for (let i = 0; i < FRAMES; i++) bytes += encodeFrameHeader(0x2, size).length + size;
      if (bytes < FRAMES * size) throw new Error("heartwire wrote too little");
    },
  });
}

// The sans-I/O Connection adds its rules (ping answers, close, failing) on top
// of the decoder and writer: an echo of 64-byte text messages through the parts
// alone (baseline) and through a Connection shows what the rules cost.
{
  const group = "echo text 64 B";
  const frames = maskedFrames(0x1, asciiPayload(64));
  const decoder = new FrameDecoder({ role: "server" });
  const writer = new FrameWriter({ role: "server" });
  const connection = new Connection({ role: "server" });
  Deno.bench({
    name: `FrameDecoder + FrameWriter (${group})`,
    group,
    baseline: true,
    fn() {
      const events = decoder.push(frames);
      for (let i = 0; i < events.length; i++) {
        const event = events[i];
        if (event.type === "text") writer.text(event.data);
      }
      if (writer.take().length < FRAMES * 66) throw new Error("lost messages");
    },
  });
  Deno.bench({
    name: `Connection (${group})`,
    group,
    fn() {
      connection.receive(frames);
      for (let event; (event = connection.nextEvent()) !== undefined;) {
        if (event.type === "text") connection.send(event.data);
      }
      if (connection.take().length < FRAMES * 66) throw new Error("lost messages");
    },
  });
}
