/**
 * Topic histories in Redis, shared by every node: a client recovers a topic
 * from its offset on whichever node it lands on.
 *
 * Per topic, two keys: a hash `PREFIX h:TOPIC` {epoch, top, bytes} and a
 * list `PREFIX l:TOPIC` of the publications' texts, oldest first, so the
 * list holds offsets `top - LLEN + 1 .. top`. Every step is one Lua script,
 * atomic in Redis, so two nodes appending at once never get the same offset.
 * An append makes the text around the offset it decides (the encoder's
 * {@linkcode OffsetTemplate}), trims the list to the entry and byte bounds,
 * refreshes the keys' TTL and, for a broker, PUBLISHes the text on the
 * topic's channel in the same step: the channel carries a topic's
 * publications in offset order.
 *
 * A history that is gone (TTL passed, Redis restarted or flushed, the hash
 * evicted) is made anew under a new epoch, so its clients learn
 * `recovered: false` instead of taking new offsets for old ones.
 *
 * @module
 */
import type { TopicPosition } from "../../protocol/messages.ts";
import type { Awaitable, HistoryStore, OffsetTemplate, Recovery } from "../history.ts";
import { command, randomEpoch, type RedisCommands, Script } from "./_client.ts";

/**
 * Options for {@linkcode RedisHistory}. Every field has a default.
 */
export interface RedisHistoryOptions {
  /** Prefix of every key and channel. Default "hw:". */
  prefix?: string;
  /** Publications kept per topic. Default 1 000. */
  maxEntries?: number;
  /** UTF-8 bytes of publications kept per topic. Default 256 KiB. */
  maxBytes?: number;
  /** How long (ms) a history nobody publishes to is kept. Default one day. */
  ttl?: number;
  /** PUBLISH every append on the topic's channel (what a broker listens to). Default false. */
  publish?: boolean;
  /** Makes epochs. Default 8 random base-36 characters. */
  createEpoch?: () => string;
}

/** Makes the history anew (new epoch, empty list) if its hash is gone; leaves `epoch`, `top`. */
const OPEN = `
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'top', 'bytes')
local epoch, top, bytes = meta[1], 0, 0
if epoch then
  top, bytes = tonumber(meta[2]), tonumber(meta[3])
else
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0, 'bytes', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
`;

/**
 * KEYS: hash, list. ARGV: new epoch, ttl, head, tail, expected offset ('' when
 * head..offset..tail makes the text; else head is the text, made for that
 * offset), max entries, max bytes, channel ('' for none).
 * Returns {1, epoch, offset}, or {0, epoch, top} when `expected` is stale.
 */
const APPEND = new Script(
  OPEN + `
local offset = top + 1
local text
if ARGV[5] == '' then
  text = ARGV[3] .. offset .. ARGV[4]
elseif tonumber(ARGV[5]) ~= offset then
  return {0, epoch, top}
else
  text = ARGV[3]
end
local length = redis.call('RPUSH', KEYS[2], text)
bytes = bytes + #text
local maxEntries, maxBytes = tonumber(ARGV[6]), tonumber(ARGV[7])
while length > 0 and (length > maxEntries or bytes > maxBytes) do
  bytes = bytes - #redis.call('LPOP', KEYS[2])
  length = length - 1
end
redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', offset, 'bytes', bytes)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
if ARGV[8] ~= '' then
  redis.call('PUBLISH', ARGV[8], epoch .. ' ' .. offset .. ' ' .. text)
end
return {1, epoch, offset}
`,
);

/**
 * KEYS: hash, list. ARGV: new epoch, ttl, from epoch ('' for the position
 * only, '*' for every publication held), from offset. Returns
 * {1, epoch, top, texts} when every publication after `from` is held, else
 * {0, epoch, top}.
 */
const READ = new Script(
  OPEN + `
if ARGV[3] == '' then return {0, epoch, top} end
if ARGV[3] == '*' then return {1, epoch, top, redis.call('LRANGE', KEYS[2], 0, -1)} end
local from = tonumber(ARGV[4])
local floor = top - redis.call('LLEN', KEYS[2]) + 1
if ARGV[3] ~= epoch or from < floor - 1 or from > top then return {0, epoch, top} end
if from == top then return {1, epoch, top, {}} end
return {1, epoch, top, redis.call('LRANGE', KEYS[2], from + 1 - floor, -1)}
`,
);

/** Appends that lost the race for an offset, at most, before giving up (untemplated encoders). */
const MAX_TRIES = 32;

