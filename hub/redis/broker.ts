/**
 * Publications across nodes through Redis pub/sub.
 *
 * A publish is a {@linkcode RedisHistory} append that PUBLISHes the text on
 * the topic's channel in the same Lua script, so the channel carries a
 * topic's publications in offset order (Redis runs scripts one at a time and
 * a connection receives its messages in order). A node SUBSCRIBEs to a
 * topic's channel only while its hub has members of the topic.
 *
 * Pub/sub is at-most-once: a message is lost if it was published before the
 * SUBSCRIBE took effect or while the subscriber connection was down. So per
 * topic the broker keeps the position it delivered up to, and delivers a
 * publication only if it is the next one:
 *
 * - the next offset of the same epoch: delivered;
 * - an offset already delivered: dropped (a history fetch got there first);
 * - a gap, or another epoch: it waits while the history is asked for what
 *   follows the delivered position (`since`), which is delivered first; what
 *   waited follows, minus what the fetch delivered. If the history was
 *   trimmed past it, the hub is told (`lost`: its members learn
 *   `recovered: false`) and what the history still holds is delivered. An
 *   epoch change is taken from the history, never from a message, so a late
 *   message of an old epoch cannot take the topic back;
 * - on SUBSCRIBE the delivered position is read from the history after Redis
 *   confirmed it, so every later publication arrives on the channel;
 * - after a reconnect every topic is fetched once: what was published while
 *   the subscriber was away is delivered even if nothing follows it.
 *
 * `delivered()` lets the publishing hub wait (bounded) until its own node
 * delivered a publication, so its sender gets it before the ack.
 *
 * @module
 */
import type { TopicPosition } from "../../protocol/messages.ts";
import { type Broker, type BrokerListener, UnavailableError } from "../broker.ts";
import type { RedisSubscriber } from "./_client.ts";
import { unavailable } from "./_client.ts";
import type { RedisHistory } from "./history.ts";

/**
 * What {@linkcode RedisBroker} needs of its history: a {@linkcode RedisHistory}
 * made with `publish: true` (a test may pass a stand-in).
 *
 * @example
 * ```ts
 * import type { BrokerHistory, RedisHistory } from "@heartwire/heartwire/hub/redis";
 * const asBrokerHistory = (history: RedisHistory): BrokerHistory => history;
 * ```
 */
export type BrokerHistory = Pick<
  RedisHistory,
  "append" | "position" | "since" | "held" | "channel"
>;

/**
 * Options for {@linkcode RedisBroker}. Every field has a default.
 */
export interface RedisBrokerOptions {
  /**
   * Publications of one topic held while its history is fetched; past it
   * they are dropped and fetched from the history instead. Default 10 000.
   */
  maxPending?: number;
  /** Longest wait (ms) of `delivered` for a publication to come back. Default 1 000. */
  maxDeliveryWait?: number;
  /** Told about an unexpected error (a broken message). Default `console.error`. */
  onError?: (error: unknown) => void;
}

interface Publication {
  epoch: string;
  offset: number;
  text: string;
}

/** One topic this node is subscribed to. */
interface Channel {
  key: string;
  name: string;
  listener: (message: string) => void;
  /** SUBSCRIBE confirmed and the position read. */
  ready: Promise<void>;
  started: boolean;
  closed: boolean;
  /** What was delivered up to. */
  epoch: string;
  last: number;
  /** A fetch from the history is under way. */
  fetching: boolean;
  /** Fetch again when this one is done: pending overflowed, or a reconnect asked. */
  again: boolean;
  /** Publications that arrived while starting or fetching, in channel order. */
  pending: Publication[];
  /** `delivered` calls waiting for an offset, in offset order. */
  waiters: { offset: number; resolve: () => void }[];
}

/**
 * A {@linkcode Broker} on Redis pub/sub and a {@linkcode RedisHistory} that
 * publishes its appends: in offset order per topic on every node, gaps
 * filled from the history.
 *
 * @example
 * ```ts ignore
 * import { createClient } from "npm:redis@5";
 * import { RedisBroker, RedisHistory } from "@heartwire/heartwire/hub/redis";
 * import { Hub } from "@heartwire/heartwire/hub";
 * const client = await createClient({ url: "redis://127.0.0.1:6379" }).connect();
 * const subscriber = await client.duplicate().connect();
 * const history = new RedisHistory(client, { publish: true });
 * const hub = new Hub({ history, broker: new RedisBroker(history, subscriber) });
 * ```
 */
