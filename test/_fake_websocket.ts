/**
 * Test doubles for the client: a scriptable WebSocket class and fake
 * `window`/`document` objects that count their listeners.
 *
 * @module
 */
import type { Welcome } from "../protocol/messages.ts";

type Handler = ((event: never) => void) | null;

/** A WebSocket whose server side the test plays by hand. */
export class FakeWebSocket {
  readonly url: string;
  readonly protocols: string | string[] | undefined;
  readyState = 0;
  /** Every text the client sent, parsed. */
  readonly sent: Record<string, unknown>[] = [];
  /** Set once the client called close(). */
  closedWith: { code?: number; reason?: string } | undefined;
  onmessage: Handler = null;
  onclose: Handler = null;
  onerror: Handler = null;

  constructor(url: string, protocols?: string | string[]) {
    this.url = url;
    this.protocols = protocols;
  }

  /** The query of the URL the client connected to. */
  get query(): URLSearchParams {
    return new URL(this.url).searchParams;
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error(`send in readyState ${this.readyState}`);
    this.sent.push(JSON.parse(data));
  }

  close(code?: number, reason?: string): void {
    // As browsers do (RFC 6455 §5.5: a close payload fits in 125 bytes).
    if (reason && new TextEncoder().encode(reason).length > 123) {
      throw new SyntaxError("close reason too long");
    }
    this.closedWith = { code, reason };
    if (this.readyState < 2) this.readyState = 2;
  }

  /** Whether the client still listens to this socket. */
  get attached(): boolean {
    return this.onmessage !== null || this.onclose !== null || this.onerror !== null;
  }

  /** Sent messages of one type. */
  sentOfType(type: string): Record<string, unknown>[] {
    return this.sent.filter((message) => message.type === type);
  }

  // ---- the server side, driven by the test ----

  /** The TCP + HTTP handshake succeeded. */
  open(): void {
    this.readyState = 1;
  }

  /** Delivers one message (an object is sent as JSON). */
  receive(message: unknown): void {
    const data = typeof message === "string" ? message : JSON.stringify(message);
    (this.onmessage as ((event: { data: unknown }) => void) | null)?.({ data });
  }

  /** Opens and sends a welcome (defaults: new session "s1", id "c1", 1000/500 ms heartbeat). */
  welcome(fields: Partial<Welcome> = {}): void {
    if (this.readyState === 0) this.open();
    this.receive({
      type: "welcome",
      session: "s1",
      id: "c1",
      resumed: false,
      heartbeat: { interval: 1_000, timeout: 500 },
      last_cseq: 0,
      ...fields,
    });
  }

  /** The connection ends (close frame from the server, or a TCP failure with 1006). */
  serverClose(code = 1006, reason = "", wasClean = code !== 1006): void {
    this.readyState = 3;
    (this.onclose as ((event: unknown) => void) | null)?.({ code, reason, wasClean });
  }
}

/** A fresh FakeWebSocket class per test, recording every instance. */
export function fakeWebSocketClass(): {
  WebSocket: new (url: string, protocols?: string | string[]) => FakeWebSocket;
  sockets: FakeWebSocket[];
} {
  const sockets: FakeWebSocket[] = [];
  class Recorded extends FakeWebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      sockets.push(this);
    }
  }
  return { WebSocket: Recorded, sockets };
}

/** An EventTarget that counts the listeners added and not removed. */
export class CountingTarget extends EventTarget {
  listeners = 0;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    this.listeners++;
    super.addEventListener(type, listener, options);
  }
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void {
    this.listeners--;
    super.removeEventListener(type, listener, options);
  }
}

/** A browser `window` stand-in: `online`/`offline` events and `navigator.onLine`. */
export class FakeWindow extends CountingTarget {
  navigator = { onLine: true };

  /** Flips `navigator.onLine` and fires the event, as a browser does. */
  setOnline(online: boolean): void {
    this.navigator.onLine = online;
    this.dispatchEvent(new Event(online ? "online" : "offline"));
  }
}

/** A browser `document` stand-in: `visibilitychange`. */
export class FakeDocument extends CountingTarget {
  visibilityState = "visible";

  setVisible(visible: boolean): void {
    this.visibilityState = visible ? "visible" : "hidden";
    this.dispatchEvent(new Event("visibilitychange"));
  }
}
