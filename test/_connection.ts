/**
 * A server-side WebSocketConnection built directly (no accept loop, no
 * handshake) over any `Deno.Conn`, with small test limits.
 *
 * @module
 */
import { type CloseInfo, WebSocketConnection, type WebSocketHandler } from "../server/mod.ts";
import { systemClock, TimerHeap } from "../server/timer_heap.ts";

/** The connection, its own timer heap (clear it when done), and how it ended. */
export interface StartedConnection<T> {
  ws: WebSocketConnection<T>;
  heap: TimerHeap;
  ended: Promise<CloseInfo>;
}

/** Options for {@linkcode startConnection}. */
export interface StartOptions {
  /** Bytes read with the head (the client's first frames). Default none. */
  initial?: Uint8Array;
}

/**
 * Starts a WebSocketConnection serving `handler` on `conn` as if `GET /` had
 * just been upgraded: 1 KiB messages, a one-minute keepalive, no jitter.
 */
export function startConnection<T>(
  conn: Deno.Conn,
  handler: WebSocketHandler<T>,
  data?: T,
  options: StartOptions = {},
): StartedConnection<T> {
  const heap = new TimerHeap({ clock: systemClock });
  const ended = Promise.withResolvers<CloseInfo>();
  const ws = new WebSocketConnection<T>({
    conn,
    request: { method: "GET", target: "/", version: "1.1", headers: new Headers() },
    path: "/",
    protocol: "",
    handler,
    data,
    clock: systemClock,
    heap,
    options: {
      keepalive: { interval: 60_000, timeout: 10_000 },
      maxPayload: 1024,
      closeTimeout: 1_000,
      maxBufferedBytes: 1 << 20,
      maxBufferedAge: 10_000,
      writeTimeout: 10_000,
      pingJitter: 0,
    },
    initial: options.initial ?? new Uint8Array(0),
    onEnded: (_, info) => ended.resolve(info),
  });
  return { ws, heap, ended: ended.promise };
}
