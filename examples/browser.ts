/**
 * A browser page on the reconnecting client: serves `examples/browser/index.html`,
 * the client bundled for browsers by esbuild at startup (`/client.js`, from
 * `client/mod.ts`), and a chat hub on `/ws`.
 *
 * ```sh
 * deno run --allow-net --allow-env --allow-read --allow-run examples/browser.ts   # open http://localhost:8080/
 * ```
 *
 * Needs npm once (esbuild). `deno task bundle` builds the same client into `dist/`.
 *
 * @module
 */
import * as esbuild from "esbuild";
import { chat, Hub } from "@heartwire/heartwire/hub";
import { serve } from "@heartwire/heartwire/server";

const built = await esbuild.build({
  entryPoints: [new URL("../client/mod.ts", import.meta.url).pathname],
  bundle: true,
  format: "esm",
  target: ["es2022"],
  platform: "browser",
  write: false,
  logLevel: "warning",
});
await esbuild.stop(); // esbuild keeps a child process; Deno would wait for it
const client = built.outputFiles[0].text;
const page = await Deno.readTextFile(new URL("browser/index.html", import.meta.url));

const hub = chat(new Hub(), { topic: "lobby" });
const server = serve({
  port: Number(Deno.env.get("PORT") ?? 8080),
  routes: { "/ws": hub },
  fetch(request) {
    switch (new URL(request.url).pathname) {
      case "/":
        return new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } });
      case "/client.js":
        return new Response(client, { headers: { "content-type": "text/javascript" } });
      default:
        return new Response("not found\n", { status: 404 });
    }
  },
  onListen: (addr) => console.log(`listening on http://localhost:${addr.port}/`),
});

// Ctrl-C: every WebSocket gets close 1001 ("going away"), then the process ends.
Deno.addSignalListener("SIGINT", () => server.shutdown().then(() => Deno.exit(0)));
