import { Hub } from "./hub/mod.ts";
import { serve } from "./server/mod.ts";
const hub = new Hub();
let calls = 0;
hub.on<{ a: number; b: number }>("add", (_ctx, m) => { calls++; return { sum: m.a + m.b }; });
const server = serve({ port: 0, hostname: "127.0.0.1", routes: { "/ws": hub } });
for (let i = 1; i <= 3; i++) await hub.publish("news", "story", { n: i });
function open(url: string) {
  const ws = new WebSocket(url);
  const inbox: any[] = []; const waiters: ((m: any) => void)[] = [];
  ws.onmessage = (e) => { const m = JSON.parse(e.data); waiters.length ? waiters.shift()!(m) : inbox.push(m); };
  const next = () => inbox.length ? Promise.resolve(inbox.shift()) : new Promise<any>((r) => waiters.push(r));
  return new Promise<{ ws: WebSocket; next: () => Promise<any> }>((r) => ws.onopen = () => r({ ws, next }));
}
const { ws, next } = await open(`ws://127.0.0.1:${server.addr.port}/ws?id=ann`);
console.log(await next());
ws.send(JSON.stringify({ type: "add", cseq: 1, a: 2, b: 3 }));
ws.send(JSON.stringify({ type: "add", cseq: 1, a: 2, b: 3 }));
console.log(await next(), await next(), calls);
ws.send(JSON.stringify({ type: "subscribe", topic: "news" }));
console.log(await next());
ws.send(JSON.stringify({ type: "unsubscribe", topic: "news" }));
console.log(await next());
const epoch = (await hub.history.position?.("news"));
console.log("pos", epoch);
ws.close();
await server.shutdown(); hub.dispose();
