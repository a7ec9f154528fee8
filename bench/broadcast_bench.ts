/**
 * One broadcast to {@linkcode MEMBERS} connections: a message sent to each
 * with `send` (encoded and copied into every connection's batch, what the hub
 * did before) against one {@linkcode PreparedMessage} queued by reference on
 * each with `sendPrepared`. Sans-I/O ({@linkcode Connection}), so it measures
 * the encoding and queuing only; every batch is taken after the broadcast, as
 * a connection's flush would. `send` is the baseline, so `deno bench` prints
 * the ratio. Memory, the point of sharing, is what adversarial_fanout_test.ts
 * bounds: `send` holds MEMBERS copies until written, `sendPrepared` one.
 *
 * Run: `deno bench --allow-all bench/broadcast_bench.ts`
 *
 * @module
 */
import { Connection } from "../protocol/connection.ts";
import { PreparedMessage } from "../protocol/frame_encoder.ts";

const MEMBERS = 1000;

for (const size of [64, 1024]) {
  const text = "x".repeat(size);
  const connections = Array.from({ length: MEMBERS }, () => new Connection({ role: "server" }));
  const group = `broadcast ${size} B to ${MEMBERS}`;

  Deno.bench({ name: `send per member, ${size} B`, group, baseline: true }, () => {
    for (const connection of connections) connection.send(text);
    for (const connection of connections) connection.takeChunks();
  });

  Deno.bench({ name: `PreparedMessage + sendPrepared, ${size} B`, group }, () => {
    const message = new PreparedMessage(text);
    for (const connection of connections) connection.sendPrepared(message);
    for (const connection of connections) connection.takeChunks();
  });
}
