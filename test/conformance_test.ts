/**
 * RFC 6455 conformance of the server, in the style of the Autobahn
 * TestSuite's "fuzzingclient": byte-exact client scripts over real loopback
 * TCP against `/echo`, numbered after the Autobahn case families
 * (1 framing, 2 pings, 3 reserved bits, 4 opcodes, 5 fragmentation,
 * 6 UTF-8, 7 closing, 9 limits).
 *
 * Each case is a script: byte strings to write and events the server must
 * send back, in order. A script that does not end with the server's close
 * frame ends with a normal closing handshake (close 1000, echoed), which also
 * proves nothing unexpected was sent in between. After every close frame the
 * server must close TCP, and after every case a bystander connection, open
 * the whole time, must still get its echo.
 *
 * @module
 */
import { assertEquals } from "@std/assert";
import { encodeFrame } from "../protocol/frame_encoder.ts";
import { Opcode } from "../protocol/opcodes.ts";
import { echoHandler, serve, type ServeOptions, type Server } from "../server/mod.ts";
import { type ByteSource, concat, toBytes, utf8 } from "./_bytes.ts";
import { RawClient, type RawEvent } from "./_raw_client.ts";
import { UTF8_EDGE_CODE_POINTS } from "./_utf8_samples.ts";
import { waitFor } from "./_wait.ts";

/** How long any single expected event may take. Generous for a loaded CI box, short enough to fail fast. */
const EVENT_TIMEOUT = 2_000;

// ---------------------------------------------------------------------------
// The script language

/** An event the server must send next. */
type Expect =
  | { type: "text"; data: string }
  | { type: "binary"; data: Uint8Array }
  | { type: "pong"; data: Uint8Array }
  | { type: "close"; code: number; reason?: string };

/** A step of a script: bytes the client writes (one write), or an event it must read next. */
type Step = Uint8Array | Expect;

interface Case {
  /** Autobahn-style number, e.g. "2.5". */
  id: string;
  title: string;
  script: Step[];
  /** Cut every write into writes of at most this many bytes (Autobahn's "chopped" mode). */
  chop?: number;
}

/** One masked client frame; `rsv` sets RSV1-3 (bits 6-4 of the first byte, §5.2). */
function frame(
  opcode: number,
  payload: ByteSource = "",
  options: { fin?: boolean; rsv?: number; mask?: boolean } = {},
): Uint8Array {
  const out = encodeFrame(opcode, toBytes(payload), {
    fin: options.fin ?? true,
    mask: options.mask ?? true,
  });
  out[0] |= (options.rsv ?? 0) << 4;
  return out;
}

const text = (payload: ByteSource, fin = true) => frame(Opcode.Text, payload, { fin });
const binary = (payload: ByteSource, fin = true) => frame(Opcode.Binary, payload, { fin });
const cont = (payload: ByteSource, fin = true) => frame(Opcode.Continuation, payload, { fin });
const ping = (payload: ByteSource = "") => frame(Opcode.Ping, payload);
const pong = (payload: ByteSource = "") => frame(Opcode.Pong, payload);
/** A close frame carrying `code` (2 bytes, big-endian) and `reason` (§5.5.1). */
const close = (code?: number, reason: ByteSource = "") =>
  frame(Opcode.Close, code === undefined ? [] : concat([[code >> 8, code & 0xff], reason]));

/**
 * A message cut into one frame per piece (§5.4): the first frame carries the
 * opcode, the rest are continuations, the last has FIN unless `finish` is false.
 */
function fragments(opcode: number, pieces: ByteSource[], finish = true): Uint8Array[] {
  return pieces.map((piece, i) =>
    frame(i === 0 ? opcode : Opcode.Continuation, piece, {
      fin: finish && i === pieces.length - 1,
    })
  );
}

/** One piece per byte. */
const perByte = (payload: ByteSource): number[][] => Array.from(toBytes(payload), (b) => [b]);

/** A frame header alone (masked, so 4 key bytes follow the length), for hand-made lengths. */
function header(first: number, lengthCode: number, extended: number[]): Uint8Array {
  return new Uint8Array([first, 0x80 | lengthCode, ...extended, 0x11, 0x22, 0x33, 0x44]);
}