export class RedisBroker implements Broker {
  /** Set by the hub. */
  listener?: BrokerListener;

  readonly #history: BrokerHistory;
  readonly #subscriber: RedisSubscriber;
  readonly #maxPending: number;
  readonly #maxDeliveryWait: number;
  readonly #onError: (error: unknown) => void;
  readonly #channels = new Map<string, Channel>();

  /** A broker publishing through `history` (made with `publish: true`) and listening on `subscriber`. */
  constructor(
    history: BrokerHistory,
    subscriber: RedisSubscriber,
    options: RedisBrokerOptions = {},
  ) {
    this.#history = history;
    this.#subscriber = subscriber;
    this.#maxPending = Math.max(1, options.maxPending ?? 10_000);
    this.#maxDeliveryWait = Math.max(0, options.maxDeliveryWait ?? 1_000);
    this.#onError = options.onError ?? ((error) => console.error("heartwire redis:", error));
  }

  /** Topics (and direct topics) this node is subscribed to. */
  get subscriptions(): number {
    return this.#channels.size;
  }

  /**
   * Appends to the history, which publishes on the topic's channel.
   *
   * @throws {UnavailableError} if Redis cannot be reached.
   */
  publish(
    key: string,
    encode: (offset: number) => string,
  ): Promise<TopicPosition & { text: string }> {
    return this.#history.append(key, encode);
  }

  /**
   * Subscribes to `key`'s channel (once) and resolves to the position
   * delivered up to: every later publication will be delivered.
   *
   * @throws {UnavailableError} if Redis cannot be reached.
   */
  async subscribe(key: string): Promise<TopicPosition> {
    let channel = this.#channels.get(key);
    if (!channel) {
      const name = this.#history.channel(key);
      const made: Channel = {
        key,
        name,
        listener: (message) => this.#message(made, message),
        ready: Promise.resolve(),
        started: false,
        closed: false,
        epoch: "",
        last: 0,
        fetching: false,
        again: false,
        pending: [],
        waiters: [],
      };
      channel = made;
      this.#channels.set(key, made);
      made.ready = this.#start(made);
    }
    const subscribed = channel;
    try {
      await subscribed.ready;
    } catch (error) {
      if (this.#channels.get(key) === subscribed) this.#close(subscribed);
      throw error;
    }
    return { epoch: subscribed.epoch, offset: subscribed.last };
  }

  /** Leaves `key`'s channel. */
  async unsubscribe(key: string): Promise<void> {
    const channel = this.#channels.get(key);
    if (channel) await this.#close(channel);
  }

  /**
   * Resolves once this node delivered `key` up to `position` (so a publisher
   * acks after its own publication reached this node's members), or when it
   * cannot: no subscription here, another epoch, Redis away, or after
   * `maxDeliveryWait`.
   */
  delivered(key: string, position: TopicPosition): Promise<void> {
    const channel = this.#channels.get(key);
    if (
      !channel || !channel.started || channel.epoch !== position.epoch ||
      channel.last >= position.offset
    ) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, this.#maxDeliveryWait);
      channel.waiters.push({
        offset: position.offset,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  /** Lets go of the `delivered` calls now satisfied (every one, with `all`). */
  #wake(channel: Channel, all = false): void {
    const waiters = channel.waiters;
    let done = 0;
    while (done < waiters.length && (all || waiters[done].offset <= channel.last)) {
      waiters[done++].resolve();
    }
    if (done > 0) channel.waiters = waiters.slice(done);
  }

  /**
   * Fetches what every topic missed: call it when the connection to Redis
   * is back (pub/sub dropped whatever was published meanwhile).
   */
  resync(): void {
    for (const channel of this.#channels.values()) {
      if (!channel.started) continue;
      if (channel.fetching) channel.again = true;
      else void this.#fetch(channel);
    }
  }

  async #start(channel: Channel): Promise<void> {
    try {
      await this.#subscriber.subscribe(channel.name, channel.listener);
    } catch (error) {
      throw unavailable(error);
    }
    // Read after the SUBSCRIBE took effect: every offset above it comes on the channel.
    const position = await this.#history.position(channel.key);
    channel.epoch = position.epoch;
    channel.last = position.offset;
    channel.started = true;
    this.#drain(channel);
  }

  async #close(channel: Channel): Promise<void> {
    this.#channels.delete(channel.key);
    channel.closed = true;
    channel.pending = [];
    this.#wake(channel, true);
    try {
      await this.#subscriber.unsubscribe(channel.name, channel.listener);
    } catch {
      // Unreachable: Redis drops the subscription with the connection; a reconnect
      // re-subscribes only the channels that still have a listener.
    }
  }

  #message(channel: Channel, message: string): void {
    if (channel.closed) return;
    const space = message.indexOf(" ");
    const second = message.indexOf(" ", space + 1);
    const offset = Number(message.slice(space + 1, second));
    if (space < 0 || second < 0 || !Number.isSafeInteger(offset)) {
      this.#onError(new Error(`unreadable message on ${channel.name}`));
      return;
    }
    const publication = { epoch: message.slice(0, space), offset, text: message.slice(second + 1) };
    if (!channel.started || channel.fetching) return this.#hold(channel, publication);
    this.#take(channel, publication);
  }

