/**
 * What ties a {@linkcode Hub}'s connections to a presence tracker: each
 * `/ws` connection is one presence connection of its client id, in the
 * topics its session is in; and each connection may follow the presence of
 * topics (`presence_subscribe`): a `presence_state`, then the diffs.
 *
 * @module
 */
import { CloseCode } from "../protocol/close.ts";
import type { PresenceDiffMessage, PresenceStateMessage } from "../protocol/messages.ts";
import type { WebSocketConnection } from "../server/mod.ts";
import { utf8Length } from "../protocol/utf8.ts";
import { presenceMember } from "./presence/http.ts";
import type { LeaveReason, Presence, PresenceEvent } from "./presence/mod.ts";

/** One `/ws` connection as presence knows it. */
export interface PresenceConn {
  readonly ws: WebSocketConnection;
  readonly userId: string;
  readonly connId: string;
  /** Topics this connection is a member of. */
  readonly topics: Set<string>;
  /** Topics whose presence it follows; an array holds diffs while the state is read. */
  readonly follows: Map<string, { epoch: string; offset: number; text: string }[] | undefined>;
  /** Closed: no more joins or touches. */
  gone: boolean;
}

/** Bounds of a {@linkcode PresenceLink}. */
export interface PresenceLinkOptions {
  /** Topics whose presence one connection may follow. */
  maxFollows: number;
  /** Diffs held for one connection while its state is read, before it is told to come back. */
  maxHeld: number;
  /** Told about a failing store read (the connection gets an `error`). */
  onError: (error: unknown) => void;
  /** Closes a connection that fell too far behind (1013 with a retry hint). */
  shed: (ws: WebSocketConnection) => void;
}

/** Routes presence events to the connections that follow their topic. */
export class PresenceLink {
  readonly presence: Presence;
  readonly #options: PresenceLinkOptions;
  readonly #followers = new Map<string, Set<PresenceConn>>();
  readonly #unsubscribe: () => void;
  #nextConn = 0;

  constructor(presence: Presence, options: PresenceLinkOptions) {
    this.presence = presence;
    this.#options = options;
    this.#unsubscribe = presence.subscribe((event) => this.#onEvent(event));
  }

  /** A connection was welcomed: its user is online, a member of `topics`. */
  attach(ws: WebSocketConnection, userId: string, topics: Iterable<string>): PresenceConn {
    const conn: PresenceConn = {
      ws,
      userId,
      connId: `ws-${++this.#nextConn}`,
      topics: new Set(topics),
      follows: new Map(),
      gone: false,
    };
    this.presence.connect(userId, conn.connId);
    for (const topic of conn.topics) this.presence.join(topic, userId, conn.connId);
    return conn;
  }

  /**
   * A heartbeat (`activity` false) or another message arrived. If presence
   * timed the connection out meanwhile (silent past the presence timeout),
   * everyone was told its user left: it is closed rather than brought back,
   * since what arrives now may be stale (sent before a network loss, with
   * the client long gone to a new connection). A live client reconnects.
   */
  touch(conn: PresenceConn, activity: boolean): void {
    if (conn.gone || this.presence.touch(conn.userId, conn.connId, { activity })) return;
    this.detach(conn, "timeout");
    conn.ws.close(CloseCode.Normal, "presence timeout");
  }

  join(conn: PresenceConn, topic: string): void {
    if (conn.gone) return;
    conn.topics.add(topic);
    this.presence.join(topic, conn.userId, conn.connId);
  }

  leave(conn: PresenceConn, topic: string): void {
    conn.topics.delete(topic);
    this.presence.leave(topic, conn.userId, conn.connId, "closed");
  }

  /** The connection ended: its user leaves with `reason` if it was their last one. */
  detach(conn: PresenceConn, reason: LeaveReason): void {
    if (conn.gone) return;
    conn.gone = true;
    for (const topic of conn.follows.keys()) this.#unfollow(conn, topic);
    this.presence.disconnect(conn.userId, conn.connId, reason);
  }

  /** Why the connection may not follow one more topic, or undefined. */
  refuse(conn: PresenceConn, topic: string): string | undefined {
    if (conn.follows.has(topic) || conn.follows.size < this.#options.maxFollows) return undefined;
    return `already following the presence of ${this.#options.maxFollows} topics`;
  }

  /**
   * Sends `presence_state` for `topic`, then its diffs as they come. Diffs
   * emitted while the state is read wait and follow it, minus those it
   * reflects. Asked again, it sends the state again (a client's resync).
   * Resolves to the UTF-8 bytes of the state sent (0 if none was): the
   * hub's replay budget pays for it.
   */
  async follow(conn: PresenceConn, topic: string): Promise<number> {
    if (conn.gone) return 0;
    const held: { epoch: string; offset: number; text: string }[] = [];
    conn.follows.set(topic, held);
    let followers = this.#followers.get(topic);
    if (!followers) this.#followers.set(topic, followers = new Set());
    followers.add(conn);
    let snapshot;
    try {
      snapshot = await this.presence.snapshot(topic);
    } catch (error) {
      if (conn.follows.get(topic) === held) this.#unfollow(conn, topic);
      this.#options.onError(error);
      throw new Error(`presence of "${topic}" is unavailable`);
    }
    // Unfollowed, closed or asked again meanwhile: the later answer is the one that counts.
    if (conn.gone || conn.follows.get(topic) !== held) return 0;
    const { epoch, offset } = snapshot;
    const state: PresenceStateMessage = {
      type: "presence_state",
      topic,
      epoch,
      offset,
      members: snapshot.entries.map(presenceMember),
    };
    const text = JSON.stringify(state);
    conn.ws.send(text);
    conn.follows.set(topic, undefined);
    for (const diff of held) {
      if (diff.epoch !== epoch || diff.offset > offset) conn.ws.send(diff.text);
    }
    return utf8Length(text);
  }

  /** Stops the diffs of `topic` to this connection. */
  unfollow(conn: PresenceConn, topic: string): void {
    this.#unfollow(conn, topic);
  }

  /** Stops listening to the tracker (the hub is disposed). */
  dispose(): void {
    this.#unsubscribe();
    this.#followers.clear();
  }

  #unfollow(conn: PresenceConn, topic: string): void {
    conn.follows.delete(topic);
    const followers = this.#followers.get(topic);
    followers?.delete(conn);
    if (followers?.size === 0) this.#followers.delete(topic);
  }

  /** One diff, encoded once for every follower of its topic. */
  #onEvent(event: PresenceEvent): void {
    const followers = this.#followers.get(event.topic);
    if (!followers) return;
    const diff: PresenceDiffMessage = {
      type: `presence_${event.type}`,
      topic: event.topic,
      epoch: event.epoch,
      offset: event.offset,
      member: presenceMember(event.presence),
    };
    if (event.reason) diff.reason = event.reason;
    const text = JSON.stringify(diff);
    for (const conn of followers) {
      const held = conn.follows.get(event.topic);
      if (!held) conn.ws.send(text);
      else if (held.length < this.#options.maxHeld) {
        held.push({ epoch: event.epoch, offset: event.offset, text });
      } else {
        // The store is far behind: start over rather than hold without bound.
        this.detach(conn, "closed");
        this.#options.shed(conn.ws);
      }
    }
  }
}
