/**
 * One WebSocket connection on the server: the read loop, the write queue and
 * the closing handshake, with keepalive driven by a single timer heap entry.
 *
 * Data flow: TCP bytes → {@linkcode FrameDecoder} → events (control frames are
 * answered here, messages go to the route's handler) → `send()` →
 * {@linkcode FrameWriter} → per turn of the event loop, one batch: one
 * coalesced `write` for the small frames, plus one for each large binary
 * payload, which is written from the sender's array without a copy.
 *
 * @module
 */
import { CloseCode, CloseHandshake, encodeClosePayload } from "../protocol/close.ts";
import type { Clock } from "../protocol/clock.ts";
import { type DecoderEvent, FrameDecoder } from "../protocol/frame_decoder.ts";
import { FrameWriter } from "../protocol/frame_encoder.ts";
import type { HttpRequestHead } from "../protocol/handshake.ts";
import { type KeepaliveOptions, nextKeepaliveAction } from "./keepalive.ts";
import type { TimerEntry, TimerHeap } from "./timer_heap.ts";

/**
 * Callbacks a route supplies for its connections. Every callback is optional
 * and may be async: an exception thrown by `open` or `message`, or a promise
 * they return that rejects, closes that connection with 1011. A failing
 * `close` is ignored, since its connection is already gone.
 *
 * @example
 * ```ts
 * import type { WebSocketHandler } from "@heartwire/heartwire/server";
 * const shout: WebSocketHandler = {
 *   message(ws, data) {
 *     if (typeof data === "string") ws.send(data.toUpperCase());
 *   },
 * };
 * ```
 */
export interface WebSocketHandler {
  /** Subprotocols this route speaks, most preferred first (RFC 6455 §1.9). */
  protocols?: string[];
  /** The handshake completed; the connection is open. */
  open?(ws: WebSocketConnection): void;
  /** A whole text (string) or binary (Uint8Array) message arrived. */
  message?(ws: WebSocketConnection, data: string | Uint8Array): void;
  /** The connection is gone (after the close handshake, an error or a timeout). */
  close?(ws: WebSocketConnection, info: CloseInfo): void;
}

/**
 * Why a connection ended, as its `close` callback sees it.
 *
 * @example
 * ```ts
 * import type { CloseInfo } from "@heartwire/heartwire/server";
 * const info: CloseInfo = { code: 1000, reason: "", wasClean: true, cause: "peer" };
 * ```
 */
export interface CloseInfo {
  /** The close code: the first close frame's, 1006 when none was exchanged. */
  code: number;
  /** The close reason that went with `code`. */
  reason: string;
  /** True when both close frames were exchanged (RFC 6455 §7.1.2). */
  wasClean: boolean;
  /**
   * Who ended it: `peer` sent a close frame or dropped TCP, `local` called
   * close(), `protocol` broke the protocol, `timeout` missed its pong, `slow`
   * stopped reading (the write queue overflowed), `error` a transport or handler error.
   */
  cause: "peer" | "local" | "protocol" | "timeout" | "slow" | "error";
}

/**
 * Limits and timing every connection of a server shares.
 *
 * @example
 * ```ts
 * import type { ConnectionOptions } from "@heartwire/heartwire/server";
 * const limits: Partial<ConnectionOptions> = { maxPayload: 64 * 1024 };
 * ```
 */
export interface ConnectionOptions {
  /** Control-frame keepalive timing. */
  keepalive: KeepaliveOptions;
  /** Largest message accepted, in bytes; bigger ones close with 1009. */
  maxPayload: number;
  /** How long to wait for the peer's close frame after sending ours (ms). */
  closeTimeout: number;
  /** Bytes queued for a peer that does not read before it is dropped as a slow consumer. */
  maxBufferedBytes: number;
  /** How long one write may stay unfinished before the peer is dropped as a slow consumer (ms). */
  writeTimeout: number;
  /** Fraction of `keepalive.interval` used to spread pings of connections opened together. */
  pingJitter: number;
}

