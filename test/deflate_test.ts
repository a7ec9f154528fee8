import { assert, assertEquals, assertInstanceOf, assertLess, assertThrows } from "@std/assert";
import { Buffer } from "node:buffer";
import zlib from "node:zlib";
import { extension as wsExtension, PerMessageDeflate as WsPerMessageDeflate } from "ws";
import {
  type DeflateEngine,
  type DeflateOptions,
  type DeflateParams,
  formatDeflateParams,
  type InflateFailure,
  negotiateDeflate,
  parseExtensions,
  PerMessageDeflate,
} from "../protocol/deflate.ts";
import { zlibEngine } from "../server/_zlib_engine.ts";
import { FrameDecoder } from "../protocol/frame_decoder.ts";
import { encodeFrame, FrameWriter, PreparedMessage } from "../protocol/frame_encoder.ts";
import { Opcode } from "../protocol/opcodes.ts";
import { Connection } from "../protocol/connection.ts";
import { concat } from "./_bytes.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MiB = 1024 * 1024;

/** Chat-like JSON messages of 100 B to ~2 KB, deterministic. */
function chatMessages(count: number): Uint8Array[] {
  const words = ["hello", "lorem", "ipsum", "dolor", "sit", "amet", "deno", "socket", "ping"];
  const messages: Uint8Array[] = [];
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 8;
  for (let i = 0; i < count; i++) {
    const text = Array.from({ length: 5 + next() % 300 }, () => words[next() % words.length]);
    messages.push(encoder.encode(JSON.stringify({
      type: "chat",
      topic: `room-${next() % 5}`,
      from: `user-${next() % 50}`,
      text: text.join(" "),
      ts: 1_800_000_000_000 + i * 1234,
    })));
  }
  return messages;
}

function isFailure(result: Uint8Array | InflateFailure): result is InflateFailure {
  return !(result instanceof Uint8Array);
}

function inflated(result: Uint8Array | InflateFailure): Uint8Array {
  if (isFailure(result)) throw new Error(`inflate failed: ${result.code} ${result.reason}`);
  return result;
}

// ---------------------------------------------------------------------------
// Sec-WebSocket-Extensions grammar (RFC 6455 §9.1)

Deno.test("parseExtensions: tokens, parameters, quoted values, several offers", () => {
  assertEquals(parseExtensions("permessage-deflate"), [{ name: "permessage-deflate", params: [] }]);
  assertEquals(
    parseExtensions(
      'permessage-deflate ; client_max_window_bits ;server_max_window_bits="10",\tx-foo; a=b , ,',
    ),
    [
      {
        name: "permessage-deflate",
        params: [
          { name: "client_max_window_bits", value: undefined },
          { name: "server_max_window_bits", value: "10" },
        ],
      },
      { name: "x-foo", params: [{ name: "a", value: "b" }] },
    ],
  );
  // quoted-pair unescapes.
  assertEquals(parseExtensions('x; a="1\\0"')?.[0].params, [{ name: "a", value: "10" }]);
  assertEquals(parseExtensions(""), []);
});

Deno.test("parseExtensions: what breaks the grammar is undefined", () => {
  for (
    const bad of [
      "permessage-deflate;", // a parameter without a name
      "permessage-deflate; a=", // a value missing
      'x; a="unterminated',
      'x; a="two words"', // §9.1: the unquoted value must be a token
      'x; a=""',
      "x y", // two tokens without a separator
      "x; a=b c",
      "(x)",
      "; a",
    ]
  ) {
    assertEquals(parseExtensions(bad), undefined, bad);
  }
});

// ---------------------------------------------------------------------------
// Negotiation (RFC 7692 §7)

Deno.test("negotiateDeflate: no header or no deflate offer means no extension", () => {
  assertEquals(negotiateDeflate(null), undefined);
  assertEquals(negotiateDeflate(""), undefined);
  assertEquals(negotiateDeflate("x-webkit-deflate-frame, foo; a=1"), undefined);
  assertEquals(negotiateDeflate("permessage-deflate; ;"), undefined); // malformed
});

Deno.test("negotiateDeflate: the defaults declare server_no_context_takeover only", () => {
  const agreement = negotiateDeflate("permessage-deflate")!;
  assertEquals(agreement.params, {
    serverNoContextTakeover: true,
    clientNoContextTakeover: false,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: 15,
  });
  assertEquals(agreement.response, "permessage-deflate; server_no_context_takeover");
  assertEquals(
    negotiateDeflate("permessage-deflate", { serverNoContextTakeover: false })?.response,
    "permessage-deflate",
  );
});