const expectText = (data: string): Expect => ({ type: "text", data });
const expectBinary = (data: ByteSource): Expect => ({ type: "binary", data: toBytes(data) });
const expectPong = (data: ByteSource = ""): Expect => ({ type: "pong", data: toBytes(data) });
const expectClose = (code: number, reason?: string): Expect => ({ type: "close", code, reason });

/** A readable stand-in for an event: big payloads become a length and a checksum. */
function summary(event: RawEvent | Expect): unknown {
  switch (event.type) {
    case "text":
      return event.data.length <= 200
        ? { type: "text", data: event.data }
        : { type: "text", length: event.data.length, fnv: fnv1a(utf8(event.data)) };
    case "binary":
    case "ping":
    case "pong":
      return event.data.length <= 200
        ? { type: event.type, data: Array.from(event.data) }
        : { type: event.type, length: event.data.length, fnv: fnv1a(event.data) };
    default:
      return event;
  }
}

function fnv1a(data: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < data.length; i++) hash = Math.imul(hash ^ data[i], 0x01000193);
  return hash >>> 0;
}

// ---------------------------------------------------------------------------
// Running a case

async function connect(port: number): Promise<RawClient> {
  const client = await RawClient.connect(port);
  // Scripts make many tiny writes; Nagle would hold them back for an ACK.
  (client.conn as Deno.TcpConn).setNoDelay(true);
  return client;
}

async function send(client: RawClient, data: Uint8Array, chop = Infinity): Promise<void> {
  try {
    for (let at = 0; at < data.length; at += chop) {
      await client.write(data.subarray(at, Math.min(at + chop, data.length)));
    }
  } catch {
    // The server may already have failed the connection; the expectations decide.
  }
}

async function receive(client: RawClient, expected: Expect): Promise<void> {
  const got = await client.next(EVENT_TIMEOUT);
  if (expected.type === "close" && got.type === "close" && expected.reason === undefined) {
    assertEquals(got.code, expected.code, `close code (reason: "${got.reason}")`);
  } else {
    assertEquals(summary(got), summary(expected));
  }
}

/** After its close frame the server must close TCP (RFC 6455 §7.1.1), with nothing more sent. */
async function expectEof(client: RawClient): Promise<void> {
  assertEquals(await client.next(EVENT_TIMEOUT), { type: "eof" });
}

async function runCase(port: number, testCase: Case): Promise<void> {
  const client = await connect(port);
  try {
    let closedByServer = false;
    for (const step of testCase.script) {
      if (step instanceof Uint8Array) {
        await send(client, step, testCase.chop);
      } else {
        await receive(client, step);
        closedByServer = step.type === "close";
        if (closedByServer) break;
      }
    }
    if (!closedByServer) {
      await send(client, close(1000, "done"));
      await receive(client, expectClose(1000, "done"));
    }
    await expectEof(client);
  } finally {
    client.close();
  }
}

/**
 * Runs `cases` as steps against one server, with a bystander connection open
 * throughout that must still be served after every case.
 */
async function suite(t: Deno.TestContext, cases: Case[], options: ServeOptions = {}) {
  const server: Server = serve({
    port: 0,
    hostname: "127.0.0.1",
    routes: { "/echo": echoHandler },
    ...options,
  });
  const port = server.addr.port;
  const bystander = await connect(port);
  try {
    for (const testCase of cases) {
      await t.step({
        name: `${testCase.id} ${testCase.title}`,
        // Sockets opened by a step close asynchronously; the enclosing test checks for leaks.
        sanitizeOps: false,
        sanitizeResources: false,
        fn: async () => {
          await runCase(port, testCase);
          await bystander.write(text(`still there after ${testCase.id}`));
          await receive(bystander, expectText(`still there after ${testCase.id}`));
          // The server forgot the case's connection; only the bystander is left.
          await waitFor(() => server.connections.size === 1, EVENT_TIMEOUT);
        },
      });
    }
  } finally {
    bystander.close();
    await server.shutdown({ timeout: 500 });
  }
}