/** Everything a server hands a new connection. Internal to server/. */
export interface ConnectionInit {
  /** The TCP (or TLS) connection, already past the handshake. */
  conn: Deno.Conn;
  /** The upgrade request. */
  request: HttpRequestHead;
  /** The request path without the query. */
  path: string;
  /** The negotiated subprotocol, or "". */
  protocol: string;
  /** The route's callbacks. */
  handler: WebSocketHandler;
  /** Time source shared with the heap. */
  clock: Clock;
  /** The server's one timer heap. */
  heap: TimerHeap;
  /** Limits and keepalive timing. */
  options: ConnectionOptions;
  /** Bytes that arrived in the same read as the handshake: the client's first frames. */
  initial: Uint8Array;
  /** Told exactly once when the connection has ended, for the server's bookkeeping. */
  onEnded(ws: WebSocketConnection, info: CloseInfo): void;
  /** Told about a handler's error after its connection was failed with 1011. */
  onError?(error: unknown): void;
}

/** The `readyState` values of the WebSocket API. */
const CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3;

/**
 * Read buffers start small, since most connections are idle most of the time
 * (bench:idle measures it), and double whenever a read fills one.
 */
const READ_BUFFER_MIN = 4 * 1024;
const READ_BUFFER_MAX = 256 * 1024;

let nextConnectionId = 1;

/**
 * A server-side WebSocket connection: what a route's handler receives.
 *
 * @example
 * ```ts
 * import { serve } from "@heartwire/heartwire/server";
 * const server = serve({
 *   port: 0,
 *   routes: {
 *     "/hello": {
 *       open(ws) {
 *         ws.send(`hello #${ws.id}, you came from ${ws.remoteAddr.hostname}`);
 *         ws.close(1000, "bye");
 *       },
 *     },
 *   },
 * });
 * await server.shutdown();
 * ```
 */
export class WebSocketConnection {
  /** A process-unique number for logs and maps. */
  readonly id: number = nextConnectionId++;
  /** The HTTP request that opened the connection. */
  readonly request: HttpRequestHead;
  /** The request path (without the query). */
  readonly path: string;
  /** The negotiated subprotocol, or "". */
  readonly protocol: string;
  /** The peer's address. */
  readonly remoteAddr: Deno.NetAddr;
  /** Free for the application (e.g. a session or a user id). */
  data: unknown = undefined;

  /** The round-trip time (ms) measured by the last answered ping, or -1. */
  rtt: number = -1;
  /** Pings that went unanswered (a new ping was due before the pong). */
  missedPongs: number = 0;

  #conn: Deno.Conn;
  #handler: WebSocketHandler;
  #clock: Clock;
  #heap: TimerHeap;
  #timer: TimerEntry;
  #options: ConnectionOptions;
  #onEnded: (ws: WebSocketConnection, info: CloseInfo) => void;
  #onError: ((error: unknown) => void) | undefined;

  #decoder: FrameDecoder;
  #writer = new FrameWriter({ role: "server" });
  #close = new CloseHandshake();
  #readyState: number = CONNECTING;
  #cause: CloseInfo["cause"] = "peer";

  // Keepalive state (see keepalive.ts): lastSeen is refreshed on every read.
  #lastSeen: number;
  #pingSentAt = -1;
  #earlyBy: number;

  // Write queue state.
  #writing = false;
  #flushQueued = false;
  /** Inside #receive: sends are flushed when it ends, not in a microtask. */
  #receiving = false;
  #inFlight = 0;
  #writeStartedAt = 0;
  /** Close TCP once the queue is written (after our last close frame). */
  #endAfterFlush = false;

  /** Takes over a connection whose handshake the server completed. */
  constructor(init: ConnectionInit) {
    this.request = init.request;
    this.path = init.path;
    this.protocol = init.protocol;
    this.remoteAddr = init.conn.remoteAddr as Deno.NetAddr;
    this.#conn = init.conn;
    this.#handler = init.handler;
    this.#clock = init.clock;
    this.#heap = init.heap;
    this.#options = init.options;
    this.#onEnded = init.onEnded;
    this.#onError = init.onError;
    this.#decoder = new FrameDecoder({ role: "server", maxMessageSize: init.options.maxPayload });
    this.#lastSeen = this.#clock.now();
    this.#earlyBy = Math.random() * init.options.pingJitter * init.options.keepalive.interval;
    this.#timer = this.#heap.create(() => this.#onTimer());
    this.#readyState = OPEN;
    this.#armKeepalive();
    this.#callHandler(() => this.#handler.open?.(this));
    if (init.initial.length > 0) this.#receive(init.initial);
    this.#readLoop();
  }