Deno.test("negotiateDeflate: declines a bad offer (§7) and takes the next acceptable one", () => {
  const cases: [string, string][] = [
    ["unknown parameter", "permessage-deflate; foo"],
    [
      "duplicate parameter",
      "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    ],
    ["duplicate window", "permessage-deflate; client_max_window_bits=10; client_max_window_bits"],
    ["value on a flag", "permessage-deflate; client_no_context_takeover=1"],
    ["server bits without value", "permessage-deflate; server_max_window_bits"],
    ["bits 7", "permessage-deflate; server_max_window_bits=7"],
    ["bits 16", "permessage-deflate; client_max_window_bits=16"],
    ["leading zero", "permessage-deflate; server_max_window_bits=010"],
    ["not a number", "permessage-deflate; client_max_window_bits=big"],
    ["quoted bad", 'permessage-deflate; server_max_window_bits="9a"'],
  ];
  for (const [label, offer] of cases) {
    assertEquals(negotiateDeflate(offer), undefined, label);
    // The same bad offer followed by a good one: the good one is taken.
    const agreement = negotiateDeflate(
      `${offer}, permessage-deflate; client_no_context_takeover`,
      { serverNoContextTakeover: false },
    );
    assertEquals(agreement?.response, "permessage-deflate; client_no_context_takeover", label);
  }
});

Deno.test("negotiateDeflate: the first acceptable offer wins, in the client's order", () => {
  const agreement = negotiateDeflate(
    "permessage-deflate; server_max_window_bits=10, permessage-deflate",
    { serverNoContextTakeover: false },
  );
  assertEquals(agreement?.response, "permessage-deflate; server_max_window_bits=10");
});

Deno.test("negotiateDeflate: window bits (§7.1.2)", () => {
  const respond = (offer: string, options: DeflateOptions = {}) =>
    negotiateDeflate(offer, { serverNoContextTakeover: false, ...options })?.response;
  // The server may shrink its own window without being asked (§7.1.2.1).
  assertEquals(
    respond("permessage-deflate", { serverMaxWindowBits: 11 }),
    "permessage-deflate; server_max_window_bits=11",
  );
  // It uses the smaller of the offer and its own limit.
  assertEquals(
    respond("permessage-deflate; server_max_window_bits=12", { serverMaxWindowBits: 10 }),
    "permessage-deflate; server_max_window_bits=10",
  );
  assertEquals(
    respond('permessage-deflate; server_max_window_bits="9"'),
    "permessage-deflate; server_max_window_bits=9",
  );
  assertEquals(
    respond("permessage-deflate; server_max_window_bits=8"),
    "permessage-deflate; server_max_window_bits=8",
  );
  assertEquals(respond("permessage-deflate; server_max_window_bits=15"), "permessage-deflate");
  // The client's window can only be limited when it offered the parameter (§7.1.2.2).
  assertEquals(respond("permessage-deflate", { clientMaxWindowBits: 10 }), "permessage-deflate");
  assertEquals(
    respond("permessage-deflate; client_max_window_bits", { clientMaxWindowBits: 10 }),
    "permessage-deflate; client_max_window_bits=10",
  );
  assertEquals(
    respond("permessage-deflate; client_max_window_bits=9", { clientMaxWindowBits: 12 }),
    "permessage-deflate; client_max_window_bits=9",
  );
  assertEquals(
    negotiateDeflate("permessage-deflate; client_max_window_bits=9; server_max_window_bits=13")
      ?.params,
    {
      serverNoContextTakeover: true,
      clientNoContextTakeover: false,
      serverMaxWindowBits: 13,
      clientMaxWindowBits: 9,
    },
  );
});

Deno.test("negotiateDeflate: context takeover flags", () => {
  const params = (offer: string, options: DeflateOptions) =>
    negotiateDeflate(offer, options)?.params;
  // A client that asks for either flag gets it, whatever the options.
  assertEquals(
    params("permessage-deflate; server_no_context_takeover; client_no_context_takeover", {
      serverNoContextTakeover: false,
      clientNoContextTakeover: false,
    }),
    {
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
      serverMaxWindowBits: 15,
      clientMaxWindowBits: 15,
    },
  );
  // The server may impose client_no_context_takeover (§7.1.1.2).
  assertEquals(
    negotiateDeflate("permessage-deflate", { clientNoContextTakeover: true })?.response,
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
  );
});

Deno.test("negotiateDeflate: options out of range are a programming error", () => {
  assertThrows(
    () => negotiateDeflate("permessage-deflate", { serverMaxWindowBits: 7 }),
    RangeError,
  );
  assertThrows(
    () => negotiateDeflate("permessage-deflate", { clientMaxWindowBits: 16 }),
    RangeError,
  );
  assertThrows(
    () => negotiateDeflate("permessage-deflate", { clientMaxWindowBits: 9.5 }),
    RangeError,
  );
});

Deno.test("formatDeflateParams: the response parses back to the same parameters", () => {
  for (const serverNoContextTakeover of [false, true]) {
    for (const clientNoContextTakeover of [false, true]) {
      for (const bits of [8, 12, 15]) {
        const params = {
          serverNoContextTakeover,
          clientNoContextTakeover,
          serverMaxWindowBits: bits,
          clientMaxWindowBits: 23 - bits,
        };
        // ws reads our response as a client would.
        const parsed = wsExtension.parse(formatDeflateParams(params));
        const [accepted] = parsed["permessage-deflate"];
        assertEquals(accepted.server_no_context_takeover !== undefined, serverNoContextTakeover);
        assertEquals(accepted.client_no_context_takeover !== undefined, clientNoContextTakeover);
        assertEquals(Number(accepted.server_max_window_bits?.[0] ?? 15), bits);
        assertEquals(Number(accepted.client_max_window_bits?.[0] ?? 15), 23 - bits);
      }
    }
  }
});

// ---------------------------------------------------------------------------
// The transform with the zlib engine

const ALL_PARAMS = [
  {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: 15,
  },
  {
    serverNoContextTakeover: true,
    clientNoContextTakeover: true,
    serverMaxWindowBits: 15,
    clientMaxWindowBits: 15,
  },
  {
    serverNoContextTakeover: false,
    clientNoContextTakeover: true,
    serverMaxWindowBits: 9,
    clientMaxWindowBits: 12,
  },
  {
    serverNoContextTakeover: true,
    clientNoContextTakeover: false,
    serverMaxWindowBits: 8,
    clientMaxWindowBits: 8,
  },
];

Deno.test("PerMessageDeflate: server and client ends round-trip many messages both ways", () => {
  const messages = chatMessages(300);
  for (const params of ALL_PARAMS) {
    const server = new PerMessageDeflate(params, zlibEngine, { role: "server", threshold: 0 });
    const client = new PerMessageDeflate(params, zlibEngine, { role: "client", threshold: 0 });
    for (const message of messages) {
      const down = server.compress(message)!;
      assertEquals(inflated(client.decompress(down, MiB)), message);
      const up = client.compress(message)!;
      assertEquals(inflated(server.decompress(up, MiB)), message);
    }
    server.close();
    client.close();
  }
});

Deno.test("PerMessageDeflate: context takeover compresses repeated chat far better", () => {
  const messages = chatMessages(200);
  const ratio = (serverNoContextTakeover: boolean) => {
    const params = { ...ALL_PARAMS[0], serverNoContextTakeover };
    const deflate = new PerMessageDeflate(params, zlibEngine, { threshold: 0 });
    let plain = 0;
    let packed = 0;
    for (const message of messages) {
      plain += message.length;
      packed += deflate.compress(message)!.length;
    }
    deflate.close();
    return packed / plain;
  };
  const withContext = ratio(false);
  const without = ratio(true);
  assertLess(withContext, without);
  assertLess(without, 1);
});

Deno.test("PerMessageDeflate: messages under the threshold go uncompressed", () => {
  const deflate = new PerMessageDeflate(ALL_PARAMS[1], zlibEngine, { threshold: 100 });
  assertEquals(deflate.compress(new Uint8Array(99)), undefined);
  assert(deflate.compress(new Uint8Array(100)) !== undefined);
  // An empty message compresses to one 0x00 byte: the header of the sync flush's
  // empty stored block, whose 00 00 ff ff the sender drops.
  const always = new PerMessageDeflate(ALL_PARAMS[0], zlibEngine, { threshold: 0 });
  assertEquals(always.compress(new Uint8Array(0)), new Uint8Array([0x00]));
  assertEquals(inflated(always.decompress(new Uint8Array([0x00]), 10)), new Uint8Array(0));
});

Deno.test("PerMessageDeflate: the RFC 7692 §7.2.3 examples decompress", () => {
  const deflate = new PerMessageDeflate(ALL_PARAMS[0], zlibEngine, { role: "client" });
  const hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
  // §7.2.3.2: the same "Hello" twice with context takeover; the second refers back to the first.
  assertEquals(decoder.decode(inflated(deflate.decompress(new Uint8Array(hello), 100))), "Hello");
  assertEquals(
    decoder.decode(
      inflated(deflate.decompress(new Uint8Array([0xf2, 0x00, 0x11, 0x00, 0x00]), 100)),
    ),
    "Hello",
  );
  // §7.2.3.3: a stored (uncompressed) block.
  const stored = [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00];
  assertEquals(decoder.decode(inflated(deflate.decompress(new Uint8Array(stored), 100))), "Hello");
  // §7.2.3.4: a block with BFINAL set; the stream after it starts afresh.
  const final = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
  assertEquals(decoder.decode(inflated(deflate.decompress(new Uint8Array(final), 100))), "Hello");
  assertEquals(decoder.decode(inflated(deflate.decompress(new Uint8Array(hello), 100))), "Hello");
  deflate.close();
});

Deno.test("PerMessageDeflate: a peer that ends each message with BFINAL stays readable", () => {
  const deflate = new PerMessageDeflate(ALL_PARAMS[0], zlibEngine);
  for (const message of chatMessages(20)) {
    // deflateRawSync finishes the stream: a final block, no sync flush.
    const payload = zlib.deflateRawSync(message);
    assertEquals(inflated(deflate.decompress(new Uint8Array(payload), MiB)), message);
  }
  deflate.close();
});

Deno.test("PerMessageDeflate: corrupt data fails with 1007 and leaves shared streams clean", () => {
  const params = ALL_PARAMS[1]; // no context takeover: the inflater is shared
  const one = new PerMessageDeflate(params, zlibEngine);
  const two = new PerMessageDeflate(params, zlibEngine);
  const failure = one.decompress(new Uint8Array([0xff, 0xff, 0xff, 0x12, 0x34]), MiB);
  assert(isFailure(failure));
  assertEquals(failure.code, 1007);
  const client = new PerMessageDeflate(params, zlibEngine, { role: "client", threshold: 0 });
  const message = encoder.encode("after a failure ".repeat(10));
  assertEquals(inflated(two.decompress(client.compress(message)!, MiB)), message);
});

Deno.test("PerMessageDeflate: connections sharing streams interleave safely", () => {
  const params = ALL_PARAMS[1];
  const servers = [0, 1, 2].map(() => new PerMessageDeflate(params, zlibEngine, { threshold: 0 }));
  const clients = [0, 1, 2].map(() =>
    new PerMessageDeflate(params, zlibEngine, { role: "client", threshold: 0 })
  );
  const messages = chatMessages(60);
  for (let i = 0; i < messages.length; i++) {
    const k = i % 3;
    assertEquals(
      inflated(clients[k].decompress(servers[k].compress(messages[i])!, MiB)),
      messages[i],
    );
    assertEquals(
      inflated(servers[k].decompress(clients[k].compress(messages[i])!, MiB)),
      messages[i],
    );
    // Shared streams hold nothing for the connection.
    assertEquals(servers[k].retainedBytes, 0);
  }
});

Deno.test("PerMessageDeflate: memory held per connection follows the parameters", () => {
  const message = chatMessages(1)[0];
  const own = new PerMessageDeflate(
    { ...ALL_PARAMS[0], serverMaxWindowBits: 10, clientMaxWindowBits: 10 },
    zlibEngine,
    { memLevel: 4, threshold: 0 },
  );
  assertEquals(own.retainedBytes, 0); // nothing until the first message
  const client = new PerMessageDeflate(
    { ...ALL_PARAMS[0], serverMaxWindowBits: 10, clientMaxWindowBits: 10 },
    zlibEngine,
    { role: "client", threshold: 0 },
  );
  inflated(own.decompress(client.compress(message)!, MiB));
  own.compress(message);
  assertEquals(own.retainedBytes, 2 ** 12 + 2 ** 13 + 2 ** 10 + 7 * 1024);
  own.close();
  assertEquals(own.retainedBytes, 0);
  assertThrows(() => own.compress(message), Error, "closed");
});

Deno.test("PerMessageDeflate: an 8-bit window is honoured (zlib deflates with 9, reaching back ≤ 250)", () => {
  // A zlib inflater with an 8-bit window rejects distances over 256 across
  // messages; 300 random bytes sent twice make the second message reach back 300.
  const block = new Uint8Array(300);
  let seed = 1;
  for (let i = 0; i < block.length; i++) {
    block[i] = 97 + ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) % 26;
  }
  const strict = (bits: number) => {
    const deflater = zlibEngine.createDeflater({ windowBits: bits, level: 9, memLevel: 9 });
    const inflater = zlibEngine.createInflater({ windowBits: 8 });
    inflater.inflate([deflater.deflate(block)], MiB);
    return () => inflater.inflate([deflater.deflate(block)], MiB);
  };
  assertThrows(strict(15), Error, "too far back"); // the check is real
  assertEquals(strict(8)(), block);
  // And through the transform, negotiated server_max_window_bits=8.
  const params = negotiateDeflate("permessage-deflate; server_max_window_bits=8", {
    serverNoContextTakeover: false,
  })!.params;
  const server = new PerMessageDeflate(params, zlibEngine, { threshold: 0 });
  const inflater = zlibEngine.createInflater({ windowBits: 8 });
  const tail = new Uint8Array([0, 0, 0xff, 0xff]);
  for (let i = 0; i < 3; i++) {
    assertEquals(inflater.inflate([server.compress(block)!, tail], MiB), block);
  }
  server.close();
});

