/**
 * Frame opcodes (RFC 6455 §5.2, §11.8).
 *
 * The high bit of the 4-bit opcode separates data frames (0x0–0x7) from
 * control frames (0x8–0xF). Only six values are defined; the rest are
 * reserved and must fail the connection (§5.2).
 *
 * @module
 */

/**
 * The six defined opcodes.
 *
 * @example
 * ```ts
 * import { Opcode } from "@heartwire/heartwire/protocol";
 * console.log(Opcode.Text); // 1
 * ```
 */
export const Opcode = {
  /** Continues a fragmented message (§5.4). */
  Continuation: 0x0,
  /** A text message: UTF-8 once reassembled (§5.6). */
  Text: 0x1,
  /** A binary message (§5.6). */
  Binary: 0x2,
  /** Starts or answers the closing handshake (§5.5.1). */
  Close: 0x8,
  /** Asks the peer for a pong (§5.5.2). */
  Ping: 0x9,
  /** Answers a ping, or an unsolicited heartbeat (§5.5.3). */
  Pong: 0xa,
} as const;

/**
 * One of the defined opcode values.
 *
 * @example
 * ```ts
 * import { Opcode, type OpcodeValue } from "@heartwire/heartwire/protocol";
 * const op: OpcodeValue = Opcode.Ping;
 * ```
 */
export type OpcodeValue = typeof Opcode[keyof typeof Opcode];

/**
 * Whether `opcode` is a control frame opcode (0x8–0xF): such frames may not be
 * fragmented and carry at most 125 bytes (RFC 6455 §5.5).
 *
 * @example
 * ```ts
 * import { isControlOpcode, Opcode } from "@heartwire/heartwire/protocol";
 * isControlOpcode(Opcode.Ping); // true
 * isControlOpcode(Opcode.Text); // false
 * ```
 */
export function isControlOpcode(opcode: number): boolean {
  return (opcode & 0x8) !== 0;
}

/**
 * Whether `opcode` is one of the six defined by RFC 6455; any other value is
 * reserved and a protocol error (§5.2).
 *
 * @example
 * ```ts
 * import { isKnownOpcode } from "@heartwire/heartwire/protocol";
 * isKnownOpcode(0x3); // false: reserved
 * ```
 */
export function isKnownOpcode(opcode: number): boolean {
  return opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xa);
}
