/**
 * Topic history: what lets a client that was away recover a topic from the
 * last offset it has (the delivery model of Centrifugo's history recovery).
 *
 * Each topic's history holds its latest publications, already serialised,
 * bounded in entries and bytes, with rising offsets. Its epoch names this
 * life of the history: when the history is lost (trimmed away whole,
 * evicted, or the process restarted) a new one starts with a new epoch, so a
 * client can tell "nothing happened" from "you missed everything".
 *
 * ```text
 *  offset:  1  2  3 │ 4  5  6  7      history holds 4..7 (1..3 trimmed)
 *                   └ floor          since(3..7) recovers; since(0..2) → recovered: false
 * ```
 *
 * {@linkcode HistoryStore} is the interface the hub uses; every method may
 * return a promise, so a shared store (Redis, Deno KV) fits it.
 * {@linkcode MemoryHistory} is the one-process implementation.
 *
 * @module
 */
import type { TopicPosition } from "../protocol/messages.ts";
import { utf8Length } from "../protocol/utf8.ts";

/**
 * A value or a promise of it: what a store method returns, so that memory
 * stores stay synchronous and shared ones can be async.
 *
 * @example
 * ```ts
 * import type { Awaitable } from "@heartwire/heartwire/hub";
 * const now: Awaitable<number> = 1;
 * const later: Awaitable<number> = Promise.resolve(2);
 * ```
 */
export type Awaitable<T> = T | Promise<T>;

/**
 * What an `encode` function given to {@linkcode HistoryStore.append} may
 * also carry: its text is `head + offset + tail`. A shared store can then
 * make the text where it decides the offset, in one atomic step; the hub's
 * encoders carry it.
 *
 * @example
 * ```ts
 * import type { OffsetTemplate } from "@heartwire/heartwire/hub";
 * const head = '{"type":"note","topic":"news","offset":';
 * const encode = Object.assign((offset: number) => head + offset + "}", { head, tail: "}" });
 * const template: OffsetTemplate = encode;
 * console.log(template.head + 7 + template.tail === encode(7)); // true
 * ```
 */
export interface OffsetTemplate {
  /** The text before the offset. */
  readonly head: string;
  /** The text after the offset. */
  readonly tail: string;
}

/**
 * What {@linkcode HistoryStore.since} found: the publications after the
 * asked offset, or that they are lost.
 */
export interface Recovery {
  /** True when `texts` is every publication after the asked offset. */
  recovered: boolean;
  /** The topic's position now: its epoch and last offset. */
  position: TopicPosition;
  /** The publications after the asked offset, oldest first (empty if not recovered). */
  texts: string[];
}

/**
 * Where the hub keeps topic histories.
 *
 * @example
 * ```ts
 * import { type HistoryStore, MemoryHistory } from "@heartwire/heartwire/hub";
 * const history: HistoryStore = new MemoryHistory({ maxEntries: 100 });
 * const { offset } = await history.append("lobby", (offset) => `{"offset":${offset}}`);
 * console.log(offset); // 1
 * ```
 */
export interface HistoryStore {
  /**
   * Appends the next publication of `topic`: `encode` is called once with
   * its offset and returns its text, which is kept and returned. Creates the
   * history (with a new epoch) if it does not exist.
   */
  append(
    topic: string,
    encode: (offset: number) => string,
  ): Awaitable<TopicPosition & { text: string }>;
  /** The topic's position now, creating its history if it does not exist. */
  position(topic: string): Awaitable<TopicPosition>;
  /** The publications after `from`, if the history still holds every one of them. */
  since(topic: string, from: TopicPosition): Awaitable<Recovery>;
  /** Forgets a topic's history (the next one has a new epoch). */
  remove(topic: string): Awaitable<void>;
}

/**
 * Options for {@linkcode MemoryHistory}. Every field has a default.
 */
export interface MemoryHistoryOptions {
  /** Publications kept per topic. Default 1 000. */
  maxEntries?: number;
  /** UTF-8 bytes of publications kept per topic. Default 256 KiB. */
  maxBytes?: number;
  /** UTF-8 bytes kept over all topics. Default 64 MiB. */
  maxTotalBytes?: number;
  /**
   * Topic histories kept at once; at the cap the one published to least
   * recently is forgotten (its clients learn `recovered: false`). Topics
   * only asked about (never published to) are kept apart, as many again,
   * oldest forgotten first: a client subscribing to name after name cannot
   * push out a history with publications. Default 20 000.
   */
  maxTopics?: number;
  /** Makes epochs. Default 8 random base-36 characters. */
  createEpoch?: () => string;
}

/** One topic's history: a queue of texts with their sizes. */
class TopicHistory {
  readonly epoch: string;
  /** The offset of the last publication (0 before any). */
  top = 0;
  texts: string[] = [];
  sizes: number[] = [];
  head = 0;
  bytes = 0;

  constructor(epoch: string) {
    this.epoch = epoch;
  }

  get length(): number {
    return this.texts.length - this.head;
  }

  /** The lowest offset held (`top + 1` when empty). */
  get floor(): number {
    return this.top - this.length + 1;
  }