// ---------------------------------------------------------------------------
// Decompression bombs

/** `copies` × 8 MiB of zeros, compressed: sync-flushed pieces concatenate into one stream. */
function bomb(copies: number): Uint8Array {
  const piece = zlib.deflateRawSync(new Uint8Array(8 * MiB), {
    finishFlush: zlib.constants.Z_SYNC_FLUSH,
    level: 9,
  });
  const body = new Uint8Array(piece.length * copies);
  for (let i = 0; i < copies; i++) body.set(piece, i * piece.length);
  return body.subarray(0, body.length - 4); // the sender drops the sync-flush tail
}

Deno.test("PerMessageDeflate: a 1 GiB bomb is refused with 1009 without inflating it", () => {
  const payload = bomb(128); // ~1 MB on the wire, 1 GiB inflated
  assertLess(payload.length, 2 * MiB);
  for (const params of [ALL_PARAMS[0], ALL_PARAMS[1]]) {
    const deflate = new PerMessageDeflate(params, zlibEngine);
    const before = Deno.memoryUsage().rss;
    const result = deflate.decompress(payload, MiB);
    assert(isFailure(result));
    assertEquals(result.code, 1009);
    // Inflating it would take 1 GiB; stopping at the limit takes about the limit.
    assertLess(Deno.memoryUsage().rss - before, 64 * MiB);
    deflate.close();
  }
});

