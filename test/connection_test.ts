/**
 * The sans-I/O Connection (protocol/connection.ts): every rule of the closing
 * handshake and of failing a connection, without TCP. A peer is played by a
 * FrameWriter (what it sends) and a FrameDecoder (what it reads back).
 */
import { assertEquals, assertFalse, assertStrictEquals, assertThrows } from "@std/assert";
import { Connection, type ConnectionEvent, ReadyState } from "../protocol/connection.ts";
import { type DecoderEvent, FrameDecoder } from "../protocol/frame_decoder.ts";
import { FrameWriter } from "../protocol/frame_encoder.ts";
import { bytesOf, utf8 } from "./_bytes.ts";

/** A server Connection and the client that talks to it. */
function setup(maxMessageSize?: number) {
  const server = new Connection({ role: "server", maxMessageSize });
  const client = new FrameWriter({ role: "client" });
  const reader = new FrameDecoder({ role: "client" });
  return {
    server,
    client,
    /** Delivers what the client wrote to the server; returns the server's events. */
    deliver(): ConnectionEvent[] {
      server.receive(client.take());
      return drain(server);
    },
    /** What the server sent, as the client decodes it. */
    sent(): DecoderEvent[] {
      return reader.push(server.take());
    },
  };
}

function drain(connection: Connection): ConnectionEvent[] {
  const events: ConnectionEvent[] = [];
  for (let event; (event = connection.nextEvent()) !== undefined;) events.push(event);
  return events;
}

Deno.test("a connection starts open and echoes messages it is asked to send", () => {
  const { server, client, deliver, sent } = setup();
  assertStrictEquals(server.readyState, ReadyState.Open);
  client.text("hello");
  client.binary(bytesOf(1, 2, 3));
  const events = deliver();
  assertEquals(events, [
    { type: "text", data: "hello" },
    { type: "binary", data: bytesOf(1, 2, 3) },
  ]);
  assertEquals(server.send("hello"), true);
  assertEquals(server.bufferedAmount, 7);
  assertEquals(sent(), [{ type: "text", data: "hello" }]);
  assertEquals(server.bufferedAmount, 0);
  assertFalse(server.finished);
});

Deno.test("a ping is answered with a pong of the same payload (§5.5.3)", () => {
  const { client, deliver, sent } = setup();
  client.ping(utf8("abc"));
  assertEquals(deliver(), [{ type: "ping", data: utf8("abc") }]);
  assertEquals(sent(), [{ type: "pong", data: utf8("abc") }]);
});

Deno.test("a pong is reported and not answered", () => {
  const { server, client, deliver } = setup();
  client.pong(utf8("x"));
  assertEquals(deliver(), [{ type: "pong", data: utf8("x") }]);
  assertEquals(server.take().length, 0);
});

Deno.test("peer-initiated close: echoed with the peer's code, then finished (§5.5.1)", () => {
  const { server, client, deliver, sent } = setup();
  client.close(4001, "bye");
  assertEquals(deliver(), [{ type: "close", code: 4001, reason: "bye" }]);
  assertStrictEquals(server.readyState, ReadyState.Closing);
  assertEquals(sent(), [{ type: "close", code: 4001, reason: "bye" }]);
  assertEquals(server.finished, true);
  assertEquals(server.wasClean, true);
  assertEquals(server.closeCode, 4001);
  assertEquals(server.closeReason, "bye");
  // Nothing may follow a close frame.
  assertEquals(server.send("late"), false);
  assertEquals(server.ping(), false);
  assertEquals(server.close(), false);
  assertEquals(server.take().length, 0);
  server.transportClosed();
  assertStrictEquals(server.readyState, ReadyState.Closed);
  assertEquals(server.wasClean, true);
});

Deno.test("a close frame with no payload is reported as 1005 and echoed empty (§7.1.5)", () => {
  const { server, client, deliver, sent } = setup();
  client.close();
  assertEquals(deliver(), [{ type: "close", code: 1005, reason: "" }]);
  assertEquals(sent(), [{ type: "close", code: 1005, reason: "" }]);
  assertEquals(server.take().length, 0);
});

