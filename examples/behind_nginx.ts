/**
 * heartwire behind nginx: starts the chat-with-presence server on a free port
 * and nginx in front of it with `examples/nginx/nginx.conf` (the two ports
 * filled in), in a temporary prefix. Ctrl-C stops both.
 *
 * ```sh
 * deno run --allow-net --allow-env --allow-run --allow-read --allow-write examples/behind_nginx.ts
 * ```
 *
 * Needs nginx (`apt-get install nginx`; only its binary is used, as your
 * user). Then open `ws://localhost:8080/ws?id=ann` (PORT moves nginx's port),
 * or `deno run --allow-net examples/chat_client.ts ws://localhost:8080/ws ann`.
 *
 * @module
 */
const port = Number(Deno.env.get("PORT") ?? 8080);
const nginxBinary = Deno.env.get("NGINX") ?? "nginx";

// The app, on a port of its own; it prints "listening on http://localhost:N/".
const app = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "--allow-net",
    "--allow-env",
    new URL("chat_presence.ts", import.meta.url).pathname,
  ],
  env: { PORT: "0" },
  stdout: "piped",
}).spawn();
const lines = app.stdout.pipeThrough(new TextDecoderStream()).getReader();
let appPort = 0;
for (let seen = ""; !appPort;) {
  const { value, done } = await lines.read();
  if (done) throw new Error("the app exited before listening");
  seen += value;
  appPort = Number(/listening on http:\/\/localhost:(\d+)/.exec(seen)?.[1] ?? 0);
}

// nginx, from the example config with the two ports put in.
const prefix = await Deno.makeTempDir({ prefix: "heartwire-nginx-" });
await Deno.mkdir(`${prefix}/tmp`);
const template = await Deno.readTextFile(new URL("nginx/nginx.conf", import.meta.url));
await Deno.writeTextFile(
  `${prefix}/nginx.conf`,
  template.replace("listen 127.0.0.1:8080;", `listen 127.0.0.1:${port};`)
    .replace("proxy_pass http://127.0.0.1:8081;", `proxy_pass http://127.0.0.1:${appPort};`),
);
const nginx = new Deno.Command(nginxBinary, {
  args: ["-p", prefix, "-c", "nginx.conf", "-g", "daemon off;"],
}).spawn();

// Ready when nginx accepts connections.
for (let tries = 0;; tries++) {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    break;
  } catch (error) {
    if (tries === 100) throw error;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
console.log(`listening on http://localhost:${port}/ (nginx → heartwire on ${appPort})`);

const stop = async () => {
  nginx.kill("SIGQUIT"); // graceful: nginx lets its connections finish
  app.kill("SIGINT"); // heartwire closes every WebSocket with 1001
  await Promise.all([nginx.status, app.status]);
  await Deno.remove(prefix, { recursive: true });
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
await Promise.all([nginx.status, app.status]);