Deno.test("PerMessageDeflate: the limit is exact", () => {
  const client = new PerMessageDeflate(ALL_PARAMS[1], zlibEngine, { role: "client", threshold: 0 });
  const server = new PerMessageDeflate(ALL_PARAMS[1], zlibEngine);
  const exact = client.compress(new Uint8Array(100_000))!;
  assertEquals(inflated(server.decompress(exact, 100_000)).length, 100_000);
  const over = server.decompress(exact, 99_999);
  assert(isFailure(over));
  assertEquals(over.code, 1009);
  // The shared stream was reset: the next message inflates.
  assertEquals(inflated(server.decompress(exact, 100_000)).length, 100_000);
});

// ---------------------------------------------------------------------------
// Interop with ws's PerMessageDeflate (npm ws 8), message by message

function callback<T>(run: (done: (error: Error | null, result: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) =>
    run((error, result) => error ? reject(error) : resolve(result))
  );
}

const WS_CLIENT_OPTIONS: Record<string, unknown>[] = [
  {},
  { serverNoContextTakeover: true },
  { clientNoContextTakeover: true },
  { serverMaxWindowBits: 10, clientMaxWindowBits: 9 },
  { serverMaxWindowBits: 8, clientMaxWindowBits: 8 },
  { clientMaxWindowBits: true },
];

