/** Drives a Hub's handler callbacks without sockets: fake connections that record what is sent. */
import type { Hub } from "../hub/mod.ts";
import type { WebSocketConnection } from "../server/mod.ts";

export type Json = Record<string, unknown>;

/** A connection stand-in: no sockets, no timing. */
export class FakeConnection {
  data: unknown = undefined;
  readonly request: { target: string };
  readonly remoteAddr: { hostname: string; port: number; transport: "tcp" };
  readonly sent: Json[] = [];
  closedWith: [number, string] | undefined;

  constructor(target: string, hostname = "127.0.0.1") {
    this.request = { target };
    this.remoteAddr = { hostname, port: 40_000, transport: "tcp" };
  }

  send(text: string | Uint8Array): boolean {
    if (this.closedWith) return false; // as a closing connection does
    this.sent.push(JSON.parse(text as string));
    return true;
  }

  /** A broadcast: the frame's payload, decoded (prepared frames here are unmasked text). */
  sendPrepared(message: { frame: Uint8Array }): boolean {
    const frame = message.frame;
    const length = frame[1] & 0x7f;
    const start = length === 126 ? 4 : length === 127 ? 10 : 2;
    return this.send(new TextDecoder().decode(frame.subarray(start)));
  }

  close(code: number, reason: string): void {
    this.closedWith ??= [code, reason];
  }

  /** Every message sent since the last call. */
  take(): Json[] {
    return this.sent.splice(0);
  }

  get ws(): WebSocketConnection {
    return this as unknown as WebSocketConnection;
  }
}

/** Opens a fake connection on `hub` and returns it with its first messages taken. */
export async function connect(
  hub: Hub,
  query = "",
  hostname?: string,
): Promise<[FakeConnection, Json[]]> {
  const ws = new FakeConnection("/ws" + query, hostname);
  await hub.open(ws.ws);
  return [ws, ws.take()];
}

/** Sends one message and returns what came back once it was handled. */
export async function say(hub: Hub, ws: FakeConnection, message: Json | string): Promise<Json[]> {
  await hub.message(ws.ws, typeof message === "string" ? message : JSON.stringify(message));
  return ws.take();
}

/** Closes a fake connection as the server would after the closing handshake. */
export async function hangUp(hub: Hub, ws: FakeConnection): Promise<void> {
  await hub.close(ws.ws);
}
