/**
 * What the Redis stores need of a client, so that they import no package:
 * `npm:redis` is loaded by `connectRedisBackend` only, and a test can pass
 * anything with `sendCommand`.
 *
 * @module
 */
import { UnavailableError } from "../broker.ts";

/** A connection that sends commands (node-redis' `RedisClient` fits). */
export interface RedisCommands {
  /** Sends one command; resolves to its reply (RESP2: strings, numbers, arrays, null). */
  sendCommand(args: string[]): Promise<unknown>;
}

/** A connection in subscribe mode (node-redis' `RedisClient` after `duplicate()` fits). */
export interface RedisSubscriber {
  /** Subscribes to a channel; resolves once Redis confirmed it. */
  subscribe(
    channel: string,
    listener: (message: string) => void,
  ): Promise<unknown>;
  /** Unsubscribes from a channel. */
  unsubscribe(
    channel: string,
    listener?: (message: string) => void,
  ): Promise<unknown>;
}

/** True for an error Redis answered (a bad script, a wrong type), false for a lost connection. */
function isReply(error: unknown): boolean {
  for (let p = error; p; p = Object.getPrototypeOf(p)) {
    if ((p as { constructor?: { name?: string } }).constructor?.name === "ErrorReply") return true;
  }
  return false;
}

/** Turns a failed command into an {@linkcode UnavailableError}, unless Redis itself refused it. */
export function unavailable(error: unknown): Error {
  if (isReply(error) || error instanceof UnavailableError) return error as Error;
  const why = error instanceof Error ? error.message : String(error);
  return new UnavailableError(`redis is unavailable (${why})`, { cause: error });
}

async function sha1(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A Lua script run with EVALSHA (its text is sent once, and again after a
 * Redis restart forgot it). Scripts run atomically: that is what keeps
 * offsets and session owners consistent across nodes.
 */
export class Script {
  readonly #source: string;
  #sha: Promise<string> | undefined;

  constructor(source: string) {
    this.#source = source;
  }

  /** Runs the script; a lost connection rejects with an `UnavailableError`. */
  async run(client: RedisCommands, keys: string[], args: (string | number)[]): Promise<unknown> {
    this.#sha ??= sha1(this.#source);
    const tail = [String(keys.length), ...keys, ...args.map(String)];
    try {
      try {
        return await client.sendCommand(["EVALSHA", await this.#sha, ...tail]);
      } catch (error) {
        if (!(error instanceof Error) || !error.message.startsWith("NOSCRIPT")) throw error;
        return await client.sendCommand(["EVAL", this.#source, ...tail]);
      }
    } catch (error) {
      throw unavailable(error);
    }
  }
}

/** Sends one command; a lost connection rejects with an `UnavailableError`. */
export async function command(client: RedisCommands, args: string[]): Promise<unknown> {
  try {
    return await client.sendCommand(args);
  } catch (error) {
    throw unavailable(error);
  }
}

/**
 * `client` with a bound on every reply: past `timeout` ms the command fails
 * (as a lost connection does) whether or not Redis ran it; a late reply is
 * ignored.
 */
export function withTimeout(client: RedisCommands, timeout: number): RedisCommands {
  return {
    sendCommand(args) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no reply within ${timeout} ms`)),
          timeout,
        );
        client.sendCommand(args).then(resolve, reject).finally(() => clearTimeout(timer));
      });
    },
  };
}

/** Eight random base-36 characters: a new epoch, made by the caller (Lua has no good random). */
export function randomEpoch(): string {
  let epoch = "";
  for (const byte of crypto.getRandomValues(new Uint8Array(8))) epoch += (byte % 36).toString(36);
  return epoch;
}