  /** 0 connecting, 1 open, 2 closing, 3 closed — as in the WebSocket API. */
  get readyState(): number {
    return this.#readyState;
  }

  /** Bytes queued or being written and not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.#writer.length + this.#inFlight;
  }

  /** When anything was last read from the peer (clock ms). */
  get lastSeen(): number {
    return this.#lastSeen;
  }

  /**
   * Queues a text (string) or binary message. Returns false, sending nothing,
   * once the connection is closing or closed.
   *
   * A binary message of 16 KiB or more is not copied: the connection writes
   * it straight from `data` when its turn comes, after the current task at
   * the earliest and later if earlier writes are still going. So do not
   * modify `data` until it has been written (once `bufferedAmount` is 0 it
   * certainly has), as with Node's `socket.write`; send a copy if the array
   * must be reused at once. Strings and smaller arrays are copied right away.
   */
  send(data: string | Uint8Array): boolean {
    if (!this.#close.canSend || this.#readyState !== OPEN) return false;
    if (typeof data === "string") this.#writer.text(data);
    else this.#writer.binary(data);
    this.#queued();
    return true;
  }

  /**
   * Sends a ping (RFC 6455 §5.5.2); the peer must answer with a pong of the
   * same payload. Only the keepalive's own pings (a timestamp payload) update
   * {@linkcode WebSocketConnection.rtt}.
   */
  ping(payload?: Uint8Array): boolean {
    if (!this.#close.canSend) return false;
    this.#writer.ping(payload);
    this.#queued();
    return true;
  }

  /**
   * Starts the closing handshake (RFC 6455 §7.1.2): sends a close frame, keeps
   * reading until the peer answers, then closes TCP. If no answer comes within
   * the close timeout, TCP is closed anyway.
   *
   * @throws {RangeError} before anything happens, like `WebSocket.close()`,
   * if `code` may not be sent (§7.4) or `reason` is over 123 UTF-8 bytes.
   */
  close(code: number = CloseCode.Normal, reason = ""): void {
    encodeClosePayload(code, reason);
    if (this.#readyState !== OPEN) return;
    this.#cause = "local";
    this.#sendClose(code, reason);
  }

  /** Drops TCP at once, without a close frame (for peers that will never read one). */
  terminate(): void {
    this.#end("local");
  }

  // ---- reading -----------------------------------------------------------

  async #readLoop(): Promise<void> {
    let buffer = new Uint8Array(READ_BUFFER_MIN);
    try {
      while (this.#readyState !== CLOSED) {
        const n = await this.#conn.read(buffer);
        if (n === null) break; // EOF: the peer closed TCP
        this.#receive(buffer.subarray(0, n));
        if (n === buffer.length && buffer.length < READ_BUFFER_MAX) {
          buffer = new Uint8Array(buffer.length * 2);
        }
      }
      this.#end("peer");
    } catch {
      // Reset by the peer (an error), or closed under us by #end() (then
      // already ended, and this call does nothing).
      this.#end("error");
    }
  }

  #receive(bytes: Uint8Array): void {
    this.#lastSeen = this.#clock.now();
    const events = this.#decoder.push(bytes);
    // Replies to this read are flushed right after it, in one write and before
    // the next read is issued: at one message in flight the peer waits on
    // exactly this latency.
    this.#receiving = true;
    for (let i = 0; i < events.length; i++) {
      this.#handle(events[i]);
      if (this.#readyState === CLOSED) break;
    }
    this.#receiving = false;
    if ((this.#writer.length > 0 || this.#endAfterFlush) && !this.#flushQueued) this.#flush();
  }

  #handle(event: DecoderEvent): void {
    switch (event.type) {
      case "text":
      case "binary":
        // Delivered while open, and after our close() while the peer may still
        // send (§7.1.2); not once the connection is being failed (§7.1.7: no
        // more data is processed), which also ends TCP after the flush.
        if (
          this.#close.state === "open" ||
          (this.#close.state === "closing" && !this.#endAfterFlush)
        ) {
          // Inlined rather than through #callHandler: this runs once per message.
          try {
            const result: unknown = this.#handler.message?.(this, event.data);
            if (result instanceof Promise) this.#watch(result);
          } catch (error) {
            this.#handlerThrew(error);
          }
        }
        return;
      case "ping":
        // RFC 6455 §5.5.3: answer with the same payload, unless we already sent close.
        if (this.#close.canSend) {
          this.#writer.pong(event.data);
          this.#queued();
        }
        return;
      case "pong":
        this.#onPong(event.data);
        return;
      case "close":
        this.#onPeerClose(event.code, event.reason);
        return;
      case "error":
        // RFC 6455 §7.1.7: fail the connection — send a close frame, then drop TCP.
        this.#cause = "protocol";
        this.#sendClose(event.code, event.reason, true);
        return;
    }
  }

  #onPeerClose(code: number, reason: string): void {
    const reply = this.#close.receive(code, reason);
    if (reply) {
      // RFC 6455 §5.5.1: echo the peer's code; the server then closes TCP (§7.1.1).
      this.#startClosing();
      this.#writer.close(reply.code, reply.reason);
      this.#close.answered();
    }
    this.#endAfterFlush = true;
    this.#queued();
  }

  #onPong(payload: Uint8Array): void {
    if (this.#pingSentAt < 0 || payload.length !== 8) return;
    const sentAt = new DataView(payload.buffer, payload.byteOffset, 8).getFloat64(0);
    if (sentAt !== this.#pingSentAt) return; // an unsolicited or stale pong (§5.5.3)
    this.rtt = this.#clock.now() - sentAt;
    this.#pingSentAt = -1;
  }

  // ---- writing -----------------------------------------------------------

  /** Called after anything was queued: checks the slow-consumer bound and schedules a flush. */
  #queued(): void {
    if (this.bufferedAmount > this.#options.maxBufferedBytes) {
      // A close frame would wait behind everything already queued: drop instead.
      this.#end("slow", CloseCode.PolicyViolation, "slow consumer");
      return;
    }
    if (this.#writing || this.#flushQueued || this.#receiving) return;
    this.#flushQueued = true;
    // Everything sent during this turn of the event loop goes out in one write.
    queueMicrotask(() => {
      this.#flushQueued = false;
      this.#flush();
    });
  }

  /**
   * Writes batches until the writer is empty. A batch is a list of chunks
   * (runs of small frames, and large payloads on their own), written in
   * order, one `write` per chunk — Deno has no vectored write. While a batch
   * is being written the next one collects in the writer, which is why the
   * chunks stay valid until the next take.
   */
  async #flush(): Promise<void> {
    if (this.#writing || this.#readyState === CLOSED) return;
    this.#writing = true;
    try {
      while (this.#writer.length > 0) {
        const length = this.#writer.length;
        const chunks = this.#writer.takeChunks();
        // bufferedAmount counts the batch until the kernel has taken each byte.
        this.#inFlight = length;
        this.#writeStartedAt = this.#clock.now();
        for (const chunk of chunks) {
          let written = 0;
          while (written < chunk.length) {
            const n = await this.#conn.write(written === 0 ? chunk : chunk.subarray(written));
            written += n;
            this.#inFlight -= n;
          }
        }
      }
    } catch {
      this.#writing = false;
      this.#end("error");
      return;
    }
    this.#writing = false;
    if (this.#endAfterFlush) this.#end(this.#cause);
  }

  #sendClose(code: number, reason: string, failing = false): void {
    if (this.#close.start(code, reason)) {
      this.#writer.close(code, reason);
    }
    this.#startClosing();
    // Failing the connection (§7.1.7) waits for nothing: TCP ends once our
    // close frame is written. Otherwise we keep reading for the peer's answer.
    if (failing || this.#close.state === "closed") this.#endAfterFlush = true;
    this.#queued();
  }

  /**
   * Leaves OPEN. From here on the timer is the close timeout, however the
   * close began: even a peer that stopped reading (so our close frame never
   * gets written) loses its TCP connection by then.
   */
  #startClosing(): void {
    if (this.#readyState !== OPEN) return;
    this.#readyState = CLOSING;
    this.#heap.schedule(this.#timer, this.#clock.now() + this.#options.closeTimeout);
  }

  // ---- timer: keepalive while open, the close timeout while closing -------

  #armKeepalive(): void {
    const action = nextKeepaliveAction(
      this.#keepaliveState(),
      this.#clock.now(),
      this.#options.keepalive,
    );
    if (action.kind !== "dead") this.#heap.schedule(this.#timer, action.at);
  }

  #keepaliveState() {
    return { lastSeen: this.#lastSeen, pingSentAt: this.#pingSentAt, earlyBy: this.#earlyBy };
  }

  #onTimer(): void {
    const now = this.#clock.now();
    if (this.#readyState === CLOSING) {
      this.#end(this.#cause); // the peer never answered our close frame
      return;
    }
    if (this.#readyState !== OPEN) return;
    if (this.#writing && now - this.#writeStartedAt > this.#options.writeTimeout) {
      this.#end("slow", CloseCode.PolicyViolation, "slow consumer");
      return;
    }
    const action = nextKeepaliveAction(this.#keepaliveState(), now, this.#options.keepalive);
    switch (action.kind) {
      case "wait":
        this.#heap.schedule(this.#timer, action.at);
        return;
      case "ping": {
        if (this.#pingSentAt >= 0) this.missedPongs++;
        this.#pingSentAt = now;
        const payload = new Uint8Array(8);
        new DataView(payload.buffer).setFloat64(0, now);
        // Re-arm first: the ping can end the connection (a full write queue),
        // and #end() must then find the timer armed to cancel it.
        this.#heap.schedule(this.#timer, action.at);
        this.ping(payload);
        return;
      }
      case "dead":
        // The peer would never read a close frame: drop TCP (DESIGN.md, keepalive).
        this.missedPongs++;
        this.#end("timeout");
        return;
    }
  }

  // ---- the end -------------------------------------------------------------

  #callHandler(call: () => unknown): void {
    try {
      const result = call();
      if (result instanceof Promise) this.#watch(result);
    } catch (error) {
      this.#handlerThrew(error);
    }
  }

  /**
   * An async handler's rejection fails its connection like a throw would;
   * left alone it would be an unhandled rejection, which ends the process.
   */
  #watch(result: Promise<unknown>): void {
    result.catch((error) => this.#handlerThrew(error));
  }

  /** A handler bug fails only its own connection, with 1011 (RFC 6455 §7.4.1), and is reported. */
  #handlerThrew(error: unknown): void {
    if (this.#readyState === OPEN) {
      this.#cause = "error";
      this.#sendClose(CloseCode.InternalError, "internal error", true);
    }
    this.#onError?.(error);
  }

  /** Closes TCP and reports the end exactly once. */
  #end(cause: CloseInfo["cause"], code?: number, reason?: string): void {
    if (this.#readyState === CLOSED) return;
    this.#readyState = CLOSED;
    this.#cause = cause;
    this.#heap.cancel(this.#timer);
    this.#close.terminated();
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    const info: CloseInfo = {
      code: code ?? this.#close.code,
      reason: reason ?? this.#close.reason,
      wasClean: this.#close.wasClean,
      cause,
    };
    if (cause === "timeout") info.code = CloseCode.Abnormal;
    this.#onEnded(this, info);
    this.#callHandlerClosed(info);
  }

  #callHandlerClosed(info: CloseInfo): void {
    // The connection is gone; a failing close callback has nothing left to
    // fail, so its error is only reported.
    try {
      const result: unknown = this.#handler.close?.(this, info);
      if (result instanceof Promise) result.catch((error) => this.#onError?.(error));
    } catch (error) {
      this.#onError?.(error);
    }
  }
}
