/**
 * The live monitoring page, `GET /dashboard`, and its feed: a WebSocket
 * route (`/dashboard/ws` by default) that pushes a {@linkcode MetricsSnapshot}
 * every second, after the last two minutes of them on connect so charts are
 * full at once.
 *
 * The page is one self-contained HTML string: inline CSS and JS, charts drawn
 * by hand on canvas, nothing loaded from elsewhere (its Content-Security-Policy
 * forbids it). It computes rates and windowed RTT percentiles from successive
 * snapshots itself, so the server sends only what `/stats` sends.
 *
 * @module
 */
import type { WebSocketConnection, WebSocketHandler } from "./connection.ts";
import { backgroundClock } from "./_background_clock.ts";
import type { Clock } from "../protocol/clock.ts";
import type { MetricsSnapshot } from "./metrics.ts";

/** A monitoring route's answer; {@linkcode toResponse} makes a `Response` of it for `fetch`. */
export interface MonitoringResponse {
  /** The status code. */
  status: number;
  /** The body. */
  body: string;
  /** The MIME type. */
  contentType: string;
  /** Extra headers. */
  headers?: Record<string, string>;
}

/** Options for {@linkcode DashboardFeed}. */
export interface DashboardFeedOptions {
  /** Time between pushes (ms). Default 1 000. */
  interval?: number;
  /** Snapshots replayed to a viewer on connect. Default 120. */
  history?: number;
  /** A viewer with more than this many bytes unsent misses pushes until it catches up. Default 1 MiB. */
  maxBufferedBytes?: number;
  /** Source of the one timer. Default the global timers (unref'd). */
  clock?: Clock;
}

/**
 * The dashboard's WebSocket route. One timer takes a snapshot every
 * `interval` ms, encodes it once and sends that string to every viewer; the
 * last `history` encoded snapshots are kept and sent to a new viewer as one
 * `{"type":"history","snapshots":[…]}` message. The timer runs from the
 * first viewer (or {@linkcode DashboardFeed.start}) until
 * {@linkcode DashboardFeed.stop}. Messages from viewers are ignored.
 *
 * @example
 * ```ts ignore
 * const feed = new DashboardFeed(() => metrics.snapshot());
 * const pages = monitoringRoutes(metrics);
 * serve({
 *   routes: { "/dashboard/ws": feed },
 *   fetch: (request) => toResponse(pages[new URL(request.url).pathname]?.()),
 * });
 * // at shutdown:
 * feed.stop();
 * ```
 */
export class DashboardFeed implements WebSocketHandler {
  /** Connected viewers. */
  readonly viewers: Set<WebSocketConnection> = new Set();
  readonly #snapshot: () => MetricsSnapshot;
  readonly #interval: number;
  readonly #historySize: number;
  readonly #maxBuffered: number;
  readonly #clock: Clock;
  /** Encoded snapshots, oldest first. */
  readonly #history: string[] = [];
  #handle: unknown = undefined;

