import { assert, assertEquals, assertFalse, assertThrows } from "@std/assert";
import {
  isPublication,
  MessageError,
  parseClientMessage,
  parseLastCseq,
  parseRetryAfter,
  parseServerMessage,
  retryAfterReason,
  SESSION_ENDED,
  SESSION_TAKEN_OVER,
  takenOverReason,
} from "../protocol/messages.ts";

Deno.test("parseClientMessage reads protocol messages field by field and passes the application's whole", () => {
  assertEquals(parseClientMessage('{"type":"heartbeat"}'), { type: "heartbeat" });
  assertEquals(
    parseClientMessage('{"type":"heartbeat","id":"a1","ts":12.5,"junk":1}'),
    { type: "heartbeat", id: "a1", ts: 12.5 },
  );
  assertEquals(
    parseClientMessage('{"type":"subscribe","topic":"x","cseq":1,"extra":2}'),
    { type: "subscribe", topic: "x", cseq: 1 },
  );
  assertEquals(
    parseClientMessage('{"type":"subscribe","topic":"x","epoch":"e1","offset":0}'),
    { type: "subscribe", topic: "x", epoch: "e1", offset: 0 },
  );
  assertEquals(
    parseClientMessage('{"type":"unsubscribe","topic":"x"}'),
    { type: "unsubscribe", topic: "x" },
  );
  // The application's own types: checked for a valid cseq, kept whole.
  assertEquals(
    parseClientMessage('{"type":"chat","cseq":3,"text":"héllo ✓","topic":"r"}'),
    { type: "chat", cseq: 3, text: "héllo ✓", topic: "r" },
  );
  assertEquals(parseClientMessage('{"type":"move","x":[1,2]}'), { type: "move", x: [1, 2] });
});

Deno.test("parseClientMessage refuses bad input with a MessageError naming the problem", () => {
  const cases: [string, string][] = [
    ["not json", "not valid JSON"],
    ["", "not valid JSON"],
    ["[1,2]", 'string "type"'],
    ["null", 'string "type"'],
    ['"chat"', 'string "type"'],
    ['{"text":"hi"}', 'string "type"'],
    ['{"type":7}', 'string "type"'],
    ['{"type":"ack","cseq":1}', '"ack" is a server message type'],
    ['{"type":"welcome"}', '"welcome" is a server message type'],
    ['{"type":"chat","text":"hi","cseq":0}', 'chat field "cseq" must be a whole number >= 1'],
    ['{"type":"chat","text":"hi","cseq":1.5}', '"cseq" must be a whole number'],
    ['{"type":"chat","text":"hi","cseq":"1"}', '"cseq" must be a whole number'],
    ['{"type":"subscribe"}', 'subscribe field "topic" must be a string'],
    ['{"type":"subscribe","topic":"x","offset":1}', 'subscribe field "epoch" must be a string'],
    ['{"type":"subscribe","topic":"x","epoch":"e"}', 'subscribe field "offset"'],
    ['{"type":"subscribe","topic":"x","epoch":"e","offset":-1}', 'subscribe field "offset"'],
    ['{"type":"unsubscribe","topic":null}', 'unsubscribe field "topic" must be a string'],
    ['{"type":"heartbeat","ts":"now"}', 'heartbeat field "ts"'],
    [`{"type":"heartbeat","id":"${"x".repeat(257)}"}`, 'heartbeat field "id"'],
  ];
  for (const [text, expected] of cases) {
    assertThrows(() => parseClientMessage(text), MessageError, expected);
  }
});

Deno.test("parseClientMessage names a refused message by its cseq when that one is valid", () => {
  const cases: [string, number | undefined][] = [
    ['{"type":"subscribe","topic":5,"cseq":4}', 4],
    ['{"type":"ack","cseq":9}', 9],
    ['{"type":"heartbeat","ts":"now","cseq":2}', 2],
    ['{"type":"subscribe","topic":5}', undefined],
    ['{"type":"chat","text":"hi","cseq":0}', undefined],
    ['{"type":"ack","cseq":"3"}', undefined],
    ["not json", undefined],
  ];
  for (const [text, cseq] of cases) {
    assertEquals(assertThrows(() => parseClientMessage(text), MessageError).cseq, cseq, text);
  }
});

Deno.test("parseClientMessage never echoes a long unknown type in full", () => {
  const error = assertThrows(
    () => parseClientMessage(JSON.stringify({ type: "y".repeat(1000), cseq: "x" })),
    MessageError,
  );
  assert(error.message.length < 100, error.message);
});

