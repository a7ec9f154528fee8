/**
 * `serve()`: accept TCP (or TLS) connections, speak HTTP/1.1 with keep-alive,
 * hand requests to a `fetch` handler in the shape of `Deno.serve` /
 * `Bun.serve`, upgrade WebSocket requests, and keep every connection's
 * timers on one heap.
 *
 * @module
 */
import { CloseCode, encodeClosePayload } from "../protocol/close.ts";
import type { Clock } from "../protocol/clock.ts";
import { buildUpgradeResponse, validateUpgradeRequest } from "../protocol/handshake.ts";
import { type DeflateOptions, negotiateDeflate, PerMessageDeflate } from "../protocol/deflate.ts";
import { zlibEngine } from "./_zlib_engine.ts";
import {
  headerValue,
  type HttpRequestHead,
  type RequestEvent,
  RequestParser,
} from "../protocol/http1.ts";
import {
  type CloseInfo,
  type ConnectionOptions,
  queuedView,
  WebSocketConnection,
  type WebSocketHandler,
} from "./connection.ts";
import { closeQuietly, respondAndClose, writeAll, writeResponse } from "./_http_io.ts";
import { EventLoopLagSampler, type HeartwireMetrics } from "./metrics.ts";
import { systemClock, TimerHeap } from "./timer_heap.ts";
import { ConnectionRateLimit } from "./_rate_limit.ts";
import { OutboundBudget } from "./_outbound_budget.ts";
import { type Cidr, cidrContains, clientAddress, ipLimitKey, parseCidr } from "./trusted_proxy.ts";
import { retryAfterReason } from "../protocol/messages.ts";

/**
 * The answer of an {@linkcode ServeOptions.authenticate} hook: `true` lets the
 * upgrade go on, `false` refuses it with 401, an object picks the status.
 */
export type AuthResult = boolean | { status: 401 | 403; reason?: string };

/**
 * The answer of a {@linkcode ServeOptions.refuseUpgrade} hook that refuses:
 * the status, a short reason for the body, and extra header fields.
 */
export interface UpgradeRefusal {
  /** The HTTP status (503 to shed load). */
  status: number;
  /** Sent as the plain-text body. Default "refused". */
  reason?: string;
  /** Extra header fields, e.g. `Retry-After`. */
  headers?: Record<string, string>;
}

/**
 * Everything {@linkcode serve} can be told. Every field has a default.
 *
 * @example
 * ```ts
 * import type { ServeOptions } from "@heartwire/heartwire/server";
 * const options: ServeOptions = {
 *   port: 8080,
 *   fetch: () => new Response("hello\n"),
 *   pingInterval: 25_000,
 * };
 * ```
 */
