/**
 * `serve()`: accept TCP (or TLS) connections, answer HTTP, upgrade WebSocket
 * routes, and keep every connection's timers on one heap.
 *
 * @module
 */
import { CloseCode, encodeClosePayload } from "../protocol/close.ts";
import type { Clock } from "../protocol/clock.ts";
import {
  buildUpgradeResponse,
  type HttpRequestHead,
  validateUpgradeRequest,
} from "../protocol/handshake.ts";
import {
  type CloseInfo,
  type ConnectionOptions,
  WebSocketConnection,
  type WebSocketHandler,
} from "./connection.ts";
import { demoRoutes } from "./demo.ts";
import { type HttpResponse, readRequestHead, respondAndClose, writeAll } from "./http.ts";
import { systemClock, TimerHeap } from "./timer_heap.ts";

/**
 * The answer of an {@linkcode ServeOptions.authenticate} hook: `true` lets the
 * upgrade go on, `false` refuses it with 401, an object picks the status.
 *
 * @example
 * ```ts
 * import type { AuthResult } from "@heartwire/heartwire/server";
 * const refused: AuthResult = { status: 403, reason: "banned" };
 * ```
 */
export type AuthResult = boolean | { status: 401 | 403; reason?: string };

/**
 * A plain-HTTP route: returns the response for a GET (or any method) on its path.
 *
 * @example
 * ```ts
 * import type { HttpRoute } from "@heartwire/heartwire/server";
 * const hello: HttpRoute = () => ({ status: 200, body: "hello\n" });
 * ```
 */
export type HttpRoute = (request: HttpRequestHead) => HttpResponse | Promise<HttpResponse>;

/**
 * Everything {@linkcode serve} can be told. Every field has a default.
 *
 * @example
 * ```ts
 * import type { ServeOptions } from "@heartwire/heartwire/server";
 * const options: ServeOptions = { port: 8080, pingInterval: 25_000, pingTimeout: 10_000 };
 * ```
 */
