/**
 * The application-level heartbeat: JSON messages on a text frame.
 *
 * Browsers answer control-frame pings automatically but give JavaScript no
 * way to send one or to see the pong, so a page cannot tell a live connection
 * from a dead one through them. It sends this instead, and the server
 * answers at once:
 *
 * ```text
 * client → server   {"type":"heartbeat","id":7,"ts":1700000000000}
 * server → client   {"type":"heartbeat_ack","id":7,"ts":1700000000000,"server_ts":1700000000012}
 * ```
 *
 * `id` and `ts` are echoed exactly, so the client can match an ack to its
 * heartbeat and measure the round-trip time with its own clock (`now - ts`);
 * `server_ts` is only informative, the two clocks need not agree.
 *
 * The functions take a value already produced by `JSON.parse`. There is no
 * quick check on the raw text before parsing: the `/ws` endpoint parses every
 * message anyway to read its `type`, so a pre-check would only add work.
 *
 * @module
 */

/**
 * A heartbeat sent by a client.
 *
 * @example
 * ```ts
 * import type { Heartbeat } from "@heartwire/heartwire/protocol";
 * const heartbeat: Heartbeat = { type: "heartbeat", id: 1, ts: Date.now() };
 * ```
 */
export interface Heartbeat {
  /** Always "heartbeat". */
  type: "heartbeat";
  /** Chosen by the client to match the ack; echoed exactly. */
  id?: string | number;
  /** The client's send time (ms); echoed exactly so the client can compute RTT. */
  ts?: number;
}

/**
 * The answer to a {@linkcode Heartbeat}.
 *
 * @example
 * ```ts
 * import type { HeartbeatAck } from "@heartwire/heartwire/protocol";
 * const ack: HeartbeatAck = { type: "heartbeat_ack", id: 1, ts: 1700000000000 };
 * ```
 */
export interface HeartbeatAck {
  /** Always "heartbeat_ack". */
  type: "heartbeat_ack";
  /** The heartbeat's id, if it had one. */
  id?: string | number;
  /** The heartbeat's ts, if it had one. */
  ts?: number;
  /** The server's clock (ms) when it answered; informative only. */
  server_ts?: number;
}

/**
 * The longest string `id` accepted, in UTF-16 code units: enough for any UUID
 * or counter, small enough that echoing it costs nothing.
 *
 * @example
 * ```ts
 * import { MAX_HEARTBEAT_ID_LENGTH } from "@heartwire/heartwire/protocol";
 * console.log(MAX_HEARTBEAT_ID_LENGTH); // 256
 * ```
 */
export const MAX_HEARTBEAT_ID_LENGTH = 256;

/**
 * A message that is a heartbeat (or ack) by its `type` but has a field of the
 * wrong type. The message says which field and what it held.
 *
 * @example
 * ```ts
 * import { HeartbeatError, parseHeartbeat } from "@heartwire/heartwire/protocol";
 * try {
 *   parseHeartbeat({ type: "heartbeat", ts: "now" });
 * } catch (error) {
 *   if (error instanceof HeartbeatError) console.log(error.message);
 *   // heartbeat field "ts" must be a finite number, got a string of 3 characters
 * }
 * ```
 */
export class HeartbeatError extends Error {
  /** Creates the error with a message naming the field. */
  constructor(message: string) {
    super(message);
    this.name = "HeartbeatError";
  }
}

