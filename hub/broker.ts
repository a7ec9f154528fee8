/**
 * The seam between a hub and other nodes: a {@linkcode Broker} carries every
 * publication to each node whose hub has members of its topic, so a hub can
 * run on several processes or machines (the Redis one is in `hub/redis/`).
 *
 * Without a broker the hub appends to its history and delivers at once.
 * With one, `publish` appends through the broker and every node, the
 * publishing one included, delivers on the broker's word, in offset order:
 * one path, so one order.
 *
 * @module
 */
import type { TopicPosition } from "../protocol/messages.ts";
import type { Awaitable } from "./history.ts";

/**
 * What a broker tells its hub, per key (a topic, or `$direct:SESSION`): the
 * publications in offset order without gaps, or that some were lost.
 *
 * @example
 * ```ts
 * import type { BrokerListener } from "@heartwire/heartwire/hub";
 * const log: BrokerListener = {
 *   publication: (key, position, text) => console.log(key, position.offset, text),
 *   lost: (key, position) => console.log(key, "lost up to", position.offset),
 * };
 * ```
 */
export interface BrokerListener {
  /** The next publication of `key`. */
  publication(key: string, position: TopicPosition, text: string): void;
  /** Publications of `key` up to `position` cannot be delivered (trimmed before they were fetched). */
  lost(key: string, position: TopicPosition): void;
}

/**
 * Carries publications between the nodes of a hub.
 *
 * @example
 * ```ts
 * import type { Broker } from "@heartwire/heartwire/hub";
 * import { Hub } from "@heartwire/heartwire/hub";
 * function node(broker: Broker): Hub {
 *   return new Hub({ broker }); // the hub sets broker.listener
 * }
 * ```
 */
export interface Broker {
  /** Set by the hub. */
  listener?: BrokerListener;
  /**
   * Appends the next publication of `key` to the shared history and sends it
   * to every node subscribed to `key`; resolves once it is stored.
   *
   * @throws {UnavailableError} when the shared store cannot be reached.
   */
  publish(
    key: string,
    encode: (offset: number) => string,
  ): Promise<TopicPosition & { text: string }>;
  /**
   * This node has members of `key`. Resolves to the position up to which
   * publications were delivered (or need not be): every later one will be.
   */
  subscribe(key: string): Promise<TopicPosition>;
  /** No member of `key` is left on this node. */
  unsubscribe(key: string): Awaitable<void>;
  /**
   * Resolves once this node delivered `key` up to `position` (bounded in
   * time): the hub waits for it before a publish resolves, so a sender sees
   * its own publication before its ack, as with one node.
   */
  delivered?(key: string, position: TopicPosition): Promise<void>;
}

/**
 * A shared store (Redis) cannot be reached now. The hub answers the message
 * that met it with an `error` and no `ack`, and counts it as not processed,
 * so the client re-sends it later; a handler that lets it through says it
 * changed nothing.
 *
 * @example
 * ```ts
 * import { UnavailableError } from "@heartwire/heartwire/hub";
 * try {
 *   throw new UnavailableError("redis is unreachable");
 * } catch (error) {
 *   console.log(error instanceof UnavailableError); // true
 * }
 * ```
 */
export class UnavailableError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UnavailableError";
  }
}