export interface ServeOptions<T = unknown> {
  /** TCP port; 0 picks a free one (see {@linkcode Server.addr}). Default 8080. */
  port?: number;
  /** Interface to listen on. Default "0.0.0.0". */
  hostname?: string;
  /** PEM certificate and key: serve wss:// with `Deno.listenTls`. */
  tls?: { cert: string; key: string };
  /**
   * Share the port with other processes that set it too (`SO_REUSEPORT`;
   * Linux spreads new connections over them): how `--workers N` runs N
   * processes on one port. Needs `--unstable-net` (or `"unstable": ["net"]`
   * in deno.json). Default false.
   */
  reusePort?: boolean;
  /**
   * Proxies (CIDR ranges or addresses, e.g. `"127.0.0.1"`, `"10.0.0.0/8"`)
   * whose `Forwarded` / `X-Forwarded-For` headers are believed. A WebSocket
   * that comes through one is counted, for `maxConnectionsPerIp` and as
   * {@linkcode WebSocketConnection.clientAddress}, under the address the
   * proxy forwarded; the proxy's own sockets are bounded by
   * `maxConnections` only. Default none: the TCP peer is the client.
   *
   * @throws {RangeError} from serve() for an entry that is not an address or range.
   */
  trustedProxies?: readonly (string | Cidr)[];
  /**
   * Answers every HTTP request that is not on one of `routes`, as in
   * `Deno.serve`: request bodies stream from the connection, and a
   * `Response` whose body is a stream is written chunked. Inside it,
   * {@linkcode Server.upgrade} turns the request's connection into a
   * WebSocket handled by `websocket`. Without it, such requests get 404.
   * If it throws, the client gets 500 and `onError` the error.
   */
  fetch?: (request: Request, server: Server<T>) => Response | Promise<Response>;
  /** The callbacks of connections upgraded with {@linkcode Server.upgrade}. */
  websocket?: WebSocketHandler<T>;
  /**
   * WebSocket endpoints by path, upgraded before `fetch` is asked: requests
   * on them get the handshake checks (405, 426, 400), `allowedOrigins` (403)
   * and `authenticate`. Default: none.
   */
  routes?: Record<string, WebSocketHandler>;
  /** Silence (ms) before a connection is pinged. Default 25 000: well under nginx's 60 s. */
  pingInterval?: number;
  /** Time (ms) a pinged peer has to answer before it is dropped. Default 10 000. */
  pingTimeout?: number;
  /** Spread of ping times as a fraction of the interval. Default 0.1. */
  pingJitter?: number;
  /** Largest message in bytes; larger ones close with 1009. Default 1 MiB. */
  maxPayload?: number;
  /**
   * permessage-deflate (RFC 7692) with every client that offers it: `true`
   * for the defaults, or the policy ({@linkcode DeflateOptions}). A
   * compressed message counts against `maxPayload` at its inflated size.
   * The defaults compress each outgoing message on its own
   * (`server_no_context_takeover`), so a connection holds no compression
   * state; a client that keeps its context costs up to ~39 KiB of inflate
   * state. Default: off.
   */
  deflate?: boolean | DeflateOptions;
  /** Open sockets (HTTP or upgraded) before new ones get 503. Default 10 000. */
  maxConnections?: number;
  /**
   * Open sockets per remote IP before new ones get 429; an IPv6 address
   * counts by its /64 ({@linkcode ipLimitKey}), as does the rate below.
   * Default: no cap.
   */
  maxConnectionsPerIp?: number;
  /**
   * New sockets per remote IP per second, sustained; past it they get 429
   * with `Retry-After`. An upgrade costs the server ~0.1 ms of CPU, so one
   * address connecting in a loop would otherwise spend a core that everyone
   * else needs, however few it holds open at a time. Every socket straight
   * from a client counts, plain HTTP too (a health checker polling faster
   * gets 429 as well); behind a trusted proxy only WebSocket upgrades count,
   * each for the client the proxy names. Being refused for it spends
   * nothing, so a client that keeps trying is let in at the rate. Default: no limit.
   */
  maxConnectionRatePerIp?: number;
  /**
   * New sockets one IP may open at once before `maxConnectionRatePerIp`
   * applies (at least 1). Default: 10 seconds' worth, or `maxConnectionsPerIp`
   * if that is more (an address may reopen at once everything it may hold,
   * as after a restart), and at least 1.
   */
  connectionBurstPerIp?: number;
  /** Allowed `Origin` values for upgrades on `routes`; others get 403. Default: any origin. */
  allowedOrigins?: string[];
  /**
   * Asked first for every request on one of `routes`: a refusal is answered
   * at once, before the handshake checks (load shedding: 503 with
   * `Retry-After` while overloaded); undefined lets it go on. Other HTTP
   * requests are not asked. Default: none.
   */
  refuseUpgrade?: (request: HttpRequestHead, path: string) => UpgradeRefusal | undefined;
  /** Decides whether an upgrade on `routes` may go on (after the handshake checks). */
  authenticate?: (request: HttpRequestHead) => AuthResult | Promise<AuthResult>;
  /** Largest request head (bytes) before 431. Default 16 KiB. */
  maxHeaderBytes?: number;
  /** Largest request body (bytes) before 413. Default 16 MiB. */
  maxBodyBytes?: number;
  /**
   * Time (ms) a client has to send a whole request head, counted from
   * the connection's start, or from the first byte of a later request on
   * a kept-alive connection (the slowloris guard); also the longest pause
   * in a request body the server is waiting for. Default 10 000.
   */
  handshakeTimeout?: number;
  /**
   * Least average rate (bytes/s) of a request body the handler is reading,
   * after a grace of `handshakeTimeout`: the time the server has spent
   * waiting for body bytes may not pass `handshakeTimeout + received /
   * minBodyRate`, else the connection is dropped. Without it a client
   * trickling a byte just inside `handshakeTimeout` would hold the
   * connection and the handler for as long as `maxBodyBytes` allows; a
   * real upload, even a slow one, stays well above it. Time the handler
   * spends not reading does not count. 0 turns the check off. Default 1 024.
   */
  minBodyRate?: number;
  /** Time (ms) a kept-alive connection may wait idle for its next request. Default 5 000. */
  keepAliveTimeout?: number;
  /** Time (ms) to wait for the peer's close frame. Default 5 000. */
  closeTimeout?: number;
  /**
   * Bytes queued to a non-reading peer before it is dropped as a slow
   * consumer (a broadcast frame counts in full for every recipient). Default 16 MiB.
   */
  maxBufferedBytes?: number;
  /**
   * Time (ms) the oldest byte queued to a peer may wait unwritten before the
   * peer is dropped as a slow consumer: the bound for many small messages,
   * which take long to reach `maxBufferedBytes`. Checked on every send while
   * a write is pending, and when the keepalive timer fires. Default 10 000.
   */
  maxBufferedAge?: number;
  /**
   * Bytes queued to all peers together, counting a broadcast frame
   * ({@linkcode WebSocketConnection.sendPrepared}) once however many peers
   * hold it. Past it, the peers furthest behind (oldest unwritten byte first)
   * are dropped as slow consumers until the total is under three quarters of
   * it. Default 256 MiB.
   */
  maxQueuedBytes?: number;
  /**
   * Time (ms) a batch of writes may stay unfinished before the peer is dropped
   * as a slow consumer. Checked when the connection's one keepalive timer
   * fires, so the drop comes within `writeTimeout + pingInterval`. Also the
   * longest one write of an HTTP response (or a part of a streamed one) may
   * take: a client that stops reading its answers is dropped. Default 30 000.
   */
  writeTimeout?: number;
  /** Source of time and the one OS timer. Default: the system clock. */
  clock?: Clock;
  /**
   * Counts connections, close reasons, refusals, messages, bytes, pings and
   * pongs into these metrics (plain additions on the hot path), sums queued
   * bytes over the open connections when scraped, and samples event-loop lag
   * until shutdown. Default: none, and nothing is counted.
   */
  metrics?: HeartwireMetrics;
  /** Called once listening. Default: silent. If it throws, serve() closes the listener and rethrows. */
  onListen?: (addr: Deno.NetAddr) => void;
  /**
   * Called for errors the server contained: accept failures, a WebSocket
   * handler that threw (its connection was closed with 1011), `fetch` or
   * `authenticate` that threw (answered 500). Default: silent. If it throws
   * itself, that is ignored.
   */
  onError?: (error: unknown) => void;
}

/**
 * Counters a server keeps (the base of `/metrics`).
 *
 * @example
 * ```ts
 * import { serve } from "@heartwire/heartwire/server";
 * const server = serve({ port: 0, fetch: () => new Response("ok\n") });
 * console.log(server.stats.accepted);
 * await server.shutdown();
 * ```
 */
export interface ServerStats {
  /** TCP connections accepted. */
  accepted: number;
  /** HTTP requests read (several per kept-alive connection). */
  requests: number;
  /** Successful WebSocket upgrades. */
  upgraded: number;
  /** HTTP responses (including refused upgrades), by status. */
  responses: Record<number, number>;
  /** WebSocket connections ended, by cause. */
  closed: Record<CloseInfo["cause"], number>;
  /** Connections dropped because a request head did not arrive in time. */
  handshakeTimeouts: number;
}

