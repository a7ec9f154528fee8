/**
 * The demo page at `/`: the bundled browser client on `/ws`, showing the
 * connection state, heartbeat RTT and reconnects live, with a chat box and
 * who is online in the chat's topic (with last seen), when the server has presence.
 *
 * The page loads `/heartwire-client.js`, the IIFE bundle from `dist/`. The
 * server does not build it: `deno task start` must keep working where npm is
 * out of reach, and a build step on every start would slow it down. Run
 * `deno task bundle` once; until then the script route answers 503 saying so.
 *
 * Internal to the program: serve() mounts nothing by default.
 *
 * @module
 */

/**
 * Options for {@linkcode demoRoutes}.
 */
export interface DemoOptions {
  /** Directory holding `heartwire-client.iife.js` (ending in `/`). Default: the repository's `dist/`. */
  dist?: URL;
  /** The WebSocket path the page connects to. Default "/ws". */
  wsPath?: string;
}

/** A route of the demo: answers a request on its path. */
export type DemoRoute = (request: Request) => Response | Promise<Response>;

const BUNDLE = "heartwire-client.iife.js";

/**
 * The demo's HTTP routes: `/` (the page), `/heartwire-client.js` (the
 * bundle) and its source map. The program (server/main.ts) serves them from
 * its `fetch` handler.
 */
export function demoRoutes(options: DemoOptions = {}): Record<string, DemoRoute> {
  const dist = options.dist ?? new URL("../dist/", import.meta.url);
  const page = demoPage(options.wsPath ?? "/ws");
  const file = (name: string, contentType: string): DemoRoute => async () => {
    try {
      // Read per request: a fresh `deno task bundle` shows without a restart.
      const body = await Deno.readTextFile(new URL(name, dist));
      return new Response(body, {
        headers: { "Content-Type": contentType, "Cache-Control": "no-cache" },
      });
    } catch {
      return new Response(`${name} is not built: run \`deno task bundle\`, then reload\n`, {
        status: 503,
      });
    }
  };
  return {
    "/": () => new Response(page, { headers: { "Content-Type": "text/html; charset=utf-8" } }),
    "/heartwire-client.js": file(BUNDLE, "text/javascript; charset=utf-8"),
    // The bundle's sourceMappingURL names the file esbuild wrote.
    [`/${BUNDLE}.map`]: file(`${BUNDLE}.map`, "application/json"),
  };
}

/**
 * The demo page's HTML. `window.heartwireDemo` exposes the socket and its
 * counters, for people poking at it in devtools and for the browser test.
 */
