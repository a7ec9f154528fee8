/**
 * One WebSocket connection on the server: the I/O around a sans-I/O
 * {@linkcode Connection} (protocol/connection.ts), which keeps every rule of
 * RFC 6455. This file only moves bytes and keeps time:
 *
 * - a read loop: TCP bytes → `Connection.receive` → events → the route's handler;
 * - writes: whatever the connection queued (messages, pongs, close frames)
 *   goes out once per read or per turn of the event loop: one coalesced
 *   `write` for the small frames, plus one for each large binary payload,
 *   written from the sender's array without a copy; prepared (broadcast)
 *   frames are queued by reference and small ones gathered into one write;
 * - the bounds on what waits for a peer that does not read: bytes and age
 *   per connection, and the server's budget for all of them together;
 * - one timer heap entry: keepalive while open, the close timeout (or the
 *   lingering bound) while closing.
 *
 * @module
 */
import { CloseCode } from "../protocol/close.ts";
import type { Clock } from "../protocol/clock.ts";
import { Connection, ReadyState } from "../protocol/connection.ts";
import type { PreparedMessage } from "../protocol/frame_encoder.ts";
import { headerEntries, type HttpRequestHead } from "../protocol/http1.ts";
import type { PerMessageDeflate } from "../protocol/deflate.ts";
import {
  type KeepaliveOptions,
  type KeepaliveState,
  type LagMeter,
  lagMeterFor,
  nextKeepaliveAction,
} from "./keepalive.ts";
import type { HeartwireMetrics } from "./metrics.ts";
import type { TimerEntry, TimerHeap } from "./timer_heap.ts";
import type { OutboundBudget, QueuedView } from "./_outbound_budget.ts";

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
export interface WebSocketHandler<T = unknown> {
  /** Subprotocols this route speaks, most preferred first (RFC 6455 §1.9). */
  protocols?: string[];
  /** The handshake completed; the connection is open. */
  open?(ws: WebSocketConnection<T>): void;
  /** A whole text (string) or binary (Uint8Array) message arrived. */
  message?(ws: WebSocketConnection<T>, data: string | Uint8Array): void;
  /** The connection is gone (after the close handshake, an error or a timeout). */
  close?(ws: WebSocketConnection<T>, info: CloseInfo): void;
}

/**
 * Why a connection ended, as its `close` callback sees it.
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
  /**
   * How old (ms) the oldest byte queued for a peer may get, unwritten,
   * before it is dropped as a slow consumer: the bound that suits many small
   * messages, which take long to add up to `maxBufferedBytes`.
   */
  maxBufferedAge: number;
  /** How long one write may stay unfinished before the peer is dropped as a slow consumer (ms). */
  writeTimeout: number;
  /** Fraction of `keepalive.interval` used to spread pings of connections opened together. */
  pingJitter: number;
}

/** Everything a server hands a new connection. Internal to server/. */
export interface ConnectionInit<T = unknown> {
  /** The TCP (or TLS) connection, already past the handshake. */
  conn: Deno.Conn;
  /** The upgrade request. */
  request: HttpRequestHead;
  /** The request path without the query. */
  path: string;
  /** The negotiated subprotocol, or "". */
  protocol: string;
  /** permessage-deflate, if the handshake negotiated it, and the response header that did. */
  deflate?: { extension: PerMessageDeflate; response: string };
  /** The route's callbacks. */
  handler: WebSocketHandler<T>;
  /** The connection's initial {@linkcode WebSocketConnection.data} (e.g. from `upgrade(request, { data })`). */
  data?: T;
  /** The client's address when a trusted proxy named it; default the TCP peer's. */
  clientAddress?: string;
  /** Time source shared with the heap. */
  clock: Clock;
  /** The server's one timer heap. */
  heap: TimerHeap;
  /** Limits and keepalive timing. */
  options: ConnectionOptions;
  /** Bytes that arrived in the same read as the handshake: the client's first frames. */
  initial: Uint8Array;
  /** Told exactly once when the connection has ended, for the server's bookkeeping. */
  onEnded(ws: WebSocketConnection<T>, info: CloseInfo): void;
  /** Told about a handler's error after its connection was failed with 1011. */
  onError?(error: unknown): void;
  /** Where messages, bytes, pings and pongs are counted; none: nothing is. */
  metrics?: HeartwireMetrics;
  /** The server's budget for bytes queued to all peers. Default: none. */
  budget?: OutboundBudget<WebSocketConnection>;
}