// ---------------------------------------------------------------------------
// 1. Framing: text and binary of every length class (§5.2: 7-bit, 16-bit and
// 64-bit lengths, each at its edges), in one write, and cut into small writes
// so that the header and payload arrive split at arbitrary points.

const LENGTHS = [0, 125, 126, 127, 128, 65_535, 65_536];

function textOf(length: number): string {
  return "*".repeat(length);
}

function binaryOf(length: number): Uint8Array {
  return new Uint8Array(length).map((_, i) => (i * 31 + 7) & 0xff);
}

const framingCases: Case[] = [];
for (const [group, kind] of [[1, "text"], [2, "binary"]] as const) {
  for (const [n, length] of LENGTHS.entries()) {
    const payload = kind === "text" ? textOf(length) : binaryOf(length);
    const send = kind === "text" ? text(payload) : binary(payload);
    const echo = kind === "text" ? expectText(payload as string) : expectBinary(payload);
    const id = `1.${group}.${n + 1}`;
    framingCases.push({ id, title: `${kind}, ${length} bytes, one write`, script: [send, echo] });
    if (length <= 1_000) {
      framingCases.push({
        id: `${id}b`,
        title: `${kind}, ${length} bytes, 1-byte writes`,
        script: [send, echo],
        chop: 1,
      });
    } else {
      // Byte by byte would take 65 536 system calls: the header (and a little
      // payload) goes byte by byte, the rest in 1021-byte writes.
      framingCases.push({
        id: `${id}b`,
        title: `${kind}, ${length} bytes, header in 1-byte writes, payload in 1021-byte writes`,
        script: [
          ...Array.from(send.subarray(0, 16), (b) => new Uint8Array([b])),
          send.subarray(16),
          echo,
        ],
        chop: 1021,
      });
    }
  }
}

// ---------------------------------------------------------------------------
// 2. Pings and pongs (§5.5.2, §5.5.3): a ping is answered with a pong carrying
// the same payload; an unsolicited pong is ignored; control payloads are at
// most 125 bytes (§5.5).

const BINARY_PING = [0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff];
const PING_125 = new Uint8Array(125).fill(0xfe);
const TEN_PINGS = Array.from({ length: 10 }, (_, i) => `ping-${i}`);

const pingCases: Case[] = [
  { id: "2.1", title: "ping without payload", script: [ping(), expectPong()] },
  {
    id: "2.2",
    title: "ping with a text payload",
    script: [ping("Hello, world!"), expectPong("Hello, world!")],
  },
  {
    id: "2.3",
    title: "ping with a binary payload",
    script: [ping(BINARY_PING), expectPong(BINARY_PING)],
  },
  {
    id: "2.4",
    title: "ping with a 125-byte payload",
    script: [ping(PING_125), expectPong(PING_125)],
  },
  {
    id: "2.5",
    title: "ping with a 126-byte payload fails with 1002, unanswered",
    script: [ping(new Uint8Array(126).fill(0xfe)), expectClose(1002)],
  },
  {
    id: "2.6",
    title: "ping with a 125-byte payload in 1-byte writes",
    script: [ping(PING_125), expectPong(PING_125)],
    chop: 1,
  },
  { id: "2.7", title: "unsolicited empty pong is ignored", script: [pong()] },
  { id: "2.8", title: "unsolicited pong with payload is ignored", script: [pong("unsolicited")] },
  {
    id: "2.9",
    title: "unsolicited pong, then ping: only the ping is answered",
    script: [pong("unsolicited"), ping("solicited"), expectPong("solicited")],
  },
  {
    id: "2.10",
    title: "10 pings in one write are all answered, in order",
    script: [concat(TEN_PINGS.map((p) => ping(p))), ...TEN_PINGS.map((p) => expectPong(p))],
  },
  {
    id: "2.11",
    title: "10 pings in 5-byte writes are all answered, in order",
    script: [concat(TEN_PINGS.map((p) => ping(p))), ...TEN_PINGS.map((p) => expectPong(p))],
    chop: 5,
  },
];

