/**
 * One WebSocket connection as a state machine, with no I/O (RFC 6455 §5–§7).
 *
 * A {@linkcode Connection} is what is left of a WebSocket once the sockets,
 * timers and callbacks are taken away: bytes from the peer go in, events come
 * out, and the bytes to send pile up until the caller takes them.
 *
 * ```text
 *  bytes from the peer                            send() ping() close() fail()
 *         │ receive()                                        │
 *         ▼                                                  ▼
 *  ┌──────────────┐  events  ┌───────────────────────────────────────┐
 *  │ FrameDecoder │────────▶ │ the rules: pong to ping (§5.5.3),     │
 *  └──────────────┘          │ echo close (§5.5.1), fail (§7.1.7),   │──▶ nextEvent():
 *                            │ readyState, CloseHandshake (§7)       │    to the application
 *                            └───────────────────┬───────────────────┘
 *                                                ▼
 *                                         ┌─────────────┐
 *                                         │ FrameWriter │──▶ take() / takeChunks():
 *                                         └─────────────┘    bytes for the peer
 * ```
 *
 * Its parts: {@linkcode FrameDecoder} parses frames, {@linkcode FrameWriter}
 * serialises them and {@linkcode CloseHandshake} tracks the closing
 * handshake. The connection adds the rules that tie them together.
 *
 * What it leaves to the I/O layer: reading and writing the transport, timers
 * (keepalive, the close timeout) and telling it, with
 * {@linkcode Connection.transportClosed}, that the transport is gone.
 *
 * @module
 */

import { CloseCode, CloseHandshake, encodeClosePayload } from "./close.ts";
import { type DecoderEvent, FrameDecoder } from "./frame_decoder.ts";
import { FrameWriter, type PreparedMessage } from "./frame_encoder.ts";
import type { PerMessageDeflate } from "./deflate.ts";
import { Opcode } from "./opcodes.ts";

/**
 * The `readyState` values of the WebSocket API, which the connection moves
 * through: `Open` when created (the opening handshake, §4, is
 * handshake.ts's), `Closing` from the first close frame either way or once
 * failed, `Closed` once the I/O layer reports the transport gone.
 * `Connecting` is the value an I/O layer shows before it has a connection.
 *
 * @example
 * ```ts
 * import { Connection, ReadyState } from "@heartwire/heartwire/protocol";
 * const connection = new Connection({ role: "server" });
 * connection.readyState === ReadyState.Open; // true
 * ```
 */
export const ReadyState = {
  /** The opening handshake is not finished. */
  Connecting: 0,
  /** Messages flow both ways. */
  Open: 1,
  /** A close frame was sent or received, or the connection is being failed. */
  Closing: 2,
  /** The transport is gone. */
  Closed: 3,
} as const;

/**
 * One of the {@linkcode ReadyState} values.
 *
 * @example
 * ```ts
 * import type { ReadyStateValue } from "@heartwire/heartwire/protocol";
 * const names: Record<ReadyStateValue, string> = ["connecting", "open", "closing", "closed"];
 * ```
 */
export type ReadyStateValue = typeof ReadyState[keyof typeof ReadyState];

/**
 * Options for {@linkcode Connection}.
 *
 * @example
 * ```ts
 * import { Connection, type ConnectionParams } from "@heartwire/heartwire/protocol";
 * const params: ConnectionParams = { role: "server", maxMessageSize: 64 * 1024 };
 * const connection = new Connection(params);
 * ```
 */
export interface ConnectionParams {
  /**
   * Which end this is. A server expects masked frames and sends unmasked
   * ones; a client the reverse (§5.1). After the closing handshake the server
   * closes the transport first (§7.1.1).
   */
  role: "server" | "client";
  /** Largest reassembled message accepted, in bytes; bigger fail with 1009. Default 1 MiB. */
  maxMessageSize?: number;
  /** Largest single frame accepted, in bytes. Default `maxMessageSize`. */
  maxFrameSize?: number;
  /**
   * permessage-deflate (RFC 7692), when the handshake negotiated it: messages
   * from its threshold on are sent compressed, and compressed messages from
   * the peer are inflated within `maxMessageSize`. The connection closes it
   * when the transport closes.
   */
  deflate?: PerMessageDeflate;
}

