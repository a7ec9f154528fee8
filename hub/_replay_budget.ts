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
 * bucket still goes through (on a fresh connection), and a client that is
 * shed always makes progress on its next connection.
 *
 * @module
 */

/** The bucket refills completely over this long (ms). */
export const REPLAY_REFILL = 60_000;

/** One connection's replay bucket. */
export class ReplayBudget {
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  /** A full bucket of `burst` bytes (finite, > 0), refilled at `burst` per {@linkcode REPLAY_REFILL}. */
  constructor(burst: number, now: () => number) {
    this.#burst = this.#tokens = burst;
    this.#now = now;
    this.#at = now();
  }

  /** Bytes left now (negative: in debt). */
  get tokens(): number {
    this.#refill();
    return this.#tokens;
  }

  /** Whether a replay may start now: anything is left. */
  allows(): boolean {
    return this.tokens > 0;
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
