import { assertEquals, assertThrows } from "@std/assert";
import { Outbox, OutboxFullError } from "../client/outbox.ts";

Deno.test("Outbox: numbers messages from 1, stamps cseq, keeps order", () => {
  const outbox = new Outbox();
  assertEquals(outbox.push({ type: "chat", text: "a" }).cseq, 1);
  assertEquals(outbox.push({ type: "subscribe", room: "x" }).cseq, 2);
  assertEquals(outbox.entries.map((entry) => JSON.parse(entry.text)), [
    { type: "chat", text: "a", cseq: 1 },
    { type: "subscribe", room: "x", cseq: 2 },
  ]);
  assertEquals(outbox.nextCseq, 3);
});

Deno.test("Outbox: counts UTF-8 bytes exactly", () => {
  const outbox = new Outbox();
  for (const text of ["plain", "é", "中文", "🎉 party", "mixé中🎉"]) {
    const entry = outbox.push({ type: "chat", text });
    assertEquals(entry.bytes, new TextEncoder().encode(entry.text).length, text);
  }
  assertEquals(
    outbox.bytes,
    outbox.entries.reduce((sum, entry) => sum + new TextEncoder().encode(entry.text).length, 0),
  );
});

Deno.test("Outbox: acks are cumulative and free bytes", () => {
  const outbox = new Outbox();
  for (let i = 0; i < 5; i++) outbox.push({ type: "chat", text: `m${i}` });
  const before = outbox.bytes;
  assertEquals(outbox.ack(0), 0);
  assertEquals(outbox.ack(2), 2);
  assertEquals(outbox.entries.map((entry) => entry.cseq), [3, 4, 5]);
  assertEquals(outbox.bytes, before - 2 * outbox.entries[0].bytes);
  assertEquals(outbox.ack(2), 0); // a repeated ack changes nothing
  assertEquals(outbox.ack(99), 3);
  assertEquals([outbox.entries.length, outbox.bytes], [0, 0]);
  assertEquals(outbox.push({ type: "chat", text: "next" }).cseq, 6); // numbers never reused
});

Deno.test("Outbox: full throws OutboxFullError, queues nothing, uses no number", () => {
  const one = JSON.stringify({ type: "chat", text: "0123456789", cseq: 1 }).length;
  const outbox = new Outbox({ maxBytes: one * 2 });
  outbox.push({ type: "chat", text: "0123456789" });
  outbox.push({ type: "chat", text: "0123456789" });
  const error = assertThrows(
    () => outbox.push({ type: "chat", text: "0123456789" }),
    OutboxFullError,
  );
  assertEquals(error.name, "OutboxFullError");
  assertEquals(outbox.entries.length, 2);
  assertEquals(outbox.nextCseq, 3);
  outbox.ack(1);
  assertEquals(outbox.push({ type: "chat", text: "0123456789" }).cseq, 3); // room again
});
