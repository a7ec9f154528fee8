/**
 * New connections per client address, as a token bucket each: an address may
 * open `burst` at once and then `rate` a second. An upgrade costs the server
 * a tenth of a millisecond of CPU (accept, parse, SHA-1, the 101, the
 * connection's state), so one address opening and closing connections in a
 * loop would otherwise spend a core that everyone else needs, however few it
 * holds open at a time (`maxConnectionsPerIp` counts only those).
 *
 * Memory is bounded: at most `maxAddresses` buckets are kept, the least
 * recently used dropped first (a dropped address starts again with a full
 * bucket, which it would have had by then in most cases).
 *
 * @module
 */

/** Options of {@linkcode ConnectionRateLimit}. */
export interface ConnectionRateLimitOptions {
  /** New connections per second per address, sustained. */
  rate: number;
  /** New connections an address may open at once (the bucket's size). */
  burst: number;
  /** Monotonic ms. */
  now: () => number;
  /** Addresses remembered at most. Default 65 536. */
  maxAddresses?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** One token bucket per client address. */
export class ConnectionRateLimit {
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;
  readonly #maxAddresses: number;
  /** In order of last use: the first is the least recently used. */
  readonly #buckets = new Map<string, Bucket>();

  /** @throws {RangeError} unless `rate` is finite and positive and `burst` at least 1. */
  constructor(options: ConnectionRateLimitOptions) {
    if (!(Number.isFinite(options.rate) && options.rate > 0) || !(options.burst >= 1)) {
      throw new RangeError("rate must be finite and positive, and burst at least 1");
    }
    this.#rate = options.rate;
    this.#burst = options.burst;
    this.#now = options.now;
    this.#maxAddresses = options.maxAddresses ?? 65_536;
  }

  /** Addresses remembered now. */
  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Takes one connection for `address`: 0 if it may open it, else the ms
   * until it may (for `Retry-After`). A refusal takes nothing.
   */
  take(address: string): number {
    const now = this.#now();
    let bucket = this.#buckets.get(address);
    if (bucket !== undefined) {
      bucket.tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#rate / 1000);
      this.#buckets.delete(address); // re-inserted below: most recently used
    } else {
      if (this.#buckets.size >= this.#maxAddresses) {
        this.#buckets.delete(this.#buckets.keys().next().value!);
      }
      bucket = { tokens: this.#burst, at: now };
    }
    bucket.at = now;
    this.#buckets.set(address, bucket);
    if (bucket.tokens < 1) return Math.ceil((1 - bucket.tokens) * 1000 / this.#rate);
    bucket.tokens--;
    return 0;
  }
}