  /** @throws {RangeError} if `interval` is not a positive number or `history` is negative. */
  constructor(snapshot: () => MetricsSnapshot, options: DashboardFeedOptions = {}) {
    this.#snapshot = snapshot;
    this.#interval = options.interval ?? 1_000;
    this.#historySize = options.history ?? 120;
    this.#maxBuffered = options.maxBufferedBytes ?? 1024 * 1024;
    this.#clock = options.clock ?? backgroundClock;
    if (!(Number.isFinite(this.#interval) && this.#interval > 0)) {
      throw new RangeError(`interval must be a positive number of ms; got ${options.interval}`);
    }
    if (!(Number.isInteger(this.#historySize) && this.#historySize >= 0)) {
      throw new RangeError(`history must be a whole number ≥ 0; got ${options.history}`);
    }
  }

  /** Starts taking snapshots (also done by the first viewer). */
  start(): void {
    if (this.#handle !== undefined) return;
    this.#tick();
  }

  /** Stops taking snapshots; viewers stay connected but get nothing more. */
  stop(): void {
    if (this.#handle === undefined) return;
    this.#clock.clearTimeout(this.#handle);
    this.#handle = undefined;
  }

  /** Handler callback: replays the history, then the viewer gets every push. */
  open(ws: WebSocketConnection): void {
    this.start(); // the first viewer's history holds the snapshot taken now
    ws.send(`{"type":"history","snapshots":[${this.#history.join(",")}]}`);
    this.viewers.add(ws);
  }

  /** Handler callback. */
  close(ws: WebSocketConnection): void {
    this.viewers.delete(ws);
  }

  #tick(): void {
    const encoded = JSON.stringify(this.#snapshot());
    const message = `{"type":"snapshot","snapshot":${encoded}}`;
    this.#history.push(encoded);
    if (this.#history.length > this.#historySize) this.#history.shift();
    for (const ws of this.viewers) {
      if (ws.bufferedAmount <= this.#maxBuffered) ws.send(message);
    }
    this.#handle = this.#clock.setTimeout(() => this.#tick(), this.#interval);
  }
}

/** A monitoring route's answer as a `Response`; none (an unknown path) is 404. */
export function toResponse(answer: MonitoringResponse | undefined): Response {
  if (!answer) return new Response("not found\n", { status: 404 });
  return new Response(answer.body, {
    status: answer.status,
    headers: { "Content-Type": answer.contentType, ...answer.headers },
  });
}

/** Options for {@linkcode monitoringRoutes} and {@linkcode dashboardPage}. */
export interface MonitoringRoutesOptions {
  /** Path of the {@linkcode DashboardFeed} route the page connects to. Default "/dashboard/ws". */
  feedPath?: string;
}

/**
 * `/metrics` (Prometheus text), `/stats` (JSON) and `/dashboard` (the page),
 * each a function of no arguments; see {@linkcode toResponse} to serve them.
 *
 * @example
 * ```ts ignore
 * const pages = monitoringRoutes(metrics);
 * serve({ fetch: (request) => toResponse(pages[new URL(request.url).pathname]?.()) });
 * ```
 */
export function monitoringRoutes(
  metrics: { snapshot(): MetricsSnapshot; registry: { expose(): string } },
  options: MonitoringRoutesOptions = {},
): Record<string, () => MonitoringResponse> {
  const page = dashboardPage(options);
  const noCache = { "Cache-Control": "no-cache" };
  return {
    "/metrics": () => ({
      status: 200,
      body: metrics.registry.expose(),
      contentType: "text/plain; version=0.0.4; charset=utf-8",
      headers: noCache,
    }),
    "/stats": () => ({
      status: 200,
      body: JSON.stringify(metrics.snapshot()) + "\n",
      contentType: "application/json",
      headers: noCache,
    }),
    "/dashboard": () => ({
      status: 200,
      body: page,
      contentType: "text/html; charset=utf-8",
      headers: { ...noCache, "Content-Security-Policy": DASHBOARD_CSP },
    }),
  };
}

/**
 * Nothing but the page itself: inline script and style, WebSocket back to
 * the same origin, images only as data URLs.
 */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
  "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'";

/** The dashboard's HTML, connecting its feed at `options.feedPath`. */
export function dashboardPage(options: MonitoringRoutesOptions = {}): string {
  const feedPath = options.feedPath ?? "/dashboard/ws";
  // JSON in a script: "<" is escaped so that no path can close the tag.
  return PAGE.replace("__FEED__", JSON.stringify(feedPath).replaceAll("<", "\\u003c"));
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="dark light">
<title>heartwire · dashboard</title>
<style>
:root {
  --bg: #0d1117; --card: #161b22; --line: #30363d; --text: #e6edf3; --muted: #8b949e;
  --blue: #58a6ff; --green: #3fb950; --orange: #d29922; --red: #f85149;
  --purple: #bc8cff; --cyan: #39c5cf; --grey: #8b949e; --pink: #ff7bb0;
}
@media (prefers-color-scheme: light) {
  :root {
    --bg: #f6f8fa; --card: #ffffff; --line: #d0d7de; --text: #1f2328; --muted: #656d76;
    --blue: #0969da; --green: #1a7f37; --orange: #9a6700; --red: #cf222e;
    --purple: #8250df; --cyan: #1b7c83; --grey: #6e7781; --pink: #bf3989;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
header {
  display: flex; flex-wrap: wrap; align-items: center; gap: 8px 16px;
  padding: 12px 16px; border-bottom: 1px solid var(--line);
}
h1 { font-size: 17px; margin: 0; font-weight: 600; letter-spacing: .2px; }
h1 span { color: var(--red); }
.status { display: flex; align-items: center; gap: 6px; color: var(--muted); font-size: 13px; }
.dot { width: 9px; height: 9px; border-radius: 50%; background: var(--grey); }
.dot.live { background: var(--green); box-shadow: 0 0 0 3px color-mix(in srgb, var(--green) 25%, transparent); }
.badge {
  margin-left: auto; padding: 3px 10px; border-radius: 999px; font-size: 12px; font-weight: 600;
  background: color-mix(in srgb, var(--green) 18%, transparent); color: var(--green);
}
.badge.alert { background: color-mix(in srgb, var(--red) 20%, transparent); color: var(--red); }
main { padding: 12px; max-width: 1400px; margin: 0 auto; }
.tiles {
  display: grid; gap: 10px; margin-bottom: 12px;
  grid-template-columns: repeat(auto-fit, minmax(130px, 1fr));
}
.tile { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 10px 12px; }
.tile .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .5px; }
.tile .value { font-size: 21px; font-weight: 600; font-variant-numeric: tabular-nums; white-space: nowrap; }
.tile .value small { font-size: 13px; color: var(--muted); font-weight: 400; }
.grid { display: grid; gap: 12px; grid-template-columns: repeat(auto-fit, minmax(min(100%, 440px), 1fr)); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px 12px 8px; min-width: 0; }
.card h2 { margin: 0 0 4px; font-size: 14px; font-weight: 600; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; color: var(--muted); min-height: 18px; }
.legend b { color: var(--text); font-weight: 600; font-variant-numeric: tabular-nums; }
.legend i { display: inline-block; width: 10px; height: 3px; border-radius: 2px; margin-right: 5px; vertical-align: middle; }
canvas { display: block; width: 100%; height: 190px; margin-top: 6px; }
.reasons { display: grid; gap: 7px; margin-top: 8px; }
.reason { display: grid; grid-template-columns: 110px 1fr 64px; align-items: center; gap: 8px; font-size: 13px; }
.reason .bar { height: 12px; border-radius: 3px; background: var(--line); overflow: hidden; }
.reason .bar div { height: 100%; border-radius: 3px; }
.reason .n { text-align: right; font-variant-numeric: tabular-nums; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 16px; }
@media (max-width: 520px) {
  header { padding: 10px 12px; }
  main { padding: 8px; }
  .tile .value { font-size: 19px; }
  canvas { height: 160px; }
}
</style>
</head>
<body>
<header>
  <h1><span>&#9829;</span> heartwire</h1>
  <div class="status"><div class="dot" id="dot"></div><span id="feed">connecting…</span></div>
  <div class="badge" id="load">load ok</div>
</header>
<main>
  <section class="tiles">
    <div class="tile"><div class="label">Active</div><div class="value" id="t-active">–</div></div>
    <div class="tile"><div class="label">Total</div><div class="value" id="t-total">–</div></div>
    <div class="tile"><div class="label">Msg/s in · out</div><div class="value" id="t-rate">–</div></div>
    <div class="tile"><div class="label">RTT p50 · p99</div><div class="value" id="t-rtt">–</div></div>
    <div class="tile"><div class="label">Timeouts</div><div class="value" id="t-timeouts">–</div></div>
    <div class="tile"><div class="label">Loop lag</div><div class="value" id="t-lag">–</div></div>
    <div class="tile"><div class="label">CPU</div><div class="value" id="t-cpu">–</div></div>
    <div class="tile"><div class="label">Memory</div><div class="value" id="t-rss">–</div></div>
  </section>
  <section class="grid">
    <div class="card"><h2>Connections</h2><div class="legend" id="l-connections"></div><canvas id="c-connections"></canvas></div>
    <div class="card"><h2>Messages per second</h2><div class="legend" id="l-messages"></div><canvas id="c-messages"></canvas></div>
    <div class="card"><h2>Ping round trip (last 30 s)</h2><div class="legend" id="l-rtt"></div><canvas id="c-rtt"></canvas></div>
    <div class="card"><h2>Closes per second, by reason</h2><div class="legend" id="l-closes"></div><canvas id="c-closes"></canvas></div>
    <div class="card"><h2>Close reasons since start</h2><div class="reasons" id="reasons"></div></div>
    <div class="card"><h2>Event loop and CPU</h2><div class="legend" id="l-process"></div><canvas id="c-process"></canvas></div>
  </section>
</main>
<footer id="footer">heartwire · /metrics · /stats</footer>
<script>
"use strict";
const FEED = __FEED__;
const KEEP = 300; // points shown (5 min at 1 s)
const RTT_WINDOW = 30; // snapshots the RTT percentiles cover
const REASONS = ["normal", "timeout", "protocol_error", "slow_consumer", "shutdown", "taken_over", "error"];
const REASON_COLOR = {
  normal: "--green", timeout: "--orange", protocol_error: "--red", slow_consumer: "--purple",
  shutdown: "--grey", taken_over: "--cyan", error: "--pink",
};
const state = { connected: false, snapshots: [], points: [], charts: {}, messages: 0, intervalMs: 1000 };
globalThis.heartwireDashboard = state;
const $ = (id) => document.getElementById(id);
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

function group(n) {
  return String(Math.round(n)).replace(/\\B(?=(\\d{3})+(?!\\d))/g, "\\u2009");
}
function short(n) {
  if (n == null || !isFinite(n)) return "–";
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (n / 1e3).toFixed(1) + "k";
  if (a >= 100 || Number.isInteger(n)) return String(Math.round(n));
  return n.toFixed(a >= 10 ? 1 : 2).replace(/\\.?0+$/, "");
}
function round(n) { return n < 10 ? n.toFixed(1) : group(n); }
function ms(n) { return n == null ? "–" : (n < 10 ? n.toFixed(1) : group(n)) + " ms"; }
function bytes(n) {
  if (n == null) return "–";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(i === 0 ? 0 : 1) + " " + units[i];
}
function quantile(bounds, counts, q) {
  let total = 0;
  for (const c of counts) total += c;
  if (total <= 0) return null;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] > 0 && below + counts[i] >= rank) {
      if (i >= bounds.length) return bounds[bounds.length - 1];
      const lower = i === 0 ? 0 : bounds[i - 1];
      return lower + (bounds[i] - lower) * ((rank - below) / counts[i]);
    }
    below += counts[i];
  }
  return bounds[bounds.length - 1];
}

/** One chart point from a snapshot and the ones before it. */
function point(s, prev, old) {
  const dt = prev ? Math.max(0.001, (s.time - prev.time) / 1000) : 1;
  const rate = (f) => prev ? Math.max(0, (f(s) - f(prev)) / dt) : 0;
  const p = {
    t: s.time,
    active: s.connections.active,
    opened: rate((x) => x.connections.opened),
    in: rate((x) => x.messages.in),
    out: rate((x) => x.messages.out),
    lag: s.eventLoopLagMs,
    cpu: prev && s.process.cpuSeconds != null && prev.process.cpuSeconds != null
      ? Math.max(0, (s.process.cpuSeconds - prev.process.cpuSeconds) / dt * 100) : null,
    closes: {},
    p50: null, p90: null, p99: null,
  };
  for (const r of REASONS) p.closes[r] = rate((x) => x.connections.closedByReason[r] || 0);
  const h = s.rtt.ping;
  if (old && old.rtt.ping.counts.length === h.counts.length) {
    const counts = h.counts.map((c, i) => c - old.rtt.ping.counts[i]);
    p.p50 = quantile(h.bounds, counts, 0.5);
    p.p90 = quantile(h.bounds, counts, 0.9);
    p.p99 = quantile(h.bounds, counts, 0.99);
  } else {
    p.p50 = h.p50; p.p90 = h.p90; p.p99 = h.p99;
  }
  return p;
}

function add(snapshot) {
  const list = state.snapshots;
  const prev = list[list.length - 1];
  if (prev && snapshot.time <= prev.time) { list.length = 0; state.points.length = 0; } // server restarted
  const old = list.length > 0 ? list[Math.max(0, list.length - RTT_WINDOW)] : undefined;
  if (prev && snapshot.time > prev.time) state.intervalMs = snapshot.time - prev.time;
  state.points.push(point(snapshot, list[list.length - 1], old));
  list.push(snapshot);
  if (list.length > KEEP) list.shift();
  if (state.points.length > KEEP) state.points.shift();
}

// ---- drawing ----------------------------------------------------------------

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function frame(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

/** Axes, grid and time labels; returns the plot area mapping. */
function axes(ctx, w, h, max, n) {
  ctx.font = "11px system-ui, sans-serif";
  let widest = 0;
  for (let i = 0; i <= 4; i++) widest = Math.max(widest, ctx.measureText(short((max * i) / 4)).width);
  const left = Math.ceil(widest) + 10, right = 8, top = 8, bottom = 20;
  const pw = w - left - right, ph = h - top - bottom;
  ctx.fillStyle = css("--muted");
  ctx.strokeStyle = css("--line");
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let i = 0; i <= 4; i++) {
    const y = Math.round(top + ph - (ph * i) / 4) + 0.5;
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + pw, y); ctx.stroke();
    ctx.fillText(short((max * i) / 4), left - 6, y);
  }
  ctx.textBaseline = "top";
  const span = Math.max(1, n - 1);
  // Points are one feed interval apart; label whole minutes back from now.
  const step = state.intervalMs > 0 ? 60000 / state.intervalMs : 60;
  for (let back = 0; back <= span; back += step) {
    const x = left + pw - (pw * back) / Math.max(span, 60);
    ctx.textAlign = back === 0 ? "right" : "center";
    ctx.fillText(back === 0 ? "now" : "\u2212" + back / step + " min", back === 0 ? left + pw : x, top + ph + 5);
  }
  const x = (i) => left + pw - (pw * (n - 1 - i)) / Math.max(span, 60);
  const y = (v) => top + ph - (ph * Math.min(v, max)) / max;
  return { x, y, left, top, pw, ph };
}

function lineChart(id, series, unit) {
  const canvas = $("c-" + id);
  const { ctx, w, h } = frame(canvas);
  const pts = state.points;
  let max = 0;
  for (const s of series) for (const p of pts) { const v = s.get(p); if (v != null && v > max) max = v; }
  const top = niceMax(max);
  const a = axes(ctx, w, h, top, pts.length);
  for (const s of series) {
    const color = css(s.color);
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    ctx.beginPath();
    let drawing = false, first = -1, last = -1;
    for (let i = 0; i < pts.length; i++) {
      const v = s.get(pts[i]);
      if (v == null) { drawing = false; continue; }
      if (first < 0) first = i;
      last = i;
      if (drawing) ctx.lineTo(a.x(i), a.y(v)); else ctx.moveTo(a.x(i), a.y(v));
      drawing = true;
    }
    ctx.stroke();
    if (s.fill && first >= 0) {
      ctx.lineTo(a.x(last), a.top + a.ph);
      ctx.lineTo(a.x(first), a.top + a.ph);
      ctx.closePath();
      ctx.globalAlpha = 0.15;
      ctx.fillStyle = color;
      ctx.fill();
      ctx.globalAlpha = 1;
    }
  }
  const latest = pts[pts.length - 1];
  $("l-" + id).innerHTML = series.map((s) => {
    const v = latest ? s.get(latest) : null;
    return '<span><i style="background:' + css(s.color) + '"></i>' + s.label + " <b>" +
      (v == null ? "–" : short(v) + unit) + "</b></span>";
  }).join("");
  state.charts[id] = { points: pts.length, max };
}

function barChart(id, keys, colorOf) {
  const canvas = $("c-" + id);
  const { ctx, w, h } = frame(canvas);
  const pts = state.points;
  let max = 0;
  for (const p of pts) { let sum = 0; for (const k of keys) sum += p.closes[k]; if (sum > max) max = sum; }
  const top = niceMax(max);
  const a = axes(ctx, w, h, top, pts.length);
  const bw = Math.max(1, a.pw / Math.max(pts.length, 60) - 1);
  for (let i = 0; i < pts.length; i++) {
    let y0 = a.top + a.ph;
    for (const k of keys) {
      const v = pts[i].closes[k];
      if (!(v > 0)) continue;
      const hgt = (a.ph * Math.min(v, top)) / top;
      ctx.fillStyle = css(colorOf[k]);
      ctx.fillRect(a.x(i) - bw / 2, y0 - hgt, bw, hgt);
      y0 -= hgt;
    }
  }
  // The legend counts the last minute, straight from the snapshots' totals.
  const snaps = state.snapshots;
  const last = snaps[snaps.length - 1];
  let from = snaps[0];
  for (const s of snaps) if (s.time >= last.time - 60000) { from = s; break; }
  const totals = {};
  for (const k of keys) {
    totals[k] = (last.connections.closedByReason[k] || 0) - (from.connections.closedByReason[k] || 0);
  }
  $("l-" + id).innerHTML = keys.map((k) =>
    '<span><i style="background:' + css(colorOf[k]) + '"></i>' + k.replace("_", " ") +
      " <b>" + short(totals[k]) + "</b></span>"
  ).join("") + '<span>(last minute)</span>';
  state.charts[id] = { points: pts.length, max };
}

function reasons(s) {
  const by = s.connections.closedByReason;
  let max = 0;
  for (const r of REASONS) max = Math.max(max, by[r] || 0);
  $("reasons").innerHTML = REASONS.map((r) => {
    const n = by[r] || 0;
    const pct = max > 0 ? (100 * n) / max : 0;
    return '<div class="reason"><span>' + r.replace("_", " ") + '</span><div class="bar"><div style="width:' +
      pct.toFixed(1) + "%;background:" + css(REASON_COLOR[r]) + '"></div></div><span class="n">' +
      group(n) + "</span></div>";
  }).join("");
  state.charts.reasons = { points: 1, max };
}

function render() {
  const s = state.snapshots[state.snapshots.length - 1];
  const p = state.points[state.points.length - 1];
  if (!s || !p) return;
  $("t-active").textContent = group(s.connections.active);
  $("t-total").textContent = group(s.connections.opened);
  $("t-rate").innerHTML = short(p.in) + " <small>·</small> " + short(p.out);
  $("t-rtt").innerHTML = p.p50 == null ? "–" : round(p.p50) + " <small>·</small> " + round(p.p99) + " <small>ms</small>";
  $("t-timeouts").textContent = group(s.connections.closedByReason.timeout || 0);
  $("t-lag").textContent = ms(s.eventLoopLagMs);
  $("t-cpu").textContent = p.cpu == null ? "–" : p.cpu.toFixed(0) + " %";
  $("t-rss").textContent = bytes(s.process.rssBytes);
  const badge = $("load");
  badge.className = "badge" + (s.overloaded ? " alert" : "");
  badge.textContent = (s.overloaded ? "OVERLOADED" : "load ok") + (s.load1 != null ? " · " + s.load1.toFixed(2) : "");
  lineChart("connections", [
    { label: "active", color: "--blue", get: (q) => q.active, fill: true },
    { label: "opened/s", color: "--green", get: (q) => q.opened },
  ], "");
  lineChart("messages", [
    { label: "in", color: "--cyan", get: (q) => q.in, fill: true },
    { label: "out", color: "--purple", get: (q) => q.out },
  ], "");
  lineChart("rtt", [
    { label: "p50", color: "--green", get: (q) => q.p50 },
    { label: "p90", color: "--orange", get: (q) => q.p90 },
    { label: "p99", color: "--red", get: (q) => q.p99 },
  ], " ms");
  barChart("closes", REASONS, REASON_COLOR);
  reasons(s);
  lineChart("process", [
    { label: "loop lag ms", color: "--orange", get: (q) => q.lag },
    { label: "CPU %", color: "--blue", get: (q) => q.cpu },
  ], "");
  const up = Math.round(s.uptimeSeconds);
  $("footer").textContent = "heartwire · up " + Math.floor(up / 3600) + " h " + Math.floor(up / 60) % 60 +
    " min · heap " + bytes(s.process.heapUsedBytes) + (s.process.openFds != null ? " · " + s.process.openFds + " fds" : "") +
    " · /metrics · /stats";
}

// ---- the feed -----------------------------------------------------------------

let retry = 0;
let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; render(); });
}
function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + FEED);
  ws.onopen = () => {
    retry = 0;
    state.connected = true;
    $("dot").className = "dot live";
    $("feed").textContent = "live";
  };
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    state.messages++;
    if (message.type === "history") {
      state.snapshots.length = 0;
      state.points.length = 0;
      for (const s of message.snapshots) add(s);
    } else if (message.type === "snapshot") {
      add(message.snapshot);
    }
    schedule();
  };
  ws.onclose = () => {
    state.connected = false;
    $("dot").className = "dot";
    // Full jitter, so that every dashboard does not return at the same moment.
    const delay = Math.random() * Math.min(10000, 500 * Math.pow(2, retry++));
    $("feed").textContent = "reconnecting…";
    setTimeout(connect, delay);
  };
}
window.addEventListener("resize", schedule);
connect();
</script>
</body>
</html>
`;