/**
 * Read buffers start small, since most connections are idle most of the time
 * (bench:idle measures it), and double whenever a read fills one. A pending
 * read holds its buffer for as long as the peer is silent, so a connection
 * that went quiet long enough to be pinged goes back to the smallest size
 * with the read that brings the pong (or whatever it sends next).
 */
const READ_BUFFER_MIN = 256;
const READ_BUFFER_MAX = 256 * 1024;

/**
 * Lingering close: after failing a connection, its close frame written, the
 * server reads and discards at most this much, for at most this long, until
 * the peer's FIN. Closing with unread bytes in the kernel would send a reset,
 * which can destroy the close frame before the peer reads it.
 */
const LINGER_MAX_BYTES = 4 * 1024 * 1024;
const LINGER_MAX_TIME = 2_000;

/**
 * Prepared frames are chunks of their own; runs of the small ones are copied
 * into one gather buffer of this size for a single `write` (Deno has no
 * vectored write), rather than one system call (and one turn of the event
 * loop) per broadcast message. It grows to what a batch needs, and is
 * dropped once the queue is empty; a peer that stopped reading keeps it
 * pinned by its pending write, counted in `bufferedAmount` meanwhile.
 */
const GATHER_SIZE = 64 * 1024;
const GATHER_CHUNK_MAX = 16 * 1024;

let nextConnectionId = 1;

/** How the server's {@linkcode OutboundBudget} sees a connection. Internal to server/. */
export let queuedView: QueuedView<WebSocketConnection>;

/**
 * The keepalive's ping payload is the send time as a float64 (RFC 6455 allows
 * any payload up to 125 bytes, §5.5.2): its pong then yields the round-trip
 * time. Encoded and decoded through one shared 8-byte scratch, since the
 * writer copies a ping's payload at once; no allocation per ping or pong.
 */
const stamp = new Uint8Array(8);
const stampView = new DataView(stamp.buffer);

/** Filled for each keepalive decision and read at once: one less object per ping. */
const keepaliveScratch: Required<KeepaliveState> = {
  lastSeen: 0,
  pingSentAt: -1,
  pingWrittenAt: -1,
  earlyBy: 0,
  lag: 0,
  lateBy: 0,
  graced: false,
};

/**
 * A request head as one flat string, `method SP target SP version` and then
 * `name:value` per field, `\n`-separated: about the size of the head as it
 * came, against a kilobyte and more for a parsed head and its `Headers`.
 * Names are tokens (RFC 9110 §5.1), so the first `:` ends one; values hold
 * no line feed. Internal to server/.
 */
export function compactHead(head: HttpRequestHead): string {
  const parts = [`${head.method} ${head.target} ${head.version}`];
  // From the parsed field list when there is one: iterating a Headers sorts
  // and joins it, a cost per upgrade for a form that may never be read.
  for (const [name, value] of headerEntries(head)) parts.push(`${name}:${value}`);
  return parts.join("\n"); // join makes one flat string, not a tree of concatenations
}

/** The head {@linkcode compactHead} made `compact` from. Internal to server/. */
export function parseCompactHead(compact: string): HttpRequestHead {
  const lines = compact.split("\n");
  const [method, target, version] = lines[0].split(" ");
  const headers = new Headers();
  for (let i = 1; i < lines.length; i++) {
    const colon = lines[i].indexOf(":");
    headers.append(lines[i].slice(0, colon), lines[i].slice(colon + 1));
  }
  return { method, target, version, headers };
}

