import { assert, assertEquals, assertMatch, assertThrows } from "@std/assert";
import {
  buildHttpResponse,
  buildResponseHead,
  encodeChunk,
  headerEntries,
  headerValue,
  type HttpRequestHead,
  LAST_CHUNK,
  parseRequestHead,
  parseResponseHead,
  RequestParser,
  type RequestParserOptions,
} from "../protocol/http1.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What a parser made of a request stream, in a form easy to compare. */
type Seen =
  | { request: string; body: string; keepAlive: boolean }
  | { data: string }
  | "end"
  | "closed"
  | { error: number };

/** Feeds `input` in pieces of `step` bytes (then EOF), collecting every event. */
function parse(
  input: string | Uint8Array,
  step = Infinity,
  options?: RequestParserOptions,
): Seen[] {
  const bytes = typeof input === "string" ? encoder.encode(input) : input;
  const parser = new RequestParser(options);
  const seen: Seen[] = [];
  let offset = 0;
  for (;;) {
    const event = parser.next();
    if (event.type === "need-data") {
      if (offset >= bytes.length) {
        parser.receiveEof();
        continue;
      }
      const end = Math.min(bytes.length, offset + step);
      parser.receive(bytes.subarray(offset, end));
      offset = end;
      continue;
    }
    if (event.type === "request") {
      seen.push({
        request: `${event.head.method} ${event.head.target}`,
        body: event.body.kind,
        keepAlive: event.keepAlive,
      });
    } else if (event.type === "data") {
      // Merge neighbouring data events: how the body was split is not the point.
      const last = seen[seen.length - 1];
      const text = decoder.decode(event.data);
      if (typeof last === "object" && "data" in last) last.data += text;
      else seen.push({ data: text });
    } else if (event.type === "end" || event.type === "closed") {
      seen.push(event.type);
      if (event.type === "closed") return seen;
    } else {
      seen.push({ error: event.status });
      return seen;
    }
  }
}

/** The same events whatever the split: whole, 1 byte at a time, and 7 at a time. */
function parseAnySplit(input: string, options?: RequestParserOptions): Seen[] {
  const whole = parse(input, Infinity, options);
  assertEquals(parse(input, 1, options), whole, "split into single bytes");
  assertEquals(parse(input, 7, options), whole, "split into 7-byte pieces");
  return whole;
}

Deno.test("http1: a GET, then EOF between requests is a clean close", () => {
  assertEquals(parseAnySplit("GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n"), [
    { request: "GET /a?b=1", body: "none", keepAlive: true },
    "end",
    "closed",
  ]);
});

Deno.test("http1: Content-Length bodies and pipelined requests, any split", () => {
  const input = "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world" +
    "GET /next HTTP/1.1\r\nHost: x\r\n\r\n" +
    "PUT /z HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  assertEquals(parseAnySplit(input), [
    { request: "POST /p", body: "length", keepAlive: true },
    { data: "hello world" },
    "end",
    { request: "GET /next", body: "none", keepAlive: true },
    "end",
    { request: "PUT /z", body: "length", keepAlive: false },
    "end",
    "closed",
  ]);
});

Deno.test("http1: chunked bodies with extensions and trailers, any split", () => {
  const input = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
    "5\r\nhello\r\n1;name=value\r\n \r\n00A\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n" +
    "GET /after HTTP/1.1\r\nHost: x\r\n\r\n";
  assertEquals(parseAnySplit(input), [
    { request: "POST /c", body: "chunked", keepAlive: true },
    { data: "hello 0123456789" },
    "end",
    { request: "GET /after", body: "none", keepAlive: true },
    "end",
    "closed",
  ]);
});

Deno.test("http1: keep-alive rules of HTTP/1.1 and HTTP/1.0", () => {
  const keepAlive = (head: string) => {
    const [first] = parse(head + "\r\n");
    return typeof first === "object" && "keepAlive" in first && first.keepAlive;
  };
  assertEquals(keepAlive("GET / HTTP/1.1\r\nHost: x\r\n"), true);
  assertEquals(keepAlive("GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n"), false);
  assertEquals(keepAlive("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n"), false);
  assertEquals(keepAlive("GET / HTTP/1.0\r\n"), false);
  assertEquals(keepAlive("GET / HTTP/1.0\r\nConnection: keep-alive\r\n"), true);
});

