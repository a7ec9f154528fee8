/**
 * `PresenceView`: the live member list of one topic, kept by a
 * {@linkcode ReconnectingSocket} from the server's presence state and diffs.
 *
 * @module
 */
import type {
  PresenceDiffMessage,
  PresenceMember,
  PresenceStateMessage,
} from "../protocol/messages.ts";
import { TypedEventTarget } from "./typed_event_target.ts";

/**
 * `detail` of a {@linkcode PresenceView}'s `join`, `leave` and `update` events.
 */
export interface PresenceChange {
  /** The member after the change (`offline` after a leave). */
  member: PresenceMember;
  /** Why they left: closed, timeout, node-lost; absent when a resync found them gone. */
  reason?: string;
}

/**
 * The events of a {@linkcode PresenceView}, for typed listeners.
 */
export interface PresenceViewEventMap {
  /** A member came online (or a resync found one the view did not have). */
  join: CustomEvent<PresenceChange>;
  /** A member left, with `detail.reason` (`timeout`, `closed`, `node-lost`); none after a resync. */
  leave: CustomEvent<PresenceChange>;
  /** A member's status or metadata changed (`online` ↔ `away`, `meta`). */
  update: CustomEvent<PresenceChange>;
  /** `members` changed, for whatever reason. */
  change: Event;
  /** A full state arrived: `members` is now the server's. */
  sync: Event;
}

/**
 * The live members of one topic (`socket.presence(topic)`): an EventTarget
 * with `members` and the events `join`, `leave`, `update` (a
 * `CustomEvent<PresenceChange>`), `change` (after any of them or a resync)
 * and `sync` (a fresh state arrived).
 *
 * Diffs apply only in order: a gap in their offsets, or a new epoch, makes
 * the view ask the server for the state again, and so does every
 * reconnect; the members that state adds or drops are reported as `join`
 * and `leave` (without a reason), so listeners see every change once.
 *
 * @example
 * ```ts ignore
 * import { ReconnectingSocket } from "@heartwire/heartwire/client";
 * const socket = new ReconnectingSocket("ws://localhost:8080/ws", { id: "ann" });
 * const lobby = socket.presence("lobby");
 * lobby.addEventListener("change", () => console.log([...lobby.members.keys()]));
 * lobby.addEventListener("leave", (e) => console.log(e.detail.member.id, "left:", e.detail.reason));
 * ```
 */
export class PresenceView extends TypedEventTarget<PresenceViewEventMap> {
  /** The topic. */
  readonly topic: string;
  #members = new Map<string, PresenceMember>();
  #epoch = "";
  #offset = 0;
  #synced = false;
  #ask: () => void;
  #release: () => void;

  /**
   * Made by {@linkcode ReconnectingSocket.presence}: `ask` requests the
   * state (when connected), `release` stops following.
   */
  constructor(topic: string, ask: () => void, release: () => void) {
    super();
    this.topic = topic;
    this.#ask = ask;
    this.#release = release;
  }

  /** Online and away members by id. */
  get members(): ReadonlyMap<string, PresenceMember> {
    return this.#members;
  }

  /** True once a state arrived and every diff since was applied in order. */
  get synced(): boolean {
    return this.#synced;
  }

  /** Asks for the state again (the socket does on every welcome). */
  resync(): void {
    this.#synced = false;
    this.#ask();
  }

  /** Stops following the topic's presence. */
  close(): void {
    this.#synced = false;
    this.#release();
  }

  /** Applies a `presence_state` or a diff the socket received for this topic. */
  apply(message: PresenceStateMessage | PresenceDiffMessage): void {
    if (message.type === "presence_state") {
      const before = this.#members;
      this.#members = new Map(message.members.map((member) => [member.id, member]));
      this.#epoch = message.epoch;
      this.#offset = message.offset;
      this.#synced = true;
      for (const [id, member] of this.#members) if (!before.has(id)) this.#tell("join", member);
      for (const [id, member] of before) {
        if (!this.#members.has(id)) this.#tell("leave", { ...member, status: "offline" });
      }
      this.dispatchEvent(new Event("sync"));
      this.dispatchEvent(new Event("change"));
      return;
    }
    if (!this.#synced || message.offset <= this.#offset && message.epoch === this.#epoch) return;
    if (message.epoch !== this.#epoch || message.offset !== this.#offset + 1) return this.resync();
    this.#offset = message.offset;
    const { member, reason } = message;
    if (message.type === "presence_leave") this.#members.delete(member.id);
    else this.#members.set(member.id, member);
    this.#tell(message.type.slice(9), member, reason);
    this.dispatchEvent(new Event("change"));
  }

  #tell(type: string, member: PresenceMember, reason?: string): void {
    const detail: PresenceChange = { member };
    if (reason) detail.reason = reason;
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
