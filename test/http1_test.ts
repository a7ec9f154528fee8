import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  buildResponseHead,
  encodeChunk,
  LAST_CHUNK,
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
