/**
 * Close codes, close frame payloads and the closing handshake (RFC 6455 §5.5.1,
 * §7). Pure logic: the server and the client both drive a {@linkcode CloseHandshake}
 * and do the I/O it asks for.
 *
 * @module
 */

/**
 * Status codes defined by RFC 6455 §7.4.1 and the IANA registry (§11.7).
 *
 * @example
 * ```ts
 * import { CloseCode } from "@heartwire/heartwire/protocol";
 * console.log(CloseCode.MessageTooBig); // 1009
 * ```
 */
export const CloseCode = {
  /** The purpose of the connection was fulfilled. */
  Normal: 1000,
  /** An endpoint is going away: server shutdown, page navigation. */
  GoingAway: 1001,
  /** The peer broke the protocol. */
  ProtocolError: 1002,
  /** Data of a type this endpoint cannot accept (e.g. binary on a text-only route). */
  UnsupportedData: 1003,
  /** Reserved: "no status code was present". Never sent on the wire. */
  NoStatus: 1005,
  /** Reserved: "the connection closed without a close frame". Never sent on the wire. */
  Abnormal: 1006,
  /** A text message (or close reason) was not valid UTF-8. */
  InvalidPayload: 1007,
  /** A policy was violated (origin, authentication, a slow consumer). */
  PolicyViolation: 1008,
  /** A message was larger than this endpoint accepts. */
  MessageTooBig: 1009,
  /** The client expected an extension the server did not negotiate. */
  MandatoryExtension: 1010,
  /** The server met an unexpected condition. */
  InternalError: 1011,
  /** The server is restarting; reconnect later. */
  ServiceRestart: 1012,
  /** The server is overloaded; try again later. */
  TryAgainLater: 1013,
  /** A gateway received an invalid response upstream. */
  BadGateway: 1014,
  /** Reserved: the TLS handshake failed. Never sent on the wire. */
  TlsHandshake: 1015,
} as const;

/** The largest close reason in bytes: 125-byte control payload minus the 2-byte code (§5.5). */
export const MAX_CLOSE_REASON_BYTES = 123;

/**
 * Whether `code` may appear in a close frame on the wire (RFC 6455 §7.4).
 *
 * Allowed: 1000–1003, 1007–1014 (defined and registered), 3000–3999
 * (registered by libraries and frameworks) and 4000–4999 (private use).
 * Everything else — 0–999, 1004, the reserved 1005/1006/1015, the unassigned
 * 1016–2999 and 5000+ — is invalid.
 *
 * @example
 * ```ts
 * import { isValidCloseCode } from "@heartwire/heartwire/protocol";
 * isValidCloseCode(1000); // true
 * isValidCloseCode(1005); // false: reserved for "no status"
 * isValidCloseCode(4001); // true: private use
 * ```
 */
export function isValidCloseCode(code: number): boolean {
  if (!Number.isInteger(code)) return false;
  if (code >= 1000 && code <= 1003) return true;
  if (code >= 1007 && code <= 1014) return true;
  return code >= 3000 && code <= 4999;
}

const encoder = new TextEncoder();
// `ignoreBOM`: a leading U+FEFF belongs to the reason; it is not a byte-order mark to strip.
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Builds the payload of a close frame: a 2-byte big-endian code then a UTF-8
 * reason (RFC 6455 §5.5.1). With no code the payload is empty.
 *
 * @throws {RangeError} if the code may not be sent or the reason is over 123 bytes,
 * or if a reason is given without a code.
 *
 * @example
 * ```ts
 * import { encodeClosePayload } from "@heartwire/heartwire/protocol";
 * encodeClosePayload(1000, "bye"); // Uint8Array [3, 232, 98, 121, 101]
 * ```
 */
export function encodeClosePayload(code?: number, reason = ""): Uint8Array {
  if (code === undefined) {
    if (reason !== "") throw new RangeError("a close reason needs a close code");
    return new Uint8Array(0);
  }
  if (!isValidCloseCode(code)) throw new RangeError(`close code ${code} may not be sent`);
  const reasonBytes = encoder.encode(reason);
  if (reasonBytes.length > MAX_CLOSE_REASON_BYTES) {
    throw new RangeError(
      `close reason is ${reasonBytes.length} bytes; at most ${MAX_CLOSE_REASON_BYTES} fit`,
    );
  }
  const payload = new Uint8Array(2 + reasonBytes.length);
  payload[0] = code >> 8;
  payload[1] = code & 0xff;
  payload.set(reasonBytes, 2);
  return payload;
}

/**
 * What {@linkcode parseClosePayload} found: the peer's code and reason, or the
 * code we must close with because the payload was invalid.
 *
 * @example
 * ```ts
 * import { parseClosePayload, type ClosePayload } from "@heartwire/heartwire/protocol";
 * const result: ClosePayload = parseClosePayload(new Uint8Array([3, 232]));
 * ```
 */
export type ClosePayload =
  | { ok: true; code: number; reason: string }
  | { ok: false; code: number; reason: string };