Deno.test("local close: a close frame, then the peer's messages still arrive until its close", () => {
  const { server, client, deliver, sent } = setup();
  assertEquals(server.close(1001, "going away"), true);
  assertStrictEquals(server.readyState, ReadyState.Closing);
  assertEquals(sent(), [{ type: "close", code: 1001, reason: "going away" }]);
  assertFalse(server.finished);
  assertEquals(server.send("no"), false);

  // The peer had not seen our close yet: its messages are delivered (§7.1.2).
  client.text("still talking");
  client.ping(utf8("p"));
  const events = deliver();
  assertEquals(events, [
    { type: "text", data: "still talking" },
    { type: "ping", data: utf8("p") },
  ]);
  // …but a ping after our close frame gets no pong: nothing follows a close frame.
  assertEquals(server.take().length, 0);

  client.close(1000, "ok");
  assertEquals(deliver(), [{ type: "close", code: 1000, reason: "ok" }]);
  assertEquals(server.take().length, 0, "our close frame is not sent twice");
  assertEquals(server.finished, true);
  assertEquals(server.wasClean, true);
  assertEquals(server.closeCode, 1001, "the code is the first close frame's");
  assertFalse(server.failing);
});

Deno.test("a second close is ignored", () => {
  const { server, sent } = setup();
  assertEquals(server.close(1000), true);
  assertEquals(server.close(4000, "again"), false);
  assertEquals(sent(), [{ type: "close", code: 1000, reason: "" }]);
  assertEquals(server.closeCode, 1000);
});

Deno.test("close() refuses a code or reason that may not be sent, before anything happens", () => {
  const { server } = setup();
  assertThrows(() => server.close(1005), RangeError);
  assertThrows(() => server.close(1000, "x".repeat(124)), RangeError);
  assertStrictEquals(server.readyState, ReadyState.Open);
  assertEquals(server.take().length, 0);
});

for (
  const [name, code, bytes] of [
    // §5.1: a client must mask; this frame is not masked.
    ["an unmasked frame fails with 1002", 1002, bytesOf(0x81, 0x01, 0x61)],
    // §5.2: RSV1 set, no extension negotiated.
    ["a reserved bit fails with 1002", 1002, bytesOf(0xc1, 0x80, 0, 0, 0, 0)],
    // §8.1: 0xff is never valid UTF-8.
    ["invalid UTF-8 fails with 1007", 1007, bytesOf(0x81, 0x81, 0, 0, 0, 0, 0xff)],
    // A 2-byte frame header announcing 200 bytes, over a 100-byte limit.
    ["a message over the limit fails with 1009", 1009, bytesOf(0x82, 0xfe, 0, 200, 0, 0, 0, 0)],
  ] as const
) {
  Deno.test(`failing: ${name} (§7.1.7)`, () => {
    const server = new Connection({ role: "server", maxMessageSize: 100 });
    server.receive(bytes);
    const [event, ...rest] = drain(server);
    assertEquals(event.type, "error");
    assertEquals((event as { code: number }).code, code);
    assertEquals(rest, []);
    assertEquals(server.failing, true);
    assertEquals(server.finished, true);
    assertStrictEquals(server.readyState, ReadyState.Closing);
    const [close] = new FrameDecoder({ role: "client" }).push(server.take());
    assertEquals(close.type, "close");
    assertEquals((close as { code: number }).code, code);
    assertEquals(server.closeCode, code);
    assertFalse(server.wasClean);
  });
}

Deno.test("failing: messages before the error are delivered, nothing after it", () => {
  const { server, client } = setup();
  client.text("before");
  const good = client.take();
  const bad = bytesOf(0x81, 0x01, 0x61); // unmasked
  client.text("after");
  client.ping();
  const after = client.take();
  const chunk = new Uint8Array(good.length + bad.length + after.length);
  chunk.set(good);
  chunk.set(bad, good.length);
  chunk.set(after, good.length + bad.length);
  server.receive(chunk);
  const events = drain(server);
  assertEquals(events.map((event) => event.type), ["text", "error"]);
  // Still reading (lingering): nothing more is processed.
  client.text("later");
  server.receive(client.take());
  assertEquals(drain(server), []);
  assertEquals(server.send("x"), false);
});

Deno.test("fail() between events of one read drops the messages that follow (§7.1.7)", () => {
  const { server, client, sent } = setup();
  client.text("one");
  client.text("two");
  client.ping();
  server.receive(client.take());
  const first = server.nextEvent();
  assertEquals(first, { type: "text", data: "one" });
  server.fail(1011, "internal error");
  assertEquals(server.nextEvent(), undefined, "no message and no ping after failing");
  assertEquals(sent(), [{ type: "close", code: 1011, reason: "internal error" }]);
  assertEquals(server.failing, true);
  server.fail(1002, "again"); // a second failure changes nothing
  assertEquals(server.take().length, 0);
  assertEquals(server.closeCode, 1011);
});