/**
 * Options for {@linkcode Server.upgrade}.
 *
 * @example
 * ```ts
 * import type { UpgradeOptions } from "@heartwire/heartwire/server";
 * const options: UpgradeOptions<{ user: string }> = { data: { user: "ada" } };
 * ```
 */
export interface UpgradeOptions<T = unknown> {
  /** Becomes `ws.data` of the new connection. */
  data?: T;
  /** Extra header fields for the `101 Switching Protocols` response. */
  headers?: HeadersInit;
}

/**
 * A running server.
 *
 * @example
 * ```ts
 * import { serve } from "@heartwire/heartwire/server";
 * const server = serve({ port: 0, fetch: () => new Response("ok\n") });
 * console.log(`listening on ${server.addr.port}, ${server.connections.size} open`);
 * await server.shutdown();
 * ```
 */
export interface Server<T = unknown> {
  /** Where the server listens. */
  readonly addr: Deno.NetAddr;
  /** The open WebSocket connections. */
  readonly connections: ReadonlySet<WebSocketConnection>;
  /** Counters since start. */
  readonly stats: ServerStats;
  /** Resolves once the server has shut down. */
  readonly finished: Promise<void>;
  /**
   * Called inside `fetch`: upgrades `request`'s own connection to a
   * WebSocket handled by the `websocket` option, once `fetch` returns (its
   * return value is then ignored). Returns false, changing nothing, if
   * `request` is not a valid upgrade request (RFC 6455 §4.2.1) from this
   * server; `fetch` then answers it as it likes.
   *
   * @throws {TypeError} if serve() was given no `websocket` handler.
   */
  upgrade(request: Request, options?: UpgradeOptions<T>): boolean;
  /**
   * Stops accepting, closes every connection with `code` (1001 going away, or
   * 1012 for a restart) and waits up to `timeout` ms before dropping the rest.
   * Rejects with a RangeError, having changed nothing, if `code` may not be
   * sent (RFC 6455 §7.4), `reason` is over 123 UTF-8 bytes or `retryAfter` is negative.
   */
  shutdown(options?: ShutdownOptions): Promise<void>;
}

/**
 * How {@linkcode Server.shutdown} winds down.
 */
export interface ShutdownOptions {
  /** Close code sent to every connection. Default 1001. */
  code?: number;
  /** Close reason. Default "server shutting down". */
  reason?: string;
  /** Drain time (ms) before the remaining connections are dropped. Default 5 000. */
  timeout?: number;
  /**
   * A retry hint window (ms): each connection's close reason becomes
   * `retry-after=MS` with MS drawn uniformly from [0, retryAfter], instead
   * of `reason`. Clients that honour the hint (1012 or 1013) then come back
   * spread over the window, not all at once. Default: no hint.
   */
  retryAfter?: number;
}

/**
 * A WebSocket handler that sends every message back exactly as it came.
 *
 * @example
 * ```ts
 * import { echoHandler, serve } from "@heartwire/heartwire/server";
 * const server = serve({ port: 0, routes: { "/echo": echoHandler } });
 * await server.shutdown();
 * ```
 */
export const echoHandler: WebSocketHandler = {
  message(ws, data) {
    ws.send(data);
  },
};

/**
 * Starts an HTTP/1.1 and WebSocket server on raw TCP (or TLS).
 *
 * @throws {RangeError} if a timing option is not a finite number of ms (the
 * ping interval and timeout must be at least 1), `pingJitter` is not in [0, 1),
 * `maxConnectionRatePerIp` is not above 0 or `connectionBurstPerIp` is below 1.
 *
 * @example
 * ```ts
 * import { serve } from "@heartwire/heartwire/server";
 * const server = serve<{ user: string }>({
 *   port: 0,
 *   fetch(request, server) {
 *     const user = new URL(request.url).searchParams.get("user") ?? "guest";
 *     if (server.upgrade(request, { data: { user } })) return new Response(null);
 *     return new Response("hello\n");
 *   },
 *   websocket: {
 *     open: (ws) => ws.send(`welcome, ${ws.data.user}`),
 *     message: (ws, data) => ws.send(data),
 *   },
 * });
 * await server.shutdown();
 * ```
 */
export function serve<T = unknown>(options: ServeOptions<T> = {}): Server<T> {
  return new HeartwireServer<T>(options);
}

/** An upgrade that `fetch` asked for with `server.upgrade()`. */
interface PendingUpgrade {
  key: string;
  protocol?: string;
  data: unknown;
  headers?: HeadersInit;
}

/** What `server.upgrade()` needs to know about a request handed to `fetch`. */
interface RequestState {
  head: HttpRequestHead;
  upgrade?: PendingUpgrade;
}

/** One HTTP connection: the socket, its parser and its head deadline. */
interface HttpConn {
  conn: Deno.Conn;
  parser: RequestParser;
  buffer: Uint8Array;
  /** Serialises reads: a request body's stream and the connection loop share the parser. */
  lock: Promise<unknown>;
  /** Waiting, idle, for the next request on a kept-alive connection. */
  idle: boolean;
  /** The head deadline (or idle timeout) timer. */
  deadline: ReturnType<TimerHeap["create"]>;
  /** The deadline of the write under way (`writeTimeout`): a client that does not read is dropped. */
  writeDeadline: ReturnType<TimerHeap["create"]>;
  /**
   * The body of the request being answered: whether it was read to its end,
   * and begun; the bytes the handler has read of it, and the time (ms) the
   * server has waited for them (`minBodyRate`).
   */
  body: { done: boolean; started: boolean; received: number; waited: number };
  /** The request body broke the framing or a limit while the handler read it. */
  failed?: { status: number; reason: string };
}