/**
 * What {@linkcode Connection.nextEvent} reports: the {@linkcode DecoderEvent}s,
 * after the connection has applied its rules to them.
 *
 * - `text`, `binary`: a message for the application.
 * - `ping`: the peer pinged; the pong is already queued (§5.5.3).
 * - `pong`: the peer answered a ping (or sent an unsolicited pong).
 * - `close`: the peer's close frame; our answer, if one was owed, is queued (§5.5.1).
 * - `error`: the peer broke the protocol; the connection is failing and our
 *   close frame with `code` is queued (§7.1.7).
 *
 * @example
 * ```ts
 * import type { ConnectionEvent } from "@heartwire/heartwire/protocol";
 * function log(event: ConnectionEvent): void {
 *   if (event.type === "close") console.log(`peer closed with ${event.code}`);
 * }
 * ```
 */
export type ConnectionEvent = DecoderEvent;

const NO_EVENTS: DecoderEvent[] = [];
const textEncoder = new TextEncoder();

/**
 * A WebSocket connection without I/O, for either end: bytes in, events out,
 * bytes to send out (in the manner of python-hyper's wsproto).
 *
 * The rules it keeps, so that no I/O layer has to:
 * - a ping is answered with a pong of the same payload, unless our close
 *   frame already went out (§5.5.2, §5.5.3);
 * - the peer's close frame is echoed with its code, and nothing is sent
 *   after a close frame (§5.5.1);
 * - after our close, the peer's messages are still delivered until its close
 *   frame arrives (§7.1.2); once the connection is *failed* — by a protocol
 *   error or by {@linkcode Connection.fail} — nothing more is (§7.1.7);
 * - a second close, or a send after close, is ignored (returns false);
 * - a transport that ends before both close frames were exchanged is an
 *   unclean close, code 1006 if no close frame was seen (§7.1.5).
 *
 * @example Echo, driven by hand
 * ```ts
 * import { Connection, FrameWriter } from "@heartwire/heartwire/protocol";
 *
 * const server = new Connection({ role: "server" });
 * const client = new FrameWriter({ role: "client" });
 * client.text("hello");
 * client.ping();
 * server.receive(client.take());
 * for (let event; (event = server.nextEvent()) !== undefined;) {
 *   if (event.type === "text") server.send(event.data); // echo
 * }
 * const reply = server.take(); // the echoed "hello", then the pong
 * console.log(reply.length); // 9
 * ```
 *
 * @example Failing a connection
 * ```ts
 * import { Connection } from "@heartwire/heartwire/protocol";
 *
 * const server = new Connection({ role: "server" });
 * server.receive(new Uint8Array([0x81, 0x05])); // unmasked, from a client: §5.1
 * const event = server.nextEvent(); // { type: "error", code: 1002, ... }
 * server.failing; // true: send what take() returns, then close the transport
 * server.finished; // true
 * ```
 */
export class Connection {
  /** Which end of the connection this is. */
  readonly role: "server" | "client";

  readonly #decoder: FrameDecoder;
  readonly #writer: FrameWriter;
  readonly #close = new CloseHandshake();
  readonly #deflate: PerMessageDeflate | undefined;
  #readyState: ReadyStateValue = ReadyState.Open;
  #failing = false;

  /** Decoded events not yet handed out by nextEvent(), from #next on. */
  #events: DecoderEvent[] = NO_EVENTS;
  #next = 0;