  push(text: string, size: number): void {
    this.texts.push(text);
    this.sizes.push(size);
    this.bytes += size;
  }

  /** Drops the oldest publication; returns its size. */
  shift(): number {
    const size = this.sizes[this.head];
    this.texts[this.head] = undefined!; // let it be collected
    this.head++;
    this.bytes -= size;
    if (this.head === this.texts.length) {
      this.texts.length = this.sizes.length = this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.texts.length) {
      // Amortised O(1): shift the arrays once the dropped prefix is half of them.
      this.texts = this.texts.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
    return size;
  }
}

function randomEpoch(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  let epoch = "";
  for (const byte of bytes) epoch += (byte % 36).toString(36);
  return epoch;
}

/**
 * Topic histories in this process's memory, bounded per topic (entries,
 * bytes), in total bytes and in topic count.
 *
 * @example
 * ```ts
 * import { MemoryHistory } from "@heartwire/heartwire/hub";
 * const history = new MemoryHistory({ maxEntries: 2 });
 * const first = history.position("news");
 * for (const n of [1, 2, 3]) history.append("news", (offset) => `{"n":${n},"offset":${offset}}`);
 * history.since("news", first); // { recovered: false, ... }: offset 1 was trimmed
 * history.since("news", { epoch: first.epoch, offset: 1 }).texts.length; // 2
 * ```
 */
export class MemoryHistory implements HistoryStore {
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #maxTotalBytes: number;
  readonly #maxTopics: number;
  readonly #createEpoch: () => string;
  /** Least recently published first: re-inserted on every append. */
  readonly #topics = new Map<string, TopicHistory>();
  /** Never published to, only asked about (position, since): oldest first. */
  readonly #empty = new Map<string, TopicHistory>();
  #bytes = 0;

  /** Creates an empty store. */
  constructor(options: MemoryHistoryOptions = {}) {
    this.#maxEntries = Math.max(1, options.maxEntries ?? 1_000);
    this.#maxBytes = Math.max(1, options.maxBytes ?? 256 * 1024);
    this.#maxTotalBytes = Math.max(1, options.maxTotalBytes ?? 64 * 1024 * 1024);
    this.#maxTopics = Math.max(1, options.maxTopics ?? 20_000);
    this.#createEpoch = options.createEpoch ?? randomEpoch;
  }

  /** Topic histories held. */
  get topics(): number {
    return this.#topics.size + this.#empty.size;
  }

  /** UTF-8 bytes of publications held over all topics. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Publications held for `topic`. */
  entries(topic: string): number {
    return this.#topics.get(topic)?.length ?? 0;
  }

  /** Appends a publication; the oldest are trimmed while a bound is passed. */
  append(topic: string, encode: (offset: number) => string): TopicPosition & { text: string } {
    const history = this.#get(topic);
    // Most recently published last: the eviction order.
    this.#empty.delete(topic);
    if (!this.#topics.delete(topic) && this.#topics.size >= this.#maxTopics) {
      const [oldest] = this.#topics.keys();
      this.remove(oldest);
    }
    this.#topics.set(topic, history);
    const offset = ++history.top;
    const text = encode(offset);
    const size = utf8Length(text);
    history.push(text, size);
    this.#bytes += size;
    while (history.length > this.#maxEntries || history.bytes > this.#maxBytes) {
      this.#bytes -= history.shift();
    }
    // Over the total: this topic pays first, then the largest one.
    while (this.#bytes > this.#maxTotalBytes) {
      let victim = history.length > 1 ? history : undefined;
      if (!victim) {
        for (const other of this.#topics.values()) {
          if (other.length > 0 && (!victim || other.bytes > victim.bytes)) victim = other;
        }
      }
      if (!victim) break;
      this.#bytes -= victim.shift();
    }
    return { epoch: history.epoch, offset, text };
  }

  /** The topic's epoch and last offset. */
  position(topic: string): TopicPosition {
    const history = this.#get(topic);
    return { epoch: history.epoch, offset: history.top };
  }

  /** Every publication after `from`, or `recovered: false` if any is gone. */
  since(topic: string, from: TopicPosition): Recovery {
    const history = this.#get(topic);
    const position = { epoch: history.epoch, offset: history.top };
    if (
      from.epoch !== history.epoch || from.offset < history.floor - 1 || from.offset > history.top
    ) {
      return { recovered: false, position, texts: [] };
    }
    const start = history.head + (from.offset + 1 - history.floor);
    return { recovered: true, position, texts: history.texts.slice(start) };
  }

  /** Forgets the topic's history. */
  remove(topic: string): void {
    this.#empty.delete(topic);
    const history = this.#topics.get(topic);
    if (!history) return;
    this.#bytes -= history.bytes;
    this.#topics.delete(topic);
  }

  #get(topic: string): TopicHistory {
    let history = this.#topics.get(topic) ?? this.#empty.get(topic);
    if (history) return history;
    if (this.#empty.size >= this.#maxTopics) {
      const [oldest] = this.#empty.keys();
      this.#empty.delete(oldest);
    }
    history = new TopicHistory(this.#createEpoch());
    this.#empty.set(topic, history);
    return history;
  }
}
