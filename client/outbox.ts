/**
 * The outbox: client messages the server has not acknowledged yet.
 *
 * Every application message gets the next client sequence number `cseq` and
 * stays here, already serialized, until a server `{"type":"ack","cseq":N}`
 * (or a welcome's `last_cseq`) says the server processed it. After a
 * reconnect everything still here is sent again, in order; the server drops
 * the re-sends it had already processed (`cseq` <= its last), so nothing is
 * lost and nothing is done twice. When the session could not be resumed,
 * the new session knows nothing of them: the `last_cseq` of the server's
 * `resume_failed` acknowledges them instead. The queue is bounded in bytes: a client cut
 * off for a long time fails loudly instead of growing without limit.
 *
 * @module
 */
import { utf8Length } from "../protocol/utf8.ts";

/**
 * One queued message.
 */
export interface OutboxEntry {
  /** The client sequence number stamped on the message. */
  readonly cseq: number;
  /** The message as sent, JSON with `cseq` in it. */
  readonly text: string;
  /** UTF-8 size of `text`, what the byte bound counts. */
  readonly bytes: number;
}

/**
 * Tuning of {@linkcode Outbox}.
 */
export interface OutboxOptions {
  /** Most bytes of unacknowledged messages held. Default 1 MiB. */
  maxBytes?: number;
}

/**
 * Thrown by {@linkcode Outbox.push} when the message would not fit: the
 * server has not acknowledged enough for too long (usually: disconnected).
 *
 * @example
 * ```ts
 * import { Outbox, OutboxFullError } from "@heartwire/heartwire/client";
 * const outbox = new Outbox({ maxBytes: 40 });
 * try {
 *   outbox.push({ type: "chat", text: "a message longer than forty bytes" });
 * } catch (error) {
 *   if (error instanceof OutboxFullError) console.log(error.message);
 * }
 * ```
 */
export class OutboxFullError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "OutboxFullError";
  }
}

/**
 * A byte-bounded FIFO of numbered, unacknowledged client messages.
 *
 * @example
 * ```ts
 * import { Outbox } from "@heartwire/heartwire/client";
 * const outbox = new Outbox();
 * outbox.push({ type: "chat", text: "one" }); // cseq 1
 * outbox.push({ type: "chat", text: "two" }); // cseq 2
 * outbox.ack(1);
 * outbox.entries.map((entry) => entry.text); // ['{"type":"chat","text":"two","cseq":2}']
 * ```
 */
export class Outbox {
  /** Bytes held (sum of `entries[i].bytes`). */
  bytes = 0;
  /** The `cseq` the next pushed message gets. */
  nextCseq = 1;
  #entries: OutboxEntry[] = [];
  #maxBytes: number;

  /** Creates an empty outbox. */
  constructor(options: OutboxOptions = {}) {
    this.#maxBytes = options.maxBytes ?? 1024 * 1024;
  }

  /** The queued messages, oldest first (the order to send them in). */
  get entries(): readonly OutboxEntry[] {
    return this.#entries;
  }

  /**
   * Numbers `message` with the next `cseq`, serializes it and queues it.
   *
   * @throws {OutboxFullError} if it does not fit in the byte bound; nothing
   * is queued and no number is used up.
   */
  push(message: { type: string; [field: string]: unknown }): OutboxEntry {
    const cseq = this.nextCseq;
    const text = JSON.stringify({ ...message, cseq });
    const bytes = utf8Length(text);
    if (this.bytes + bytes > this.#maxBytes) {
      throw new OutboxFullError(
        `outbox full: ${this.bytes} bytes unacknowledged, ${bytes} more would pass ${this.#maxBytes}`,
      );
    }
    const entry = { cseq, text, bytes };
    this.#entries.push(entry);
    this.bytes += bytes;
    this.nextCseq++;
    return entry;
  }

  /**
   * Numbers the queued messages afresh from `first` (a new session counts
   * from its `last_cseq + 1`); returns each old number with its new one.
   */
  renumber(first: number): [number, number][] {
    const moves: [number, number][] = [];
    this.bytes = 0;
    this.#entries = this.#entries.map((entry, i) => {
      const cseq = first + i;
      moves.push([entry.cseq, cseq]);
      const text = JSON.stringify({ ...JSON.parse(entry.text), cseq });
      const bytes = utf8Length(text);
      this.bytes += bytes;
      return { cseq, text, bytes };
    });
    this.nextCseq = first + this.#entries.length;
    return moves;
  }

  /** Puts back what a saved outbox held: `[cseq, text]` pairs, oldest first, and the next `cseq`. */
  restore(entries: [number, string][], nextCseq: number): void {
    for (const [cseq, text] of entries) {
      const bytes = utf8Length(text);
      this.#entries.push({ cseq, text, bytes });
      this.bytes += bytes;
    }
    this.nextCseq = Math.max(this.nextCseq, nextCseq, (entries.at(-1)?.[0] ?? 0) + 1);
  }

  /** Drops every message with `cseq` <= `cseq` (acks are cumulative); returns how many. */
  ack(cseq: number): number {
    let n = 0;
    while (n < this.#entries.length && this.#entries[n].cseq <= cseq) {
      this.bytes -= this.#entries[n++].bytes;
    }
    if (n) this.#entries.splice(0, n);
    return n;
  }
}