Deno.test("close() in reaction to a message: the ping that follows gets no pong", () => {
  const { server, client, sent } = setup();
  client.text("quit");
  client.ping(utf8("late"));
  server.receive(client.take());
  assertEquals(server.nextEvent(), { type: "text", data: "quit" });
  server.close(1000, "as you wish");
  assertEquals(server.nextEvent(), { type: "ping", data: utf8("late") });
  assertEquals(sent(), [{ type: "close", code: 1000, reason: "as you wish" }]);
});

Deno.test("pings while the peer's message is in fragments are answered in place (§5.4)", () => {
  const { server, client, sent } = setup();
  const fragmenting = new FrameWriter({ role: "client", fragmentSize: 2 });
  fragmenting.text("abcd");
  const fragments = fragmenting.take();
  client.ping(utf8("in"));
  const ping = client.take();
  // The first fragment (6-byte header + 2 bytes), the ping, then the last fragment.
  const chunk = new Uint8Array(fragments.length + ping.length);
  chunk.set(fragments.subarray(0, 8));
  chunk.set(ping, 8);
  chunk.set(fragments.subarray(8), 8 + ping.length);
  server.receive(chunk);
  assertEquals(drain(server), [
    { type: "ping", data: utf8("in") },
    { type: "text", data: "abcd" },
  ]);
  assertEquals(sent(), [{ type: "pong", data: utf8("in") }]);
});

Deno.test("EOF without a close frame: closed, not clean, code 1006 (§7.1.5)", () => {
  const { server } = setup();
  server.transportClosed();
  assertStrictEquals(server.readyState, ReadyState.Closed);
  assertEquals(server.closeCode, 1006);
  assertEquals(server.closeReason, "");
  assertFalse(server.wasClean);
  assertEquals(server.send("x"), false);
  assertEquals(server.ping(), false);
  assertEquals(server.close(), false);
  server.receive(bytesOf(0x81, 0x80, 0, 0, 0, 0));
  assertEquals(server.nextEvent(), undefined, "nothing is read after the transport closed");
});

Deno.test("close timeout after our close: our code stays, but the close was not clean", () => {
  const { server } = setup();
  server.close(4002, "bye");
  server.transportClosed(); // the I/O layer gave up waiting
  assertEquals(server.closeCode, 4002);
  assertFalse(server.wasClean);
  assertStrictEquals(server.readyState, ReadyState.Closed);
});

Deno.test("queued bytes are dropped when the transport closes", () => {
  const { server } = setup();
  server.send("never sent");
  server.transportClosed();
  assertEquals(server.bufferedAmount, 0);
});

Deno.test("an invalid close payload fails the connection with 1002", () => {
  const server = new Connection({ role: "server" });
  const client = new FrameWriter({ role: "client" });
  client.ping(); // a valid frame first, then a 1-byte close payload by hand
  server.receive(client.take());
  server.receive(bytesOf(0x88, 0x81, 0, 0, 0, 0, 0x03));
  assertEquals(drain(server).map((event) => event.type), ["ping", "error"]);
  assertEquals(server.closeCode, 1002);
});

Deno.test("client role: reads unmasked frames and masks what it sends (§5.1)", () => {
  const client = new Connection({ role: "client" });
  const server = new FrameWriter({ role: "server" });
  server.text("hi");
  server.ping(utf8("?"));
  client.receive(server.take());
  assertEquals(drain(client), [
    { type: "text", data: "hi" },
    { type: "ping", data: utf8("?") },
  ]);
  client.send("yo");
  const reader = new FrameDecoder({ role: "server" }); // expects masked frames
  assertEquals(reader.push(client.take()), [
    { type: "pong", data: utf8("?") },
    { type: "text", data: "yo" },
  ]);
  // The server's close is echoed; the client then waits for the server to close TCP.
  server.close(1000);
  client.receive(server.take());
  assertEquals(drain(client), [{ type: "close", code: 1000, reason: "" }]);
  assertEquals(reader.push(client.take()), [{ type: "close", code: 1000, reason: "" }]);
  assertEquals(client.finished, true);
});

Deno.test("events left from one receive are kept when more bytes arrive", () => {
  const { server, client } = setup();
  client.text("a");
  client.text("b");
  server.receive(client.take());
  assertEquals(server.nextEvent(), { type: "text", data: "a" });
  client.text("c");
  server.receive(client.take());
  assertEquals(drain(server), [{ type: "text", data: "b" }, { type: "text", data: "c" }]);
});