const SERVER_OPTIONS: DeflateOptions[] = [
  {},
  { serverNoContextTakeover: false },
  { serverNoContextTakeover: false, clientMaxWindowBits: 11, serverMaxWindowBits: 12 },
  { clientNoContextTakeover: true },
];

Deno.test("interop: ws client ⇄ heartwire server, every offer × every server policy", async () => {
  const messages = chatMessages(120);
  for (const clientOptions of WS_CLIENT_OPTIONS) {
    for (const serverOptions of SERVER_OPTIONS) {
      const label = `${JSON.stringify(clientOptions)} / ${JSON.stringify(serverOptions)}`;
      const wsClient = new WsPerMessageDeflate({ ...clientOptions, threshold: 0, maxPayload: MiB });
      const offer = wsExtension.format({ "permessage-deflate": [wsClient.offer()] });
      const agreement = negotiateDeflate(offer, serverOptions);
      assert(agreement !== undefined, label);
      wsClient.accept(wsExtension.parse(agreement.response)["permessage-deflate"]);
      const server = new PerMessageDeflate(agreement.params, zlibEngine, { threshold: 0 });
      for (const message of messages) {
        const down = server.compress(message)!;
        const received = await callback<Buffer>((done) =>
          wsClient.decompress(Buffer.from(down), true, done)
        );
        assertEquals(new Uint8Array(received), message, label);
        const up = await callback<Buffer>((done) =>
          wsClient.compress(Buffer.from(message), true, done)
        );
        assertEquals(inflated(server.decompress(new Uint8Array(up), MiB)), message, label);
      }
      server.close();
      wsClient.cleanup();
    }
  }
});