export interface ServeOptions {
  /** TCP port; 0 picks a free one (see {@linkcode Server.addr}). Default 8080. */
  port?: number;
  /** Interface to listen on. Default "0.0.0.0". */
  hostname?: string;
  /** PEM certificate and key: serve wss:// with `Deno.listenTls`. */
  tls?: { cert: string; key: string };
  /**
   * WebSocket routes by path. Default: `/echo` ({@linkcode echoHandler}).
   * The application layer (hub/) is mounted by the program, server/main.ts.
   */
  routes?: Record<string, WebSocketHandler>;
  /**
   * Plain HTTP routes by path, added to the defaults: `/healthz`, and the
   * demo page `/` with `/heartwire-client.js` ({@linkcode demoRoutes}).
   */
  httpRoutes?: Record<string, HttpRoute>;
  /** Silence (ms) before a connection is pinged. Default 25 000: well under nginx's 60 s. */
  pingInterval?: number;
  /** Time (ms) a pinged peer has to answer before it is dropped. Default 10 000. */
  pingTimeout?: number;
  /** Spread of ping times as a fraction of the interval. Default 0.1. */
  pingJitter?: number;
  /** Largest message in bytes; larger ones close with 1009. Default 1 MiB. */
  maxPayload?: number;
  /** Open sockets (handshaking or upgraded) before new ones get 503. Default 10 000. */
  maxConnections?: number;
  /** Open sockets per remote IP before new ones get 429. Default: no cap. */
  maxConnectionsPerIp?: number;
  /** Allowed `Origin` values for upgrades; others get 403. Default: any origin. */
  allowedOrigins?: string[];
  /** Decides whether an upgrade may go on (after the handshake checks). */
  authenticate?: (request: HttpRequestHead) => AuthResult | Promise<AuthResult>;
  /** Largest request head (bytes) before 431. Default 16 KiB. */
  maxHeaderBytes?: number;
  /** Time (ms) a client has to send its whole request head. Default 10 000. */
  handshakeTimeout?: number;
  /** Time (ms) to wait for the peer's close frame. Default 5 000. */
  closeTimeout?: number;
  /** Bytes queued to a non-reading peer before it is dropped. Default 16 MiB. */
  maxBufferedBytes?: number;
  /**
   * Time (ms) a batch of writes may stay unfinished before the peer is dropped
   * as a slow consumer. Checked when the connection's one keepalive timer
   * fires, so the drop comes within `writeTimeout + pingInterval`. Default 30 000.
   */
  writeTimeout?: number;
  /** Source of time and the one OS timer. Default: the system clock. */
  clock?: Clock;
  /** Called once listening. Default: silent. If it throws, serve() closes the listener and rethrows. */
  onListen?: (addr: Deno.NetAddr) => void;
  /**
   * Called for errors the server contained: accept failures, a route handler
   * that threw (its connection was closed with 1011), an HTTP route or
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
 * const server = serve({ port: 0 });
 * console.log(server.stats.accepted);
 * await server.shutdown();
 * ```
 */
export interface ServerStats {
  /** TCP connections accepted. */
  accepted: number;
  /** Successful WebSocket upgrades. */
  upgraded: number;
  /** Plain HTTP responses and refused upgrades, by status. */
  responses: Record<number, number>;
  /** Connections ended, by cause. */
  closed: Record<CloseInfo["cause"], number>;
  /** Connections dropped because their handshake did not finish in time. */
  handshakeTimeouts: number;
}

/**
 * A running server.
 *
 * @example
 * ```ts
 * import { serve } from "@heartwire/heartwire/server";
 * const server = serve({ port: 0 });
 * console.log(`listening on ${server.addr.port}, ${server.connections.size} open`);
 * await server.shutdown();
 * ```
 */
export interface Server {
  /** Where the server listens. */
  readonly addr: Deno.NetAddr;
  /** The open WebSocket connections. */
  readonly connections: ReadonlySet<WebSocketConnection>;
  /** Counters since start. */
  readonly stats: ServerStats;
  /** Resolves once the server has shut down. */
  readonly finished: Promise<void>;
  /**
   * Stops accepting, closes every connection with `code` (1001 going away, or
   * 1012 for a restart) and waits up to `timeout` ms before dropping the rest.
   * Rejects with a RangeError, having changed nothing, if `code` may not be
   * sent (RFC 6455 §7.4) or `reason` is over 123 UTF-8 bytes.
   */
  shutdown(options?: ShutdownOptions): Promise<void>;
}

/**
 * How {@linkcode Server.shutdown} winds down.
 *
 * @example
 * ```ts
 * import type { ShutdownOptions } from "@heartwire/heartwire/server";
 * const restart: ShutdownOptions = { code: 1012, reason: "restarting", timeout: 2_000 };
 * ```
 */
export interface ShutdownOptions {
  /** Close code sent to every connection. Default 1001. */
  code?: number;
  /** Close reason. Default "server shutting down". */
  reason?: string;
  /** Drain time (ms) before the remaining connections are dropped. Default 5 000. */
  timeout?: number;
}

/**
 * The `/echo` route: sends every message back exactly as it came.
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
 * Starts a WebSocket server on raw TCP (or TLS).
 *
 * @throws {RangeError} if a timing option is not a finite number of ms (the
 * ping interval and timeout must be at least 1) or `pingJitter` is not in [0, 1).
 *
 * @example
 * ```ts
 * import { serve } from "@heartwire/heartwire/server";
 * const server = serve({ port: 0, onListen: (addr) => console.log(`ws://localhost:${addr.port}/echo`) });
 * await server.shutdown();
 * ```
 */
export function serve(options: ServeOptions = {}): Server {
  return new HeartwireServer(options);
}

class HeartwireServer implements Server {
  readonly addr: Deno.NetAddr;
  readonly connections: Set<WebSocketConnection> = new Set();
  readonly stats: ServerStats = {
    accepted: 0,
    upgraded: 0,
    responses: {},
    closed: { peer: 0, local: 0, protocol: 0, timeout: 0, slow: 0, error: 0 },
    handshakeTimeouts: 0,
  };
  readonly finished: Promise<void>;

  #listener: Deno.Listener;
  #clock: Clock;
  #heap: TimerHeap;
  #routes: Record<string, WebSocketHandler>;
  #httpRoutes: Record<string, HttpRoute>;
  #connectionOptions: ConnectionOptions;
  #options: ServeOptions;
  /** Every accepted socket not yet upgraded or answered. */
  #handshaking = new Set<Deno.Conn>();
  #perIp = new Map<string, number>();
  #shuttingDown: Promise<void> | undefined;
  #resolveFinished!: () => void;
  #drained: (() => void) | undefined;

