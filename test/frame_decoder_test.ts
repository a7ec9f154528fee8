import { assertEquals, assertLess, assertStrictEquals } from "@std/assert";
import {
  type DecoderEvent,
  FrameDecoder,
  type FrameDecoderOptions,
} from "../protocol/frame_decoder.ts";
import { bytesOf, concat, pattern, toBytes, utf8 } from "./_bytes.ts";

// ---------------------------------------------------------------------------
// Building frames by hand (RFC 6455 §5.2), independent of the encoder.

const RFC_KEY = [0x37, 0xfa, 0x21, 0x3d]; // the masking key of the §5.7 examples

interface FrameSpec {
  opcode: number;
  payload?: Uint8Array | string;
  fin?: boolean;
  /** RSV1-3 as a 3-bit number (RSV1 = 4). */
  rsv?: number;
  /** A masking key, or null for an unmasked frame. */
  mask?: number[] | null;
  /** Force a length encoding, e.g. a non-minimal one. */
  lengthBits?: 7 | 16 | 64;
}

function frame(spec: FrameSpec): Uint8Array {
  const payload = toBytes(spec.payload ?? []);
  const length = payload.length;
  const lengthBits = spec.lengthBits ?? (length < 126 ? 7 : length < 65536 ? 16 : 64);
  const mask = spec.mask === undefined ? RFC_KEY : spec.mask;
  const head: number[] = [
    ((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) << 4) | spec.opcode,
  ];
  const maskBit = mask ? 0x80 : 0;
  if (lengthBits === 7) {
    head.push(maskBit | length);
  } else if (lengthBits === 16) {
    head.push(maskBit | 126, length >> 8, length & 0xff);
  } else {
    head.push(maskBit | 127, 0, 0, 0, 0);
    head.push((length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
  }
  if (mask) head.push(...mask);
  const bytes = new Uint8Array(head.length + length);
  bytes.set(head);
  for (let i = 0; i < length; i++) {
    bytes[head.length + i] = mask ? payload[i] ^ mask[i & 3] : payload[i];
  }
  return bytes;
}

/** A frame as a client sends it: masked (§5.3). */
const clientFrame = (
  opcode: number,
  payload: Uint8Array | string = "",
  extra: Partial<FrameSpec> = {},
) => frame({ opcode, payload, mask: RFC_KEY, ...extra });
/** A frame as a server sends it: unmasked. */
const serverFrame = (
  opcode: number,
  payload: Uint8Array | string = "",
  extra: Partial<FrameSpec> = {},
) => frame({ opcode, payload, mask: null, ...extra });

/** The first `count` code points of `value` (never half of a surrogate pair). */
const firstCodePoints = (value: string, count: number) => [...value].slice(0, count).join("");

const TEXT = 0x1, BINARY = 0x2, CONT = 0x0, CLOSE = 0x8, PING = 0x9, PONG = 0xa;

// ---------------------------------------------------------------------------
// Feeding helpers

function decodeAll(options: FrameDecoderOptions, ...chunks: Uint8Array[]): DecoderEvent[] {
  const decoder = new FrameDecoder(options);
  return chunks.flatMap((chunk) => decoder.push(chunk));
}

function decodeByteByByte(options: FrameDecoderOptions, input: Uint8Array): DecoderEvent[] {
  const decoder = new FrameDecoder(options);
  const events: DecoderEvent[] = [];
  for (let i = 0; i < input.length; i++) events.push(...decoder.push(input.slice(i, i + 1)));
  return events;
}

/** Split points to try: all of them for small inputs, the ends and a spread for big ones. */
function splitPoints(length: number): number[] {
  if (length <= 600) return Array.from({ length: length + 1 }, (_, i) => i);
  const points = new Set<number>();
  for (let i = 0; i <= 40; i++) {
    points.add(i);
    points.add(length - i);
  }
  for (let i = 0; i <= 64; i++) points.add(Math.floor((length * i) / 64));
  return [...points].filter((p) => p >= 0 && p <= length);
}

/** Asserts `input` decodes to `expected` in one chunk, byte by byte and at every split. */
function assertDecodes(
  options: FrameDecoderOptions,
  input: Uint8Array,
  expected: DecoderEvent[],
): void {
  assertEquals(decodeAll(options, input), expected, "one chunk");
  assertEquals(decodeByteByByte(options, input), expected, "byte by byte");
  for (const split of splitPoints(input.length)) {
    assertEquals(
      decodeAll(options, input.subarray(0, split), input.subarray(split)),
      expected,
      `split at ${split}`,
    );
  }
}

const SERVER: FrameDecoderOptions = { role: "server" };
const CLIENT: FrameDecoderOptions = { role: "client" };

// ---------------------------------------------------------------------------
// RFC 6455 §5.7 examples

Deno.test("§5.7 a single-frame unmasked text message (role client)", () => {
  const input = bytesOf(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f);
  assertDecodes(CLIENT, input, [{ type: "text", data: "Hello" }]);
});

Deno.test("§5.7 a single-frame masked text message (role server)", () => {
  const input = bytesOf(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58);
  assertEquals(clientFrame(TEXT, "Hello"), input); // the local helper matches the RFC bytes
  assertDecodes(SERVER, input, [{ type: "text", data: "Hello" }]);
});

Deno.test("§5.7 a fragmented unmasked text message", () => {
  const input = bytesOf(0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f);
  assertDecodes(CLIENT, input, [{ type: "text", data: "Hello" }]);
});

Deno.test("§5.7 an unmasked ping, then a masked pong", () => {
  const ping = bytesOf(0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f);
  assertDecodes(CLIENT, ping, [{ type: "ping", data: utf8("Hello") }]);
  const pong = bytesOf(0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58);
  assertDecodes(SERVER, pong, [{ type: "pong", data: utf8("Hello") }]);
});

Deno.test("§5.7 a 256-byte binary message with a 16-bit length", () => {
  const payload = pattern(256);
  const unmasked = serverFrame(BINARY, payload);
  assertEquals(unmasked.subarray(0, 4), bytesOf(0x82, 0x7e, 0x01, 0x00));
  assertDecodes(CLIENT, unmasked, [{ type: "binary", data: payload }]);
  assertDecodes(SERVER, clientFrame(BINARY, payload), [{ type: "binary", data: payload }]);
});

Deno.test("§5.7 a 64 KiB binary message with a 64-bit length", () => {
  const payload = pattern(65536);
  const unmasked = serverFrame(BINARY, payload);
  assertEquals(unmasked.subarray(0, 10), bytesOf(0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0));
  assertDecodes(CLIENT, unmasked, [{ type: "binary", data: payload }]);
  assertDecodes(SERVER, clientFrame(BINARY, payload), [{ type: "binary", data: payload }]);
});

// ---------------------------------------------------------------------------
// More well-formed input

Deno.test("empty text, binary, ping and pong frames", () => {
  const input = concat([
    clientFrame(TEXT),
    clientFrame(BINARY),
    clientFrame(PING),
    clientFrame(PONG),
  ]);
  assertDecodes(SERVER, input, [
    { type: "text", data: "" },
    { type: "binary", data: new Uint8Array(0) },
    { type: "ping", data: new Uint8Array(0) },
    { type: "pong", data: new Uint8Array(0) },
  ]);
});

Deno.test("many frames in one chunk come out in order", () => {
  const input = concat([
    clientFrame(TEXT, "one"),
    clientFrame(BINARY, bytesOf(1, 2, 3)),
    clientFrame(PING, "p"),
    clientFrame(TEXT, "two"),
    clientFrame(TEXT, "x".repeat(300)),
  ]);
  assertDecodes(SERVER, input, [
    { type: "text", data: "one" },
    { type: "binary", data: bytesOf(1, 2, 3) },
    { type: "ping", data: utf8("p") },
    { type: "text", data: "two" },
    { type: "text", data: "x".repeat(300) },
  ]);
});

Deno.test("multibyte text, in one frame and split mid-character across fragments", () => {
  const message = "héllo €uro 😀 日本";
  const encoded = utf8(message);
  assertDecodes(SERVER, clientFrame(TEXT, encoded), [{ type: "text", data: message }]);
  // Cut every fragment boundary through the middle of a character.
  const input = concat([
    clientFrame(TEXT, encoded.subarray(0, 2), { fin: false }),
    clientFrame(CONT, encoded.subarray(2, 11), { fin: false }),
    clientFrame(CONT, encoded.subarray(11, 17), { fin: false }),
    clientFrame(CONT, encoded.subarray(17)),
  ]);
  assertDecodes(SERVER, input, [{ type: "text", data: message }]);
});

Deno.test("a leading U+FEFF is part of the text, not stripped", () => {
  const message = "\uFEFFbom";
  assertDecodes(SERVER, clientFrame(TEXT, message), [{ type: "text", data: message }]);
  const fragmented = concat([
    clientFrame(TEXT, "\uFEFF", { fin: false }),
    clientFrame(CONT, "bom"),
  ]);
  assertDecodes(SERVER, fragmented, [{ type: "text", data: message }]);
});

Deno.test("a genuine U+FFFD is valid text, short or long, whole or fragmented", () => {
  for (const message of ["a\uFFFDb", "\uFFFD".repeat(40), "x".repeat(100) + "\uFFFD"]) {
    assertDecodes(SERVER, clientFrame(TEXT, message), [{ type: "text", data: message }]);
    const encoded = utf8(message);
    const fragmented = concat([
      clientFrame(TEXT, encoded.subarray(0, 2), { fin: false }),
      clientFrame(CONT, encoded.subarray(2)),
    ]);
    assertEquals(decodeAll(SERVER, fragmented), [{ type: "text", data: message }]);
  }
});

Deno.test("invalid UTF-8 is 1007 in short and long text frames", () => {
  const invalid = [
    bytesOf(0x80),
    bytesOf(0xef, 0xbf, 0xbd, 0xff), // a genuine U+FFFD, then an invalid byte
    concat([utf8("y".repeat(100)), bytesOf(0xc0, 0x80)]),
    concat([utf8("z".repeat(40)), bytesOf(0xef, 0xbf, 0xbd), bytesOf(0xed, 0xa0, 0x80)]),
  ];
  for (const payload of invalid) {
    for (
      const [options, input] of [[SERVER, clientFrame(TEXT, payload)], [
        CLIENT,
        serverFrame(TEXT, payload),
      ]] as const
    ) {
      const events = decodeAll(options, input);
      assertEquals(events.map((event) => event.type === "error" && event.code), [1007]);
    }
  }
});

Deno.test("payloads kept across many pushes stay intact (pooled memory is never reused)", () => {
  const decoder = new FrameDecoder(SERVER);
  const kept: DecoderEvent[] = [];
  const expected: DecoderEvent[] = [];
  for (let n = 0; n < 3000; n++) {
    const payload = Uint8Array.from({ length: 1 + (n % 97) }, (_, i) => (n + i) & 0xff);
    const input = clientFrame(n % 3 === 0 ? PING : BINARY, payload);
    expected.push({ type: n % 3 === 0 ? "ping" : "binary", data: payload });
    // Half the frames arrive in two pieces, so their payload is buffered first.
    if (n % 2 === 0) {
      kept.push(...decoder.push(input));
    } else {
      kept.push(...decoder.push(input.subarray(0, 9)), ...decoder.push(input.subarray(9)));
    }
  }
  assertEquals(kept, expected);
});

Deno.test("fragmented binary message with empty fragments", () => {
  const input = concat([
    clientFrame(BINARY, bytesOf(), { fin: false }),
    clientFrame(CONT, bytesOf(1, 2), { fin: false }),
    clientFrame(CONT, bytesOf(), { fin: false }),
    clientFrame(CONT, bytesOf(3)),
  ]);
  assertDecodes(SERVER, input, [{ type: "binary", data: bytesOf(1, 2, 3) }]);
  const allEmpty = concat([clientFrame(TEXT, "", { fin: false }), clientFrame(CONT, "")]);
  assertDecodes(SERVER, allEmpty, [{ type: "text", data: "" }]);
});

Deno.test("§5.4 control frames between fragments are delivered in place", () => {
  const input = concat([
    clientFrame(TEXT, "Hel", { fin: false }),
    clientFrame(PING, "a"),
    clientFrame(CONT, "l", { fin: false }),
    clientFrame(PONG, "b"),
    clientFrame(PING, ""),
    clientFrame(CONT, "o"),
    clientFrame(TEXT, "next"),
  ]);
  assertDecodes(SERVER, input, [
    { type: "ping", data: utf8("a") },
    { type: "pong", data: utf8("b") },
    { type: "ping", data: new Uint8Array(0) },
    { type: "text", data: "Hello" },
    { type: "text", data: "next" },
  ]);
  const closing = concat([
    clientFrame(BINARY, bytesOf(1), { fin: false }),
    clientFrame(CLOSE, bytesOf(0x03, 0xe8)),
    clientFrame(CONT, bytesOf(2)),
  ]);
  assertDecodes(SERVER, closing, [{ type: "close", code: 1000, reason: "" }]);
});

Deno.test("unmasking is correct for every length around the word-at-a-time threshold", () => {
  for (const length of [1, 2, 3, 4, 5, 62, 63, 64, 65, 66, 67, 125, 126, 1023, 1024, 1027]) {
    const payload = pattern(length);
    const key = [0x01, 0x80, 0xfe, 0x5a];
    assertEquals(
      decodeAll(SERVER, frame({ opcode: BINARY, payload, mask: key })),
      [{ type: "binary", data: payload }],
      `length ${length}`,
    );
    const message = firstCodePoints("aé€😀".repeat(length), length);
    assertEquals(
      decodeAll(SERVER, frame({ opcode: TEXT, payload: message, mask: key })),
      [{ type: "text", data: message }],
      `text length ${length}`,
    );
  }
});

Deno.test("large masked text (beyond the shared scratch buffer) and fragmented binary", () => {
  const message = "abc😀".repeat(20_000); // 140 000 bytes
  assertDecodes(SERVER, clientFrame(TEXT, message), [{ type: "text", data: message }]);
  const payload = pattern(200_000);
  const input = concat([
    clientFrame(BINARY, payload.subarray(0, 70_000), { fin: false }),
    clientFrame(CONT, payload.subarray(70_000, 140_000), { fin: false }),
    clientFrame(CONT, payload.subarray(140_000)),
  ]);
  assertDecodes(SERVER, input, [{ type: "binary", data: payload }]);
});

Deno.test("close frames: code and reason, empty payload is 1005", () => {
  assertDecodes(SERVER, clientFrame(CLOSE, concat([bytesOf(0x03, 0xe8), utf8("bye ✓")])), [
    { type: "close", code: 1000, reason: "bye ✓" },
  ]);
  assertDecodes(CLIENT, serverFrame(CLOSE), [{ type: "close", code: 1005, reason: "" }]);
  assertDecodes(CLIENT, serverFrame(CLOSE, bytesOf(0x0f, 0xa1)), [
    { type: "close", code: 4001, reason: "" },
  ]);
});

// ---------------------------------------------------------------------------
// Violations: one error event with the exact close code, then nothing.

const OVERSIZED_CONTROL = pattern(126);

const VIOLATIONS: [string, FrameDecoderOptions, Uint8Array, number][] = [
  ["RSV1 set", SERVER, clientFrame(TEXT, "a", { rsv: 4 }), 1002],
  ["RSV2 set", SERVER, clientFrame(TEXT, "a", { rsv: 2 }), 1002],
  ["RSV3 set", SERVER, clientFrame(BINARY, "a", { rsv: 1 }), 1002],
  ["RSV on a control frame", SERVER, clientFrame(PING, "", { rsv: 4 }), 1002],
  ["reserved data opcode 0x3", SERVER, clientFrame(0x3, "a"), 1002],
  ["reserved data opcode 0x7", SERVER, clientFrame(0x7, "a"), 1002],
  ["reserved control opcode 0xB", SERVER, clientFrame(0xb, "a"), 1002],
  ["reserved control opcode 0xF", SERVER, clientFrame(0xf, "a"), 1002],
  ["unmasked frame to a server", SERVER, serverFrame(TEXT, "a"), 1002],
  ["masked frame to a client", CLIENT, clientFrame(TEXT, "a"), 1002],
  ["control payload over 125 (16-bit)", SERVER, clientFrame(PING, OVERSIZED_CONTROL), 1002],
  [
    "control payload over 125 (64-bit)",
    SERVER,
    clientFrame(PONG, pattern(10), { lengthBits: 64 }),
    1002,
  ],
  ["fragmented ping", SERVER, clientFrame(PING, "a", { fin: false }), 1002],
  ["fragmented close", SERVER, clientFrame(CLOSE, bytesOf(3, 232), { fin: false }), 1002],
  ["continuation without a message", SERVER, clientFrame(CONT, "a"), 1002],
  [
    "text frame while a message is open",
    SERVER,
    concat([clientFrame(TEXT, "a", { fin: false }), clientFrame(TEXT, "b")]),
    1002,
  ],
  [
    "binary frame while a message is open",
    SERVER,
    concat([clientFrame(BINARY, "a", { fin: false }), clientFrame(BINARY, "b", { fin: false })]),
    1002,
  ],
  [
    "continuation after a finished message",
    SERVER,
    concat([
      clientFrame(TEXT, "a", { fin: false }),
      clientFrame(CONT, "b"),
      clientFrame(CONT, "c"),
    ]),
    1002,
  ],
  ["16-bit length below 126", SERVER, clientFrame(BINARY, pattern(125), { lengthBits: 16 }), 1002],
  ["16-bit length of 0", SERVER, clientFrame(BINARY, bytesOf(), { lengthBits: 16 }), 1002],
  [
    "64-bit length below 65536",
    SERVER,
    clientFrame(BINARY, pattern(65535), { lengthBits: 64 }),
    1002,
  ],
  [
    "64-bit length with the top bit set",
    SERVER,
    bytesOf(0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0x10, ...RFC_KEY),
    1002,
  ],
  ["close payload of 1 byte", SERVER, clientFrame(CLOSE, bytesOf(0x03)), 1002],
  ["close code 999", SERVER, clientFrame(CLOSE, bytesOf(0x03, 0xe7)), 1002],
  ["close code 1005 on the wire", SERVER, clientFrame(CLOSE, bytesOf(0x03, 0xed)), 1002],
  ["close code 1006 on the wire", SERVER, clientFrame(CLOSE, bytesOf(0x03, 0xee)), 1002],
  ["close code 5000", SERVER, clientFrame(CLOSE, bytesOf(0x13, 0x88)), 1002],
  ["close reason not UTF-8", SERVER, clientFrame(CLOSE, bytesOf(0x03, 0xe8, 0xc0, 0x80)), 1007],
  ["invalid UTF-8 text", SERVER, clientFrame(TEXT, bytesOf(0x48, 0xed, 0xa0, 0x80)), 1007],
  ["text ending mid-character", SERVER, clientFrame(TEXT, bytesOf(0x48, 0xe2, 0x82)), 1007],
  ["text above U+10FFFF", CLIENT, serverFrame(TEXT, bytesOf(0xf4, 0x90, 0x80, 0x80)), 1007],
  [
    "fragmented text ending mid-character",
    SERVER,
    concat([
      clientFrame(TEXT, bytesOf(0x41), { fin: false }),
      clientFrame(CONT, bytesOf(0xe2, 0x82)),
    ]),
    1007,
  ],
  [
    "fragmented text invalid in a continuation",
    SERVER,
    concat([clientFrame(TEXT, "ok", { fin: false }), clientFrame(CONT, bytesOf(0xff))]),
    1007,
  ],
  [
    "frame over maxFrameSize",
    { role: "server", maxFrameSize: 10 },
    clientFrame(BINARY, pattern(11)),
    1009,
  ],
  [
    "frame over the default limit (1 MiB)",
    CLIENT,
    bytesOf(0x82, 0x7f, 0, 0, 0, 0, 0, 0x10, 0, 1),
    1009,
  ],
  ["64-bit length of 2^62", CLIENT, bytesOf(0x82, 0x7f, 0x40, 0, 0, 0, 0, 0, 0, 0), 1009],
  [
    "message over maxMessageSize",
    { role: "server", maxMessageSize: 10 },
    concat([clientFrame(TEXT, "hello", { fin: false }), clientFrame(CONT, "world!")]),
    1009,
  ],
];

Deno.test("every violation gives one error event with its close code", () => {
  for (const [name, options, input, code] of VIOLATIONS) {
    for (
      const [how, events] of [
        ["one chunk", decodeAll(options, input)],
        ["byte by byte", decodeByteByByte(options, input)],
      ] as const
    ) {
      const errors = events.filter((event) => event.type === "error");
      assertStrictEquals(errors.length, 1, `${name} (${how}): ${JSON.stringify(events)}`);
      assertStrictEquals(events[events.length - 1].type, "error", `${name} (${how})`);
      assertStrictEquals((errors[0] as { code: number }).code, code, `${name} (${how})`);
    }
  }
});

Deno.test("every violation is reported at every split point", () => {
  for (const [name, options, input, code] of VIOLATIONS) {
    for (const split of splitPoints(input.length)) {
      const events = decodeAll(options, input.subarray(0, split), input.subarray(split));
      const last = events[events.length - 1];
      assertEquals(
        last?.type === "error" ? last.code : undefined,
        code,
        `${name} split at ${split}`,
      );
    }
  }
});

Deno.test("header violations are reported before the payload arrives", () => {
  const cases: [string, FrameDecoderOptions, Uint8Array, number][] = [
    ["RSV1", SERVER, bytesOf(0xc1), 1002],
    ["reserved opcode", SERVER, bytesOf(0x83), 1002],
    ["continuation without a message", SERVER, bytesOf(0x80), 1002],
    ["fragmented control", SERVER, bytesOf(0x09), 1002],
    ["unmasked to a server", SERVER, bytesOf(0x81, 0x05), 1002],
    ["masked to a client", CLIENT, bytesOf(0x81, 0x85), 1002],
    ["control length 126", SERVER, bytesOf(0x89, 0xfe), 1002],
    ["non-minimal 16-bit length", CLIENT, bytesOf(0x82, 0x7e, 0x00, 0x05), 1002],
    ["64-bit top bit", CLIENT, bytesOf(0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0), 1002],
    ["maxFrameSize", { role: "client", maxFrameSize: 100 }, bytesOf(0x82, 0x7e, 0x00, 0xc8), 1009],
    ["default 1 MiB", SERVER, bytesOf(0x82, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 1, 1, 2, 3, 4), 1009],
  ];
  for (const [name, options, header, code] of cases) {
    const decoder = new FrameDecoder(options);
    // Only the header (or its first bytes), never the payload.
    const events = decoder.push(header);
    assertEquals(events, [{
      type: "error",
      code,
      reason: (events[0] as { reason: string }).reason,
    }], name);
    assertStrictEquals(decoder.done, true, name);
  }
});

Deno.test("maxMessageSize fails at the header of the fragment that crosses it", () => {
  const decoder = new FrameDecoder({ role: "server", maxMessageSize: 100, maxFrameSize: 80 });
  assertEquals(decoder.push(clientFrame(BINARY, pattern(60), { fin: false })), []);
  assertEquals(decoder.push(clientFrame(PING, "x")), [{ type: "ping", data: utf8("x") }]);
  // The next header alone announces 41 more bytes: 60 + 41 > 100.
  const next = clientFrame(CONT, pattern(41));
  const events = decoder.push(next.subarray(0, 6));
  assertStrictEquals(events.length, 1);
  assertEquals(events[0].type === "error" && events[0].code, 1009);
  assertStrictEquals(decoder.done, true);
});

Deno.test("limits are inclusive: exactly maxFrameSize and maxMessageSize pass", () => {
  const options: FrameDecoderOptions = { role: "server", maxFrameSize: 10, maxMessageSize: 15 };
  const input = concat([
    clientFrame(BINARY, pattern(10)),
    clientFrame(BINARY, pattern(10), { fin: false }),
    clientFrame(CONT, pattern(5)),
  ]);
  assertDecodes(options, input, [
    { type: "binary", data: pattern(10) },
    { type: "binary", data: concat([pattern(10), pattern(5)]) },
  ]);
});

Deno.test("a payload declared but not sent does not reserve its whole size", () => {
  // 14 bytes of header announce 1 MiB; one payload byte follows. Memory must
  // follow the bytes that arrived, or a peer opening many connections could
  // make the server reserve maxMessageSize for each one almost for free.
  const declared = 1024 * 1024;
  const options: FrameDecoderOptions = { role: "server", maxMessageSize: declared };
  const header = [0x82, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 0, ...RFC_KEY];
  const decoders: FrameDecoder[] = [];
  const before = Deno.memoryUsage().external;
  for (let i = 0; i < 64; i++) {
    const decoder = new FrameDecoder(options);
    assertEquals(decoder.push(new Uint8Array([...header, 0x42])), []);
    decoders.push(decoder);
  }
  const reserved = Deno.memoryUsage().external - before;
  assertLess(reserved, 64 * declared / 8, `${reserved} bytes for 64 one-byte payloads`);
  // The payload still comes out whole and intact when its bytes trickle in.
  const payload = pattern(declared);
  const input = clientFrame(BINARY, payload);
  const decoder = new FrameDecoder(options);
  const events: DecoderEvent[] = [];
  for (let at = 0; at < input.length; at += 50_000) {
    events.push(...decoder.push(input.subarray(at, at + 50_000)));
  }
  assertEquals(events, [{ type: "binary", data: payload }]);
});

Deno.test("maxFrameSize defaults to maxMessageSize", () => {
  const events = decodeAll({ role: "server", maxMessageSize: 4 }, clientFrame(BINARY, pattern(5)));
  assertEquals(events.map((event) => event.type === "error" && event.code), [1009]);
});

Deno.test("fragmented text with invalid UTF-8 in the first fragment fails before the last arrives", () => {
  const decoder = new FrameDecoder(SERVER);
  const first = clientFrame(TEXT, bytesOf(0x61, 0xc0, 0x80), { fin: false });
  const events = decoder.push(first);
  assertStrictEquals(events.length, 1);
  assertEquals(events[0].type === "error" && events[0].code, 1007);
  assertStrictEquals(decoder.done, true);
  assertEquals(decoder.push(clientFrame(CONT, "fine")), []);
});

Deno.test("a surrogate split across fragments fails at the fragment that completes the prefix", () => {
  const decoder = new FrameDecoder(SERVER);
  assertEquals(decoder.push(clientFrame(TEXT, bytesOf(0x61, 0xed), { fin: false })), []);
  const events = decoder.push(clientFrame(CONT, bytesOf(0xa0), { fin: false }));
  assertEquals(events.map((event) => event.type === "error" && event.code), [1007]);
});

Deno.test("after an error or a close, further input is ignored", () => {
  const afterError = new FrameDecoder(SERVER);
  const events = afterError.push(concat([clientFrame(TEXT, "before"), serverFrame(TEXT, "x")]));
  assertEquals(events.map((event) => event.type), ["text", "error"]);
  assertStrictEquals(afterError.done, true);
  assertEquals(afterError.push(clientFrame(TEXT, "after")), []);
  assertEquals(afterError.push(bytesOf(0xff, 0xff)), []);

  const afterClose = new FrameDecoder(SERVER);
  assertStrictEquals(afterClose.done, false);
  const closed = afterClose.push(
    concat([clientFrame(CLOSE, bytesOf(0x03, 0xe9)), clientFrame(TEXT, "ignored"), bytesOf(0xff)]),
  );
  assertEquals(closed, [{ type: "close", code: 1001, reason: "" }]);
  assertStrictEquals(afterClose.done, true);
  assertEquals(afterClose.push(clientFrame(PING, "")), []);
});

Deno.test("push does not modify its input", () => {
  const input = concat([
    clientFrame(TEXT, "hello"),
    clientFrame(BINARY, pattern(300)),
    clientFrame(TEXT, "x".repeat(200), { fin: false }),
    clientFrame(PING, "p"),
    clientFrame(CONT, "y"),
    clientFrame(CLOSE, bytesOf(0x03, 0xe8)),
  ]);
  const copy = input.slice();
  new FrameDecoder(SERVER).push(input);
  assertEquals(input, copy);
  const byteByByte = new FrameDecoder(SERVER);
  for (let i = 0; i < input.length; i += 7) byteByByte.push(input.subarray(i, i + 7));
  assertEquals(input, copy);
});

Deno.test("event payloads are fresh memory, not views into the input", () => {
  for (const options of [SERVER, CLIENT]) {
    const build = options.role === "server" ? clientFrame : serverFrame;
    const input = concat([
      build(BINARY, pattern(100)),
      build(PING, bytesOf(1, 2, 3)),
      build(PONG, bytesOf(4, 5)),
      build(BINARY, bytesOf(6), { fin: false }),
      build(CONT, bytesOf(7)),
      build(BINARY, bytesOf(8, 9), { fin: false }),
      build(CONT, bytesOf()),
    ]);
    const decoder = new FrameDecoder(options);
    // A reused read buffer: first half, then the buffer is overwritten with the second half.
    const buffer = new Uint8Array(input.length);
    const half = 50;
    buffer.set(input.subarray(0, half));
    const events = decoder.push(buffer.subarray(0, half));
    buffer.set(input.subarray(half));
    events.push(...decoder.push(buffer.subarray(0, input.length - half)));
    buffer.fill(0xee);
    assertEquals(events, [
      { type: "binary", data: pattern(100) },
      { type: "ping", data: bytesOf(1, 2, 3) },
      { type: "pong", data: bytesOf(4, 5) },
      { type: "binary", data: bytesOf(6, 7) },
      { type: "binary", data: bytesOf(8, 9) },
    ], options.role);
    for (const event of events) {
      if ("data" in event && typeof event.data !== "string") {
        assertStrictEquals(event.data.buffer === buffer.buffer, false, options.role);
      }
    }
  }
});

Deno.test("events of one chunk are not changed by a later push", () => {
  const decoder = new FrameDecoder(SERVER);
  const [first] = decoder.push(clientFrame(BINARY, pattern(200)));
  decoder.push(clientFrame(BINARY, bytesOf(0, 0, 0, 0)));
  decoder.push(clientFrame(TEXT, "z".repeat(500)));
  assertEquals(first, { type: "binary", data: pattern(200) });
});

Deno.test("a random stream of frames decodes the same under random chunking", () => {
  let seed = 1;
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x80000000;
  };
  const frames: Uint8Array[] = [];
  const expected: DecoderEvent[] = [];
  for (let n = 0; n < 150; n++) {
    const kind = Math.floor(random() * 5);
    const key = [0, 1, 2, 3].map(() => Math.floor(random() * 256));
    const size = random() < 0.8 ? Math.floor(random() * 140) : Math.floor(random() * 70_000);
    if (kind === 0) {
      const message = firstCodePoints("é😀a".repeat(size), size);
      frames.push(frame({ opcode: TEXT, payload: message, mask: key }));
      expected.push({ type: "text", data: message });
    } else if (kind === 1) {
      frames.push(frame({ opcode: BINARY, payload: pattern(size), mask: key }));
      expected.push({ type: "binary", data: pattern(size) });
    } else if (kind === 2) {
      const data = pattern(size % 126);
      frames.push(frame({ opcode: PING, payload: data, mask: key }));
      expected.push({ type: "ping", data });
    } else {
      const message = "abc€".repeat(size).slice(0, size);
      const encoded = utf8(message);
      const cut = Math.floor(random() * (encoded.length + 1));
      frames.push(
        frame({ opcode: TEXT, payload: encoded.subarray(0, cut), fin: false, mask: key }),
      );
      frames.push(frame({ opcode: PONG, payload: "hb", mask: key }));
      expected.push({ type: "pong", data: utf8("hb") });
      frames.push(frame({ opcode: CONT, payload: encoded.subarray(cut), mask: key }));
      expected.push({ type: "text", data: message });
    }
  }
  const input = concat(frames);
  for (let round = 0; round < 5; round++) {
    const decoder = new FrameDecoder(SERVER);
    const events: DecoderEvent[] = [];
    for (let pos = 0; pos < input.length;) {
      const size = random() < 0.3 ? 1 + Math.floor(random() * 16) : Math.floor(random() * 9000);
      events.push(...decoder.push(input.subarray(pos, pos + size)));
      pos += size;
    }
    assertEquals(events, expected, `round ${round}`);
  }
});

Deno.test("a message in 1-byte fragments costs its bytes, not an array per fragment (§5.4)", () => {
  const count = 100_000;
  const decoder = new FrameDecoder({ role: "server", maxMessageSize: count });
  // One chunk per fragment: FIN=0 binary, then continuations, the last with FIN=1.
  let peak = 0;
  for (let i = 0; i < count; i++) {
    const opcode = i === 0 ? 0x2 : 0x0;
    const fin = i === count - 1 ? 0x80 : 0;
    const events = decoder.push(frame({ opcode, fin: fin !== 0, payload: bytesOf(i & 0xff) }));
    if (i < count - 1) assertEquals(events.length, 0);
    else {
      assertEquals(events.length, 1);
      const data = (events[0] as { data: Uint8Array }).data;
      assertEquals(data.length, count);
      assertEquals(data[1234], 1234 & 0xff);
    }
    peak = Math.max(peak, decoder.bufferedBytes);
  }
  // One doubling buffer, never past the limit; nothing held once the message is out.
  assertLess(peak, count + 1);
  assertEquals(decoder.bufferedBytes, 0);
});

Deno.test("a fragmented text message is validated and reassembled from one buffer", () => {
  const decoder = new FrameDecoder({ role: "server" });
  const text = "héllo wörld €";
  const bytes = utf8(text);
  const events: DecoderEvent[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const last = i === bytes.length - 1;
    events.push(
      ...decoder.push(
        frame({ opcode: i === 0 ? 0x1 : 0x0, fin: last, payload: bytesOf(bytes[i]) }),
      ),
    );
    if (!last) assertLess(0, decoder.bufferedBytes);
  }
  assertEquals(events, [{ type: "text", data: text }]);
  assertEquals(decoder.bufferedBytes, 0);
});

Deno.test("a fragmented message over the limit fails with 1009 and frees its buffer", () => {
  const decoder = new FrameDecoder({ role: "server", maxMessageSize: 1000 });
  for (let i = 0; i < 10; i++) {
    assertEquals(
      decoder.push(frame({ opcode: i === 0 ? 0x2 : 0x0, fin: false, payload: pattern(100) })),
      [],
    );
  }
  const events = decoder.push(frame({ opcode: 0x0, fin: true, payload: bytesOf(1) }));
  assertEquals(events.map((event) => event.type), ["error"]);
  assertEquals((events[0] as { code: number }).code, 1009);
  assertEquals(decoder.bufferedBytes, 0);
});