/**
 * Topic histories in Redis, bounded per topic in entries and bytes and in
 * time (a TTL refreshed by every append); the total is Redis' `maxmemory`.
 *
 * @example
 * ```ts ignore
 * import { createClient } from "npm:redis@5";
 * import { RedisHistory } from "@heartwire/heartwire/hub/redis";
 * import { Hub } from "@heartwire/heartwire/hub";
 * const client = await createClient({ url: "redis://127.0.0.1:6379" }).connect();
 * const hub = new Hub({ history: new RedisHistory(client, { maxEntries: 500 }) });
 * ```
 */
export class RedisHistory implements HistoryStore {
  readonly #client: RedisCommands;
  readonly #prefix: string;
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #ttl: number;
  readonly #publish: boolean;
  readonly #createEpoch: () => string;

  /** A store on `client` (a connected node-redis client, or anything with `sendCommand`). */
  constructor(client: RedisCommands, options: RedisHistoryOptions = {}) {
    this.#client = client;
    this.#prefix = options.prefix ?? "hw:";
    this.#maxEntries = Math.max(1, options.maxEntries ?? 1_000);
    this.#maxBytes = Math.max(1, options.maxBytes ?? 256 * 1024);
    this.#ttl = Math.max(1, Math.round(options.ttl ?? 86_400_000));
    this.#publish = options.publish ?? false;
    this.#createEpoch = options.createEpoch ?? randomEpoch;
  }

  /** The channel a topic's appends are published on (when `publish` is set). */
  channel(topic: string): string {
    return `${this.#prefix}p:${topic}`;
  }

  /**
   * Appends a publication at the next offset, atomically across nodes. With
   * an encoder carrying an {@linkcode OffsetTemplate} this is one round trip;
   * any other encoder is asked for the text at the offset it expects, and
   * again if another node took that offset first.
   *
   * @throws {UnavailableError} if Redis cannot be reached.
   */
  async append(
    topic: string,
    encode: (offset: number) => string,
  ): Promise<TopicPosition & { text: string }> {
    const keys = this.#keys(topic);
    const { head, tail } = encode as Partial<OffsetTemplate>;
    const templated = typeof head === "string" && typeof tail === "string";
    let expected = templated ? 0 : (await this.position(topic)).offset + 1;
    for (let tries = 0; tries < MAX_TRIES; tries++) {
      const text = templated ? "" : encode(expected);
      const [done, epoch, offset] = await APPEND.run(this.#client, keys, [
        this.#createEpoch(),
        this.#ttl,
        templated ? head : text,
        templated ? tail : "",
        templated ? "" : expected,
        this.#maxEntries,
        this.#maxBytes,
        this.#publish ? this.channel(topic) : "",
      ]) as [number, string, number];
      if (done === 1) return { epoch, offset, text: templated ? head + offset + tail : text };
      expected = offset + 1;
    }
    throw new Error(`no offset won for "${topic}" in ${MAX_TRIES} tries: too many publishers`);
  }

  /**
   * The topic's epoch and last offset.
   *
   * @throws {UnavailableError} if Redis cannot be reached.
   */
  async position(topic: string): Promise<TopicPosition> {
    const [, epoch, offset] = await READ.run(this.#client, this.#keys(topic), [
      this.#createEpoch(),
      this.#ttl,
      "",
      0,
    ]) as [number, string, number];
    return { epoch, offset };
  }

  /**
   * Every publication after `from`, or `recovered: false` if any is gone.
   *
   * @throws {UnavailableError} if Redis cannot be reached.
   */
  async since(topic: string, from: TopicPosition): Promise<Recovery> {
    const [recovered, epoch, offset, texts] = await READ.run(this.#client, this.#keys(topic), [
      this.#createEpoch(),
      this.#ttl,
      from.epoch === "" || from.epoch === "*" ? "\n" : from.epoch, // those two ask other things
      from.offset,
    ]) as [number, string, number, string[] | undefined];
    return { recovered: recovered === 1, position: { epoch, offset }, texts: texts ?? [] };
  }

  /**
   * Every publication the history holds, oldest first, and its position:
   * the first text's offset is `offset - texts.length + 1`.
   *
   * @throws {UnavailableError} if Redis cannot be reached.
   */
  async held(topic: string): Promise<TopicPosition & { texts: string[] }> {
    const [, epoch, offset, texts] = await READ.run(this.#client, this.#keys(topic), [
      this.#createEpoch(),
      this.#ttl,
      "*",
      0,
    ]) as [number, string, number, string[]];
    return { epoch, offset, texts };
  }

  /**
   * Forgets the topic's history (the next one has a new epoch).
   *
   * @throws {UnavailableError} if Redis cannot be reached.
   */
  remove(topic: string): Awaitable<void> {
    return command(this.#client, ["DEL", ...this.#keys(topic)]).then(() => {});
  }

  #keys(topic: string): string[] {
    return [`${this.#prefix}h:${topic}`, `${this.#prefix}l:${topic}`];
  }
}
