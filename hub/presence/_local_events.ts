/**
 * Presence events for the trackers of this process only: what a store with
 * no broadcast of its own (in memory, Deno KV) offers for
 * `PresenceStore.publish` / `subscribe`. Each listener gets its own copy on a
 * later turn, as a network would deliver it, so a publisher never re-enters
 * itself and no listener sees another's changes.
 *
 * @module
 */
import type { RemotePresenceEvent } from "./types.ts";

/** The listeners of one store, and delivery to them. */
export class LocalEvents {
  readonly #listeners = new Set<(event: RemotePresenceEvent) => void>();

  /** Delivers `event` to every listener, each a copy, on a later turn. */
  publish(event: RemotePresenceEvent): Promise<void> {
    for (const listener of this.#listeners) queueMicrotask(() => listener(structuredClone(event)));
    return Promise.resolve();
  }

  /** Adds `listener`; returns its removal. */
  subscribe(listener: (event: RemotePresenceEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Drops every listener (the store closed). */
  clear(): void {
    this.#listeners.clear();
  }
}
