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

// --- request heads for the validation tests -----------------------------------------

function completeHead(text: string): HttpRequestHead {
  const result = parseRequestHead(encoder.encode(text));
  if (result.kind !== "complete") throw new Error(`expected a complete head, got ${result.kind}`);
  return result.head;
}

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
