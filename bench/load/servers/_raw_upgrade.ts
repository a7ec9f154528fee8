/**
 * The opening handshake the baseline servers do by hand (raw_echo.ts,
 * floor_echo.ts, bench/fanout/servers/raw_fanout.ts): no checks beyond a
 * whole request head with a Sec-WebSocket-Key, so they cost as little as a
 * server can.
 *
 * @module
 */
import { parseRequestHead } from "../../../protocol/http1.ts";

/**
 * An upgrade request read into a buffer.
 *
 * @example
 * ```ts
 * import type { RawUpgrade } from "./_raw_upgrade.ts";
 * const isPublisher = (upgrade: RawUpgrade) => upgrade.target === "/pub";
 * ```
 */
export interface RawUpgrade {
  /** The request target, e.g. "/echo". */
  target: string;
  /** Its Sec-WebSocket-Key, for `buildUpgradeResponse` (RFC 6455 §4.2.2). */
  key: string;
  /** Where the head ends in the buffer: frames may be pipelined behind it. */
  headLength: number;
  /** Bytes read into the buffer. */
  filled: number;
}

/**
 * Reads into `buffer` until it holds a whole request head; undefined on EOF, a
 * bad head, one that does not fit the buffer, or no Sec-WebSocket-Key.
 *
 * @example
 * ```ts ignore
 * import { readUpgrade } from "./_raw_upgrade.ts";
 * const buffer = new Uint8Array(16 * 1024);
 * const upgrade = await readUpgrade(conn, buffer);
 * if (upgrade === undefined) conn.close();
 * ```
 */
export async function readUpgrade(
  conn: Deno.Conn,
  buffer: Uint8Array,
): Promise<RawUpgrade | undefined> {
  let filled = 0;
  for (;;) {
    const n = await conn.read(buffer.subarray(filled));
    if (n === null) return undefined;
    filled += n;
    const result = parseRequestHead(buffer.subarray(0, filled));
    if (result.kind === "incomplete" && filled < buffer.length) continue;
    const key = result.kind === "complete" ? result.head.headers.get("sec-websocket-key") : null;
    if (result.kind !== "complete" || key === null) return undefined;
    return { target: result.head.target, key, headLength: result.headLength, filled };
  }
}
