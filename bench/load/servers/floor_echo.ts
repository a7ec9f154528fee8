/**
 * Baseline (a′): the least any WebSocket echo with a string API must do on
 * Deno, over the same read→write loop as raw_echo.ts. Per read: find the
 * frames, unmask each text payload, turn it into a string (TextDecoder), turn
 * the string back into an unmasked frame, one write for them all. No
 * validation, no close handshake, no events, no handler: an experiment, not a
 * server (it trusts the load generator's frames: masked, FIN, text, under
 * 64 KiB).
 *
 * What it measures: the floor for heartwire's per-message work. The gap
 * raw → floor is what the runtime's string APIs cost (two op calls per
 * TextDecoder.decode, one per encodeInto); the gap floor → heartwire is what
 * heartwire's own rules, bookkeeping and safety cost.
 *
 * Prints `listening <port>` once ready; SIGTERM stops it.
 *
 * @module
 */
import { buildUpgradeResponse } from "../../../protocol/handshake.ts";
import { writeAll } from "../../../server/_http_io.ts";
import { readUpgrade } from "./_raw_upgrade.ts";

const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const encoder = new TextEncoder();

/** Copies ASCII `text` into `out` at `at`, as heartwire does for short strings; false if not ASCII. */
function asciiInto(text: string, out: Uint8Array, at: number): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x80) return false;
    out[at + i] = code;
  }
  return true;
}

/**
 * Echoes the complete frames in `input[0..end)` into `out`; returns
 * [consumed, written], consumed -1 once a close frame arrived (answered in `out`).
 */
function echoFrames(input: Uint8Array, end: number, out: Uint8Array): [number, number] {
  let pos = 0;
  let written = 0;
  while (end - pos >= 6) {
    if ((input[pos] & 0x0f) === 0x8) {
      out.set([0x88, 0x02, 0x03, 0xe8], written); // §5.5.1: close, 1000
      return [-1, written + 4];
    }
    const code = input[pos + 1] & 0x7f;
    const header = code === 126 ? 8 : 6;
    if (end - pos < header) break;
    const length = code === 126 ? (input[pos + 2] << 8) | input[pos + 3] : code;
    if (end - pos < header + length) break;
    const k = pos + header - 4;
    const payload = input.subarray(pos + header, pos + header + length);
    for (let i = 0; i < length; i++) payload[i] ^= input[k + (i & 3)];
    const text = decoder.decode(payload);
    // The string back into a server frame (§5.2): header, then UTF-8.
    const at = written + (length < 126 ? 2 : 4);
    const n = text.length <= 64 && asciiInto(text, out, at)
      ? text.length
      : encoder.encodeInto(text, out.subarray(at)).written;
    out[written] = 0x81;
    if (n < 126) out[written + 1] = n;
    else {
      out[written + 1] = 126;
      out[written + 2] = n >> 8;
      out[written + 3] = n & 0xff;
    }
    written = at + n;
    pos += header + length;
  }
  return [pos, written];
}

/** Handshake, then echo frames until EOF. */
async function handle(conn: Deno.Conn): Promise<void> {
  let buffer = new Uint8Array(256 * 1024);
  const out = new Uint8Array(512 * 1024);
  try {
    const upgrade = await readUpgrade(conn, buffer);
    if (upgrade === undefined) return;
    await writeAll(conn, buildUpgradeResponse(upgrade.key));
    buffer.copyWithin(0, upgrade.headLength, upgrade.filled);
    let filled = upgrade.filled - upgrade.headLength;
    for (;;) {
      const [consumed, written] = echoFrames(buffer, filled, out);
      if (written > 0) await writeAll(conn, out.subarray(0, written));
      if (consumed < 0) return;
      buffer.copyWithin(0, consumed, filled);
      filled -= consumed;
      const n = await conn.read(buffer.subarray(filled));
      if (n === null) return;
      filled += n;
      if (filled === buffer.length) {
        const grown = new Uint8Array(buffer.length * 2);
        grown.set(buffer);
        buffer = grown;
      }
    }
  } catch {
    // reset by the peer
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

if (import.meta.main) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: Number(Deno.args[0] ?? 0) });
  console.log(`listening ${(listener.addr as Deno.NetAddr).port}`);
  for await (const conn of listener) handle(conn);
}