Deno.test("interop: heartwire client end ⇄ ws server end", async () => {
  const messages = chatMessages(100);
  const wsServer = new WsPerMessageDeflate({ threshold: 0, isServer: true, maxPayload: MiB });
  const offer = "permessage-deflate; client_max_window_bits";
  const accepted = wsServer.accept(wsExtension.parse(offer)["permessage-deflate"]);
  const response = wsExtension.format({ "permessage-deflate": [accepted] });
  // Read ws's response with our own parser, as a client would.
  const [answer] = parseExtensions(response)!;
  const value = (name: string) => answer.params.find((param) => param.name === name);
  const params = {
    serverNoContextTakeover: value("server_no_context_takeover") !== undefined,
    clientNoContextTakeover: value("client_no_context_takeover") !== undefined,
    serverMaxWindowBits: Number(value("server_max_window_bits")?.value ?? 15),
    clientMaxWindowBits: Number(value("client_max_window_bits")?.value ?? 15),
  };
  const client = new PerMessageDeflate(params, zlibEngine, { role: "client", threshold: 0 });
  for (const message of messages) {
    const up = client.compress(message)!;
    const received = await callback<Buffer>((done) =>
      wsServer.decompress(Buffer.from(up), true, done)
    );
    assertEquals(new Uint8Array(received), message);
    const down = await callback<Buffer>((done) =>
      wsServer.compress(Buffer.from(message), true, done)
    );
    assertEquals(inflated(client.decompress(new Uint8Array(down), MiB)), message);
  }
  client.close();
  wsServer.cleanup();
});

// ---------------------------------------------------------------------------
// The engine contract, with a fake engine: protocol/ owns the framing rules.

Deno.test("PerMessageDeflate: strips and restores the sync-flush tail; checks the engine", () => {
  const seen: Uint8Array[][] = [];
  const fake = (output: Uint8Array): DeflateEngine => ({
    createDeflater: () => ({ deflate: () => output, reset() {}, close() {} }),
    createInflater: () => ({
      inflate: (data) => {
        seen.push(data.map((chunk) => chunk.slice()));
        return new Uint8Array(3);
      },
      reset() {},
      close() {},
    }),
  });
  const good = new PerMessageDeflate(ALL_PARAMS[0], fake(new Uint8Array([9, 0, 0, 0xff, 0xff])), {
    threshold: 0,
  });
  assertEquals(good.compress(new Uint8Array(5)), new Uint8Array([9]));
  assertInstanceOf(good.decompress(new Uint8Array([7]), 10), Uint8Array);
  assertEquals(seen, [[new Uint8Array([7]), new Uint8Array([0, 0, 0xff, 0xff])]]);
  const bad = new PerMessageDeflate(ALL_PARAMS[0], fake(new Uint8Array([9, 0, 0, 0xff])), {
    threshold: 0,
  });
  assertThrows(() => bad.compress(new Uint8Array(5)), Error, "sync flush");
});