/** Bytes read from a connection at a time while it speaks HTTP. */
const HTTP_READ_BUFFER = 2048;

class HeartwireServer<T> implements Server<T> {
  readonly addr: Deno.NetAddr;
  readonly connections: Set<WebSocketConnection> = new Set();
  readonly stats: ServerStats = {
    accepted: 0,
    requests: 0,
    upgraded: 0,
    responses: {},
    closed: { peer: 0, local: 0, protocol: 0, timeout: 0, slow: 0, error: 0 },
    handshakeTimeouts: 0,
  };
  readonly finished: Promise<void>;

  #listener: Deno.Listener;
  #clock: Clock;
  #heap: TimerHeap;
  /** A Map, not the options' object: a target like `constructor` must not find Object's members. */
  #routes: Map<string, WebSocketHandler>;
  #connectionOptions: ConnectionOptions;
  /** Bytes queued to all peers together (`maxQueuedBytes`). */
  #budget: OutboundBudget<WebSocketConnection>;
  #options: ServeOptions<T>;
  #deflate: DeflateOptions | undefined;
  /** `http` or `https`: the scheme of request URLs. */
  #scheme: string;
  /** The origin of request URLs when the client named no Host (HTTP/1.0). */
  #origin: string;
  /** Every accepted socket still speaking HTTP (not upgraded, not closed). */
  #http = new Map<Deno.Conn, HttpConn>();
  #requests = new WeakMap<Request, RequestState>();
  #perIp = new Map<string, number>();
  #connectionRate: ConnectionRateLimit | undefined;
  #trusted: Cidr[];
  #shuttingDown: Promise<void> | undefined;
  #resolveFinished!: () => void;
  /** Made once and shared by every connection, not a pair of closures each. */
  #ended = (ws: WebSocketConnection, info: CloseInfo) => this.#onEnded(ws, info);
  #reportError = (error: unknown) => this.#report(error);
  #drained: (() => void) | undefined;
  #metrics: HeartwireMetrics | undefined;
  #lag: EventLoopLagSampler | undefined;
  /** `writeTimeout`: the longest a write to any peer, HTTP or WebSocket, may take. */
  #writeTimeout: number;