// ---------------------------------------------------------------------------
// 3. Reserved bits (§5.2): no extension is negotiated, so any RSV bit fails the
// connection with 1002. What came before the bad frame is still answered;
// what comes after is not (the ping goes unanswered).

/** A text frame "Hello" with reserved bits `rsv` set. */
const badText = (rsv: number) => frame(Opcode.Text, "Hello", { rsv });

const reservedBitCases: Case[] = [
  { id: "3.1", title: "text with RSV=1", script: [badText(1), expectClose(1002)] },
  {
    id: "3.2",
    title: "text, text with RSV=2, ping: echo, 1002",
    script: [concat([text("Hello"), badText(2), ping()]), expectText("Hello"), expectClose(1002)],
  },
  {
    id: "3.3",
    title: "text, text with RSV=3, ping, one write each: echo, 1002",
    script: [text("Hello"), badText(3), ping(), expectText("Hello"), expectClose(1002)],
  },
  {
    id: "3.4",
    title: "text, text with RSV=4, ping, in 1-byte writes: echo, 1002",
    script: [concat([text("Hello"), badText(4), ping()]), expectText("Hello"), expectClose(1002)],
    chop: 1,
  },
  {
    id: "3.5",
    title: "binary with RSV=5",
    script: [frame(Opcode.Binary, BINARY_PING, { rsv: 5 }), expectClose(1002)],
  },
  {
    id: "3.6",
    title: "ping with RSV=6: unanswered, 1002",
    script: [frame(Opcode.Ping, "Hello", { rsv: 6 }), expectClose(1002)],
  },
  {
    id: "3.7",
    title: "close with RSV=7: 1002, not an echo",
    script: [frame(Opcode.Close, [0x03, 0xe8], { rsv: 7 }), expectClose(1002)],
  },
];

// ---------------------------------------------------------------------------
// 4. Reserved opcodes (§5.2): 0x3-0x7 (data) and 0xB-0xF (control) fail with
// 1002. A valid message before is echoed; the ping after is not answered.

const reservedOpcodeCases: Case[] = [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf].map((opcode, i) => ({
  id: `4.${opcode < 8 ? 1 : 2}.${(i % 5) + 1}`,
  title: `text, reserved opcode 0x${opcode.toString(16)}, ping`,
  script: [
    concat([text("Hello"), frame(opcode, "reserved"), ping()]),
    expectText("Hello"),
    expectClose(1002),
  ],
}));

// ---------------------------------------------------------------------------
// 5. Fragmentation (§5.4): control frames may come between fragments and are
// answered at once; continuation frames need a started message; a new data
// frame may not start inside one; control frames are never fragmented.

/** 90 000 bytes of 2-, 3- and 4-byte characters, in 3 fragments cut inside characters. */
const BIG_TEXT = "é€𝄞".repeat(10_000);
const BIG_BYTES = utf8(BIG_TEXT);
const BIG_PIECES = [
  BIG_BYTES.subarray(0, 29_999),
  BIG_BYTES.subarray(29_999, 60_001),
  BIG_BYTES.subarray(60_001),
];