  #hold(channel: Channel, publication: Publication): void {
    if (channel.pending.length >= this.#maxPending) {
      // The history has them: fetch again rather than hold without bound.
      channel.pending = [];
      channel.again = true;
    }
    channel.pending.push(publication);
  }

  /** Delivers `publication` if it is the next one; fetches what is missing if there is a gap. */
  #take(channel: Channel, publication: Publication): void {
    const { epoch, offset, text } = publication;
    if (epoch === channel.epoch) {
      if (offset <= channel.last) return; // delivered already (a fetch got there first)
      if (offset === channel.last + 1) {
        channel.last = offset;
        this.listener?.publication(channel.key, { epoch, offset }, text);
        if (channel.waiters.length > 0) this.#wake(channel);
        return;
      }
    }
    this.#hold(channel, publication);
    void this.#fetch(channel);
  }

  /** Asks the history for what follows the delivered position, then delivers what waited. */
  async #fetch(channel: Channel): Promise<void> {
    channel.fetching = true;
    const waited = channel.pending.length;
    try {
      do {
        channel.again = false;
        await this.#fill(channel);
      } while (channel.again && !channel.closed);
    } catch (error) {
      // Redis is away: the reconnect's resync fetches again; nobody waits meanwhile.
      channel.fetching = false;
      this.#wake(channel, true);
      if (!(error instanceof UnavailableError)) this.#onError(error);
      return;
    }
    channel.fetching = false;
    // What waited from before the fetch started is older than what it saw: an
    // old epoch there is stale, not a new history.
    const pending = channel.pending;
    channel.pending = [];
    for (let i = 0; i < pending.length && !channel.closed; i++) {
      const publication = pending[i];
      if (i < waited && publication.epoch !== channel.epoch) continue;
      if (channel.fetching) channel.pending.push(publication);
      else this.#take(channel, publication);
    }
  }

  async #fill(channel: Channel): Promise<void> {
    const from = { epoch: channel.epoch, offset: channel.last };
    const recovery = await this.#history.since(channel.key, from);
    if (channel.closed) return;
    if (recovery.recovered) {
      for (const text of recovery.texts) this.#deliver(channel, text);
      return;
    }
    // Trimmed past what was delivered, or a new life of the history: deliver what it holds.
    const held = await this.#history.held(channel.key);
    if (channel.closed) return;
    if (held.epoch !== channel.epoch) {
      [channel.epoch, channel.last] = [held.epoch, 0];
      this.#wake(channel, true); // what they wait for was in the old epoch
    }
    const floor = held.offset - held.texts.length + 1;
    if (floor - 1 > channel.last) {
      channel.last = floor - 1;
      this.listener?.lost(channel.key, { epoch: channel.epoch, offset: channel.last });
      this.#wake(channel);
    }
    for (let i = channel.last + 1 - floor; i < held.texts.length; i++) {
      this.#deliver(channel, held.texts[i]);
    }
  }

  /** Delivers the text of the next offset. */
  #deliver(channel: Channel, text: string): void {
    channel.last++;
    this.listener?.publication(channel.key, { epoch: channel.epoch, offset: channel.last }, text);
    if (channel.waiters.length > 0) this.#wake(channel);
  }

  #drain(channel: Channel): void {
    const pending = channel.pending;
    channel.pending = [];
    for (const publication of pending) {
      if (channel.closed) return;
      if (channel.fetching) channel.pending.push(publication);
      else this.#take(channel, publication);
    }
  }
}