function demoPage(wsPath: string): string {
  return `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>heartwire demo</title>
<style>
  body { font: 15px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
  dt { color: #666; } dd { margin: 0; font-variant-numeric: tabular-nums; }
  #state[data-state=open] { color: #070; } #state[data-state=offline], #state[data-state=closed] { color: #b00; }
  form { display: flex; gap: .5rem; margin: 1rem 0; } input { flex: 1; font: inherit; padding: .3rem; }
  ol { list-style: none; padding: 0; } li { border-bottom: 1px solid #eee; padding: .2rem 0; }
  .meta { color: #888; font-size: 85%; }
  #who { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .3rem 1.2rem; }
  #who li { border: 0; } #who li::before { content: "●"; margin-right: .3rem; }
  #who .online::before { color: #0a0; } #who .away::before { color: #d90; } #who .offline { color: #888; }
</style>
<h1>heartwire</h1>
<p>A reconnecting WebSocket with an app-level heartbeat: kill the server, pull the network,
put the laptop to sleep — it comes back and loses nothing.</p>
<dl>
  <dt>state</dt><dd id="state" data-state="connecting">connecting</dd>
  <dt>network</dt><dd id="net"></dd>
  <dt>heartbeat RTT</dt><dd id="rtt">–</dd>
  <dt>heartbeats</dt><dd id="beats">0</dd>
  <dt>reconnects</dt><dd id="reconnects">0</dd>
  <dt>session</dt><dd id="session">–</dd>
</dl>
<h2>Who is online in lobby</h2>
<ul id="who"><li class="meta">waiting for presence…</li></ul>
<form id="form"><input id="text" autocomplete="off" placeholder="say something" maxlength="4096">
<button>Send</button><button type="button" id="toggle">Disconnect</button></form>
<ol id="log"></ol>
<script src="/heartwire-client.js"></script>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const demo = window.heartwireDemo = {
  socket: null, state: "connecting", rtt: null, heartbeats: 0, opens: 0, reconnects: 0, retries: 0,
  chats: [], people: {}, presence: [],
};
// Everyone seen in the lobby: online and away members, and who left (kept, with last seen).
const people = new Map();
function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? s + " s ago" : s < 3600 ? Math.round(s / 60) + " min ago" : new Date(ms).toLocaleString();
}
function showWho() {
  const list = [...people.values()].sort((a, b) =>
    (a.status === "offline") - (b.status === "offline") || a.id.localeCompare(b.id));
  demo.people = Object.fromEntries(list.map((m) => [m.id, m.status]));
  if (!list.length) return;
  $("who").replaceChildren(...list.map((m) => {
    const li = document.createElement("li");
    li.className = m.status;
    li.dataset.id = m.id;
    const seen = m.status === "online" ? "" : m.status + (m.last_seen ? ", seen " + ago(m.last_seen) : "");
    li.append(m.id + (m.id === demo.socket?.id ? " (you)" : "") + " ");
    if (seen) li.append(Object.assign(document.createElement("span"), { className: "meta", textContent: seen }));
    return li;
  }));
}
setInterval(showWho, 1000);
function setState(state, text = state) {
  demo.state = state;
  $("state").dataset.state = state;
  $("state").textContent = text;
}
function showNet() { $("net").textContent = navigator.onLine ? "online" : "offline"; }
function log(text, meta = "") {
  const li = document.createElement("li");
  const small = document.createElement("span");
  small.className = "meta";
  small.textContent = meta;
  li.append(text + " ", small);
  $("log").prepend(li);
  while ($("log").children.length > 100) $("log").lastChild.remove();
}
function seconds(ms) { return (ms / 1000).toFixed(1) + " s"; }
// A close code and reason in words (RFC 6455 §7.4; the reasons are the client's and the server's).
function closeText(code, reason) {
  if (reason === "heartbeat timeout") return "no answer to heartbeats: connection presumed dead";
  if (reason === "connect timeout") return "server did not answer the handshake in time";
  if (reason === "session taken over") return "this session was taken over by another tab";
  const said = reason ? " (" + code + " " + reason + ")" : " (" + code + ")";
  switch (code) {
    case 1000: return "connection closed" + said;
    case 1001: return "server shutting down" + said;
    case 1006: return "connection lost without a close frame" + said;
    case 1009: return "message too big for the server" + said;
    case 1011: return "server error" + said;
    case 1012: return "server restarting" + said;
    case 1013: return "server busy" + said;
    default: return "connection closed" + said;
  }
}
function connect() {
  const url = new URL(${JSON.stringify(wsPath)}, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const id = new URLSearchParams(location.search).get("id") ?? undefined;
  // persist: a reload keeps the session, the topic positions and unsent messages.
  const socket = demo.socket = new Heartwire.ReconnectingSocket(url, { id, persist: true });
  setState("connecting");
  socket.addEventListener("open", (e) => {
    if (demo.opens++ > 0) {
      $("reconnects").textContent = ++demo.reconnects;
      log(e.detail.resumed ? "reconnected, session resumed" : "reconnected with a new session");
    }
    setState("open", e.detail.resumed ? "open (session resumed)" : "open");
    $("session").textContent = e.detail.session + " as " + e.detail.id;
  });
  socket.on("chat", (m) => {
    demo.chats.push(m);
    log(m.from + ": " + m.text, "#" + m.offset + " in " + m.topic);
  });
  socket.addEventListener("message", (e) => {
    if (e.data.type !== "chat") log(e.data.type + " " + JSON.stringify(e.data));
  });
  socket.addEventListener("subscribed", (e) => {
    if (e.detail.recovered === false) log("missed messages in " + e.detail.topic, "history was gone");
  });
  socket.addEventListener("heartbeat", (e) => {
    demo.rtt = e.detail.rtt;
    $("rtt").textContent = e.detail.rtt + " ms";
    $("beats").textContent = ++demo.heartbeats;
  });
  // What went wrong since the last open, said in the next "retrying" line. A failed attempt
  // has no close event, only the browser's bare error event: the server was not reachable.
  let trouble = "";
  socket.addEventListener("close", (e) => {
    const { code, reason, willReconnect } = e.detail;
    trouble = closeText(code, reason);
    if (!willReconnect) {
      setState("closed");
      log(trouble);
    }
  });
  socket.addEventListener("reconnecting", (e) => {
    demo.retries++;
    const wait = seconds(e.detail.delay);
    log((trouble || "server unreachable") + ", retrying in " + wait, "attempt " + e.detail.attempt);
    trouble = "";
    setState("reconnecting", "reconnecting in " + wait + " (retry " + e.detail.attempt + ")");
  });
  socket.addEventListener("offline", () => {
    showNet();
    setState("offline", "offline: waiting for the network");
    log("network offline: no attempts until it is back");
  });
  socket.addEventListener("online", () => {
    showNet();
    setState(socket.readyState === 1 ? "open" : "connecting");
  });
  const lobby = socket.presence("lobby");
  const note = (type) => (e) => {
    const { member, reason } = e.detail;
    people.set(member.id, type === "leave" ? { ...member, status: "offline", last_seen: member.last_seen ?? Date.now() } : member);
    demo.presence.push({ type, id: member.id, reason, at: Date.now() });
  };
  for (const type of ["join", "leave", "update"]) lobby.addEventListener(type, note(type));
  lobby.addEventListener("change", showWho);
  socket.addEventListener("resume_failed", (e) => log("could not resume the session", e.detail.reason));
  socket.addEventListener("error", (e) => {
    // A server without presence says so once; that is no error worth logging.
    if (e.detail.reason.startsWith("presence ")) $("who").textContent = e.detail.reason;
    // The browser says nothing about a socket's error; the close or retry line says what it meant.
    else if (e.detail.reason !== "socket error") log("server refused: " + e.detail.reason);
  });
}
$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text || !demo.socket || demo.socket.readyState === 3) return;
  try {
    demo.socket.send("chat", { text });
    $("text").value = "";
  } catch (error) {
    log("not sent", error.message);
  }
});
$("toggle").addEventListener("click", () => {
  if (demo.socket && demo.socket.readyState !== 3) {
    demo.socket.close();
    $("toggle").textContent = "Connect";
  } else {
    connect();
    $("toggle").textContent = "Disconnect";
  }
});
showNet();
if (window.Heartwire) connect();
else setState("closed", "client bundle missing: run 'deno task bundle' and reload");
</script>
</html>
`;
}