const fragmentationCases: Case[] = [
  {
    id: "5.1",
    title: "ping in 2 fragments fails with 1002",
    script: [frame(Opcode.Ping, "frag", { fin: false }), cont("ment"), expectClose(1002)],
  },
  {
    id: "5.2",
    title: "pong in 2 fragments fails with 1002",
    script: [frame(Opcode.Pong, "frag", { fin: false }), cont("ment"), expectClose(1002)],
  },
  {
    id: "5.3",
    title: "text in 2 fragments",
    script: [text("frag", false), cont("ment"), expectText("fragment")],
  },
  {
    id: "5.4",
    title: "text in 2 fragments, in 1-byte writes",
    script: [concat([text("frag", false), cont("ment")]), expectText("fragment")],
    chop: 1,
  },
  {
    id: "5.5",
    title: "binary in 3 fragments",
    script: [binary([1, 2], false), cont([3], false), cont([4, 5]), expectBinary([1, 2, 3, 4, 5])],
  },
  {
    id: "5.6",
    title: "text in 2 fragments with a ping between: pong before the echo",
    script: [
      concat([text("frag", false), ping("between"), cont("ment")]),
      expectPong("between"),
      expectText("fragment"),
    ],
  },
  {
    id: "5.7",
    title: "same as 5.6, in 1-byte writes",
    script: [
      concat([text("frag", false), ping("between"), cont("ment")]),
      expectPong("between"),
      expectText("fragment"),
    ],
    chop: 1,
  },
  {
    id: "5.8",
    title: "the pong comes while the message is still incomplete",
    script: [
      text("frag", false),
      cont("me", false),
      ping("one"),
      expectPong("one"),
      cont("n", false),
      ping("two"),
      expectPong("two"),
      cont("t"),
      expectText("fragment"),
    ],
  },
  {
    id: "5.9",
    title: "continuation (FIN) with nothing to continue, then text: 1002, no echo",
    script: [concat([cont("orphan"), text("Hello")]), expectClose(1002)],
  },
  {
    id: "5.10",
    title: "same as 5.9, in 1-byte writes",
    script: [concat([cont("orphan"), text("Hello")]), expectClose(1002)],
    chop: 1,
  },
  {
    id: "5.11",
    title: "continuation (no FIN) with nothing to continue: 1002",
    script: [cont("orphan", false), expectClose(1002)],
  },
  {
    id: "5.12",
    title: "text in 2 fragments, then a stray continuation: echo, then 1002",
    script: [
      concat([text("frag", false), cont("ment"), cont("stray", false), text("Hello")]),
      expectText("fragment"),
      expectClose(1002),
    ],
  },
  {
    id: "5.13",
    title: "new text frame inside a fragmented text message: 1002",
    script: [text("frag", false), text("Hello"), expectClose(1002)],
  },
  {
    id: "5.14",
    title: "text in 2 fragments with both opcodes set to text: 1002",
    script: [concat([text("frag", false), text("ment")]), expectClose(1002)],
  },
  {
    id: "5.15",
    title: "new binary frame inside a fragmented text message: 1002",
    script: [text("frag", false), binary([1], false), expectClose(1002)],
  },
  {
    id: "5.16",
    title: "text in 1-byte fragments",
    script: [
      concat(fragments(Opcode.Text, perByte("Hello, world"))),
      expectText("Hello, world"),
    ],
  },
  {
    id: "5.17",
    title: "text in 3 empty fragments",
    script: [concat([text("", false), cont("", false), cont("")]), expectText("")],
  },
  {
    id: "5.18",
    title: "text with empty first and last fragments",
    script: [concat([text("", false), cont("middle", false), cont("")]), expectText("middle")],
  },
  {
    id: "5.19",
    title: "binary in 3 empty fragments",
    script: [concat([binary([], false), cont([], false), cont([])]), expectBinary([])],
  },
  {
    id: "5.20",
    title: "90 000-byte multi-byte text in 3 fragments, in 1021-byte writes",
    script: [concat(fragments(Opcode.Text, BIG_PIECES)), expectText(BIG_TEXT)],
    chop: 1021,
  },
];

// ---------------------------------------------------------------------------
// 6. UTF-8 (§5.6, §8.1): valid text is echoed however it is split; invalid
// text fails with 1007, and as soon as a fragment makes it invalid, without
// waiting for the rest of the message.

const MIXED = "Hello-µ@ßöäüàá-UTF-8!! κόσμε €𝄞";
const MIXED_BYTES = utf8(MIXED);
const KOSME = utf8("κόσμε");

/** Every way to cut `data` into two fragments: one message per cut point, sent in one go. */
function everySplit(data: Uint8Array): Uint8Array {
  const messages = [];
  for (let i = 1; i < data.length; i++) {
    messages.push(text(data.subarray(0, i), false), cont(data.subarray(i)));
  }
  return concat(messages);
}