/**
 * A server-side WebSocket connection: what a route's handler receives.
 * `T` is the type of {@linkcode WebSocketConnection.data}.
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
export class WebSocketConnection<T = unknown> {
  /** A process-unique number for logs and maps. */
  readonly id: number = nextConnectionId++;
  /**
   * The compact form of the upgrade request (see {@linkcode compactHead}),
   * and the parsed head while anything still holds it.
   */
  #head: string;
  #request: WeakRef<HttpRequestHead> | HttpRequestHead;
  /** The request path (without the query). */
  readonly path: string;
  /** The negotiated subprotocol, or "". */
  readonly protocol: string;
  /**
   * The negotiated extensions as the handshake's `Sec-WebSocket-Extensions`
   * sent them (e.g. `permessage-deflate; server_no_context_takeover`), or "".
   */
  readonly extensions: string;
  /** The peer's address (behind a proxy, the proxy's). */
  readonly remoteAddr: Deno.NetAddr;
  /**
   * The client's IP address: the TCP peer's, or, when the peer is one of
   * `serve()`'s `trustedProxies`, the one it forwarded (see
   * `clientAddress()`). Per-IP limits count this.
   */
  readonly clientAddress: string;
  /** Free for the application (e.g. a session or a user id); set from the upgrade's `data`. */
  data: T;

  /** The round-trip time (ms) measured by the last answered ping, or -1. */
  rtt: number = -1;
  /** Pings that went unanswered (a new ping was due before the pong). */
  missedPongs: number = 0;

  #conn: Deno.Conn;
  #handler: WebSocketHandler<T>;
  #clock: Clock;
  #heap: TimerHeap;
  #timer: TimerEntry;
  #options: ConnectionOptions;
  #onEnded: (ws: WebSocketConnection<T>, info: CloseInfo) => void;
  #onError: ((error: unknown) => void) | undefined;
  /** Counted into on the hot path with plain additions; undefined costs one check. */
  #metrics: HeartwireMetrics | undefined;

  /** Every rule of the protocol lives here; this class only does its I/O. */
  #ws: Connection;
  /** Set once TCP is closed and the end reported. */
  #ended = false;
  #cause: CloseInfo["cause"] = "peer";
  /** Since when the timer is the close timeout rather than keepalive. */
  #closeTimerArmed = false;

  // Keepalive state (see keepalive.ts): lastSeen is refreshed on every read.
  #lastSeen: number;
  #pingSentAt = -1;
  /** When the outstanding keepalive ping reached the kernel; -1 while queued. */
  #pingWrittenAt = -1;
  /** The keepalive ping is queued, not yet taken by a flush. */
  #pingQueued = false;
  /** The outstanding ping had its grace re-check (keepalive.ts). */
  #graced = false;
  /** The server's recent read lag, shared by its connections (keepalive.ts). */
  #lag: LagMeter;
  #earlyBy: number;

  // Writing.
  #writing = false;
  #flushQueued = false;
  /** Inside #receive: what it queues is flushed when it ends, not in a microtask. */
  #receiving = false;
  #inFlight = 0;
  #writeStartedAt = 0;
  /** When the pending `write` call started; Infinity when none is pending. */
  #writePendingSince = Infinity;
  /** Sends while writing, counted to read the clock for the age bound on every 64th only. */
  #sendsWhileWriting = 0;
  /** Prepared messages queued by reference and not yet written, in order (from #preparedHead). */
  #prepared: PreparedMessage[] = [];
  #preparedHead = 0;
  /** Bytes of those prepared frames: shared, so charged to the budget once for all holders. */
  #sharedBytes = 0;
  /** This connection's private bytes as last charged to the budget. */
  #charged = 0;
  #budget: OutboundBudget<WebSocketConnection> | undefined;
  /** Where runs of small prepared frames are gathered for one write; kept while writing. */
  #gather: Uint8Array | undefined;
  #gathered = 0;

  /** After a failed connection's close frame: reading only to discard, until FIN. */
  #lingering = false;
  #discarded = 0;

  static {
    // The budget's view of a connection, reading what the class keeps private.
    queuedView = {
      oldestQueuedAt: (ws) => ws.#oldestQueuedAt(),
      bufferedAmount: (ws) => ws.bufferedAmount,
      writePendingSince: (ws) => ws.#writePendingSince,
      shed: (ws) => ws.#end("slow", CloseCode.PolicyViolation, "slow consumer"),
    };
  }

  /** Takes over a connection whose handshake the server completed. */
  constructor(init: ConnectionInit<T>) {
    this.#head = compactHead(init.request);
    // Held strongly through `open` (which often reads it), weakly afterwards.
    this.#request = init.request;
    this.path = init.path;
    this.protocol = init.protocol;
    this.remoteAddr = init.conn.remoteAddr as Deno.NetAddr;
    this.clientAddress = init.clientAddress ?? this.remoteAddr.hostname;
    this.data = init.data as T;
    this.#conn = init.conn;
    this.#handler = init.handler;
    this.#clock = init.clock;
    this.#heap = init.heap;
    this.#options = init.options;
    this.#onEnded = init.onEnded;
    this.#onError = init.onError;
    this.#metrics = init.metrics;
    this.#budget = init.budget;
    this.extensions = init.deflate?.response ?? "";
    this.#ws = new Connection({
      role: "server",
      maxMessageSize: init.options.maxPayload,
      deflate: init.deflate?.extension,
    });
    this.#lastSeen = this.#clock.now();
    this.#earlyBy = Math.random() * init.options.pingJitter * init.options.keepalive.interval;
    this.#lag = lagMeterFor(init.heap, init.options.keepalive);
    this.#timer = this.#heap.create(() => this.#onTimer());
    this.#armKeepalive();
    this.#callHandler(() => this.#handler.open?.(this));
    this.#request = new WeakRef(this.#request as HttpRequestHead);
    if (this.#metrics !== undefined) this.#metrics.bytesIn.value += init.initial.length;
    if (init.initial.length > 0 && !this.#ended) this.#receive(init.initial);
    this.#readLoop();
  }

  /**
   * The HTTP request that opened the connection (header names lower-cased,
   * repeated fields combined with ", ", as `Headers` does).
   *
   * A parsed head with its `Headers` costs a kilobyte or more, per
   * connection, for as long as the connection lives, and most applications
   * read it once, in `open`. So the connection keeps it as one compact
   * string and parses it again when it is read after the parsed one was
   * collected; while anything holds the object, reads return that same object.
   */
  get request(): HttpRequestHead {
    const held = this.#request;
    const head = held instanceof WeakRef ? held.deref() : held;
    if (head !== undefined) return head;
    const parsed = parseCompactHead(this.#head);
    this.#request = new WeakRef(parsed);
    return parsed;
  }

  /** 0 connecting, 1 open, 2 closing, 3 closed — as in the WebSocket API. */
  get readyState(): number {
    return this.#ended ? ReadyState.Closed : this.#ws.readyState;
  }

  /** Bytes queued or being written and not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.#ws.bufferedAmount + this.#inFlight;
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
    if (!this.#ws.send(data)) return false;
    if (this.#metrics !== undefined) this.#metrics.messagesOut.value++;
    this.#queued();
    return true;
  }

  /**
   * Queues a {@linkcode PreparedMessage}: a message encoded once for many
   * connections, a broadcast. Its frame is queued by reference, not copied,
   * and counts in `bufferedAmount` (and this connection's bounds) in full,
   * but in the server's `maxQueuedBytes` budget once for all its holders.
   * Returns false, sending nothing, once the connection is closing or closed.
   *
   * @example
   * ```ts
   * import { PreparedMessage } from "@heartwire/heartwire/protocol";
   * import type { WebSocketConnection } from "@heartwire/heartwire/server";
   * function broadcast(members: Iterable<WebSocketConnection>, text: string): void {
   *   const message = new PreparedMessage(text); // encoded once
   *   for (const ws of members) ws.sendPrepared(message);
   * }
   * ```
   */
  sendPrepared(message: PreparedMessage): boolean {
    if (!this.#ws.sendPrepared(message)) return false;
    if (this.#metrics !== undefined) this.#metrics.messagesOut.value++;
    this.#prepared.push(message);
    this.#sharedBytes += message.frame.length;
    this.#budget?.hold(message);
    this.#queued();
    return true;
  }

  /**
   * Sends a ping (RFC 6455 §5.5.2); the peer must answer with a pong of the
   * same payload. Only the keepalive's own pings (a timestamp payload) update
   * {@linkcode WebSocketConnection.rtt}.
   */
  ping(payload?: Uint8Array): boolean {
    if (!this.#ws.ping(payload)) return false;
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
    if (!this.#ws.close(code, reason)) return;
    this.#cause = "local";
    this.#stepped();
  }

  /** Drops TCP at once, without a close frame (for peers that will never read one). */
  terminate(): void {
    this.#end("local");
  }

  // ---- reading -----------------------------------------------------------

  async #readLoop(): Promise<void> {
    let buffer = new Uint8Array(READ_BUFFER_MIN);
    try {
      while (!this.#ended) {
        // Both close frames are through (§7.1.1), perhaps already in the bytes
        // that came with the head: nothing more is expected, and the write side
        // ends TCP once ours is written. Reading on would leave a read pending
        // for close() to cancel, and a cancelled read costs an Error with a
        // stack trace, per connection. (A failed connection reads on: #linger.)
        if (this.#ws.finished && !this.#ws.failing) return;
        const n = await this.#conn.read(buffer);
        if (n === null) break; // EOF: the peer closed TCP
        if (this.#metrics !== undefined) this.#metrics.bytesIn.value += n;
        if (this.#lingering) {
          this.#discarded += n;
          if (this.#discarded > LINGER_MAX_BYTES) break;
          continue;
        }
        // A keepalive ping is out only after `interval` of silence.
        const wasIdle = this.#pingSentAt >= 0;
        this.#receive(buffer.subarray(0, n));
        if (n === buffer.length && buffer.length < READ_BUFFER_MAX) {
          buffer = new Uint8Array(buffer.length * 2);
        } else if (wasIdle && buffer.length > READ_BUFFER_MIN && n <= READ_BUFFER_MIN) {
          buffer = new Uint8Array(READ_BUFFER_MIN);
        }
      }
      this.#end(this.#lingering ? this.#cause : "peer");
    } catch {
      // Reset by the peer (an error), or closed under us by #end() (then
      // already ended, and this call does nothing).
      this.#end(this.#lingering ? this.#cause : "error");
    }
  }

  #receive(bytes: Uint8Array): void {
    this.#lastSeen = this.#clock.now();
    const ws = this.#ws;
    ws.receive(bytes);
    // Replies to this read are flushed right after it, in one write and before
    // the next read is issued: at one message in flight the peer waits on
    // exactly this latency.
    this.#receiving = true;
    for (let event; (event = ws.nextEvent()) !== undefined;) {
      switch (event.type) {
        case "text":
        case "binary":
          if (this.#metrics !== undefined) this.#metrics.messagesIn.value++;
          // Inlined rather than through #callHandler: this runs once per message.
          try {
            const result: unknown = this.#handler.message?.(this, event.data);
            if (result instanceof Promise) this.#watch(result);
          } catch (error) {
            this.#handlerThrew(error);
          }
          break;
        case "pong":
          this.#onPong(event.data);
          break;
        case "error":
          this.#cause = "protocol";
          break;
          // "ping" is answered and "close" echoed by the Connection itself.
      }
      if (this.#ended) return;
    }
    // Still #receiving, so #stepped() schedules no flush: the write starts
    // here, not a microtask later, and before the read loop reads again.
    this.#stepped();
    if (!this.#ended && (ws.bufferedAmount > 0 || ws.finished)) this.#flush();
    this.#receiving = false;
  }

  #onPong(payload: Uint8Array): void {
    if (this.#pingSentAt < 0 || payload.length !== 8) return;
    stamp.set(payload);
    const sentAt = stampView.getFloat64(0);
    if (sentAt !== this.#pingSentAt) return; // an unsolicited or stale pong (§5.5.3)
    const now = this.#clock.now();
    this.rtt = now - sentAt;
    this.#lag.note(now, this.rtt);
    this.#pingSentAt = -1;
    this.#metrics?.pongReceived(this.rtt);
  }

  // ---- writing -----------------------------------------------------------

  /**
   * After the Connection changed state: the first time it has left OPEN, the
   * timer becomes the close timeout, however the close began — even a peer
   * that stopped reading (so our close frame never gets written) loses its TCP
   * connection by then. Then flush.
   */
  #stepped(): void {
    if (this.#ws.readyState !== ReadyState.Open && !this.#closeTimerArmed) {
      this.#closeTimerArmed = true;
      this.#heap.schedule(this.#timer, this.#clock.now() + this.#options.closeTimeout);
    }
    if (this.#ws.bufferedAmount > 0 || this.#ws.finished) this.#queued();
  }

  /** Called after anything was queued: checks the slow-consumer bounds and schedules a flush. */
  #queued(): void {
    if (
      this.bufferedAmount > this.#options.maxBufferedBytes ||
      (this.#writing && this.#tooOld())
    ) {
      // A close frame would wait behind everything already queued: drop instead.
      this.#end("slow", CloseCode.PolicyViolation, "slow consumer");
      return;
    }
    if (this.#budget) this.#charge();
    if (this.#writing || this.#flushQueued || this.#receiving) return;
    this.#flushQueued = true;
    // Everything sent during this turn of the event loop goes out in one write.
    queueMicrotask(() => {
      this.#flushQueued = false;
      this.#flush();
    });
  }

  /**
   * Whether the batch being written — the oldest bytes queued, taken at most
   * a turn after they were — has waited past `maxBufferedAge`. Only while a
   * write is in flight can bytes wait long; otherwise they go out this turn.
   * The clock is read on every 64th send only, as a read costs more than the
   * rest of a small send; the keepalive timer checks the age too.
   */
  #tooOld(): boolean {
    if ((++this.#sendsWhileWriting & 63) !== 0) return false;
    return this.#clock.now() - this.#writeStartedAt > this.#options.maxBufferedAge;
  }

  /**
   * Writes batches until nothing is queued. A batch is a list of chunks (runs
   * of small frames, large payloads and prepared frames on their own),
   * written in order, one `write` per chunk — Deno has no vectored write —
   * except that small chunks in a row are gathered into one. While a batch is being
   * written the next one collects in the writer, which is why the chunks stay
   * valid until the next take. Once the Connection is finished, TCP ends.
   */
  async #flush(): Promise<void> {
    if (this.#writing || this.#ended) return;
    this.#writing = true;
    const ws = this.#ws;
    try {
      while (ws.bufferedAmount > 0) {
        const length = ws.bufferedAmount;
        const carriesPing = this.#pingQueued;
        this.#pingQueued = false;
        const chunks = ws.takeChunks();
        // bufferedAmount counts the batch until the kernel has taken each byte.
        this.#inFlight = length;
        // Flushing a read's replies, the clock was just read (each read is an op call).
        this.#writeStartedAt = this.#receiving ? this.#lastSeen : this.#clock.now();
        for (let i = 0; i < chunks.length;) {
          let chunk = chunks[i];
          const next = chunks[i + 1];
          let shared: Uint8Array | undefined;
          if (next && chunk.length <= GATHER_CHUNK_MAX && next.length <= GATHER_CHUNK_MAX) {
            // Small chunks in a row — prepared frames, and the runs between
            // them — are copied into one buffer and go out in one write.
            i = this.#gatherRun(chunks, i);
            chunk = this.#gather!.subarray(0, this.#gathered);
          } else {
            shared = chunk;
            i++;
          }
          // Inline rather than a helper: an extra await per write costs more
          // than anything else here when frames are small.
          for (let written = 0; written < chunk.length;) {
            this.#writePendingSince = written === 0 && i === 1
              ? this.#writeStartedAt
              : this.#clock.now();
            const n = await this.#conn.write(written === 0 ? chunk : chunk.subarray(written));
            this.#writePendingSince = Infinity;
            written += n;
            this.#inFlight -= n;
            if (this.#metrics !== undefined) this.#metrics.bytesOut.value += n;
          }
          if (shared) this.#written(shared);
        }
        if (carriesPing) this.#pingWrittenAt = this.#clock.now();
        if (this.#budget) this.#charge();
      }
    } catch {
      this.#writing = false;
      this.#end("error");
      return;
    }
    this.#writing = false;
    this.#gather = undefined;
    if (!ws.finished || this.#ended) return;
    if (ws.failing) this.#linger();
    else this.#end(this.#cause); // the closing handshake is complete: the server closes first (§7.1.1)
  }

  /**
   * Copies the run of small chunks from `start` into the gather buffer (grown
   * to fit, up to GATHER_SIZE), releasing each prepared frame among them, and
   * returns where the run ended; `#gathered` is how many bytes it holds.
   */
  #gatherRun(chunks: Uint8Array[], start: number): number {
    let end = start;
    let size = 0;
    for (; end < chunks.length; end++) {
      const length = chunks[end].length;
      if (length > GATHER_CHUNK_MAX || size + length > GATHER_SIZE) break;
      size += length;
    }
    const capacity = this.#gather?.length ?? 0;
    if (capacity < size) this.#gather = new Uint8Array(Math.max(size, 2 * capacity));
    const gather = this.#gather!;
    let used = 0;
    for (let i = start; i < end; i++) {
      gather.set(chunks[i], used);
      used += chunks[i].length;
      this.#written(chunks[i]); // copied: this connection's reference to a shared frame is done
    }
    this.#gathered = used;
    if (this.#budget) this.#charge(); // the copy is this connection's own until written
    return end;
  }

  /** A chunk is written or copied: if it was the oldest prepared frame, that reference is released. */
  #written(chunk: Uint8Array): void {
    const message = this.#prepared[this.#preparedHead];
    if (message === undefined || chunk !== message.frame) return;
    this.#prepared[this.#preparedHead++] = undefined as unknown as PreparedMessage;
    this.#sharedBytes -= chunk.length;
    this.#budget?.release(message);
    if (this.#preparedHead === this.#prepared.length) {
      this.#prepared.length = 0;
      this.#preparedHead = 0;
    } else if (this.#preparedHead > 1024 && this.#preparedHead * 2 > this.#prepared.length) {
      this.#prepared = this.#prepared.slice(this.#preparedHead);
      this.#preparedHead = 0;
    }
  }

  /** Brings the budget up to date with this connection's private bytes. */
  #charge(): void {
    const budget = this.#budget!;
    const buffered = this.bufferedAmount;
    const own = buffered - this.#sharedBytes;
    if (own !== this.#charged) {
      budget.charge(own - this.#charged);
      this.#charged = own;
    }
  }

  /**
   * Clock ms when the oldest byte not yet written was queued — when the batch
   * being written was taken, at most a turn later — or Infinity if none is.
   */
  #oldestQueuedAt(): number {
    return this.#writing ? this.#writeStartedAt : Infinity;
  }

  /**
   * A failed connection's close frame is written, but the peer may still be
   * sending (a message over the limit, say). Closing TCP now, with its bytes
   * unread, would make the kernel send a reset that can destroy the close
   * frame before the peer reads it. So send FIN instead, and keep reading and
   * discarding — bounded in bytes and time — until the peer's FIN.
   */
  #linger(): void {
    if (this.#lingering) return;
    this.#lingering = true;
    try {
      this.#conn.closeWrite();
    } catch {
      // Not connected any more: the read loop will see it.
    }
    const wait = Math.min(LINGER_MAX_TIME, this.#options.closeTimeout);
    this.#heap.schedule(this.#timer, this.#clock.now() + wait);
  }

  // ---- timer: keepalive while open, the close timeout while closing -------

  #armKeepalive(): void {
    const now = this.#clock.now();
    const action = nextKeepaliveAction(this.#keepaliveState(now, 0), now, this.#options.keepalive);
    if (action.kind !== "dead") this.#heap.schedule(this.#timer, action.at);
  }

  /** The keepalive's view of this connection, in one object reused by every connection's timer. */
  #keepaliveState(now: number, lateBy: number): KeepaliveState {
    const state = keepaliveScratch;
    state.lastSeen = this.#lastSeen;
    state.pingSentAt = this.#pingSentAt;
    state.pingWrittenAt = this.#pingWrittenAt;
    state.earlyBy = this.#earlyBy;
    state.lag = this.#lag.value(now);
    state.lateBy = lateBy;
    state.graced = this.#graced;
    return state;
  }

  #onTimer(): void {
    const now = this.#clock.now();
    if (this.#ws.readyState !== ReadyState.Open) {
      // The peer never answered our close frame, or never sent FIN while we lingered.
      this.#end(this.#cause);
      return;
    }
    if (
      this.#writing &&
      now - this.#writeStartedAt >
        Math.min(this.#options.writeTimeout, this.#options.maxBufferedAge)
    ) {
      this.#end("slow", CloseCode.PolicyViolation, "slow consumer");
      return;
    }
    // How late this timer fired: the server's own stall, not the peer's silence.
    const lateBy = now - this.#timer.at;
    const action = nextKeepaliveAction(
      this.#keepaliveState(now, lateBy),
      now,
      this.#options.keepalive,
    );
    switch (action.kind) {
      case "wait":
        this.#heap.schedule(this.#timer, action.at);
        return;
      case "grace":
        this.#graced = true;
        this.#heap.schedule(this.#timer, action.at);
        return;
      case "ping": {
        if (this.#pingSentAt >= 0) this.missedPongs++;
        if (this.#pingSentAt >= 0) this.#metrics?.missedPong();
        this.#pingSentAt = now;
        this.#metrics?.pingSent();
        this.#pingWrittenAt = -1;
        this.#pingQueued = true;
        this.#graced = false;
        // Re-arm first: the ping can end the connection (a full write queue),
        // and #end() must then find the timer armed to cancel it.
        this.#heap.schedule(this.#timer, action.at);
        stampView.setFloat64(0, now);
        this.ping(stamp);
        return;
      }
      case "dead":
        // The peer would never read a close frame: drop TCP (DESIGN.md, keepalive).
        this.missedPongs++;
        this.#metrics?.missedPong();
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
    if (!this.#ended && this.#ws.readyState === ReadyState.Open) {
      this.#cause = "error";
      this.#ws.fail(CloseCode.InternalError, "internal error");
      this.#stepped();
    }
    this.#onError?.(error);
  }

  /** Closes TCP and reports the end exactly once. */
  #end(cause: CloseInfo["cause"], code?: number, reason?: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#receiving = false;
    this.#cause = cause;
    this.#heap.cancel(this.#timer);
    this.#ws.transportClosed();
    this.#dropQueued();
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    const info: CloseInfo = {
      code: code ?? this.#ws.closeCode,
      reason: reason ?? this.#ws.closeReason,
      wasClean: this.#ws.wasClean,
      cause,
    };
    if (cause === "timeout") info.code = CloseCode.Abnormal;
    this.#onEnded(this, info);
    this.#callHandlerClosed(info);
  }

  /** What was queued will never be written: its bytes leave the budget. */
  #dropQueued(): void {
    const budget = this.#budget;
    for (let i = this.#preparedHead; i < this.#prepared.length; i++) {
      budget?.release(this.#prepared[i]);
    }
    this.#prepared = [];
    this.#preparedHead = 0;
    this.#sharedBytes = 0;
    this.#gather = undefined;
    budget?.charge(-this.#charged);
    this.#charged = 0;
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