  /** Creates the connection of one end, right after the opening handshake. */
  constructor(params: ConnectionParams) {
    this.role = params.role;
    const deflate = this.#deflate = params.deflate;
    this.#decoder = new FrameDecoder({
      role: params.role,
      maxMessageSize: params.maxMessageSize,
      maxFrameSize: params.maxFrameSize,
      inflate: deflate && ((payload, maxLength) => deflate.decompress(payload, maxLength)),
    });
    this.#writer = new FrameWriter({ role: params.role });
  }

  // ---- state ---------------------------------------------------------------

  /** Where the connection stands: a {@linkcode ReadyState} value. */
  get readyState(): ReadyStateValue {
    return this.#readyState;
  }

  /**
   * True once the connection is being failed (§7.1.7): a protocol error or
   * {@linkcode Connection.fail}. No more messages are delivered, and the peer
   * may still be sending — a server should keep reading and discarding for a
   * little while after its close frame is written, so that closing the
   * transport with unread bytes does not turn into a reset that destroys the
   * close frame on its way.
   */
  get failing(): boolean {
    return this.#failing;
  }

  /**
   * True once nothing more will be sent and nothing more is expected: both
   * close frames were exchanged, or the connection was failed. Once the bytes
   * in {@linkcode Connection.take} are written, the transport should be
   * closed — by the server at once; a client waits a little for the server to
   * do it (§7.1.1).
   */
  get finished(): boolean {
    return this.#failing || this.#close.state === "closed";
  }

  /** The close code: the first close frame's (either way), 1006 if none was exchanged. */
  get closeCode(): number {
    return this.#close.code;
  }

  /** The reason that went with {@linkcode Connection.closeCode}. */
  get closeReason(): string {
    return this.#close.reason;
  }

  /** True once both close frames were exchanged (§7.1.2). */
  get wasClean(): boolean {
    return this.#close.wasClean;
  }

  /** Bytes queued to send that {@linkcode Connection.take} has not handed out yet. */
  get bufferedAmount(): number {
    return this.#writer.length;
  }

  /**
   * Bytes of memory held for input in progress: a frame cut across reads and
   * a fragmented message being reassembled. It follows the bytes received,
   * never the number of fragments: at most about twice the message limit.
   */
  get bufferedIncoming(): number {
    return this.#decoder.bufferedBytes;
  }

  // ---- bytes in, events out -------------------------------------------------

  /**
   * Feeds bytes read from the peer, split anywhere. Then call
   * {@linkcode Connection.nextEvent} until it returns undefined. `bytes` is
   * neither modified nor kept. Ignored once the peer's close frame arrived,
   * the connection failed, or the transport closed.
   */
  receive(bytes: Uint8Array): void {
    if (this.#readyState === ReadyState.Closed || this.#failing || this.#decoder.done) return;
    const events = this.#decoder.push(bytes);
    if (this.#next >= this.#events.length) {
      this.#events = events;
      this.#next = 0;
    } else {
      for (let i = 0; i < events.length; i++) this.#events.push(events[i]);
    }
  }

  /**
   * The next event from the bytes received, or undefined when there is none.
   *
   * Events are taken one at a time, not as a list, because what the
   * application does with one decides the fate of the next: after a
   * `close()` in reaction to a message, the ping that follows it in the same
   * read gets no pong; after `fail()`, the messages that follow are dropped.
   */
  nextEvent(): ConnectionEvent | undefined {
    const events = this.#events;
    while (this.#next < events.length) {
      const event = events[this.#next++];
      if (this.#apply(event)) return event;
    }
    this.#events = NO_EVENTS;
    this.#next = 0;
    return undefined;
  }

  /** Applies the connection's rules to one decoded event; false drops it. */
  #apply(event: DecoderEvent): boolean {
    if (this.#readyState === ReadyState.Closed) return false;
    switch (event.type) {
      case "text":
      case "binary":
        // §7.1.7: once failed, "no further data" is processed. After our own
        // close the peer may still be sending, and that is delivered (§7.1.2).
        return !this.#failing;
      case "ping":
        if (this.#failing) return false;
        // §5.5.3: answer with the same payload, unless our close frame went out.
        if (this.#close.canSend) this.#writer.pong(event.data);
        return true;
      case "pong":
        return !this.#failing;
      case "close":
        this.#onPeerClose(event.code, event.reason);
        return true;
      case "error":
        this.fail(event.code, event.reason);
        return true;
    }
  }

  /** The peer's close frame (§5.5.1): echo it, unless ours already went out. */
  #onPeerClose(code: number, reason: string): void {
    const reply = this.#close.receive(code, reason);
    if (reply !== undefined) {
      this.#writer.close(reply.code, reply.reason);
      this.#close.answered();
    }
    this.#readyState = ReadyState.Closing;
  }

  // ---- messages in, bytes out -----------------------------------------------

  /**
   * Queues a text (string) or binary message. Returns false, queuing
   * nothing, unless the connection is open.
   *
   * A binary message of 16 KiB or more is referenced, not copied, until it
   * is taken: see {@linkcode FrameWriter.binary}.
   */
  send(data: string | Uint8Array): boolean {
    if (this.#readyState !== ReadyState.Open) return false;
    if (this.#deflate !== undefined && this.#compress(data)) return true;
    if (typeof data === "string") this.#writer.text(data);
    else this.#writer.binary(data);
    return true;
  }

  /**
   * Sends `data` compressed (RFC 7692 §7.2.1) unless it is below the
   * threshold; a string's UTF-16 length × 3 bounds its UTF-8 size, so short
   * text is never encoded twice.
   */
  #compress(data: string | Uint8Array): boolean {
    const deflate = this.#deflate!;
    const isText = typeof data === "string";
    if ((isText ? data.length * 3 : data.length) < deflate.threshold) return false;
    const compressed = deflate.compress(isText ? textEncoder.encode(data) : data);
    if (compressed === undefined) return false;
    this.#writer.compressed(isText ? Opcode.Text : Opcode.Binary, compressed);
    return true;
  }

  /**
   * Queues a {@linkcode PreparedMessage} — a frame encoded once for many
   * connections — by reference (see {@linkcode FrameWriter.prepared}).
   * Returns false, queuing nothing, unless the connection is open.
   *
   * @throws {TypeError} on a client connection, whose frames must be masked (§5.3).
   */
  sendPrepared(message: PreparedMessage): boolean {
    if (this.#readyState !== ReadyState.Open) return false;
    this.#writer.prepared(message);
    return true;
  }

  /**
   * Queues a ping (§5.5.2). Returns false once our close frame went out.
   *
   * @throws {RangeError} if `payload` is over 125 bytes (§5.5).
   */
  ping(payload?: Uint8Array): boolean {
    if (this.#readyState === ReadyState.Closed || !this.#close.canSend) return false;
    this.#writer.ping(payload);
    return true;
  }

  /**
   * Queues an unsolicited pong, a one-way heartbeat (§5.5.3). Returns false
   * once our close frame went out.
   *
   * @throws {RangeError} if `payload` is over 125 bytes (§5.5).
   */
  pong(payload?: Uint8Array): boolean {
    if (this.#readyState === ReadyState.Closed || !this.#close.canSend) return false;
    this.#writer.pong(payload);
    return true;
  }

  /**
   * Starts the closing handshake (§7.1.2): queues a close frame and moves to
   * `Closing`. Messages from the peer are still delivered until its close
   * frame arrives. Returns false, doing nothing, unless the connection is open.
   *
   * @throws {RangeError} before anything happens, if `code` may not be sent
   * (§7.4) or `reason` is over 123 UTF-8 bytes.
   */
  close(code: number = CloseCode.Normal, reason = ""): boolean {
    encodeClosePayload(code, reason);
    if (this.#readyState !== ReadyState.Open) return false;
    this.#sendClose(code, reason);
    return true;
  }

  /**
   * Fails the connection (§7.1.7): queues a close frame with `code` unless
   * one already went out, and delivers nothing more. The decoder does this by
   * itself on a protocol error (1002, 1007, 1009); the I/O layer calls it for
   * its own reasons, such as 1011 when the application failed.
   *
   * @throws {RangeError} if `code` may not be sent or `reason` is over 123 bytes.
   */
  fail(code: number, reason = ""): void {
    encodeClosePayload(code, reason);
    if (this.#readyState === ReadyState.Closed || this.#failing) return;
    this.#failing = true;
    this.#sendClose(code, reason);
  }

  #sendClose(code: number, reason: string): void {
    if (this.#close.start(code, reason)) this.#writer.close(code, reason);
    this.#readyState = ReadyState.Closing;
  }

  /**
   * The bytes to send, in order, as one array; empty if there are none. The
   * array is valid until the next take: write it before then.
   */
  take(): Uint8Array {
    return this.#writer.take();
  }

  /**
   * The bytes to send as a list of chunks, written in order: large binary
   * payloads come as their own chunk, straight from the sender's array, the
   * rest as runs of small frames. Valid until the next take.
   */
  takeChunks(): Uint8Array[] {
    return this.#writer.takeChunks();
  }

  // ---- the end ---------------------------------------------------------------

  /**
   * The I/O layer reports that the transport is gone: read EOF, a reset, a
   * timeout, or it closed the transport itself. The connection is `Closed`;
   * if the closing handshake did not complete the close was not clean, and
   * without any close frame its code is 1006 (§7.1.5). Whatever was queued
   * is dropped.
   */
  transportClosed(): void {
    if (this.#readyState === ReadyState.Closed) return;
    this.#readyState = ReadyState.Closed;
    this.#close.terminated();
    this.#deflate?.close();
    this.#events = NO_EVENTS;
    this.#next = 0;
    if (this.#writer.length > 0) this.#writer.takeChunks();
  }
}