Deno.test("parseServerMessage reads protocol messages field by field", () => {
  assertEquals(
    parseServerMessage(
      '{"type":"welcome","session":"s","id":"c","resumed":true,' +
        '"heartbeat":{"interval":25000,"timeout":10000,"x":1},"last_cseq":4,"extra":0}',
    ),
    {
      type: "welcome",
      session: "s",
      id: "c",
      resumed: true,
      heartbeat: { interval: 25000, timeout: 10000 },
      last_cseq: 4,
    },
  );
  assertEquals(
    parseServerMessage('{"type":"resume_failed","session":"s","reason":"expired"}'),
    { type: "resume_failed", session: "s", reason: "expired" },
  );
  assertEquals(
    parseServerMessage('{"type":"resume_failed","session":"s","reason":"expired","last_cseq":3}'),
    { type: "resume_failed", session: "s", reason: "expired", last_cseq: 3 },
  );
  assertEquals(
    parseServerMessage('{"type":"resume_failed","session":"s","reason":"x","last_cseq":0}'),
    { type: "resume_failed", session: "s", reason: "x", last_cseq: 0 },
    "0: the old session processed nothing, so everything may be re-sent",
  );
  assertEquals(
    parseServerMessage('{"type":"heartbeat_ack","id":7,"ts":1,"server_ts":2}'),
    { type: "heartbeat_ack", id: 7, ts: 1, server_ts: 2 },
  );
  assertEquals(parseServerMessage('{"type":"ack","cseq":0}'), { type: "ack", cseq: 0 });
  assertEquals(parseServerMessage('{"type":"error","reason":"no"}'), {
    type: "error",
    reason: "no",
  });
  assertEquals(parseServerMessage('{"type":"error","reason":"too long","cseq":3}'), {
    type: "error",
    reason: "too long",
    cseq: 3,
  });
  assertEquals(parseServerMessage('{"type":"reconnect","delay":500}'), {
    type: "reconnect",
    delay: 500,
  });
  assertEquals(parseServerMessage('{"type":"ack","cseq":2,"reply":{"sum":3}}'), {
    type: "ack",
    cseq: 2,
    reply: { sum: 3 },
  });
  assertEquals(
    parseServerMessage('{"type":"subscribed","topic":"t","epoch":"e","offset":4,"x":1}'),
    { type: "subscribed", topic: "t", epoch: "e", offset: 4 },
  );
  assertEquals(
    parseServerMessage(
      '{"type":"subscribed","topic":"t","epoch":"e","offset":0,"recovered":false}',
    ),
    { type: "subscribed", topic: "t", epoch: "e", offset: 0, recovered: false },
  );
  assertEquals(parseServerMessage('{"type":"unsubscribed","topic":"t"}'), {
    type: "unsubscribed",
    topic: "t",
  });
});

Deno.test("parseServerMessage keeps publications whole and requires their topic and offset", () => {
  const chat = parseServerMessage(
    '{"type":"chat","topic":"lobby","offset":7,"from":"c1","text":"hi","ts":5}',
  );
  assertEquals(chat, { type: "chat", topic: "lobby", offset: 7, from: "c1", text: "hi", ts: 5 });
  assert(isPublication(chat));
  assertFalse(isPublication(parseServerMessage('{"type":"ack","cseq":1}')));
  assertFalse(isPublication(parseServerMessage('{"type":"heartbeat_ack"}')));
  assertThrows(() => parseServerMessage('{"type":"chat","offset":1}'), MessageError, '"topic"');
  assertThrows(
    () => parseServerMessage('{"type":"chat","topic":"a","offset":0}'),
    MessageError,
    ">= 1",
  );
  assertThrows(
    () => parseServerMessage('{"type":"subscribe","topic":"a"}'),
    MessageError,
    "client message",
  );
});

Deno.test("parseServerMessage refuses malformed protocol messages", () => {
  const cases: [string, string][] = [
    ["{", "not valid JSON"],
    ["42", 'string "type"'],
    ['{"type":"welcome","session":"s","id":"c","resumed":false,"last_cseq":0}', '"heartbeat"'],
    [
      '{"type":"welcome","session":"s","id":"c","resumed":false,' +
      '"heartbeat":{"interval":0,"timeout":1},"last_cseq":0}',
      'welcome.heartbeat field "interval" must be a whole number >= 1',
    ],
    [
      '{"type":"welcome","session":"s","id":"c","resumed":"yes",' +
      '"heartbeat":{"interval":1,"timeout":1},"last_cseq":0}',
      '"resumed" must be a boolean',
    ],
    [
      '{"type":"welcome","session":1,"id":"c","resumed":false,' +
      '"heartbeat":{"interval":1,"timeout":1},"last_cseq":0}',
      'welcome field "session"',
    ],
    ['{"type":"resume_failed","session":"s"}', 'resume_failed field "reason"'],
    ...["-1", "1.5", '"3"', "null", "1e300"].map((bad): [string, string] => [
      `{"type":"resume_failed","session":"s","reason":"x","last_cseq":${bad}}`,
      'resume_failed field "last_cseq" must be a whole number >= 0',
    ]),
    ['{"type":"ack","seq":3}', 'ack field "cseq"'],
    ['{"type":"error"}', 'error field "reason"'],
    ['{"type":"error","reason":"x","cseq":0}', 'error field "cseq"'],
    ['{"type":"reconnect","delay":-5}', 'reconnect field "delay"'],
    ['{"type":"heartbeat_ack","server_ts":"x"}', 'heartbeat_ack field "server_ts"'],
    ['{"type":"subscribed","topic":"t","offset":1}', 'subscribed field "epoch"'],
    ['{"type":"subscribed","topic":"t","epoch":"e","offset":1,"recovered":1}', '"recovered"'],
    ['{"type":"unsubscribed"}', 'unsubscribed field "topic"'],
  ];
  for (const [text, expected] of cases) {
    assertThrows(() => parseServerMessage(text), MessageError, expected);
  }
});

