/**
 * One load-generator process for `deno task bench:scale` (bench/load/scale.ts):
 * holds `--connections` idle WebSockets that answer every ping at once, and
 * says how many the server dropped.
 *
 * It is lean on purpose, so that the peer (not this process) decides the
 * result: a 256-byte pending read per connection, pings (RFC 6455 §5.5.2)
 * answered by a pong written straight from the read loop, with a zero masking
 * key (§5.3 allows any key; zero leaves the payload as is). Any other frame
 * from the server (a close, or data) ends the connection and counts as a drop.
 *
 * Protocol with the runner, one line each way:
 * - prints `opened <n> <failed>` once every handshake has finished;
 * - on stdin `mark`, prints a JSON {@linkcode ScaleMark};
 * - on stdin `finish`, prints a last mark, closes everything and exits.
 *
 * ```sh
 * deno run --allow-net bench/load/_scale_client.ts --hostname 127.0.1.1 --port 8080
 *   --connections 6000 [--path /echo] [--batch 200]
 * ```
 *
 * @module
 */
import { intFlag, parseFlags } from "./_flags.ts";
import { clientHandshake } from "./_handshake.ts";

/**
 * What a client process reports at each `mark`.
 *
 * @example
 * ```ts
 * import type { ScaleMark } from "./_scale_client.ts";
 * const held = (mark: ScaleMark) => mark.opened - mark.dropped;
 * ```
 */
export interface ScaleMark {
  /** Handshakes that completed. */
  opened: number;
  /** Connections that could not open. */
  failed: number;
  /** Open connections the server ended (EOF, reset, close frame or data). */
  dropped: number;
  /** Pings received so far, over every connection. */
  pings: number;
  /** This process's largest event-loop lag so far (ms): how late a 50 ms timer fired. */
  maxLagMs: number;
  /**
   * For each drop: ms between the last pong this process wrote on that
   * connection and the drop (-1 if it never answered a ping). A drop long
   * after a prompt pong is the server's doing, not this process's.
   */
  sincePong: number[];
  /** The first few distinct open failures. */
  errors: string[];
}

const PING = 0x9, PONG = 0xa;

/** One idle connection: reads, answers pings, notices the end. */
class Held {
  #conn: Deno.Conn;
  #closing = false;
  #pending = new Uint8Array(0);
  lastPong = -1;
  constructor(conn: Deno.Conn, early: Uint8Array, onPing: () => void, onDrop: (c: Held) => void) {
    this.#conn = conn;
    this.#run(early, onPing).then((dropped) => {
      if (dropped && !this.#closing) onDrop(this);
    });
  }

  /** Resolves true when the server ended the connection. */
  async #run(early: Uint8Array, onPing: () => void): Promise<boolean> {
    const buffer = new Uint8Array(256);
    try {
      if (early.length > 0 && !(await this.#frames(early, onPing))) return true;
      for (;;) {
        const n = await this.#conn.read(buffer);
        if (n === null) return true;
        if (!(await this.#frames(buffer.subarray(0, n), onPing))) return true;
      }
    } catch {
      return true;
    }
  }

  /** Answers every complete ping in `bytes`; false if anything else came. */
  async #frames(bytes: Uint8Array, onPing: () => void): Promise<boolean> {
    let data = bytes;
    if (this.#pending.length > 0) {
      data = new Uint8Array(this.#pending.length + bytes.length);
      data.set(this.#pending);
      data.set(bytes, this.#pending.length);
    }
    let at = 0;
    while (data.length - at >= 2) {
      const opcode = data[at] & 0x0f, length = data[at + 1] & 0x7f;
      if (opcode !== PING || length > 125) return false; // the server closes or misbehaves
      if (data.length - at < 2 + length) break;
      onPing();
      const pong = new Uint8Array(6 + length);
      pong[0] = 0x80 | PONG;
      pong[1] = 0x80 | length; // masked, zero key
      pong.set(data.subarray(at + 2, at + 2 + length), 6);
      let written = 0;
      while (written < pong.length) written += await this.#conn.write(pong.subarray(written));
      this.lastPong = performance.now();
      at += 2 + length;
    }
    this.#pending = data.slice(at);
    return true;
  }

  close(): void {
    this.#closing = true;
    try {
      this.#conn.close();
    } catch {
      // the server closed it first
    }
  }
}

async function main(): Promise<void> {
  const flags = parseFlags(Deno.args, ["hostname", "port", "path", "connections", "batch"]);
  const hostname = flags.get("hostname") ?? "127.0.0.1";
  const port = intFlag(flags, "port", 0);
  const path = flags.get("path") ?? "/echo";
  const connections = intFlag(flags, "connections", 1_000);
  const batch = intFlag(flags, "batch", 200);

  const mark: ScaleMark = {
    opened: 0,
    failed: 0,
    dropped: 0,
    pings: 0,
    maxLagMs: 0,
    sincePong: [],
    errors: [],
  };
  const held: Held[] = [];
  const onPing = () => mark.pings++;
  const onDrop = (c: Held) => {
    mark.dropped++;
    mark.sincePong.push(c.lastPong < 0 ? -1 : Math.round(performance.now() - c.lastPong));
  };

  let expected = performance.now() + 50;
  const lagTimer = setInterval(() => {
    const now = performance.now();
    mark.maxLagMs = Math.max(mark.maxLagMs, Math.round(now - expected));
    expected = now + 50;
  }, 50);

  const open = async () => {
    const conn = await Deno.connect({ hostname, port });
    try {
      const early = await clientHandshake(conn, `${hostname}:${port}`, path);
      held.push(new Held(conn, early, onPing, onDrop));
      mark.opened++;
    } catch (error) {
      conn.close();
      throw error;
    }
  };
  for (let started = 0; started < connections; started += batch) {
    const size = Math.min(batch, connections - started);
    const results = await Promise.allSettled(Array.from({ length: size }, open));
    for (const result of results) {
      if (result.status === "rejected") {
        mark.failed++;
        const message = String(result.reason?.message ?? result.reason);
        if (mark.errors.length < 5 && !mark.errors.includes(message)) mark.errors.push(message);
      }
    }
  }
  console.log(`opened ${mark.opened} ${mark.failed}`);

  const print = () => console.log(JSON.stringify(mark));
  const decoder = new TextDecoderStream();
  let rest = "";
  for await (const text of Deno.stdin.readable.pipeThrough(decoder)) {
    rest += text;
    let newline;
    while ((newline = rest.indexOf("\n")) !== -1) {
      const command = rest.slice(0, newline).trim();
      rest = rest.slice(newline + 1);
      if (command === "mark") print();
      if (command === "finish") {
        print();
        clearInterval(lagTimer);
        for (const c of held) c.close();
        Deno.exit(0);
      }
    }
  }
  clearInterval(lagTimer);
  for (const c of held) c.close();
}

if (import.meta.main) await main();
