import { assertEquals, assertStrictEquals, assertThrows } from "@std/assert";
import {
  heartbeatAck,
  HeartbeatError,
  MAX_HEARTBEAT_ID_LENGTH,
  parseHeartbeat,
  parseHeartbeatAck,
} from "../protocol/heartbeat.ts";

Deno.test("parseHeartbeat accepts every valid form", () => {
  const cases: [string, unknown][] = [
    ['{"type":"heartbeat"}', { type: "heartbeat" }],
    ['{"type":"heartbeat","id":7}', { type: "heartbeat", id: 7 }],
    ['{"type":"heartbeat","id":"a-1"}', { type: "heartbeat", id: "a-1" }],
    ['{"type":"heartbeat","id":""}', { type: "heartbeat", id: "" }],
    ['{"type":"heartbeat","id":-1.5,"ts":0}', { type: "heartbeat", id: -1.5, ts: 0 }],
    ['{"type":"heartbeat","ts":1700000000000.25}', { type: "heartbeat", ts: 1700000000000.25 }],
  ];
  for (const [json, expected] of cases) assertEquals(parseHeartbeat(JSON.parse(json)), expected);
  const longest = "x".repeat(MAX_HEARTBEAT_ID_LENGTH);
  assertEquals(parseHeartbeat({ type: "heartbeat", id: longest }), {
    type: "heartbeat",
    id: longest,
  });
});

Deno.test("parseHeartbeat ignores unknown fields and leaves them out of the result", () => {
  const parsed = parseHeartbeat(
    JSON.parse('{"type":"heartbeat","id":1,"ts":2,"cseq":9,"payload":{"a":[1]},"seq":null}'),
  );
  assertEquals(parsed, { type: "heartbeat", id: 1, ts: 2 });
  assertEquals(Object.keys(parsed!), ["type", "id", "ts"]);
});

Deno.test("parseHeartbeat returns undefined for anything that is not a heartbeat", () => {
  const others: unknown[] = [
    null,
    undefined,
    42,
    "heartbeat",
    '{"type":"heartbeat"}',
    true,
    [],
    [{ type: "heartbeat" }],
    {},
    { type: "chat", text: "hi" },
    { type: "Heartbeat" },
    { type: "heartbeat_ack" },
    { type: ["heartbeat"] },
    { kind: "heartbeat" },
  ];
  for (const value of others) assertStrictEquals(parseHeartbeat(value), undefined);
});

Deno.test("parseHeartbeat rejects wrongly typed fields with a clear message", () => {
  const cases: [unknown, string][] = [
    [
      { type: "heartbeat", id: null },
      'heartbeat field "id" must be a string of at most 256 characters or a finite number, got null',
    ],
    [
      { type: "heartbeat", id: true },
      'field "id" must be a string of at most 256 characters or a finite number, got a boolean',
    ],
    [{ type: "heartbeat", id: { n: 1 } }, "got an object"],
    [{ type: "heartbeat", id: [1] }, "got an array"],
    [{ type: "heartbeat", id: NaN }, "got NaN"],
    [{ type: "heartbeat", id: "x".repeat(257) }, "got a string of 257 characters"],
    [
      { type: "heartbeat", ts: "1700000000000" },
      'heartbeat field "ts" must be a finite number, got a string of 13 characters',
    ],
    [{ type: "heartbeat", ts: null }, 'field "ts" must be a finite number, got null'],
    [{ type: "heartbeat", ts: Infinity }, 'field "ts" must be a finite number, got Infinity'],
    [{ type: "heartbeat", id: 1, ts: {} }, 'field "ts" must be a finite number, got an object'],
  ];
  for (const [value, message] of cases) {
    assertThrows(() => parseHeartbeat(value), HeartbeatError, message);
  }
});

Deno.test("HeartbeatError is a named Error", () => {
  const error = assertThrows(() => parseHeartbeat({ type: "heartbeat", ts: "x" }), HeartbeatError);
  assertEquals(error.name, "HeartbeatError");
  assertEquals(error instanceof Error, true);
});

Deno.test("heartbeatAck echoes id and ts exactly and adds server_ts only when given", () => {
  assertEquals(heartbeatAck({ type: "heartbeat" }), { type: "heartbeat_ack" });
  assertEquals(heartbeatAck({ type: "heartbeat", id: "abc", ts: 1700000000000.5 }), {
    type: "heartbeat_ack",
    id: "abc",
    ts: 1700000000000.5,
  });
  // A numeric id stays a number, a string id stays a string.
  assertStrictEquals(heartbeatAck({ type: "heartbeat", id: 5 }).id, 5);
  assertStrictEquals(heartbeatAck({ type: "heartbeat", id: "5" }).id, "5");
  assertEquals(
    JSON.stringify(heartbeatAck({ type: "heartbeat", id: 7, ts: 100 }, { serverTs: 112 })),
    '{"type":"heartbeat_ack","id":7,"ts":100,"server_ts":112}',
  );
  // Absent fields are absent, not undefined-valued keys.
  assertEquals(Object.keys(heartbeatAck({ type: "heartbeat", ts: 0 })), ["type", "ts"]);
});

Deno.test("heartbeat → JSON → parse → ack → JSON round-trips the echoed fields", () => {
  const wire = '{"type":"heartbeat","id":"c-42","ts":1700000000123,"extra":[1,2]}';
  const heartbeat = parseHeartbeat(JSON.parse(wire))!;
  const ackJson = JSON.stringify(heartbeatAck(heartbeat, { serverTs: 1700000000200 }));
  const ack = parseHeartbeatAck(JSON.parse(ackJson));
  assertEquals(ack, {
    type: "heartbeat_ack",
    id: "c-42",
    ts: 1700000000123,
    server_ts: 1700000000200,
  });
});

Deno.test("parseHeartbeatAck reads acks as strictly as heartbeats", () => {
  assertEquals(parseHeartbeatAck({ type: "heartbeat_ack" }), { type: "heartbeat_ack" });
  assertEquals(parseHeartbeatAck({ type: "heartbeat_ack", id: 1, ts: 2, server_ts: 3, x: 4 }), {
    type: "heartbeat_ack",
    id: 1,
    ts: 2,
    server_ts: 3,
  });
  for (const value of [null, "x", [], { type: "heartbeat" }, { type: "ack", seq: 1 }]) {
    assertStrictEquals(parseHeartbeatAck(value), undefined);
  }
  assertThrows(
    () => parseHeartbeatAck({ type: "heartbeat_ack", id: false }),
    HeartbeatError,
    'heartbeat_ack field "id"',
  );
  assertThrows(
    () => parseHeartbeatAck({ type: "heartbeat_ack", ts: "1" }),
    HeartbeatError,
    'heartbeat_ack field "ts" must be a finite number',
  );
  assertThrows(
    () => parseHeartbeatAck({ type: "heartbeat_ack", server_ts: null }),
    HeartbeatError,
    'heartbeat_ack field "server_ts" must be a finite number, got null',
  );
});
