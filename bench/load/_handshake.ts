/**
 * The client side of the opening handshake (RFC 6455 §4.1) for the load and
 * idle harnesses, on a raw `Deno.Conn`, built from `protocol/handshake.ts`.
 *
 * @module
 */
import {
  buildUpgradeRequest,
  generateKey,
  verifyUpgradeResponse,
} from "../../protocol/handshake.ts";
import { parseResponseHead } from "../../protocol/http1.ts";
import { writeAll } from "../../server/_http_io.ts";

/**
 * Sends the upgrade request for `path` to `host` over `conn` and checks the
 * server's 101. Returns the bytes that arrived behind the response head (the
 * server's first frames), which the caller must decode before reading more.
 * Throws if the connection closes first or the server refuses.
 */
export async function clientHandshake(
  conn: Deno.Conn,
  host: string,
  path: string,
): Promise<Uint8Array> {
  const key = generateKey();
  await writeAll(conn, buildUpgradeRequest({ host, path, key }));
  const buffer = new Uint8Array(1024);
  let received = new Uint8Array(0);
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("connection closed during the handshake");
    const grown = new Uint8Array(received.length + n);
    grown.set(received);
    grown.set(buffer.subarray(0, n), received.length);
    received = grown;
    const result = parseResponseHead(received);
    if (result.kind === "incomplete") continue;
    if (result.kind === "error") throw new Error(`bad handshake response: ${result.reason}`);
    const verdict = verifyUpgradeResponse(result.head, key);
    if (!verdict.ok) {
      throw new Error(`handshake refused: ${result.head.status} ${verdict.reason}`);
    }
    return received.slice(result.headLength);
  }
}
