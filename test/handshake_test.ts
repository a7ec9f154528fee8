import { assert, assertEquals, assertMatch, assertNotEquals, assertThrows } from "@std/assert";
import { sha1 } from "../protocol/_sha1.ts";
import {
  acceptKey,
  buildUpgradeRequest,
  buildUpgradeResponse,
  generateKey,
  validateUpgradeRequest,
  verifyUpgradeResponse,
} from "../protocol/handshake.ts";
import {
  buildHttpResponse,
  type HttpRequestHead,
  type HttpResponseHead,
  parseRequestHead,
  parseResponseHead,
} from "../protocol/http1.ts";

const encoder = new TextEncoder();
const RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- SHA-1 and the accept key -------------------------------------------------

Deno.test("sha1 matches the FIPS 180 / RFC 3174 test vectors", () => {
  const digest = (text: string) => hex(sha1(encoder.encode(text)));
  assertEquals(digest(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  assertEquals(digest("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  assertEquals(
    digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
    "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
  );
  assertEquals(
    digest(
      "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
    ),
    "a49b2446a02c645bf419f995b67091253a04a259",
  );
  assertEquals(digest("a".repeat(1_000_000)), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
});

Deno.test("sha1 agrees with Web Crypto around the padding boundaries", async () => {
  // 55 bytes: padding fits in one block; 56: it spills into a second; 64: a
  // whole block plus a padding block; and everything around them.
  for (const length of [0, 1, 54, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000]) {
    const message = new Uint8Array(length);
    for (let i = 0; i < length; i++) message[i] = (i * 131 + 17) & 0xff;
    const expected = new Uint8Array(await crypto.subtle.digest("SHA-1", message));
    assertEquals(sha1(message), expected, `length ${length}`);
  }
});

Deno.test("acceptKey reproduces the RFC 6455 §1.3 / §4.2.2 example", () => {
  assertEquals(acceptKey(RFC_KEY), RFC_ACCEPT);
});

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

// --- validateUpgradeRequest ---------------------------------------------------------

/** A valid upgrade request head, with some header lines replaced or removed (null). */
function upgradeHead(
  changes: Record<string, string | null> = {},
  line: { method?: string; version?: string } = {},
): HttpRequestHead {
  const fields: Record<string, string | null> = {
    Host: "server.example.com",
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": RFC_KEY,
    "Sec-WebSocket-Version": "13",
    ...changes,
  };
  let text = `${line.method ?? "GET"} /chat HTTP/${line.version ?? "1.1"}\r\n`;
  for (const [name, value] of Object.entries(fields)) {
    if (value !== null) text += `${name}: ${value}\r\n`;
  }
  return completeHead(text + "\r\n");
}

Deno.test("validateUpgradeRequest accepts a valid request", () => {
  assertEquals(validateUpgradeRequest(upgradeHead()), { ok: true, key: RFC_KEY });
  assertEquals(validateUpgradeRequest(upgradeHead({ Origin: "http://example.com" })), {
    ok: true,
    key: RFC_KEY,
    origin: "http://example.com",
  });
  // HTTP/1.2 is still HTTP/1.x at or above 1.1.
  assert(validateUpgradeRequest(upgradeHead({}, { version: "1.2" })).ok);
});

Deno.test("validateUpgradeRequest: the method must be GET (405, Allow: GET)", () => {
  for (const method of ["POST", "get", "HEAD"]) {
    const decision = validateUpgradeRequest(upgradeHead({}, { method }));
    assert(!decision.ok);
    assertEquals(decision.status, 405);
    assertEquals(decision.headers, { Allow: "GET" });
  }
});

Deno.test("validateUpgradeRequest: HTTP/1.1 or later 1.x (400)", () => {
  for (const version of ["1.0", "0.9", "2.0"]) {
    const decision = validateUpgradeRequest(upgradeHead({}, { version }));
    assert(!decision.ok, version);
    assertEquals(decision.status, 400);
    assertMatch(decision.reason, /HTTP\/1\.1/);
  }
});

Deno.test("validateUpgradeRequest: exactly one Host (400)", () => {
  for (const changes of [{ Host: null }, { Host: "" }]) {
    const decision = validateUpgradeRequest(upgradeHead(changes));
    assert(!decision.ok);
    assertEquals(decision.status, 400);
  }
  const twice = completeHead(
    "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nUpgrade: websocket\r\nConnection: upgrade\r\n" +
      `Sec-WebSocket-Key: ${RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  const decision = validateUpgradeRequest(twice);
  assert(!decision.ok);
  assertEquals(decision.status, 400);
});

Deno.test("validateUpgradeRequest: Upgrade must list websocket (426, Upgrade: websocket)", () => {
  for (const upgrade of [null, "h2c", "websockets", ""]) {
    const decision = validateUpgradeRequest(upgradeHead({ Upgrade: upgrade }));
    assert(!decision.ok, String(upgrade));
    assertEquals(decision.status, 426);
    assertEquals(decision.headers, { Upgrade: "websocket" });
  }
  for (const upgrade of ["WebSocket", "WEBSOCKET", "h2c, websocket", " websocket "]) {
    assert(validateUpgradeRequest(upgradeHead({ Upgrade: upgrade })).ok, upgrade);
  }
});

Deno.test("validateUpgradeRequest: Connection must list upgrade (400)", () => {
  for (const connection of [null, "keep-alive", "upgraded", "close"]) {
    const decision = validateUpgradeRequest(upgradeHead({ Connection: connection }));
    assert(!decision.ok, String(connection));
    assertEquals(decision.status, 400);
    assertMatch(decision.reason, /Connection/);
  }
  for (const connection of ["keep-alive, Upgrade", "upgrade", "UPGRADE,keep-alive", ",upgrade,"]) {
    assert(validateUpgradeRequest(upgradeHead({ Connection: connection })).ok, connection);
  }
});

Deno.test("validateUpgradeRequest: Sec-WebSocket-Version must be 13 (426 with the version)", () => {
  for (const version of [null, "8", "12", "13, 8", "14"]) {
    const decision = validateUpgradeRequest(upgradeHead({ "Sec-WebSocket-Version": version }));
    assert(!decision.ok, String(version));
    assertEquals(decision.status, 426);
    assertEquals(decision.headers, { "Sec-WebSocket-Version": "13" });
  }
});

Deno.test("validateUpgradeRequest: the key must be base64 of 16 bytes (400)", () => {
  const bad = [
    null,
    "",
    "dGhlIHNhbXBsZSBub25jZQ", // no padding
    "dGhlIHNhbXBsZSBub25jZR==", // non-zero trailing bits: not canonical
    "dGhlIHNhbXBsZSBub25j", // 15 bytes' worth
    "dGhlIHNhbXBsZSBub25jZQ==AAAA",
    "dGhlIHNhbXBsZSBub25jZ!==",
    "dGhlIHNhbXBsZSBub25jZWU=", // 17 bytes
    `${RFC_KEY}, ${RFC_KEY}`, // sent twice
  ];
  for (const key of bad) {
    const decision = validateUpgradeRequest(upgradeHead({ "Sec-WebSocket-Key": key }));
    assert(!decision.ok, String(key));
    assertEquals(decision.status, 400, String(key));
  }
  const generated = generateKey();
  const decision = validateUpgradeRequest(upgradeHead({ "Sec-WebSocket-Key": generated }));
  assertEquals(decision, { ok: true, key: generated });
});

Deno.test("validateUpgradeRequest: a request with content is refused (400)", () => {
  // The bytes after the head are frames; a body in front of them would be read
  // as frames here while a proxy in between counts them as the body.
  const withContent: Record<string, string>[] = [
    { "Content-Length": "5" },
    { "Transfer-Encoding": "chunked" },
    { "Content-Length": "0", "Transfer-Encoding": "chunked" },
  ];
  for (const changes of withContent) {
    const decision = validateUpgradeRequest(upgradeHead(changes));
    assert(!decision.ok, JSON.stringify(changes));
    assertEquals(decision.status, 400);
    assertMatch(decision.reason, /content/);
  }
  assert(validateUpgradeRequest(upgradeHead({ "Content-Length": "0" })).ok);
});

Deno.test("validateUpgradeRequest picks the server's first supported subprotocol", () => {
  const head = upgradeHead({ "Sec-WebSocket-Protocol": "chat,  superchat ,v2" });
  const pick = (protocols?: string[]) => {
    const decision = validateUpgradeRequest(head, { protocols });
    assert(decision.ok);
    return decision.protocol;
  };
  assertEquals(pick(["superchat", "chat"]), "superchat");
  assertEquals(pick(["v3", "chat"]), "chat");
  assertEquals(pick(["Chat"]), undefined); // subprotocol names are compared exactly
  assertEquals(pick(["other"]), undefined); // no match is not an error
  assertEquals(pick(), undefined);
  const none = validateUpgradeRequest(upgradeHead(), { protocols: ["chat"] });
  assert(none.ok && none.protocol === undefined);
});

// --- Building responses ----------------------------------------------------------------

Deno.test("buildUpgradeResponse builds the 101 answer", () => {
  assertEquals(
    buildUpgradeResponse(RFC_KEY),
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${RFC_ACCEPT}\r\n\r\n`,
  );
  assertEquals(
    buildUpgradeResponse(RFC_KEY, { protocol: "chat", headers: { "X-Node": "a" } }),
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${RFC_ACCEPT}\r\nSec-WebSocket-Protocol: chat\r\nX-Node: a\r\n\r\n`,
  );
  assertThrows(() => buildUpgradeResponse(RFC_KEY, { protocol: "a b" }), TypeError);
  assertThrows(
    () => buildUpgradeResponse(RFC_KEY, { headers: { "X-Evil": "a\r\nSet-Cookie: x" } }),
    TypeError,
  );
  assertThrows(() => buildUpgradeResponse(RFC_KEY, { headers: { "X Evil": "a" } }), TypeError);
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

// --- Client side -------------------------------------------------------------------------

Deno.test("generateKey makes a fresh base64 key of 16 bytes", () => {
  const key = generateKey();
  assertMatch(key, /^[A-Za-z0-9+/]{22}==$/);
  assertEquals(atob(key).length, 16);
  assertNotEquals(generateKey(), key);
});

Deno.test("buildUpgradeRequest builds the §4.1 request", () => {
  assertEquals(
    buildUpgradeRequest({ host: "server.example.com", path: "/chat", key: RFC_KEY }),
    "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n" +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  const full = buildUpgradeRequest({
    host: "localhost:8080",
    path: "/ws?id=a",
    key: RFC_KEY,
    protocols: ["chat", "superchat"],
    origin: "http://example.com",
    headers: { Authorization: "Bearer t" },
  });
  assertEquals(
    full,
    "GET /ws?id=a HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\n" +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n` +
      "Sec-WebSocket-Protocol: chat, superchat\r\nOrigin: http://example.com\r\n" +
      "Authorization: Bearer t\r\n\r\n",
  );
  const options = { host: "a", key: RFC_KEY };
  assertThrows(() => buildUpgradeRequest({ ...options, path: "chat" }), TypeError);
  assertThrows(() => buildUpgradeRequest({ ...options, path: "/a b" }), TypeError);
  assertThrows(() => buildUpgradeRequest({ ...options, path: "/", protocols: ["a b"] }), TypeError);
  assertThrows(
    () => buildUpgradeRequest({ ...options, path: "/", protocols: ["a", "a"] }),
    TypeError,
  );
  assertThrows(() => buildUpgradeRequest({ ...options, host: "a\r\nX: y", path: "/" }), TypeError);
});

Deno.test("client and server handshakes round-trip", () => {
  const key = generateKey();
  const request = buildUpgradeRequest({ host: "h", path: "/ws", key, protocols: ["v2", "v1"] });
  const parsedRequest = parseRequestHead(encoder.encode(request));
  assert(parsedRequest.kind === "complete");
  const decision = validateUpgradeRequest(parsedRequest.head, { protocols: ["v1", "v2"] });
  assert(decision.ok);
  assertEquals(decision.key, key);
  assertEquals(decision.protocol, "v1");
  const response = buildUpgradeResponse(decision.key, { protocol: decision.protocol });
  const parsedResponse = parseResponseHead(encoder.encode(response));
  assert(parsedResponse.kind === "complete");
  assertEquals(verifyUpgradeResponse(parsedResponse.head, key, { protocols: ["v2", "v1"] }), {
    ok: true,
    protocol: "v1",
  });
});

/** A valid 101 response head for RFC_KEY, with some header lines replaced or removed. */
function responseHead(
  changes: Record<string, string | null> = {},
  status = 101,
): HttpResponseHead {
  const fields: Record<string, string | null> = {
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Accept": RFC_ACCEPT,
    ...changes,
  };
  const headers = new Headers();
  for (const [name, value] of Object.entries(fields)) {
    if (value !== null) headers.set(name, value);
  }
  return { version: "1.1", status, statusText: "", headers };
}

Deno.test("verifyUpgradeResponse accepts a valid answer", () => {
  assertEquals(verifyUpgradeResponse(responseHead(), RFC_KEY), { ok: true });
  assertEquals(
    verifyUpgradeResponse(
      responseHead({ Upgrade: "WebSocket", Connection: "keep-alive, upgrade" }),
      RFC_KEY,
    ),
    { ok: true },
  );
  assertEquals(
    verifyUpgradeResponse(responseHead({ "Sec-WebSocket-Protocol": "b" }), RFC_KEY, {
      protocols: ["a", "b"],
    }),
    { ok: true, protocol: "b" },
  );
  // The server may choose no subprotocol.
  assertEquals(verifyUpgradeResponse(responseHead(), RFC_KEY, { protocols: ["a"] }), { ok: true });
});

Deno.test("verifyUpgradeResponse fails each broken answer (§4.1)", () => {
  const cases: [string, HttpResponseHead, RegExp, string[]?][] = [
    ["status", responseHead({}, 200), /expected status 101, got 200/],
    ["no Upgrade", responseHead({ Upgrade: null }), /Upgrade/],
    ["wrong Upgrade", responseHead({ Upgrade: "h2c" }), /Upgrade/],
    ["no Connection", responseHead({ Connection: null }), /Connection/],
    ["wrong Connection", responseHead({ Connection: "close" }), /Connection/],
    ["no accept", responseHead({ "Sec-WebSocket-Accept": null }), /missing/],
    ["wrong accept", responseHead({ "Sec-WebSocket-Accept": acceptKey("other") }), /match/],
    ["extension", responseHead({ "Sec-WebSocket-Extensions": "permessage-deflate" }), /extension/],
    ["unrequested protocol", responseHead({ "Sec-WebSocket-Protocol": "chat" }), /not offered/],
    [
      "protocol not offered",
      responseHead({ "Sec-WebSocket-Protocol": "c" }),
      /not offered/,
      ["a", "b"],
    ],
  ];
  for (const [name, head, reason, protocols] of cases) {
    const verdict = verifyUpgradeResponse(head, RFC_KEY, { protocols });
    assert(!verdict.ok, name);
    assertMatch(verdict.reason, reason, name);
  }
});