Deno.test("retry hints round-trip only on 1012 and 1013", () => {
  assertEquals(retryAfterReason(5000), "retry-after=5000");
  assertEquals(retryAfterReason(-3), "retry-after=0");
  assertEquals(retryAfterReason(12.6), "retry-after=13");
  assertEquals(parseRetryAfter(1012, retryAfterReason(2500)), 2500);
  assertEquals(parseRetryAfter(1013, "retry-after=0"), 0);
  assertEquals(parseRetryAfter(1000, "retry-after=5000"), undefined);
  assertEquals(parseRetryAfter(1012, "retry-after=soon"), undefined);
  assertEquals(parseRetryAfter(1012, "retry-after=5000 "), undefined);
  assertEquals(parseRetryAfter(1013, "retry-after=1234567890"), undefined);
});

Deno.test("a takeover close carries last_cseq; a removed session has a code of its own", () => {
  assertEquals([SESSION_TAKEN_OVER, SESSION_ENDED], [4000, 4001]);
  assertEquals(takenOverReason(0), "last_cseq=0");
  assertEquals(takenOverReason(37), "last_cseq=37");
  const biggest = takenOverReason(Number.MAX_SAFE_INTEGER);
  assert(new TextEncoder().encode(biggest).length <= 123, "RFC 6455 §5.5: fits a close frame");
  assertEquals(parseLastCseq(4000, biggest), Number.MAX_SAFE_INTEGER);
  assertEquals(parseLastCseq(SESSION_TAKEN_OVER, takenOverReason(37)), 37);
  for (const bad of [-1, 1.5, NaN, Number.MAX_SAFE_INTEGER + 1]) {
    assertThrows(() => takenOverReason(bad), RangeError);
  }
  // Only a takeover carries it, and only in exactly this form.
  assertEquals(parseLastCseq(SESSION_ENDED, "last_cseq=37"), undefined);
  assertEquals(parseLastCseq(1000, "last_cseq=37"), undefined);
  assertEquals(parseLastCseq(4000, "session taken over"), undefined); // an older server
  assertEquals(parseLastCseq(4000, "last_cseq="), undefined);
  assertEquals(parseLastCseq(4000, "last_cseq=-1"), undefined);
  assertEquals(parseLastCseq(4000, "last_cseq=3 "), undefined);
  assertEquals(parseLastCseq(4000, "last_cseq=9007199254740992"), undefined); // not safe
  assertEquals(parseLastCseq(4000, "last_cseq=12345678901234567"), undefined);
});

Deno.test("presence messages: parsed both ways, reserved, and refused when malformed", () => {
  assertEquals(
    parseClientMessage('{"type":"presence_subscribe","topic":"lobby","cseq":2,"x":1}'),
    { type: "presence_subscribe", topic: "lobby", cseq: 2 },
  );
  assertEquals(
    parseClientMessage('{"type":"presence_unsubscribe","topic":"lobby"}'),
    { type: "presence_unsubscribe", topic: "lobby" },
  );
  assertThrows(() => parseClientMessage('{"type":"presence_subscribe"}'), MessageError);
  assertThrows(() => parseClientMessage('{"type":"presence_state"}'), MessageError);
  const state = {
    type: "presence_state",
    topic: "lobby",
    epoch: "n1:1",
    offset: 3,
    members: [{ id: "ann", status: "online", last_seen: 5 }],
  };
  assertEquals(parseServerMessage(JSON.stringify({ ...state, junk: 1 })), state);
  const leave = {
    type: "presence_leave",
    topic: "lobby",
    epoch: "n1:1",
    offset: 4,
    member: { id: "ann", status: "offline" },
    reason: "timeout",
  };
  const parsed = parseServerMessage(JSON.stringify(leave));
  assertEquals(parsed, leave);
  assertFalse(isPublication(parsed)); // not a topic's history: never delivered as a message
  for (
    const bad of [
      { ...state, members: "ann" },
      { ...state, members: [{ status: "online" }] },
      { ...leave, offset: 0 },
      { ...leave, member: null },
      { ...leave, reason: 7 },
      { type: "presence_subscribe", topic: "lobby" },
    ]
  ) {
    assertThrows(() => parseServerMessage(JSON.stringify(bad)), MessageError, undefined);
  }
});
