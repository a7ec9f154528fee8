/**
 * Chat as one small handler on a {@linkcode Hub}: what the demo page and
 * `deno task start`'s `/ws` use.
 *
 * | client sends | the hub does |
 * |---|---|
 * | `chat {text, topic?, cseq?}` | publishes `chat {topic, offset, from, text, ts}` to `topic` (default the chat's topic), then acks |
 *
 * Every new session is put in the chat's topic; the sender must be in the
 * topic it writes to (its own message comes back as a publication).
 *
 * @module
 */
import type { Hub } from "./hub.ts";

/**
 * Options for {@linkcode chat}. Every field has a default.
 */
export interface ChatOptions {
  /** The topic every new session is in and `chat` goes to by default. Default "lobby". */
  topic?: string;
  /** Longest text, in UTF-16 code units. Default 4 096. */
  maxTextLength?: number;
  /** Wall-clock ms for `ts`. Default `Date.now`. */
  wallClock?: () => number;
}

/**
 * Adds chat to a hub: the `chat` message type, and the default topic.
 *
 * @example
 * ```ts
 * import { chat, Hub } from "@heartwire/heartwire/hub";
 * const hub = chat(new Hub(), { topic: "lobby" });
 * hub.dispose();
 * ```
 */
export function chat(hub: Hub, options: ChatOptions = {}): Hub {
  const home = options.topic ?? "lobby";
  const maxTextLength = options.maxTextLength ?? 4_096;
  const wallClock = options.wallClock ?? Date.now;
  hub.defaultTopics.add(home);
  hub.on<{ text?: unknown; topic?: unknown }>("chat", async (ctx, message) => {
    const { text, topic = home } = message;
    if (typeof text !== "string") throw new Error('chat field "text" must be a string');
    if (text.length > maxTextLength) {
      throw new Error(`chat text is longer than ${maxTextLength} characters`);
    }
    if (typeof topic !== "string") throw new Error('chat field "topic" must be a string');
    if (!ctx.session.topics.has(topic)) {
      throw new Error(`subscribe to "${topic.slice(0, 64)}" first`);
    }
    await hub.publish(topic, "chat", { from: ctx.clientId, text, ts: wallClock() });
  });
  return hub;
}