  constructor(options: ServeOptions) {
    checkTimings(options);
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#heap = new TimerHeap({ clock: this.#clock });
    this.#httpRoutes = {
      "/healthz": () => ({ status: 200, body: "ok\n" }),
      ...demoRoutes(),
      ...options.httpRoutes,
    };
    const pingInterval = options.pingInterval ?? 25_000;
    const pingTimeout = options.pingTimeout ?? 10_000;
    this.#routes = options.routes ?? {
      "/echo": echoHandler,
    };
    this.#connectionOptions = {
      keepalive: { interval: pingInterval, timeout: pingTimeout },
      pingJitter: options.pingJitter ?? 0.1,
      maxPayload: options.maxPayload ?? 1024 * 1024,
      closeTimeout: options.closeTimeout ?? 5_000,
      maxBufferedBytes: options.maxBufferedBytes ?? 16 * 1024 * 1024,
      writeTimeout: options.writeTimeout ?? 30_000,
    };
    const hostname = options.hostname ?? "0.0.0.0";
    const port = options.port ?? 8080;
    this.#listener = options.tls
      ? Deno.listenTls({ hostname, port, cert: options.tls.cert, key: options.tls.key })
      : Deno.listen({ hostname, port });
    this.addr = this.#listener.addr as Deno.NetAddr;
    this.finished = new Promise((resolve) => this.#resolveFinished = resolve);
    try {
      options.onListen?.(this.addr);
    } catch (error) {
      // serve() fails as a whole: no listener is left holding the port.
      this.#listener.close();
      throw error;
    }
    this.#acceptLoop();
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
    return this.#handshaking.size + this.connections.size;
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
    if (this.#shuttingDown) return this.#refuse(conn, 503, "shutting down");
    if (this.#openSockets() >= (this.#options.maxConnections ?? 10_000)) {
      return this.#refuse(conn, 503, "too many connections");
    }
    const ip = (conn.remoteAddr as Deno.NetAddr).hostname;
    const cap = this.#options.maxConnectionsPerIp;
    const fromIp = this.#perIp.get(ip) ?? 0;
    if (cap !== undefined && fromIp >= cap) {
      return this.#refuse(conn, 429, "too many connections from your address");
    }
    this.#perIp.set(ip, fromIp + 1);
    this.#handshaking.add(conn);
    // Slowloris guard: the whole head must arrive within the handshake timeout.
    const deadline = this.#heap.create(() => {
      this.stats.handshakeTimeouts++;
      this.#handshaking.delete(conn);
      closeQuietly(conn);
    });
    this.#heap.schedule(deadline, this.#clock.now() + (this.#options.handshakeTimeout ?? 10_000));
    let upgraded = false;
    try {
      upgraded = await this.#handshake(conn);
    } catch (error) {
      this.#report(error);
      closeQuietly(conn);
    } finally {
      this.#heap.cancel(deadline);
      this.#handshaking.delete(conn);
      if (!upgraded) this.#releaseIp(ip);
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

  /** Runs application code on the handshake path; if it throws, answers 500 and reports it. */
  async #guard<T>(conn: Deno.Conn, call: () => T | Promise<T>): Promise<T | undefined> {
    try {
      return await call();
    } catch (error) {
      this.#report(error);
      await this.#refuse(conn, 500, "internal error");
      return undefined;
    }
  }

  #releaseIp(ip: string): void {
    const left = (this.#perIp.get(ip) ?? 1) - 1;
    if (left > 0) this.#perIp.set(ip, left);
    else this.#perIp.delete(ip);
  }

  #refuse(conn: Deno.Conn, status: number, reason: string): Promise<void> {
    this.#count(status);
    return respondAndClose(conn, { status, body: reason + "\n" });
  }

  #count(status: number): void {
    this.stats.responses[status] = (this.stats.responses[status] ?? 0) + 1;
  }

  /** Reads the request and answers it; true if it became a WebSocket connection. */
  async #handshake(conn: Deno.Conn): Promise<boolean> {
    const result = await readRequestHead(conn, this.#options.maxHeaderBytes ?? 16 * 1024);
    if (result.kind === "closed") {
      closeQuietly(conn);
      return false;
    }
    if (result.kind === "error") {
      await this.#refuse(conn, result.status, result.reason);
      return false;
    }
    const { head, rest } = result;
    const path = head.target.split("?", 1)[0];
    const route = this.#routes[path];
    if (!route) {
      const httpRoute = this.#httpRoutes[path];
      const response = httpRoute
        ? await this.#guard(conn, () => httpRoute(head))
        : { status: 404, body: `no route for ${path}\n` };
      if (response === undefined) return false; // it threw: answered 500
      this.#count(response.status);
      await respondAndClose(conn, response);
      return false;
    }
    const decision = validateUpgradeRequest(head, { protocols: route.protocols });
    if (!decision.ok) {
      this.#count(decision.status);
      await respondAndClose(conn, {
        status: decision.status,
        body: decision.reason + "\n",
        headers: decision.headers,
      });
      return false;
    }
    const allowed = this.#options.allowedOrigins;
    if (allowed && !allowed.includes(head.headers.get("origin") ?? "")) {
      await this.#refuse(conn, 403, "origin not allowed");
      return false;
    }
    if (this.#options.authenticate) {
      const authenticate = this.#options.authenticate;
      const verdict = await this.#guard(conn, () => authenticate(head));
      if (verdict === undefined) return false; // it threw: answered 500
      if (verdict !== true) {
        const status = verdict === false ? 401 : verdict.status;
        const reason = verdict === false ? "unauthorized" : verdict.reason ?? "forbidden";
        await this.#refuse(conn, status, reason);
        return false;
      }
    }
    if (this.#shuttingDown || !this.#handshaking.has(conn)) {
      // Shut down, or timed out, while we were deciding.
      closeQuietly(conn);
      return false;
    }
    await writeAll(conn, buildUpgradeResponse(decision.key, { protocol: decision.protocol }));
    this.stats.upgraded++;
    const ws = new WebSocketConnection({
      conn,
      request: head,
      path,
      protocol: decision.protocol ?? "",
      handler: route,
      clock: this.#clock,
      heap: this.#heap,
      options: this.#connectionOptions,
      initial: rest,
      onEnded: (ended, info) => this.#onEnded(ended, info),
      onError: (error) => this.#report(error),
    });
    if (ws.readyState !== 3) this.connections.add(ws);
    return true;
  }

  #onEnded(ws: WebSocketConnection, info: CloseInfo): void {
    this.stats.closed[info.cause]++;
    this.connections.delete(ws);
    this.#releaseIp(ws.remoteAddr.hostname);
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
    this.#shuttingDown ??= this.#shutdown(code, reason, options.timeout ?? 5_000);
    return await this.#shuttingDown;
  }

  async #shutdown(code: number, reason: string, timeout: number): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
    for (const conn of this.#handshaking) closeQuietly(conn);
    this.#handshaking.clear();
    for (const ws of this.connections) ws.close(code, reason);
    if (this.#openSockets() > 0) {
      const drained = new Promise<void>((resolve) => this.#drained = resolve);
      const timer = this.#heap.create(() => this.#drained?.());
      this.#heap.schedule(timer, this.#clock.now() + timeout);
      await drained;
      this.#heap.cancel(timer);
    }
    for (const ws of this.connections) ws.terminate();
    this.#heap.clear();
    this.#resolveFinished();
  }
}

/**
 * Refuses timings that cannot work, before anything listens: an infinite or
 * NaN deadline cannot be armed (every connection would fail right after its
 * 101), and a jitter of 1 or more would ping as soon as anything was heard.
 */
function checkTimings(options: ServeOptions): void {
  const timings: [name: string, value: number | undefined, min: number][] = [
    ["pingInterval", options.pingInterval, 1],
    ["pingTimeout", options.pingTimeout, 1],
    ["closeTimeout", options.closeTimeout, 0],
    ["handshakeTimeout", options.handshakeTimeout, 0],
    ["writeTimeout", options.writeTimeout, 0],
  ];
  for (const [name, value, min] of timings) {
    if (value !== undefined && !(Number.isFinite(value) && value >= min)) {
      throw new RangeError(`${name} must be a finite number of ms, at least ${min}; got ${value}`);
    }
  }
  const jitter = options.pingJitter;
  if (jitter !== undefined && !(jitter >= 0 && jitter < 1)) {
    throw new RangeError(`pingJitter must be at least 0 and below 1; got ${jitter}`);
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}