Deno.test("http1: Expect: 100-continue is reported for a request with a body", () => {
  const parser = new RequestParser();
  parser.receive(encoder.encode(
    "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
  ));
  const event = parser.next();
  assert(event.type === "request" && event.expectContinue);
});

Deno.test("http1: malformed framing gets the right status", () => {
  const status = (input: string, options?: RequestParserOptions) => {
    const seen = parse(input, Infinity, options);
    const last = seen[seen.length - 1];
    return typeof last === "object" && "error" in last ? last.error : undefined;
  };
  const post = "POST / HTTP/1.1\r\nHost: x\r\n";
  // RFC 9112 §6.3: both framings at once is the smuggling shape.
  assertEquals(status(post + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc"), 400);
  assertEquals(status(post + "Transfer-Encoding: gzip\r\n\r\n"), 400);
  assertEquals(status(post + "Transfer-Encoding: gzip, chunked\r\n\r\n"), 501);
  assertEquals(status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
  assertEquals(status(post + "Content-Length: 3, 4\r\n\r\nabcd"), 400);
  assertEquals(status(post + "Content-Length: -1\r\n\r\n"), 400);
  assertEquals(status(post + "Content-Length: 0x10\r\n\r\n"), 400);
  assertEquals(parse(post + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc")[1], {
    data: "abc",
  });
  // Limits: 413 for bodies, 431 for heads, before anything is buffered.
  assertEquals(status(post + "Content-Length: 11\r\n\r\n", { maxBodyBytes: 10 }), 413);
  assertEquals(status(post + "Content-Length: 99999999999999999999\r\n\r\n"), 413);
  const chunked = post + "Transfer-Encoding: chunked\r\n\r\n";
  assertEquals(status(chunked + "6\r\nabcdef\r\n6\r\nabcdef\r\n", { maxBodyBytes: 10 }), 413);
  assertEquals(status(chunked + "ffffffffffffffffffff\r\n"), 413);
  assertEquals(
    status("GET / HTTP/1.1\r\nX: " + "a".repeat(100) + "\r\n\r\n", { maxHeaderBytes: 64 }),
    431,
  );
  assertEquals(status("GET / HTTP/1.1\r\n" + "X: y\r\n".repeat(101) + "\r\n"), 431);
  // Chunked framing takes CRLF only, and sizes in hex.
  assertEquals(status(chunked + "5\nhello\r\n0\r\n\r\n"), 400);
  assertEquals(status(chunked + "5\r\nhello0\r\n\r\n"), 400);
  assertEquals(status(chunked + "g\r\n"), 400);
  assertEquals(status(chunked + "5 5\r\nhello\r\n"), 400);
  assertEquals(status(chunked + "a".repeat(2000)), 400);
  assertEquals(status(chunked + "0\r\n" + "X: y\r\n".repeat(5000)), 431);
  // Heads.
  assertEquals(status("NONSENSE\r\n\r\n"), 400);
  assertEquals(status("GET / HTTP/2.0\r\n\r\n"), 505);
  assertEquals(status("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"), 400);
  // Cut short: mid-head and mid-body.
  assertEquals(status("GET / HTTP/1.1\r\nHost"), 400);
  assertEquals(status(post + "Content-Length: 5\r\n\r\nab"), 400);
  assertEquals(status(chunked + "5\r\nab"), 400);
});

Deno.test("http1: the parser stays in its error, and takeRest hands over what follows a head", () => {
  const parser = new RequestParser();
  parser.receive(encoder.encode("BAD\r\n\r\n"));
  assertEquals(parser.next().type, "error");
  assertEquals(parser.next().type, "error");

  const upgrade = new RequestParser();
  upgrade.receive(encoder.encode("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n\x81\x80abcd"));
  assertEquals(upgrade.next().type, "request");
  assertEquals(upgrade.takeRest(), encoder.encode("\x81\x80abcd"));
  assertThrows(() => upgrade.next());
});

Deno.test("http1: a head trickled byte by byte completes on its very last byte", () => {
  // 4 KiB of one header value, one byte per receive().
  const head = "GET / HTTP/1.1\r\nX: " + "a".repeat(4096) + "\r\n\r\n";
  const parser = new RequestParser();
  let needs = 0;
  for (const byte of encoder.encode(head)) {
    parser.receive(new Uint8Array([byte]));
    const event = parser.next();
    if (event.type === "need-data") needs++;
    else assertEquals(event.type, "request");
  }
  assertEquals(needs, head.length - 1);
});

Deno.test("http1: response heads carry the framing the writer chose", () => {
  assertEquals(
    buildResponseHead(200, {
      headers: [["content-type", "text/plain"], ["content-length", "999"], ["connection", "x"]],
      body: { length: 5 },
    }),
    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nContent-Length: 5\r\n\r\n",
  );
  assertEquals(
    buildResponseHead(201, { statusText: "Made", body: "chunked", connection: "close" }),
    "HTTP/1.1 201 Made\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
  );
  assertEquals(buildResponseHead(204, { body: { length: 0 } }), "HTTP/1.1 204 No Content\r\n\r\n");
  assertEquals(
    buildResponseHead(200, { body: "until-close", connection: "close" }),
    "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
  );
  assertThrows(() =>
    buildResponseHead(200, { headers: [["x", "a\r\nInjected: 1"]], body: "none" })
  );
  assertThrows(() => buildResponseHead(200, { statusText: "OK\r\nX: 1", body: "none" }));
  assertThrows(() => buildResponseHead(42, { body: "none" }));
  assertEquals(
    decoder.decode(encodeChunk(encoder.encode("x".repeat(26)))),
    `1a\r\n${"x".repeat(26)}\r\n`,
  );
  assertThrows(() => encodeChunk(new Uint8Array(0)), RangeError);
  assertEquals(LAST_CHUNK, "0\r\n\r\n");
});

// --- heads (moved here from handshake_test.ts: general HTTP, not RFC 6455) ----------

const RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ==";

// --- parseRequestHead -----------------------------------------------------------

const REQUEST = "GET /chat?room=a HTTP/1.1\r\n" +
  "Host: server.example.com\r\n" +
  "Upgrade: websocket\r\n" +
  "Connection: Upgrade\r\n" +
  `Sec-WebSocket-Key: ${RFC_KEY}\r\n` +
  "Origin: http://example.com\r\n" +
  "Sec-WebSocket-Protocol: chat, superchat\r\n" +
  "Sec-WebSocket-Version: 13\r\n" +
  "\r\n";

function parseText(text: string, maxHeaderBytes?: number) {
  return parseRequestHead(encoder.encode(text), { maxHeaderBytes });
}

function completeHead(text: string): HttpRequestHead {
  const result = parseText(text);
  if (result.kind !== "complete") throw new Error(`expected a complete head, got ${result.kind}`);
  return result.head;
}

Deno.test("parseRequestHead parses a complete upgrade request", () => {
  const result = parseText(REQUEST);
  assert(result.kind === "complete");
  assertEquals(result.headLength, REQUEST.length);
  const { head } = result;
  assertEquals([head.method, head.target, head.version], ["GET", "/chat?room=a", "1.1"]);
  assertEquals(head.headers.get("host"), "server.example.com");
  assertEquals(head.headers.get("sec-websocket-key"), RFC_KEY);
  assertEquals(head.headers.get("SEC-WEBSOCKET-PROTOCOL"), "chat, superchat");
});

Deno.test("parseRequestHead reports incomplete at every split point", () => {
  const bytes = encoder.encode(REQUEST);
  for (let end = 0; end < bytes.length; end++) {
    assertEquals(parseRequestHead(bytes.subarray(0, end)).kind, "incomplete", `at ${end}`);
  }
  assertEquals(parseRequestHead(bytes).kind, "complete");
});

Deno.test("parseRequestHead keeps the bytes after the head (the first frames)", () => {
  const frame = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
  const request = encoder.encode(REQUEST);
  const bytes = new Uint8Array([...request, ...frame]);
  const result = parseRequestHead(bytes);
  assert(result.kind === "complete");
  assertEquals(result.headLength, request.length);
  assertEquals([...bytes.subarray(result.headLength)], frame);
});

Deno.test("parseRequestHead accepts lone LF line endings and skips leading empty lines", () => {
  const lf = "GET / HTTP/1.1\nHost: a\nUpgrade: websocket\n\nrest";
  const result = parseText(lf);
  assert(result.kind === "complete");
  assertEquals(result.headLength, lf.length - 4);
  assertEquals(result.head.headers.get("upgrade"), "websocket");
  const mixed = parseText("GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\n");
  assert(mixed.kind === "complete");
  assertEquals(mixed.head.headers.get("x"), "1");
  const leading = parseText("\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
  assert(leading.kind === "complete");
  assertEquals(leading.head.target, "/");
  assertEquals(leading.headLength, 3 + 27);
});

Deno.test("parseRequestHead combines repeated headers and trims optional whitespace", () => {
  const head = completeHead(
    "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a:2\r\nX-Tab: \t in\tside \t\r\nEmpty:\r\n\r\n",
  );
  assertEquals(head.headers.get("x-a"), "1, 2");
  assertEquals(head.headers.get("x-tab"), "in\tside");
  assertEquals(head.headers.get("empty"), "");
});

Deno.test("parseRequestHead answers 431 when the head outgrows the limit", () => {
  const big = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + "a".repeat(200);
  assertEquals(parseText(big, 100), {
    kind: "error",
    status: 431,
    reason: "request head too large",
  });
  // Complete, but still larger than the limit.
  assertEquals(parseText(big + "\r\n\r\n", 100).kind, "error");
  // Exactly at the limit is fine.
  const exact = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  assertEquals(parseText(exact, exact.length).kind, "complete");
  const over = parseText(exact, exact.length - 1);
  assert(over.kind === "error" && over.status === 431);
  // The default limit is 16 KiB.
  const huge = parseText("GET / HTTP/1.1\r\nX: " + "a".repeat(16 * 1024));
  assert(huge.kind === "error" && huge.status === 431);
});

Deno.test("parseRequestHead answers 431 for more header fields than the limit (default 100)", () => {
  // Distinct names are the costly case: Headers.append() looks for an earlier
  // field of the same name, so n fields would cost O(n²) (2 400 fit in 16 KiB).
  const fields = (n: number) => Array.from({ length: n }, (_, i) => `X-${i}: v\r\n`).join("");
  const head = (n: number) => `GET / HTTP/1.1\r\n${fields(n)}\r\n`;
  assertEquals(parseText(head(100)).kind, "complete");
  assertEquals(parseText(head(101)), {
    kind: "error",
    status: 431,
    reason: "more than 100 header fields",
  });
  assertEquals(parseText(head(2_400), 32 * 1024).kind, "error");
  const custom = parseRequestHead(encoder.encode(head(3)), { maxHeaderFields: 2 });
  assert(custom.kind === "error" && custom.status === 431);
  assertEquals(parseRequestHead(encoder.encode(head(3)), { maxHeaderFields: 3 }).kind, "complete");
  const response = parseResponseHead(encoder.encode(`HTTP/1.1 101 x\r\n${fields(101)}\r\n`));
  assert(response.kind === "error" && response.status === 431);
});

Deno.test("parseRequestHead answers 400 for malformed heads", () => {
  const cases: [string, string, RegExp][] = [
    ["empty request line", "\r\nHost: a\r\n\r\n", /request line/],
    ["double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", /request line/],
    ["missing version", "GET /\r\nHost: a\r\n\r\n", /request line/],
    ["bad version", "GET / HTTP/one\r\nHost: a\r\n\r\n", /request line/],
    ["trailing junk", "GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", /request line/],
    ["bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", /request line/],
    ["no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", /without a colon/],
    ["space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", /whitespace before the colon/],
    ["tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", /whitespace before the colon/],
    ["line folding", "GET / HTTP/1.1\r\nX: a\r\n  b\r\n\r\n", /line folding/],
    ["empty name", "GET / HTTP/1.1\r\n: a\r\n\r\n", /invalid header name/],
    ["bad name", "GET / HTTP/1.1\r\nX[1]: a\r\n\r\n", /invalid header name/],
    ["NUL", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", /control character 0x00/],
    ["DEL", "GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n", /control character 0x7f/],
    ["bare CR", "GET / HTTP/1.1\rHost: a\r\n\r\n", /bare CR/],
  ];
  for (const [name, text, reason] of cases) {
    const result = parseText(text);
    assert(result.kind === "error", `${name}: ${result.kind}`);
    assertEquals(result.status, 400, name);
    assertMatch(result.reason, reason, name);
  }
  const nonAscii = parseRequestHead(
    new Uint8Array([...encoder.encode("GET / HTTP/1.1\r\nX: "), 0xc3, 0xa9, 13, 10, 13, 10]),
  );
  assert(nonAscii.kind === "error" && nonAscii.status === 400);
  assertMatch(nonAscii.reason, /non-ASCII byte 0xc3/);
});

Deno.test("parseRequestHead fails at once on bytes that can never be HTTP (TLS ClientHello)", () => {
  const result = parseRequestHead(new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00]));
  assert(result.kind === "error" && result.status === 400);
});

// --- parseResponseHead ------------------------------------------------------------

Deno.test("parseResponseHead parses status lines and shares the field parser", () => {
  const text = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX: 1\r\nx: 2\r\n\r\n";
  const bytes = new Uint8Array([...encoder.encode(text), 0x81, 0x00]);
  const result = parseResponseHead(bytes);
  assert(result.kind === "complete");
  assertEquals(result.headLength, text.length);
  assertEquals(result.head.version, "1.1");
  assertEquals(result.head.status, 101);
  assertEquals(result.head.statusText, "Switching Protocols");
  assertEquals(result.head.headers.get("x"), "1, 2");
  const bare = parseResponseHead(encoder.encode("HTTP/1.1 404\r\n\r\n"));
  assert(bare.kind === "complete");
  assertEquals([bare.head.status, bare.head.statusText], [404, ""]);
  for (let end = 0; end < text.length; end++) {
    assertEquals(parseResponseHead(bytes.subarray(0, end)).kind, "incomplete", `at ${end}`);
  }
});

Deno.test("parseResponseHead rejects malformed responses", () => {
  for (const line of ["HTTP/1.1 10 Short", "HTTP/1.1 1010 Long", "HTTP/1.1  101 x", "ICY 200 OK"]) {
    const result = parseResponseHead(encoder.encode(line + "\r\n\r\n"));
    assert(result.kind === "error", line);
    assertMatch(result.reason, /status line/);
  }
  const folded = parseResponseHead(encoder.encode("HTTP/1.1 101 x\r\nA: b\r\n c\r\n\r\n"));
  assert(folded.kind === "error" && /folding/.test(folded.reason));
  const big = parseResponseHead(encoder.encode("HTTP/1.1 101 x\r\nA: " + "b".repeat(100)), {
    maxHeaderBytes: 50,
  });
  assertEquals(big, { kind: "error", status: 431, reason: "response head too large" });
});

Deno.test("buildHttpResponse builds complete small responses", () => {
  assertEquals(
    buildHttpResponse(404, { reason: "no route for /nope" }),
    "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n" +
      "Content-Length: 19\r\nConnection: close\r\n\r\nno route for /nope\n",
  );
  assertEquals(
    buildHttpResponse(200, { body: "ok\n" }),
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\r\nok\n",
  );
  // Content-Length counts UTF-8 bytes, not characters.
  assertMatch(buildHttpResponse(200, { body: "héllo €" }), /Content-Length: 10\r\n/);
  assertEquals(
    buildHttpResponse(200, { body: "{}", contentType: "application/json" }),
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
  );
  // No body: a zero length and no type.
  assertEquals(
    buildHttpResponse(503),
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
  );
  // Caller headers replace defaults whatever their case; others are appended.
  assertEquals(
    buildHttpResponse(426, { headers: { connection: "close", Upgrade: "websocket" } }),
    "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\nconnection: close\r\n" +
      "Upgrade: websocket\r\n\r\n",
  );
  // 1xx and 204 carry no content and no Content-Length.
  assertEquals(
    buildHttpResponse(101, { body: "ignored" }),
    "HTTP/1.1 101 Switching Protocols\r\n\r\n",
  );
  assertEquals(buildHttpResponse(204), "HTTP/1.1 204 No Content\r\n\r\n");
  assertThrows(() => buildHttpResponse(42), TypeError);
  assertThrows(() => buildHttpResponse(200, { headers: { X: "a\nb" } }), TypeError);
});

Deno.test("buildHttpResponse knows the reason phrases of key statuses", () => {
  // A few, not the table again (the test above spells out 101, 200, 204, 404, 426 and
  // 503): the upgrade's success, its most common refusal, and the two from RFC 6585,
  // which RFC 9110 does not list.
  const texts: Record<number, string> = {
    101: "Switching Protocols",
    400: "Bad Request",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
  };
  for (const [status, text] of Object.entries(texts)) {
    const response = buildHttpResponse(Number(status));
    assert(response.startsWith(`HTTP/1.1 ${status} ${text}\r\n`), response);
    assertEquals(response.includes("Connection: close"), Number(status) >= 400, status);
    // Every response parses back.
    const parsed = parseResponseHead(encoder.encode(response));
    assert(parsed.kind === "complete");
    assertEquals(parsed.head.status, Number(status));
  }
});

Deno.test("headerValue and headerEntries read the parsed fields as the head's Headers would", () => {
  const text = "GET /x HTTP/1.1\r\nHost: a\r\nX-Twice: one\r\nCookie: k=v\r\n" +
    "x-twice:  two \r\nUPGRADE: websocket\r\nEmpty:\r\n\r\n";
  const parse = () => {
    const result = parseRequestHead(new TextEncoder().encode(text));
    if (result.kind !== "complete") throw new Error(result.kind);
    return result.head;
  };
  const head = parse();
  const names = ["host", "x-twice", "cookie", "upgrade", "empty", "absent"];
  const fromList = names.map((name) => headerValue(head, name));
  const reference = parse().headers; // built from the same fields
  assertEquals(fromList, names.map((name) => reference.get(name)));
  assertEquals(fromList, ["a", "one, two", "k=v", "websocket", "", null]);
  // Names are case-insensitive, as in Headers, whichever form answers.
  assertEquals(["Host", "X-TWICE"].map((name) => headerValue(head, name)), ["a", "one, two"]);
  assertEquals([...headerEntries(head)], [
    ["host", "a"],
    ["x-twice", "one"],
    ["cookie", "k=v"],
    ["x-twice", "two"],
    ["upgrade", "websocket"],
    ["empty", ""],
  ]);
  // The list is private: a copy or a log shows only the head's own fields.
  assertEquals(Object.keys(head), ["method", "target", "version"]);
  assertEquals({ ...head, headers: head.headers }.headers.get("x-twice"), "one, two");
  // Once someone changes the Headers, it is the truth for both.
  head.headers.set("host", "b");
  assertEquals(headerValue(head, "host"), "b");
  head.headers = new Headers({ only: "this" });
  assertEquals(headerValue(head, "host"), null);
  assertEquals([...headerEntries(head)], [["only", "this"]]);
  // A head built by hand is read through its Headers.
  const manual = { method: "GET", target: "/", version: "1.1", headers: new Headers({ A: "1" }) };
  assertEquals(headerValue(manual, "a"), "1");
  assertEquals([...headerEntries(manual)], [["a", "1"]]);
});