  constructor(options: ServeOptions<T>) {
    checkTimings(options);
    this.#options = options;
    this.#deflate = options.deflate === true ? {} : options.deflate || undefined;
    // Bad window bits throw here, not at the first upgrade.
    if (this.#deflate) negotiateDeflate("permessage-deflate", this.#deflate);
    this.#clock = options.clock ?? systemClock;
    this.#heap = new TimerHeap({ clock: this.#clock });
    const rate = options.maxConnectionRatePerIp;
    if (rate !== undefined) {
      const clock = this.#clock;
      this.#connectionRate = new ConnectionRateLimit({
        rate,
        // At least one: a rate under 0.1/s still lets an address connect.
        burst: options.connectionBurstPerIp ??
          Math.max(1, 10 * rate, options.maxConnectionsPerIp ?? 0),
        now: () => clock.now(),
      });
    }
    this.#routes = new Map(Object.entries(options.routes ?? {}));
    const pingInterval = options.pingInterval ?? 25_000;
    const pingTimeout = options.pingTimeout ?? 10_000;
    const maxQueuedBytes = options.maxQueuedBytes ?? 256 * 1024 * 1024;
    if (!(maxQueuedBytes > 0)) {
      throw new RangeError(`maxQueuedBytes must be a positive number; got ${maxQueuedBytes}`);
    }
    this.#writeTimeout = options.writeTimeout ?? 30_000;
    this.#budget = new OutboundBudget(maxQueuedBytes, this.#clock, this.connections, queuedView);
    this.#connectionOptions = {
      keepalive: { interval: pingInterval, timeout: pingTimeout },
      pingJitter: options.pingJitter ?? 0.1,
      maxPayload: options.maxPayload ?? 1024 * 1024,
      closeTimeout: options.closeTimeout ?? 5_000,
      maxBufferedBytes: options.maxBufferedBytes ?? 16 * 1024 * 1024,
      maxBufferedAge: options.maxBufferedAge ?? 10_000,
      writeTimeout: this.#writeTimeout,
    };
    this.#trusted = (options.trustedProxies ?? []).map((entry) =>
      typeof entry === "string" ? parseCidr(entry) : entry
    );
    const hostname = options.hostname ?? "0.0.0.0";
    const port = options.port ?? 8080;
    const reusePort = options.reusePort ?? false;
    this.#listener = options.tls
      ? Deno.listenTls({ hostname, port, cert: options.tls.cert, key: options.tls.key, reusePort })
      : Deno.listen({ hostname, port, reusePort });
    this.addr = this.#listener.addr as Deno.NetAddr;
    const host = this.addr.hostname.includes(":") ? `[${this.addr.hostname}]` : this.addr.hostname;
    this.#scheme = options.tls ? "https" : "http";
    this.#origin = `${this.#scheme}://${host}:${this.addr.port}`;
    this.finished = new Promise((resolve) => this.#resolveFinished = resolve);
    try {
      options.onListen?.(this.addr);
    } catch (error) {
      // serve() fails as a whole: no listener is left holding the port.
      this.#listener.close();
      throw error;
    }
    this.#metrics = options.metrics;
    if (this.#metrics) this.#watch(this.#metrics);
    this.#acceptLoop();
  }

  /** Metrics read at scrape time, and the event-loop lag probe. */
  #watch(metrics: HeartwireMetrics): void {
    // Added to what another server sharing these metrics (ws:// beside wss://) reports.
    const others = metrics.queuedBytes.collect;
    metrics.queuedBytes.collect = () => {
      let queued = others?.() ?? 0;
      for (const ws of this.connections) queued += ws.bufferedAmount;
      return queued;
    };
    const lag = this.#lag = new EventLoopLagSampler((ms) => metrics.eventLoopLag.set(ms));
    lag.start();
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#shuttingDown) return;
        // EMFILE and friends: report, breathe, and keep serving those we have.
        this.#report(error);
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      this.#accept(conn);
    }
  }

  #openSockets(): number {
    return this.#http.size + this.connections.size;
  }

  async #accept(conn: Deno.Conn): Promise<void> {
    this.stats.accepted++;
    // Replies are already batched into one write per turn; Nagle would only
    // hold a lone small frame back until the peer's delayed ACK (~40 ms).
    // TLS connections have no such switch.
    try {
      (conn as Partial<Deno.TcpConn>).setNoDelay?.(true);
    } catch {
      // The peer already reset (setsockopt then fails on some systems, e.g.
      // EINVAL on macOS): its first read will fail and end it. Throwing here
      // would be an unhandled rejection, since nobody awaits #accept().
    }
    // Accepted after shutdown began (it was already in the listen queue):
    // served like any request under way, with Connection: close.
    if (this.#openSockets() >= (this.#options.maxConnections ?? 10_000)) {
      return this.#refuse(conn, 503, "too many connections");
    }
    const ip = (conn.remoteAddr as Deno.NetAddr).hostname;
    // A trusted proxy's sockets carry many clients: they are counted per
    // client at the upgrade (#completeUpgrade), not here.
    const proxied = this.#trusted.length > 0 && this.#trusted.some((r) => cidrContains(r, ip));
    if (!proxied) {
      const wait = this.#connectionRate?.take(ipLimitKey(ip)) ?? 0;
      if (wait > 0) return this.#refuseRate(conn, wait);
      if (!this.#admitIp(ip)) {
        return this.#refuse(conn, 429, "too many connections from your address");
      }
    }
    const http: HttpConn = {
      conn,
      parser: new RequestParser({
        maxHeaderBytes: this.#options.maxHeaderBytes ?? 16 * 1024,
        maxBodyBytes: this.#options.maxBodyBytes,
      }),
      buffer: new Uint8Array(HTTP_READ_BUFFER),
      lock: Promise.resolve(),
      idle: false,
      body: { done: true, started: false, received: 0, waited: 0 },
      deadline: this.#heap.create(() => {
        // Slowloris guard, or an idle kept-alive connection: drop it.
        if (!http.idle) this.stats.handshakeTimeouts++;
        this.#http.delete(conn);
        closeQuietly(conn);
      }),
      // A client that pipelines requests and never reads the answers would
      // otherwise hold its socket (and a maxConnections slot) for ever.
      writeDeadline: this.#heap.create(() => {
        this.#http.delete(conn);
        closeQuietly(conn);
      }),
    };
    this.#http.set(conn, http);
    let upgraded = false;
    try {
      upgraded = await this.#serveHttp(http);
    } catch (error) {
      // A peer that reset, or a socket our deadline or shutdown closed, is
      // business as usual; anything else (a response body stream that
      // failed, say) is worth reporting.
      if (!isIoError(error)) this.#report(error);
      closeQuietly(conn);
    } finally {
      this.#heap.cancel(http.deadline);
      this.#heap.cancel(http.writeDeadline);
      this.#http.delete(conn);
      if (!upgraded && !proxied) this.#releaseIp(ip);
    }
    this.#drainedCheck();
  }

  /** Hands a contained error to onError, which must not take the server down either. */
  #report(error: unknown): void {
    try {
      this.#options.onError?.(error);
    } catch {
      // A broken error reporter is not a reason to stop serving.
    }
  }

  /** 429 for an address over `maxConnectionRatePerIp`, with when to come back (RFC 9110 §10.2.3). */
  #refuseRate(conn: Deno.Conn, waitMs: number): Promise<void> {
    return this.#refuse(conn, 429, "connecting too often from your address", {
      "Retry-After": String(Math.ceil(waitMs / 1000)),
    });
  }

  /**
   * Counts one more socket from `ip` (an IPv6 one by its /64: ipLimitKey);
   * false (counting nothing) when it is at the cap.
   */
  #admitIp(ip: string): boolean {
    const cap = this.#options.maxConnectionsPerIp;
    const key = ipLimitKey(ip);
    const fromIp = this.#perIp.get(key) ?? 0;
    if (cap !== undefined && fromIp >= cap) return false;
    this.#perIp.set(key, fromIp + 1);
    return true;
  }

  #releaseIp(ip: string): void {
    const key = ipLimitKey(ip);
    const left = (this.#perIp.get(key) ?? 1) - 1;
    if (left > 0) this.#perIp.set(key, left);
    else this.#perIp.delete(key);
  }

  #refuse(
    conn: Deno.Conn,
    status: number,
    reason: string,
    headers?: Record<string, string>,
  ): Promise<void> {
    this.#count(status);
    this.#metrics?.handshakeRefused(status);
    // respondAndClose closes the socket whatever happens, so the timer
    // need not be cancelled: at worst it closes a closed socket.
    const http = this.#http.get(conn);
    if (http) this.#heap.schedule(http.writeDeadline, this.#clock.now() + this.#writeTimeout);
    return respondAndClose(conn, status, reason, headers);
  }

  #count(status: number): void {
    this.stats.responses[status] = (this.stats.responses[status] ?? 0) + 1;
  }

  #arm(http: HttpConn, ms: number): void {
    this.#heap.schedule(http.deadline, this.#clock.now() + ms);
  }

  /** Writes to an HTTP connection within `writeTimeout`, else the connection is dropped. */
  async #write(http: HttpConn, data: string | Uint8Array): Promise<void> {
    this.#heap.schedule(http.writeDeadline, this.#clock.now() + this.#writeTimeout);
    try {
      await writeAll(http.conn, data);
    } finally {
      this.#heap.cancel(http.writeDeadline);
    }
  }

  /** The next parser event, reading from the socket as needed; one reader at a time. */
  #nextEvent(http: HttpConn): Promise<RequestEvent> {
    const next = http.lock.then(() => this.#readEvent(http));
    http.lock = next.catch(() => {});
    return next;
  }

  async #readEvent(http: HttpConn): Promise<RequestEvent> {
    for (;;) {
      const event = http.parser.next();
      if (event.type !== "need-data") return event;
      let n: number | null;
      try {
        n = await http.conn.read(http.buffer);
      } catch {
        n = null; // reset, or closed by a timeout
      }
      if (n === null) {
        http.parser.receiveEof();
        continue;
      }
      if (http.idle) {
        // The next request started: from now on its head has the head timeout.
        http.idle = false;
        this.#arm(http, this.#options.handshakeTimeout ?? 10_000);
      }
      http.parser.receive(http.buffer.subarray(0, n));
    }
  }

  /** Answers requests until the connection closes; true if it became a WebSocket. */
  async #serveHttp(http: HttpConn): Promise<boolean> {
    this.#arm(http, this.#options.handshakeTimeout ?? 10_000);
    for (;;) {
      const event = await this.#nextEvent(http);
      if (event.type === "closed") {
        closeQuietly(http.conn);
        return false;
      }
      if (event.type === "error") {
        // Not to a socket the deadline or a shutdown already closed.
        if (this.#http.has(http.conn)) await this.#refuse(http.conn, event.status, event.reason);
        closeQuietly(http.conn);
        return false;
      }
      if (event.type !== "request") throw new Error(`unexpected ${event.type} before a head`);
      this.#heap.cancel(http.deadline);
      this.stats.requests++;
      // Every request's events run to an `end`, even with no body.
      http.body = { done: false, started: false, received: 0, waited: 0 };
      const outcome = await this.#answer(http, event);
      if (outcome === "upgraded") return true;
      if (outcome === "close" || !(await this.#finishBody(http))) {
        closeQuietly(http.conn);
        return false;
      }
      if (this.#shuttingDown) {
        closeQuietly(http.conn);
        return false;
      }
      http.idle = true;
      this.#arm(http, this.#options.keepAliveTimeout ?? 5_000);
    }
  }

  /**
   * Reads and drops what the handler left of the request body, so the next
   * request starts where it should; false if the connection cannot go on.
   */
  async #finishBody(http: HttpConn): Promise<boolean> {
    const body = http.body;
    if (body.done) return true;
    body.done = true; // a late read of the stream must not eat the next request
    // The rest must come as fast as a head would: a client that stalls here
    // is dropped by the deadline, not held open.
    this.#arm(http, this.#options.handshakeTimeout ?? 10_000);
    for (;;) {
      const event = await this.#nextEvent(http);
      if (event.type === "end") return true;
      if (event.type !== "data") return false;
    }
  }

  async #answer(
    http: HttpConn,
    event: Extract<RequestEvent, { type: "request" }>,
  ): Promise<"keep" | "close" | "upgraded"> {
    const { head } = event;
    const path = head.target.split("?", 1)[0];
    const route = this.#routes.get(path);
    if (route) return await this.#routeUpgrade(http, head, path, route);
    const fetch = this.#options.fetch;
    if (!fetch) {
      return await this.#respond(
        http,
        event,
        new Response(`no route for ${path}\n`, { status: 404 }),
      );
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without exactly one Host is refused.
    const host = headerValue(head, "host");
    if (head.version !== "1.0" && (host === null || host === "" || host.includes(","))) {
      await this.#refuse(http.conn, 400, "exactly one Host header is required");
      return "close";
    }
    let url: URL;
    try {
      url = requestUrl(head.target, host ? `${this.#scheme}://${host}` : this.#origin);
    } catch {
      await this.#refuse(http.conn, 400, `invalid request target ${head.target}`);
      return "close";
    }
    const request = new Request(url, {
      method: head.method,
      headers: head.headers,
      body: this.#bodyStream(http, event),
    });
    const state: RequestState = { head };
    this.#requests.set(request, state);
    let response: Response;
    try {
      response = await fetch(request, this);
    } catch (error) {
      if (state.upgrade) {
        // It upgraded, then threw: the upgrade stands, as its return value would be ignored.
        this.#report(error);
      } else {
        const failed = http.failed;
        if (failed) {
          // The body it was reading broke a limit: say that, not 500.
          await this.#refuse(http.conn, failed.status, failed.reason);
          return "close";
        }
        this.#report(error);
        response = new Response("internal error\n", { status: 500 });
        return await this.#respond(http, event, response);
      }
    } finally {
      // upgrade() works only while fetch runs: a later call must not upgrade a
      // connection that has moved on to other requests.
      this.#requests.delete(request);
    }
    if (state.upgrade) {
      return await this.#completeUpgrade(http, head, path, this.#options.websocket!, state.upgrade);
    }
    if (!(response! instanceof Response)) {
      this.#report(new TypeError("fetch must return a Response"));
      response = new Response("internal error\n", { status: 500 });
    }
    return await this.#respond(http, event, response);
  }

  /** The request body as a stream fed from the connection, or null if it has none. */
  #bodyStream(
    http: HttpConn,
    event: Extract<RequestEvent, { type: "request" }>,
  ): ReadableStream<Uint8Array> | null {
    if (event.body.kind === "none") return null;
    const body = http.body;
    // GET and HEAD may not carry a body in a Request; it is read and dropped.
    if (event.head.method === "GET" || event.head.method === "HEAD") return null;
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        if (body.done) return controller.close();
        if (!body.started && event.expectContinue) {
          // RFC 9110 §10.1.1: the client waits for this before sending the body.
          await this.#write(http, "HTTP/1.1 100 Continue\r\n\r\n");
        }
        body.started = true;
        // While the handler waits on the client, the client has the head
        // timeout to send more (a stalled body cannot hold the connection),
        // and no longer than minBodyRate allows for what it has sent so far
        // (nor can a body trickled just inside that timeout).
        const timeout = this.#options.handshakeTimeout ?? 10_000;
        const rate = this.#options.minBodyRate ?? 1024;
        const budget = rate > 0 ? timeout + body.received * 1000 / rate - body.waited : timeout;
        const start = this.#clock.now();
        this.#arm(http, Math.max(0, Math.min(timeout, budget)));
        const next = await this.#nextEvent(http);
        this.#heap.cancel(http.deadline);
        body.waited += this.#clock.now() - start;
        if (next.type === "data") {
          body.received += next.data.length;
          return controller.enqueue(next.data);
        }
        body.done = true;
        if (next.type === "end") return controller.close();
        if (next.type === "error") http.failed = next;
        controller.error(
          new Error(next.type === "error" ? next.reason : "request body ended early"),
        );
      },
    }, { highWaterMark: 0 });
  }

  async #respond(
    http: HttpConn,
    event: Extract<RequestEvent, { type: "request" }>,
    response: Response,
  ): Promise<"keep" | "close"> {
    this.#count(response.status);
    // A client told "100 Continue" never sends its body unasked: rather than
    // wait for it to give up waiting, end the connection (RFC 9110 §10.1.1).
    const unsentBody = event.expectContinue && !http.body.started;
    const keepAlive = await writeResponse(http.conn, response, {
      write: (data) => this.#write(http, data),
      head: event.head.method === "HEAD",
      http10: event.head.version === "1.0",
      keepAlive: event.keepAlive && !unsentBody && !this.#shuttingDown,
    });
    return keepAlive ? "keep" : "close";
  }

  upgrade(request: Request, options: UpgradeOptions<T> = {}): boolean {
    const websocket = this.#options.websocket;
    if (!websocket) throw new TypeError("serve() was given no websocket handler to upgrade to");
    const state = this.#requests.get(request);
    if (!state || state.upgrade) return false;
    const decision = validateUpgradeRequest(state.head, { protocols: websocket.protocols });
    if (!decision.ok) return false;
    state.upgrade = {
      key: decision.key,
      protocol: decision.protocol,
      data: options.data,
      headers: options.headers,
    };
    return true;
  }

  /** An upgrade on one of `routes`: the handshake checks, origins and authenticate. */
  async #routeUpgrade(
    http: HttpConn,
    head: HttpRequestHead,
    path: string,
    route: WebSocketHandler,
  ): Promise<"close" | "upgraded"> {
    const { conn } = http;
    const refusal = this.#options.refuseUpgrade?.(head, path);
    if (refusal) {
      await this.#refuse(conn, refusal.status, refusal.reason ?? "refused", refusal.headers);
      return "close";
    }
    const decision = validateUpgradeRequest(head, { protocols: route.protocols });
    if (!decision.ok) {
      await this.#refuse(conn, decision.status, decision.reason, decision.headers);
      return "close";
    }
    const allowed = this.#options.allowedOrigins;
    if (allowed && !allowed.includes(headerValue(head, "origin") ?? "")) {
      await this.#refuse(conn, 403, "origin not allowed");
      return "close";
    }
    const authenticate = this.#options.authenticate;
    if (authenticate) {
      let verdict: AuthResult;
      try {
        verdict = await authenticate(head);
      } catch (error) {
        this.#report(error);
        await this.#refuse(conn, 500, "internal error");
        return "close";
      }
      if (verdict !== true) {
        const status = verdict === false ? 401 : verdict.status;
        const reason = verdict === false ? "unauthorized" : verdict.reason ?? "forbidden";
        await this.#refuse(conn, status, reason);
        return "close";
      }
    }
    return await this.#completeUpgrade(http, head, path, route, {
      key: decision.key,
      protocol: decision.protocol,
      data: undefined,
    });
  }

  /** Writes the 101 and hands the socket to a WebSocketConnection. */
  async #completeUpgrade(
    http: HttpConn,
    head: HttpRequestHead,
    path: string,
    handler: WebSocketHandler<T> | WebSocketHandler,
    upgrade: PendingUpgrade,
  ): Promise<"close" | "upgraded"> {
    const { conn } = http;
    if (!this.#http.has(conn)) {
      // Timed out while we were deciding.
      closeQuietly(conn);
      return "close";
    }
    if (this.#shuttingDown) {
      await this.#refuse(conn, 503, "shutting down");
      return "close";
    }
    const peer = (conn.remoteAddr as Deno.NetAddr).hostname;
    // Through a trusted proxy, the per-IP cap applies to the client it named
    // (a socket straight from a client was counted at accept).
    const proxied = this.#trusted.length > 0 && this.#trusted.some((r) => cidrContains(r, peer));
    const address = proxied ? clientAddress(peer, head.headers, { trusted: this.#trusted }) : peer;
    const wait = proxied ? this.#connectionRate?.take(ipLimitKey(address)) ?? 0 : 0;
    if (wait > 0) {
      await this.#refuseRate(conn, wait);
      return "close";
    }
    if (proxied && !this.#admitIp(address)) {
      await this.#refuse(conn, 429, "too many connections from your address");
      return "close";
    }
    const headers = upgrade.headers === undefined
      ? {}
      : Object.fromEntries(new Headers(upgrade.headers));
    const agreement = this.#deflate &&
      negotiateDeflate(headerValue(head, "sec-websocket-extensions"), this.#deflate);
    if (agreement) headers["Sec-WebSocket-Extensions"] = agreement.response;
    try {
      await this.#write(
        http,
        buildUpgradeResponse(upgrade.key, { protocol: upgrade.protocol, headers }),
      );
    } catch (error) {
      if (proxied) this.#releaseIp(address);
      throw error;
    }
    this.#count(101);
    this.stats.upgraded++;
    this.#http.delete(conn);
    // Before the connection exists: its open handler may end it at once.
    this.#metrics?.connectionOpened();
    const ws = new WebSocketConnection({
      conn,
      request: head,
      path,
      protocol: upgrade.protocol ?? "",
      deflate: agreement && {
        extension: new PerMessageDeflate(agreement.params, zlibEngine, this.#deflate),
        response: agreement.response,
      },
      handler: handler as WebSocketHandler,
      data: upgrade.data,
      clientAddress: address,
      clock: this.#clock,
      heap: this.#heap,
      options: this.#connectionOptions,
      // The client's first frames may have come in the same read as its head.
      initial: http.parser.takeRest(),
      onEnded: this.#ended,
      onError: this.#reportError,
      metrics: this.#metrics,
      budget: this.#budget,
    });
    if (ws.readyState !== 3) this.connections.add(ws);
    return "upgraded";
  }

  #onEnded(ws: WebSocketConnection, info: CloseInfo): void {
    this.stats.closed[info.cause]++;
    this.#metrics?.connectionClosed(info);
    this.connections.delete(ws);
    this.#releaseIp(ws.clientAddress);
    this.#drainedCheck();
  }

  #drainedCheck(): void {
    if (this.#drained && this.#openSockets() === 0) this.#drained();
  }

  async shutdown(options: ShutdownOptions = {}): Promise<void> {
    const code = options.code ?? CloseCode.GoingAway;
    const reason = options.reason ?? "server shutting down";
    // A close frame that may not be sent (§7.4, §5.5) fails here, before
    // anything is closed, not half-way through the connections.
    encodeClosePayload(code, reason);
    const window = options.retryAfter;
    if (window !== undefined && !(Number.isFinite(window) && window >= 0)) {
      throw new RangeError(`retryAfter must be a finite number of ms, at least 0; got ${window}`);
    }
    const reasonFor = window === undefined
      ? () => reason
      : () => retryAfterReason(Math.random() * window);
    this.#shuttingDown ??= this.#shutdown(code, reasonFor, options.timeout ?? 5_000);
    return await this.#shuttingDown;
  }

  async #shutdown(code: number, reason: () => string, timeout: number): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
    // Idle kept-alive sockets close now; a request under way is answered
    // (with Connection: close) and a socket just accepted may still send
    // its request, within the drain time: a client that connected before
    // the listener closed gets an answer, not an empty close.
    for (const [conn, http] of this.#http) {
      if (http.idle) {
        this.#http.delete(conn);
        closeQuietly(conn);
      }
    }
    for (const ws of this.connections) ws.close(code, reason());
    if (this.#openSockets() > 0) {
      const drained = new Promise<void>((resolve) => this.#drained = resolve);
      const timer = this.#heap.create(() => this.#drained?.());
      this.#heap.schedule(timer, this.#clock.now() + timeout);
      await drained;
      this.#heap.cancel(timer);
    }
    for (const conn of this.#http.keys()) closeQuietly(conn);
    this.#http.clear();
    for (const ws of this.connections) ws.terminate();
    this.#lag?.stop();
    this.#heap.clear();
    this.#resolveFinished();
  }
}

/**
 * Refuses timings that cannot work, before anything listens: an infinite or
 * NaN deadline cannot be armed (every connection would fail right after its
 * 101), and a jitter of 1 or more would ping as soon as anything was heard.
 */
function checkTimings<T>(options: ServeOptions<T>): void {
  const timings: [name: string, value: number | undefined, min: number][] = [
    ["pingInterval", options.pingInterval, 1],
    ["pingTimeout", options.pingTimeout, 1],
    ["closeTimeout", options.closeTimeout, 0],
    ["handshakeTimeout", options.handshakeTimeout, 0],
    ["keepAliveTimeout", options.keepAliveTimeout, 0],
    ["writeTimeout", options.writeTimeout, 0],
    ["maxBufferedAge", options.maxBufferedAge, 0],
  ];
  for (const [name, value, min] of timings) {
    if (value !== undefined && !(Number.isFinite(value) && value >= min)) {
      throw new RangeError(`${name} must be a finite number of ms, at least ${min}; got ${value}`);
    }
  }
  const rate = options.minBodyRate;
  if (rate !== undefined && !(Number.isFinite(rate) && rate >= 0)) {
    throw new RangeError(`minBodyRate must be a finite number of bytes/s, at least 0; got ${rate}`);
  }
  const jitter = options.pingJitter;
  if (jitter !== undefined && !(jitter >= 0 && jitter < 1)) {
    throw new RangeError(`pingJitter must be at least 0 and below 1; got ${jitter}`);
  }
  const connectRate = options.maxConnectionRatePerIp;
  if (connectRate !== undefined && !(Number.isFinite(connectRate) && connectRate > 0)) {
    throw new RangeError(
      `maxConnectionRatePerIp must be a finite number above 0 (omit it for no limit); got ${connectRate}`,
    );
  }
  const burst = options.connectionBurstPerIp;
  if (burst !== undefined && !(Number.isFinite(burst) && burst >= 1)) {
    throw new RangeError(`connectionBurstPerIp must be a finite number, at least 1; got ${burst}`);
  }
}

/**
 * The URL of a request: origin-form (`/path?query`, RFC 9112 §3.2.1) joined
 * to the Host by plain concatenation (resolving `//evil/x` against it would
 * change the host), or absolute-form as it is. A Host that would end up as
 * anything but a host (`a/b`, `a@b`) is refused.
 *
 * @throws {TypeError} for any other target, or a malformed Host.
 */
function requestUrl(target: string, origin: string): URL {
  if (target.startsWith("/")) {
    if (/[/?#@\\]/.test(origin.slice(origin.indexOf("//") + 2))) {
      throw new TypeError(`invalid Host in ${origin}`);
    }
    return new URL(origin + target);
  }
  if (/^https?:\/\//i.test(target)) return new URL(target);
  throw new TypeError(`invalid request target ${target}`);
}

/** Whether `error` is one of Deno's I/O errors (reset, broken pipe, closed resource…). */
function isIoError(error: unknown): boolean {
  return Object.values(Deno.errors).some((type) => error instanceof type);
}