/** Ill-formed sequences (Unicode Table 3-7), each embedded in otherwise valid text. */
const INVALID_SEQUENCES: Array<[string, number[]]> = [
  ["lone continuation byte 80", [0x80]],
  ["lone continuation byte BF", [0xbf]],
  ["overlong NUL C0 80", [0xc0, 0x80]],
  ["overlong '/' C0 AF", [0xc0, 0xaf]],
  ["overlong C1 BF", [0xc1, 0xbf]],
  ["overlong '/' E0 80 AF", [0xe0, 0x80, 0xaf]],
  ["overlong U+07FF E0 9F BF", [0xe0, 0x9f, 0xbf]],
  ["overlong '/' F0 80 80 AF", [0xf0, 0x80, 0x80, 0xaf]],
  ["overlong U+FFFF F0 8F BF BF", [0xf0, 0x8f, 0xbf, 0xbf]],
  ["surrogate U+D800 ED A0 80", [0xed, 0xa0, 0x80]],
  ["surrogate U+DFFF ED BF BF", [0xed, 0xbf, 0xbf]],
  ["surrogate pair ED A0 80 ED B0 80", [0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80]],
  ["U+110000 F4 90 80 80", [0xf4, 0x90, 0x80, 0x80]],
  ["F5 lead byte", [0xf5, 0x80, 0x80, 0x80]],
  ["5-byte form F8 88 80 80 80", [0xf8, 0x88, 0x80, 0x80, 0x80]],
  ["6-byte form FC 84 80 80 80 80", [0xfc, 0x84, 0x80, 0x80, 0x80, 0x80]],
  ["FE", [0xfe]],
  ["FF", [0xff]],
  ["3-byte char cut short E2 82 then ASCII", [0xe2, 0x82, 0x41]],
];

const utf8Cases: Case[] = [
  {
    id: "6.1",
    title: "mixed 1-, 2-, 3- and 4-byte text",
    script: [text(MIXED), expectText(MIXED)],
  },
  {
    id: "6.2.1",
    title: "the same text in 2 fragments, split at every byte",
    script: [
      everySplit(MIXED_BYTES),
      ...Array.from(MIXED_BYTES.subarray(1), () => expectText(MIXED)),
    ],
  },
  {
    id: "6.2.2",
    title: "the same text in 1-byte fragments",
    script: [
      concat(fragments(Opcode.Text, perByte(MIXED_BYTES))),
      expectText(MIXED),
    ],
  },
  ...UTF8_EDGE_CODE_POINTS.map((cp, i): Case => {
    const s = String.fromCodePoint(cp);
    const hex = cp.toString(16).toUpperCase().padStart(4, "0");
    return { id: `6.3.${i + 1}`, title: `U+${hex} is valid`, script: [text(s), expectText(s)] };
  }),
  {
    id: "6.3.14",
    title: "a leading U+FEFF is part of the text, not a byte-order mark",
    script: [text("\uFEFFbom"), expectText("\uFEFFbom")],
  },
  {
    id: "6.3.15",
    title: "a leading U+FEFF survives fragmentation",
    script: [concat(fragments(Opcode.Text, ["\uFEFF", "bom"])), expectText("\uFEFFbom")],
  },
  ...INVALID_SEQUENCES.map(([name, sequence], i): Case => ({
    id: `6.4.${i + 1}`,
    title: `${name}: 1007`,
    script: [text(concat([KOSME, sequence, "edited"])), expectClose(1007)],
  })),
  {
    id: "6.5.1",
    title: "text ending in the middle of a character: 1007",
    script: [text(concat([KOSME, [0xf0, 0x9d, 0x84]])), expectClose(1007)],
  },
  {
    id: "6.5.2",
    title: "fragmented text whose final fragment ends mid-character: 1007",
    script: [text(KOSME, false), cont([0xe2, 0x82]), expectClose(1007)],
  },
  {
    id: "6.5.3",
    title: "fail fast: invalid 2nd of 3 fragments fails before the 3rd is sent",
    script: [text(KOSME, false), cont([0xf4, 0x90, 0x80, 0x80], false), expectClose(1007)],
  },
  {
    id: "6.5.4",
    title: "fail fast: invalid sequence cut across fragments fails on its first bad byte",
    script: [text(concat([KOSME, [0xf4]]), false), cont([0x90], false), expectClose(1007)],
  },
  {
    id: "6.5.5",
    title: "fail fast: invalid byte in the first fragment (no FIN) fails at once",
    script: [text(concat([KOSME, [0xed, 0xa0, 0x80]]), false), expectClose(1007)],
  },
  {
    id: "6.5.6",
    title: "fail fast: invalid text in 1-byte fragments fails on the bad byte",
    // The last fragment sent holds A0, the byte that turns ED into a surrogate.
    script: [
      ...fragments(Opcode.Text, perByte(concat([KOSME, [0xed, 0xa0]])), false),
      expectClose(1007),
    ],
  },
  {
    id: "6.5.7",
    title: "invalid text in one frame, sent in 3 writes: 1007",
    // Autobahn 6.4.3: within a single frame the decoder checks UTF-8 once the
    // frame is complete ("non-strict"), so the whole frame is sent here.
    script: (() => {
      const f = text(concat([KOSME, [0xf4, 0x90, 0x80, 0x80], "edited"]));
      return [f.subarray(0, 16), f.subarray(16, 20), f.subarray(20), expectClose(1007)];
    })(),
  },
];

