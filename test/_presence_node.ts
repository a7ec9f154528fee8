/**
 * A presence node in its own process, for crash tests: joins `--users` users
 * to `lobby`, heartbeats them every 100 ms, prints "ready" once the store has
 * them, and runs until killed.
 *
 * deno run -A test/_presence_node.ts --store kv|redis --path FILE|--redis URL
 *   --node ID --users N --lease MS
 *
 * @module
 */
import { KvPresenceStore, Presence, RedisPresenceStore } from "../hub/presence/mod.ts";

const args = new Map<string, string>();
for (let i = 0; i < Deno.args.length; i += 2) args.set(Deno.args[i], Deno.args[i + 1]);
const lease = Number(args.get("--lease") ?? 600);
const users = Number(args.get("--users") ?? 200);
const store = args.get("--store") === "redis"
  ? await RedisPresenceStore.open(args.get("--redis")!)
  : await KvPresenceStore.open(args.get("--path")!);
const presence = new Presence({
  store,
  nodeId: args.get("--node") ?? crypto.randomUUID(),
  presenceTimeout: lease,
  lease,
});
await presence.start();
for (let u = 0; u < users; u++) presence.join("lobby", `user${u}`, `conn${u}`, { name: `U${u}` });
setInterval(() => {
  for (let u = 0; u < users; u++) presence.touch(`user${u}`, `conn${u}`);
}, 100);
await presence.flush();
console.log("ready");
