/**
 * The server-wide budget for bytes queued to peers and not yet written
 * (`serve({ maxQueuedBytes })`). Each connection's own bound
 * (`maxBufferedBytes`, `maxBufferedAge`) stops one peer that does not read;
 * this stops a thousand of them, each under its own bound, from taking the
 * process's memory together (a broadcast flood into a room whose members
 * stopped reading).
 *
 * What it counts is memory, not bytes per connection: a connection's private
 * bytes (frames copied into its batches, writes in flight) once each, and a
 * {@linkcode PreparedMessage} — one frame shared by every recipient — once,
 * however many connections hold it. (Not counted: the few bytes of bookkeeping
 * per queued reference, and batch buffers' unused capacity.)
 *
 * When the total passes the limit, connections whose write has been stuck
 * for a second (the kernel will take no more: the peer is not reading) are
 * dropped as slow, furthest behind first — oldest unwritten byte, then most
 * bytes queued — until the total is back under three quarters of the limit.
 * A peer that reads is never a candidate, however far a burst put it behind:
 * at the start of a flood readers and non-readers hold the very same frames,
 * and only their progress tells them apart. Until some write is stuck that
 * long the total may overshoot by what arrives meanwhile; while over, it
 * looks again every 100 ms. Shedding waits for the end of the current task
 * (a broadcast loop), so no handler runs in the middle of another
 * connection's send, and looks through the server's connections only then:
 * nothing is kept per connection or per write.
 *
 * @module
 */
import type { Clock } from "../protocol/clock.ts";
import type { PreparedMessage } from "../protocol/frame_encoder.ts";

/**
 * How the budget sees a connection of type `C`, through functions rather
 * than methods so that the connection keeps them private.
 */
export interface QueuedView<C> {
  /** Clock ms when its oldest unwritten byte was queued; Infinity if none is. */
  oldestQueuedAt(connection: C): number;
  /** Bytes queued or in flight. */
  bufferedAmount(connection: C): number;
  /** Clock ms when its pending `write` started; Infinity if none is pending. */
  writePendingSince(connection: C): number;
  /** Drops it as a slow consumer (no close frame: it does not read). */
  shed(connection: C): void;
}

/** Shedding stops once the total is at most this fraction of the limit. */
const LOW_WATER = 0.75;
/** A write pending this long (ms) means a peer that is not reading. */
const STUCK = 1_000;
/** While over the limit with nobody (else) to shed, look again after this long (ms). */
const RETRY = 100;

/** The budget one server's connections share. */
export class OutboundBudget<C = unknown> {
  /** The limit in bytes. */
  readonly limit: number;
  /** Bytes held now: private bytes, plus each shared frame once. */
  used = 0;
  /** Connections dropped to get back under the limit. */
  shed = 0;
  /**
   * How many queued references a shared frame has, kept on the message
   * itself under this budget's own key: a hash lookup per delivery would cost
   * more than the rest of queuing it.
   */
  readonly #holders: symbol = Symbol("holders");
  /** The server's live connections: looked through only when shedding. */
  #connections: Iterable<C>;
  #view: QueuedView<C>;
  #shedding = false;
  #clock: Clock;
  /** The timer of the next look while over the limit, if one is set. */
  #retry: unknown = undefined;

  /**
   * A budget of `limit` bytes for `connections` (the server's live set, read
   * only when shedding), seen through `view`.
   */
  constructor(limit: number, clock: Clock, connections: Iterable<C>, view: QueuedView<C>) {
    this.limit = limit;
    this.#clock = clock;
    this.#connections = connections;
    this.#view = view;
  }

  /** Adds `bytes` (negative to subtract) of a connection's private bytes. */
  charge(bytes: number): void {
    this.used += bytes;
    if (bytes > 0) this.#over();
  }

  /** A connection queued a reference to `message`'s frame. */
  hold(message: PreparedMessage): void {
    const counted = message as Counted;
    const holders = counted[this.#holders] ?? 0;
    counted[this.#holders] = holders + 1;
    if (holders === 0) {
      this.used += message.frame.length;
      this.#over();
    }
  }

  /** A reference to `message`'s frame was written (or dropped). */
  release(message: PreparedMessage): void {
    const counted = message as Counted;
    const holders = counted[this.#holders] ?? 0;
    if (holders === 0) return;
    counted[this.#holders] = holders - 1;
    if (holders === 1) this.used -= message.frame.length;
  }

  #over(): void {
    if (this.used <= this.limit || this.#shedding || this.#retry !== undefined) return;
    this.#shedding = true;
    queueMicrotask(() => this.#shed());
  }

  #shed(): void {
    this.#shedding = false;
    if (this.used <= this.limit) return;
    const view = this.#view;
    const stuckSince = this.#clock.now() - STUCK;
    const candidates: C[] = [];
    for (const c of this.#connections) {
      if (view.writePendingSince(c) <= stuckSince) candidates.push(c);
    }
    candidates.sort((a, b) =>
      view.oldestQueuedAt(a) - view.oldestQueuedAt(b) ||
      view.bufferedAmount(b) - view.bufferedAmount(a)
    );
    const lowWater = this.limit * LOW_WATER;
    for (const connection of candidates) {
      if (this.used <= lowWater) break;
      this.shed++;
      view.shed(connection);
    }
    // Still over, until more writes get stuck or drain: look again soon,
    // whether or not anything more is sent meanwhile.
    if (this.used > this.limit) {
      this.#retry = this.#clock.setTimeout(() => {
        this.#retry = undefined;
        this.#shed();
      }, RETRY);
    }
  }
}

/** A prepared message with the holder counts of the budgets that queued it. */
type Counted = PreparedMessage & Record<symbol, number | undefined>;
