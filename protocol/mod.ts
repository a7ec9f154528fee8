/**
 * The sans-I/O core of heartwire: RFC 6455 as pure functions and state
 * machines. Bytes go in, events come out; messages go in, bytes come out.
 * Nothing here opens a socket, starts a timer or touches `Deno.*`, so every
 * line can be tested with plain byte arrays and read like a textbook.
 *
 * - {@linkcode Connection}: one whole connection — ready state, pings, the
 *   closing handshake, failing — as bytes in, events out, bytes out (§5–§7).
 * - {@linkcode FrameDecoder}: streaming frame parser and message reassembly (§5).
 * - {@linkcode FrameWriter} / {@linkcode encodeFrame}: frame serialisation (§5.2).
 * - {@linkcode RequestParser} / {@linkcode buildResponseHead}: HTTP/1.1 for a
 *   server (RFC 9112), bodies, keep-alive and pipelining included.
 * - {@linkcode validateUpgradeRequest} / {@linkcode buildUpgradeResponse}: the
 *   opening handshake (§4).
 * - {@linkcode CloseHandshake}: the closing handshake (§7).
 * - {@linkcode Utf8Validator}: incremental UTF-8 checking (§8.1).
 * - {@linkcode parseHeartbeat} and the `/ws` message parsers: the JSON
 *   application protocol on top.
 *
 * @example
 * ```ts
 * import { FrameDecoder, FrameWriter } from "@heartwire/heartwire/protocol";
 *
 * const client = new FrameWriter({ role: "client" });
 * client.text("hello");
 * const server = new FrameDecoder({ role: "server" });
 * const [event] = server.push(client.take());
 * console.log(event); // { type: "text", data: "hello" }
 * ```
 *
 * @module
 */
export * from "./opcodes.ts";
export * from "./close.ts";
export * from "./clock.ts";
export * from "./utf8.ts";
export * from "./frame_decoder.ts";
export * from "./frame_encoder.ts";
export * from "./connection.ts";
export * from "./http1.ts";
export * from "./handshake.ts";
export * from "./heartbeat.ts";
export * from "./messages.ts";
export * from "./deflate.ts";