// ---------------------------------------------------------------------------
// Frames: RSV1 (RFC 7692 §6) in FrameDecoder and FrameWriter

function deflatePair(params: DeflateParams = ALL_PARAMS[0]) {
  const client = new PerMessageDeflate(params, zlibEngine, { role: "client", threshold: 0 });
  const server = new PerMessageDeflate(params, zlibEngine, { threshold: 0 });
  const decoder = new FrameDecoder({
    role: "server",
    maxMessageSize: 64 * 1024,
    inflate: (payload, maxLength) => server.decompress(payload, maxLength),
  });
  return { client, server, decoder };
}

Deno.test("frames: compressed messages, whole and fragmented, between plain ones", () => {
  const { client, decoder } = deflatePair();
  const writer = new FrameWriter({ role: "client", fragmentSize: 7 });
  const text = "héllo ".repeat(40);
  writer.compressed(Opcode.Text, client.compress(encoder.encode(text))!);
  writer.text("plain, in fragments");
  writer.compressed(Opcode.Binary, client.compress(new Uint8Array(5000).fill(7))!);
  const whole = new FrameWriter({ role: "client" });
  whole.compressed(Opcode.Text, client.compress(encoder.encode(text))!);
  const bytes = [...writer.take(), ...whole.take()];
  // RSV1 only on the first frame of each compressed message.
  assertEquals(bytes[0] & 0x70, 0x40);
  const events = decoder.push(new Uint8Array(bytes));
  assertEquals(events, [
    { type: "text", data: text },
    { type: "text", data: "plain, in fragments" },
    { type: "binary", data: new Uint8Array(5000).fill(7) },
    { type: "text", data: text },
  ]);
});

Deno.test("frames: a ping between the fragments of a compressed message", () => {
  const { client, decoder } = deflatePair();
  const payload = client.compress(encoder.encode("x".repeat(300)))!;
  const bytes = concat([
    encodeFrame(Opcode.Text, payload.subarray(0, 2), { fin: false, rsv1: true, mask: true }),
    encodeFrame(Opcode.Ping, encoder.encode("p"), { mask: true }),
    encodeFrame(Opcode.Continuation, payload.subarray(2), { mask: true }),
  ]);
  assertEquals(decoder.push(bytes), [
    { type: "ping", data: encoder.encode("p") },
    { type: "text", data: "x".repeat(300) },
  ]);
});

Deno.test("frames: RSV rules fail the connection with 1002", () => {
  const compressed = new PerMessageDeflate(ALL_PARAMS[1], zlibEngine, {
    role: "client",
    threshold: 0,
  }).compress(encoder.encode("hello ".repeat(20)))!;
  const cases: [string, Uint8Array, boolean][] = [
    [
      "RSV1 without the extension",
      encodeFrame(Opcode.Text, compressed, { rsv1: true, mask: true }),
      false,
    ],
    [
      "RSV1 on a ping",
      encodeFrame(Opcode.Ping, new Uint8Array(0), { rsv1: true, mask: true }),
      true,
    ],
    [
      "RSV1 on a continuation frame",
      concat([
        encodeFrame(Opcode.Text, compressed.subarray(0, 2), { fin: false, rsv1: true, mask: true }),
        encodeFrame(Opcode.Continuation, compressed.subarray(2), { rsv1: true, mask: true }),
      ]),
      true,
    ],
    ["RSV2", withFirstByte(encodeFrame(Opcode.Text, compressed, { mask: true }), 0xa1), true],
    [
      "RSV1 and RSV3",
      withFirstByte(encodeFrame(Opcode.Text, compressed, { mask: true }), 0xd1),
      true,
    ],
  ];
  for (const [label, bytes, negotiated] of cases) {
    const decoder = negotiated
      ? deflatePair(ALL_PARAMS[1]).decoder
      : new FrameDecoder({ role: "server" });
    const events = decoder.push(bytes);
    assertEquals(events.at(-1)?.type, "error", label);
    assertEquals((events.at(-1) as { code: number }).code, 1002, label);
  }
});