// ---------------------------------------------------------------------------
// 7. Closing (§5.5.1, §7): the server echoes a valid close (code and reason)
// and then closes TCP; it ignores everything after the close frame; bad
// payloads fail with 1002, a reason that is not UTF-8 with 1007.

const REASON_123 = "r".repeat(123);
const VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014];
const VALID_APP_CODES = [3000, 3999, 4000, 4999];
const INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535];

const closeCases: Case[] = [
  {
    id: "7.1.1",
    title: "text echoed, then close 1000 echoed",
    script: [text("Hello"), expectText("Hello"), close(1000), expectClose(1000, "")],
  },
  {
    id: "7.1.2",
    title: "two close frames: one answer",
    script: [concat([close(1000), close(1000)]), expectClose(1000, "")],
  },
  {
    id: "7.1.3",
    title: "ping after close: not answered",
    script: [concat([close(1000), ping("late")]), expectClose(1000, "")],
  },
  {
    id: "7.1.4",
    title: "text after close: not echoed",
    script: [concat([close(1000), text("late")]), expectClose(1000, "")],
  },
  {
    id: "7.1.5",
    title: "close between the fragments of a message: the message is dropped",
    script: [concat([text("frag", false), close(1000), cont("ment")]), expectClose(1000, "")],
  },
  {
    id: "7.1.6",
    title: "256 KiB message, close, ping: echo, close, no pong",
    script: [
      concat([text(textOf(256 * 1024)), close(1000), ping()]),
      expectText(textOf(256 * 1024)),
      expectClose(1000, ""),
    ],
  },
  {
    id: "7.3.1",
    title: "empty close: answered with an empty close",
    // The client's decoder reports an empty close payload as 1005 (§7.1.5).
    script: [close(), expectClose(1005, "")],
  },
  {
    id: "7.3.2",
    title: "1-byte close payload: 1002",
    script: [frame(Opcode.Close, [0x03]), expectClose(1002)],
  },
  { id: "7.3.3", title: "close with a code only", script: [close(1000), expectClose(1000, "")] },
  {
    id: "7.3.4",
    title: "close with code and reason: both echoed",
    script: [close(1000, "Hello World!"), expectClose(1000, "Hello World!")],
  },
  {
    id: "7.3.5",
    title: "close with a 123-byte reason (125-byte payload)",
    script: [close(1000, REASON_123), expectClose(1000, REASON_123)],
  },
  {
    id: "7.3.7",
    title: "close with a multi-byte UTF-8 reason: echoed",
    script: [close(1000, "κόσμε €𝄞"), expectClose(1000, "κόσμε €𝄞")],
  },
  {
    id: "7.3.6",
    title: "close with a 124-byte reason (126-byte payload): 1002",
    script: [close(1000, REASON_123 + "r"), expectClose(1002)],
  },
  {
    id: "7.5.1",
    title: "close reason that is not UTF-8: 1007",
    script: [close(1000, concat([KOSME, [0xed, 0xa0, 0x80], "edited"])), expectClose(1007)],
  },
  ...[...VALID_CODES, ...VALID_APP_CODES].map((code, i): Case => ({
    id: `7.7.${i + 1}`,
    title: `close code ${code} is echoed`,
    script: [close(code), expectClose(code, "")],
  })),
  ...INVALID_CODES.map((code, i): Case => ({
    id: `7.9.${i + 1}`,
    title: `close code ${code} may not be sent: 1002`,
    script: [close(code), expectClose(1002)],
  })),
];