/**
 * Reads a received close frame's payload.
 *
 * An empty payload means "no status" and is reported as 1005 (§7.1.5). A
 * 1-byte payload or a code that may not be sent is a protocol error (1002); a
 * reason that is not valid UTF-8 is 1007 (§5.5.1, §8.1).
 *
 * @example
 * ```ts
 * import { parseClosePayload } from "@heartwire/heartwire/protocol";
 * parseClosePayload(new Uint8Array([3, 232, 104, 105]));
 * // { ok: true, code: 1000, reason: "hi" }
 * parseClosePayload(new Uint8Array([3]));
 * // { ok: false, code: 1002, reason: "close payload of 1 byte" }
 * ```
 */
export function parseClosePayload(payload: Uint8Array): ClosePayload {
  if (payload.length === 0) return { ok: true, code: CloseCode.NoStatus, reason: "" };
  if (payload.length === 1) {
    return { ok: false, code: CloseCode.ProtocolError, reason: "close payload of 1 byte" };
  }
  const code = (payload[0] << 8) | payload[1];
  if (!isValidCloseCode(code)) {
    return { ok: false, code: CloseCode.ProtocolError, reason: `invalid close code ${code}` };
  }
  try {
    return { ok: true, code, reason: strictDecoder.decode(payload.subarray(2)) };
  } catch {
    return { ok: false, code: CloseCode.InvalidPayload, reason: "close reason is not UTF-8" };
  }
}

/**
 * The states of the closing handshake (RFC 6455 §7.1.2–§7.1.4).
 *
 * - `open`: no close frame either way.
 * - `closing`: we sent a close frame and wait for the peer's.
 * - `closing-by-peer`: the peer sent one; we owe an answer.
 * - `closed`: both sent (clean), or the transport ended (not clean).
 */
export type CloseState = "open" | "closing" | "closing-by-peer" | "closed";

/**
 * The closing handshake as a small state machine, with no I/O.
 *
 * Each method returns what the caller must do. Either side may start; the
 * other answers once; after that nothing more is sent and the transport may
 * be closed (the server closes TCP first, §7.1.1).
 *
 * @example
 * ```ts
 * import { CloseHandshake } from "@heartwire/heartwire/protocol";
 * const close = new CloseHandshake();
 * close.start(1001, "shutting down"); // true: send a close frame
 * close.receive(1001, "");            // undefined: nothing more to send
 * close.state;                         // "closed"
 * close.wasClean;                      // true
 * ```
 */
export class CloseHandshake {
  #state: CloseState = "open";
  #code: number = CloseCode.Abnormal;
  #reason = "";
  #clean = false;

  /** Where the handshake stands. */
  get state(): CloseState {
    return this.#state;
  }

  /** The code the connection closed with: the first close frame's, else 1006. */
  get code(): number {
    return this.#code;
  }

  /** The reason that went with {@linkcode CloseHandshake.code}. */
  get reason(): string {
    return this.#reason;
  }

  /** True once both close frames were exchanged. */
  get wasClean(): boolean {
    return this.#clean;
  }

  /** Whether a data frame may still be sent: only before our close frame (§5.5.1). */
  get canSend(): boolean {
    return this.#state === "open" || this.#state === "closing-by-peer";
  }

  /**
   * We want to close. Returns true if a close frame should go out now, false if
   * one already did or the transport is gone.
   */
  start(code: number = CloseCode.Normal, reason = ""): boolean {
    if (this.#state === "open") {
      this.#state = "closing";
      this.#code = code;
      this.#reason = reason;
      return true;
    }
    if (this.#state === "closing-by-peer") {
      // We answer the peer; the connection's code stays the peer's.
      this.#state = "closed";
      this.#clean = true;
      return true;
    }
    return false;
  }

  /**
   * The peer's close frame arrived. Returns the close frame to answer with
   * (echoing the peer's code and reason, §5.5.1, so a browser's close event
   * shows what it asked for), or undefined if we already sent ours. A peer's
   * 1005 ("no status") is answered with an empty payload.
   */
  receive(code: number, reason: string): { code?: number; reason: string } | undefined {
    if (this.#state === "open") {
      this.#state = "closing-by-peer";
      this.#code = code;
      this.#reason = reason;
      return code === CloseCode.NoStatus ? { reason: "" } : { code, reason };
    }
    if (this.#state === "closing") {
      this.#state = "closed";
      this.#clean = true;
    }
    return undefined;
  }

  /** Records that we answered the peer's close frame; the handshake is complete. */
  answered(): void {
    if (this.#state === "closing-by-peer") {
      this.#state = "closed";
      this.#clean = true;
    }
  }

  /**
   * The transport ended (or we gave up waiting). If the handshake was not
   * complete the close was not clean and, with no close frame seen, its code is
   * 1006 (§7.1.5).
   */
  terminated(): void {
    if (this.#state === "open") {
      this.#code = CloseCode.Abnormal;
      this.#reason = "";
    }
    this.#state = "closed";
  }
}
