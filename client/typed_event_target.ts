/**
 * An `EventTarget` whose listeners know their event types, as the DOM's
 * `WebSocket` listeners do: `M` maps each event name to its event class.
 *
 * @module
 */

/**
 * An `EventTarget` with typed `addEventListener`/`removeEventListener` for the
 * events in `M` (any other name still works, untyped). The client's
 * {@linkcode ReconnectingSocket} and {@linkcode PresenceView} extend it.
 *
 * @example
 * ```ts
 * import { TypedEventTarget } from "@heartwire/heartwire/client";
 * class Counter extends TypedEventTarget<{ tick: CustomEvent<number> }> {
 *   tick(n: number) {
 *     this.dispatchEvent(new CustomEvent("tick", { detail: n }));
 *   }
 * }
 * const counter = new Counter();
 * counter.addEventListener("tick", (event) => console.log(event.detail + 1));
 * counter.tick(41); // logs 42
 * ```
 */
export class TypedEventTarget<M extends { [K in keyof M]: Event }> extends EventTarget {
  /** Adds a listener; `type` names one of `M`'s events. */
  override addEventListener<K extends keyof M & string>(
    type: K,
    listener: (this: TypedEventTarget<M>, event: M[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** Adds a listener for any event type. */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: unknown,
    options?: boolean | AddEventListenerOptions,
  ): void {
    super.addEventListener(type, listener as EventListenerOrEventListenerObject | null, options);
  }

  /** Removes a listener added with {@linkcode TypedEventTarget.addEventListener}. */
  override removeEventListener<K extends keyof M & string>(
    type: K,
    listener: (this: TypedEventTarget<M>, event: M[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  /** Removes a listener for any event type. */
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    listener: unknown,
    options?: boolean | EventListenerOptions,
  ): void {
    super.removeEventListener(type, listener as EventListenerOrEventListenerObject | null, options);
  }
}
