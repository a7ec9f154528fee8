/**
 * What one connection may make the hub send again: a token bucket in bytes
 * for history recoveries (`subscribe {topic, epoch, offset}`) and presence
 * states (`presence_subscribe`). Each such request is a few dozen bytes that
 * can cost a whole history read from a shared store and sent; without a
 * bound a client asking in a loop turns the server's bandwidth and the
 * store's reads against everyone else.
 *
 * Bytes, not requests, because answers differ by orders of magnitude: the
 * state of a topic with 10 000 members costs more than one with 3. A replay
 * may start whenever the bucket is not empty and is charged what it sent
 * once it is out, possibly into debt: so a recovery bigger than the whole
 * bucket still goes through (on a fresh connection).
 *
 * The first replay of each topic's history or presence state on a
 * connection may start even with the bucket empty (for as many topics as a
 * session may be in; it is charged all the same): those are what a client
 * asks for on every reconnect, and presence states carry no offset that
 * moves on, so a client whose states alone outweigh the bucket would
 * otherwise be shed at the same one on every connection and never get the
 * rest. Only asking again (a loop, a resync) waits for the bucket.
 *
 * @module
 */

/** The bucket refills completely over this long (ms). */
export const REPLAY_REFILL = 60_000;

/** Options for {@linkcode ReplayBudget}. */
export interface ReplayBudgetOptions {
  /** How many distinct replays (topic histories, presence states) may start with the bucket empty. Default 0. */
  firsts?: number;
}

/** One connection's replay bucket. */
export class ReplayBudget {
  readonly #burst: number;
  readonly #now: () => number;
  readonly #firsts: number;
  /** The replays this connection had, up to `firsts` of them (made on the first). */
  #seen: Set<string> | undefined;
  #tokens: number;
  #at: number;

  /** A full bucket of `burst` bytes (finite, > 0), refilled at `burst` per {@linkcode REPLAY_REFILL}. */
  constructor(burst: number, now: () => number, options: ReplayBudgetOptions = {}) {
    this.#burst = this.#tokens = burst;
    this.#now = now;
    this.#firsts = options.firsts ?? 0;
    this.#at = now();
  }

  /** Bytes left now (negative: in debt). */
  get tokens(): number {
    this.#refill();
    return this.#tokens;
  }

  /**
   * Whether the replay `key` (a topic's history or presence state) may start
   * now: anything is left, or it is the first of that key on this connection
   * and no more than `firsts` keys came before it. Notes `key`.
   */
  admit(key: string): boolean {
    const seen = this.#seen ??= new Set();
    const first = !seen.has(key) && seen.size < this.#firsts;
    if (first) seen.add(key);
    return first || this.tokens > 0;
  }

  /** Takes what a replay sent, possibly into debt. */
  spend(bytes: number): void {
    this.#refill();
    this.#tokens -= bytes;
  }

  #refill(): void {
    const now = this.#now();
    const elapsed = now - this.#at;
    this.#at = now;
    if (elapsed > 0 && this.#tokens < this.#burst) {
      this.#tokens = Math.min(this.#burst, this.#tokens + elapsed * this.#burst / REPLAY_REFILL);
    }
  }
}