/** Describes a value for an error message: its JSON kind, never its content. */
function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "number") return String(value); // only NaN or ±Infinity get here
  if (typeof value === "string") return `a string of ${value.length} characters`;
  if (typeof value === "object") return "an object";
  return `a ${typeof value}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkId(kind: string, id: unknown): string | number | undefined {
  if (id === undefined) return undefined;
  if (typeof id === "number" && Number.isFinite(id)) return id;
  if (typeof id === "string" && id.length <= MAX_HEARTBEAT_ID_LENGTH) return id;
  throw new HeartbeatError(
    `${kind} field "id" must be a string of at most ${MAX_HEARTBEAT_ID_LENGTH} characters ` +
      `or a finite number, got ${describe(id)}`,
  );
}

function checkNumber(kind: string, field: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "number" && Number.isFinite(value)) return value;
  throw new HeartbeatError(
    `${kind} field "${field}" must be a finite number, got ${describe(value)}`,
  );
}

/**
 * Reads a parsed JSON value as a heartbeat.
 *
 * Returns undefined if it is not one (not an object, or its `type` is not
 * "heartbeat"), so the caller can route the message elsewhere. Unknown extra
 * fields are ignored; the result holds only `type`, `id` and `ts`.
 *
 * @throws {HeartbeatError} if it is a heartbeat whose `id` is not a string of
 * at most 256 characters or a finite number, or whose `ts` is not a finite
 * number.
 *
 * @example
 * ```ts
 * import { parseHeartbeat } from "@heartwire/heartwire/protocol";
 * parseHeartbeat(JSON.parse('{"type":"heartbeat","id":"a1","extra":true}'));
 * // { type: "heartbeat", id: "a1" }
 * parseHeartbeat({ type: "chat", text: "hi" }); // undefined
 * ```
 */
export function parseHeartbeat(value: unknown): Heartbeat | undefined {
  if (!isRecord(value) || value.type !== "heartbeat") return undefined;
  const heartbeat: Heartbeat = { type: "heartbeat" };
  const id = checkId("heartbeat", value.id);
  if (id !== undefined) heartbeat.id = id;
  const ts = checkNumber("heartbeat", "ts", value.ts);
  if (ts !== undefined) heartbeat.ts = ts;
  return heartbeat;
}

/**
 * Options for {@linkcode heartbeatAck}.
 */
export interface HeartbeatAckOptions {
  /** The server's clock in ms, sent as `server_ts`. Omitted by default. */
  serverTs?: number;
}

/**
 * Builds the answer to a heartbeat, echoing its `id` and `ts` exactly; fields
 * the heartbeat did not have are left out rather than set to undefined.
 *
 * @example
 * ```ts
 * import { heartbeatAck } from "@heartwire/heartwire/protocol";
 * JSON.stringify(heartbeatAck({ type: "heartbeat", id: 7, ts: 1700000000000 }, { serverTs: 1700000000012 }));
 * // '{"type":"heartbeat_ack","id":7,"ts":1700000000000,"server_ts":1700000000012}'
 * ```
 */
export function heartbeatAck(
  heartbeat: Heartbeat,
  options: HeartbeatAckOptions = {},
): HeartbeatAck {
  const ack: HeartbeatAck = { type: "heartbeat_ack" };
  if (heartbeat.id !== undefined) ack.id = heartbeat.id;
  if (heartbeat.ts !== undefined) ack.ts = heartbeat.ts;
  if (options.serverTs !== undefined) ack.server_ts = options.serverTs;
  return ack;
}

/**
 * Reads a parsed JSON value as a heartbeat ack, as strictly as
 * {@linkcode parseHeartbeat} reads a heartbeat. A client uses it to match the
 * ack to its heartbeat and compute the round-trip time.
 *
 * @throws {HeartbeatError} if it is an ack with a wrongly typed `id`, `ts` or
 * `server_ts`.
 *
 * @example
 * ```ts
 * import { parseHeartbeatAck } from "@heartwire/heartwire/protocol";
 * const ack = parseHeartbeatAck({ type: "heartbeat_ack", id: 3, ts: 1000 });
 * if (ack?.ts !== undefined) console.log(`rtt ${1042 - ack.ts} ms`); // rtt 42 ms
 * ```
 */
export function parseHeartbeatAck(value: unknown): HeartbeatAck | undefined {
  if (!isRecord(value) || value.type !== "heartbeat_ack") return undefined;
  const ack: HeartbeatAck = { type: "heartbeat_ack" };
  const id = checkId("heartbeat_ack", value.id);
  if (id !== undefined) ack.id = id;
  const ts = checkNumber("heartbeat_ack", "ts", value.ts);
  if (ts !== undefined) ack.ts = ts;
  const serverTs = checkNumber("heartbeat_ack", "server_ts", value.server_ts);
  if (serverTs !== undefined) ack.server_ts = serverTs;
  return ack;
}