Deno.test("frames: inflated text is checked as UTF-8 (1007); a bomb fails with 1009", () => {
  const { client, decoder } = deflatePair();
  const bad = new FrameWriter({ role: "client" });
  bad.compressed(Opcode.Text, client.compress(new Uint8Array([0x68, 0x69, 0xc3, 0x28, 0x21]))!);
  assertEquals(decoder.push(bad.take()), [{
    type: "error",
    code: 1007,
    reason: "text message is not valid UTF-8",
  }]);

  const second = deflatePair();
  const bombFrame = new FrameWriter({ role: "client" });
  // 1 MiB of zeros is ~1 KiB compressed: well under the 64 KiB frame limit.
  bombFrame.compressed(Opcode.Binary, second.client.compress(new Uint8Array(MiB))!);
  const [event] = second.decoder.push(bombFrame.take());
  assertEquals(event.type, "error");
  assertEquals((event as { code: number }).code, 1009);
});

function withFirstByte(frame: Uint8Array, first: number): Uint8Array {
  frame[0] = first;
  return frame;
}

Deno.test("PerMessageDeflate: incompressible data goes plain only without context takeover", () => {
  const random = new Uint8Array(4096);
  crypto.getRandomValues(random);
  const without = new PerMessageDeflate(ALL_PARAMS[1], zlibEngine);
  assertEquals(without.compress(random), undefined);
  // With context takeover the stream took the bytes in: they must be sent compressed.
  const withContext = new PerMessageDeflate(ALL_PARAMS[0], zlibEngine);
  const compressed = withContext.compress(random)!;
  assert(compressed.length > random.length);
  const client = new PerMessageDeflate(ALL_PARAMS[0], zlibEngine, { role: "client" });
  assertEquals(inflated(client.decompress(compressed, MiB)), random);
  withContext.close();
  client.close();
});

// ---------------------------------------------------------------------------
// The sans-I/O Connection with permessage-deflate

Deno.test("Connection: sends compressed from the threshold on, inflates what arrives", () => {
  const params = ALL_PARAMS[0];
  const serverDeflate = new PerMessageDeflate(params, zlibEngine);
  const server = new Connection({ role: "server", maxMessageSize: 4096, deflate: serverDeflate });
  const client = deflatePair(params).client;
  const clientDecoder = new FrameDecoder({
    role: "client",
    inflate: (payload, maxLength) => client.decompress(payload, maxLength),
  });
  const long = "abc ".repeat(100);
  server.send(long);
  server.send("short");
  server.send(new Uint8Array(1000).fill(1));
  const bytes = server.take();
  assertEquals(bytes[0], 0xc1); // the first message: FIN, RSV1, text
  assertEquals(clientDecoder.push(bytes), [
    { type: "text", data: long },
    { type: "text", data: "short" },
    { type: "binary", data: new Uint8Array(1000).fill(1) },
  ]);

  const writer = new FrameWriter({ role: "client" });
  writer.compressed(Opcode.Text, client.compress(encoder.encode(long))!);
  writer.compressed(Opcode.Binary, client.compress(new Uint8Array(5000))!); // over 4096 inflated
  server.receive(writer.take());
  assertEquals(server.nextEvent(), { type: "text", data: long });
  assertEquals(server.nextEvent()?.type, "error");
  assertEquals(server.closeCode, 1009);
  server.transportClosed();
  assertEquals(serverDeflate.retainedBytes, 0); // closed with the transport
});

Deno.test("Connection: a prepared (uncompressed) frame between compressed messages keeps the context", () => {
  // RFC 7692 §6: RSV1 clear means not compressed, and only compressed
  // messages pass through the context, so a shared broadcast frame may sit
  // between compressed ones even with context takeover.
  const params = ALL_PARAMS[0];
  const server = new Connection({
    role: "server",
    deflate: new PerMessageDeflate(params, zlibEngine, { threshold: 0 }),
  });
  const client = deflatePair(params).client;
  const clientDecoder = new FrameDecoder({
    role: "client",
    inflate: (payload, maxLength) => client.decompress(payload, maxLength),
  });
  const long = "abc ".repeat(100);
  server.send(long);
  server.sendPrepared(new PreparedMessage("broadcast"));
  server.send(long);
  assertEquals(clientDecoder.push(server.take()), [
    { type: "text", data: long },
    { type: "text", data: "broadcast" },
    { type: "text", data: long },
  ]);
  server.transportClosed();
  client.close();
});
