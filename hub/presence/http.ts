/**
 * Presence over plain HTTP, as a standard `(Request) => Response` handler:
 *
 * | request | answer |
 * |---|---|
 * | `GET /presence?topic=lobby` | 200 `{topic, epoch, offset, members: [PresenceMember…]}` |
 * | `GET /presence/<id>` | 200 `{…PresenceMember, topics}`; online, away, or offline with `last_seen` |
 * | an id never seen | 404 `{"error": …}` |
 * | no or bad `topic`, a bad id | 400 `{"error": …}` |
 * | another method than GET or HEAD | 405 `{"error": …}` |
 * | the store failing | 503 `{"error": …}` |
 *
 * @module
 */
import type { PresenceMember } from "../../protocol/messages.ts";
import type { Presence, PresenceEntry } from "./presence.ts";

/**
 * Options for {@linkcode presenceFetch}. Every field has a default.
 */
export interface PresenceFetchOptions {
  /** The path served (and, with `/<id>` after it, one user). Default "/presence". */
  prefix?: string;
  /** Answers every other path. Default 404 with a JSON error. */
  fallback?: (request: Request) => Response | Promise<Response>;
  /** Longest topic name or user id accepted, in UTF-16 code units. Default 64 (the hub's). */
  maxLength?: number;
  /** Told when the store fails (the client gets 503). Default `console.error`. */
  onError?: (error: unknown) => void;
}

/**
 * What presence says about one user, as sent on `/ws` and over HTTP:
 * snake_case like the rest of the wire, without the node ids.
 *
 * @example
 * ```ts
 * import { presenceMember } from "@heartwire/heartwire/hub/presence";
 * presenceMember({ userId: "ann", status: "online", lastSeen: 5, nodes: ["n1"], meta: {} });
 * // { id: "ann", status: "online", last_seen: 5 }
 * ```
 */
export function presenceMember(entry: PresenceEntry): PresenceMember {
  const member: PresenceMember = { id: entry.userId, status: entry.status };
  if (entry.connectedAt !== undefined) member.connected_at = entry.connectedAt;
  if (entry.lastSeen !== undefined) member.last_seen = entry.lastSeen;
  if (entry.meta.name !== undefined || entry.meta.status !== undefined) {
    member.meta = { ...entry.meta };
  }
  return member;
}

// deno-lint-ignore no-control-regex -- matching control characters is the point
const CONTROL = /[\x00-\x1f\x7f]/;

function json(status: number, body: unknown, head: boolean): Response {
  return new Response(head ? null : JSON.stringify(body), {
    status,
    headers: {
      "Content-Type": "application/json; charset=utf-8",
      // Presence is live: a cached answer would show ghosts.
      "Cache-Control": "no-store",
      ...(status === 405 ? { Allow: "GET, HEAD" } : {}),
    },
  });
}

/**
 * Serves `GET /presence?topic=…` (a topic's members) and `GET
 * /presence/<id>` (one user) from a {@linkcode Presence} tracker. A client
 * connected to the hub with `?id=` is online there at once. Other paths go to
 * `fallback`, so the handler composes with any `(Request) => Response` app.
 *
 * @example
 * ```ts
 * import { Presence, presenceFetch } from "@heartwire/heartwire/hub/presence";
 * const presence = new Presence();
 * await presence.start();
 * presence.connect("ann", "conn-1");
 * const fetch = presenceFetch(presence);
 * const response = await fetch(new Request("http://localhost/presence/ann"));
 * console.log(response.status, await response.json()); // 200 { id: "ann", status: "online", … }
 * await presence.close();
 * ```
 */
export function presenceFetch(
  presence: Presence,
  options: PresenceFetchOptions = {},
): (request: Request) => Promise<Response> {
  const prefix = (options.prefix ?? "/presence").replace(/\/+$/, "");
  const maxLength = options.maxLength ?? 64;
  const onError = options.onError ?? ((error) => console.error("heartwire presence:", error));
  const fallback = options.fallback ??
    ((request: Request) => json(404, { error: "not found" }, request.method === "HEAD"));
  /** Why `name` is not a valid topic or id, or undefined. */
  const bad = (what: string, name: string | null): string | undefined =>
    !name || name.length > maxLength || CONTROL.test(name)
      ? `${what} must have 1 to ${maxLength} printable characters`
      : undefined;

  return async (request) => {
    const url = new URL(request.url);
    const path = url.pathname;
    if (path !== prefix && !path.startsWith(prefix + "/")) return await fallback(request);
    const head = request.method === "HEAD";
    if (request.method !== "GET" && !head) {
      return json(405, { error: `${request.method.slice(0, 16)} is not allowed` }, head);
    }
    try {
      if (path === prefix) {
        const topic = url.searchParams.get("topic");
        const why = bad("topic", topic);
        if (why) return json(400, { error: why }, head);
        const { epoch, offset, entries } = await presence.snapshot(topic!);
        return json(200, { topic, epoch, offset, members: entries.map(presenceMember) }, head);
      }
      let id: string;
      try {
        id = decodeURIComponent(path.slice(prefix.length + 1));
      } catch {
        return json(400, { error: "id is not valid percent-encoding" }, head);
      }
      const why = bad("id", id);
      if (why) return json(400, { error: why }, head);
      const user = await presence.get(id);
      if (!user) return json(404, { error: "unknown user", id }, head);
      return json(200, { ...presenceMember(user), topics: user.topics }, head);
    } catch (error) {
      onError(error);
      return json(503, { error: "presence store unavailable" }, head);
    }
  };
}