// ---------------------------------------------------------------------------
// 9. Limits, on a server with maxPayload = 1024: a message of exactly the
// limit is echoed, one byte more fails with 1009 as soon as the header shows
// it (the payload is never sent). Malformed lengths (§5.2) fail with 1002.

const MAX = 1024;

const limitCases: Case[] = [
  {
    id: "9.1",
    title: `text of exactly maxPayload (${MAX})`,
    script: [text(textOf(MAX)), expectText(textOf(MAX))],
  },
  {
    id: "9.2",
    title: `binary of exactly maxPayload (${MAX})`,
    script: [binary(binaryOf(MAX)), expectBinary(binaryOf(MAX))],
  },
  {
    id: "9.3",
    title: "maxPayload in 3 fragments",
    script: [
      concat([text(textOf(500), false), cont(textOf(500), false), cont(textOf(24))]),
      expectText(textOf(MAX)),
    ],
  },
  {
    id: "9.4",
    title: "maxPayload + 1: 1009 from the header alone",
    script: [header(0x82, 126, [(MAX + 1) >> 8, (MAX + 1) & 0xff]), expectClose(1009)],
  },
  {
    id: "9.5",
    title: "maxPayload + 1 in 2 fragments: 1009",
    script: [binary(binaryOf(600), false), cont(binaryOf(MAX + 1 - 600)), expectClose(1009)],
  },
  {
    id: "9.6",
    title: "64-bit length 2^32: 1009 from the header alone",
    script: [header(0x82, 127, [0, 0, 0, 1, 0, 0, 0, 0]), expectClose(1009)],
  },
  {
    id: "9.7",
    title: "64-bit length with the most significant bit set: 1002 (§5.2: MSB MUST be 0)",
    script: [header(0x82, 127, [0x80, 0, 0, 0, 0, 0, 0, 1]), expectClose(1002)],
  },
  {
    id: "9.8",
    title: "length 5 in the 16-bit form: 1002 (§5.2: minimal encoding)",
    script: [
      concat([header(0x81, 126, [0, 5]), [0x11, 0x22, 0x33, 0x44, 0x55]]),
      expectClose(1002),
    ],
  },
  {
    id: "9.9",
    title: "unmasked client frame: 1002 (§5.1)",
    script: [frame(Opcode.Text, "Hello", { mask: false }), expectClose(1002)],
  },
];

// ---------------------------------------------------------------------------

Deno.test("autobahn 1: framing", (t) => suite(t, framingCases));
Deno.test("autobahn 2: pings and pongs", (t) => suite(t, pingCases));
Deno.test("autobahn 3: reserved bits", (t) => suite(t, reservedBitCases));
Deno.test("autobahn 4: reserved opcodes", (t) => suite(t, reservedOpcodeCases));
Deno.test("autobahn 5: fragmentation", (t) => suite(t, fragmentationCases));
Deno.test("autobahn 6: UTF-8", (t) => suite(t, utf8Cases));
Deno.test("autobahn 7: closing handshake", (t) => suite(t, closeCases));
Deno.test("autobahn 9: limits", (t) => suite(t, limitCases, { maxPayload: MAX }));

Deno.test("every conformance case has a unique id", () => {
  const all = [
    ...framingCases,
    ...pingCases,
    ...reservedBitCases,
    ...reservedOpcodeCases,
    ...fragmentationCases,
    ...utf8Cases,
    ...closeCases,
    ...limitCases,
  ];
  const ids = all.map((c) => c.id);
  assertEquals(ids.filter((id, i) => ids.indexOf(id) !== i), []);
});
