/**
 * heartwire behind real nginx (/usr/sbin/nginx), configured as
 * deploy/nginx.conf is but with free loopback ports, a 3 s
 * `proxy_read_timeout`, and a `?node=` argument that picks the upstream
 * (so a test can say which node a client reaches).
 *
 * - nginx drops a proxied connection that is silent for `proxy_read_timeout`:
 *   heartwire's keepalive (1 s pings, 1 s app heartbeat) keeps an idle client
 *   up for 10 s and more, while a client of a node that pings once a minute,
 *   sending nothing itself, is cut at ~3 s.
 * - A node killed with SIGKILL: its clients come back through nginx on the
 *   other node, and every message a client sent is acknowledged and was
 *   delivered. With memory stores the other node does not know the session
 *   (resume_failed), so the client re-sends what was not acknowledged; a
 *   message processed just before the kill, its ack lost, is then delivered
 *   twice. Exactly once across nodes needs shared stores (`--redis`).
 */
import { assert, assertEquals } from "@std/assert";
import { ReconnectingSocket } from "../client/mod.ts";
import { freePort } from "./_port.ts";
import { spawnProgram } from "./_program.ts";
import { waitFor } from "./_wait.ts";

const NGINX = "/usr/sbin/nginx";

/** The directives of deploy/nginx.conf, with the test's ports and timeout. */
function nginxConf(dir: string, port: number, upstreams: Record<string, number[]>): string {
  const blocks = Object.entries(upstreams).map(([name, ports]) =>
    `  upstream ${name} {
    least_conn;
${ports.map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=2s;`).join("\n")}
    keepalive 8;
  }`
  ).join("\n");
  const names = Object.keys(upstreams);
  return `worker_processes 1;
events { worker_connections 1024; }
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;

http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;

  map $http_upgrade $connection_upgrade {
    default upgrade;
    ""      "";
  }
  map $arg_node $backend {
${names.map((name) => `    ${name} ${name};`).join("\n")}
    default ${names[0]};
  }
${blocks}

  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://$backend;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 3s;
      proxy_send_timeout 3s;
      proxy_next_upstream error timeout;
      proxy_connect_timeout 2s;
      proxy_buffering off;
    }
  }
}
`;
}

/** Runs nginx in the foreground with a config in a temp dir; resolves once it answers. */
async function startNginx(upstreams: Record<string, number[]>) {
  const dir = await Deno.makeTempDir({ prefix: "heartwire-nginx-" });
  const port = freePort();
  await Deno.writeTextFile(`${dir}/nginx.conf`, nginxConf(dir, port, upstreams));
  const child = new Deno.Command(NGINX, {
    args: ["-p", dir, "-c", `${dir}/nginx.conf`, "-g", "daemon off;"],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  await waitFor(async () => {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return true;
    } catch {
      return false;
    }
  }, 5_000);
  return {
    port,
    async stop() {
      child.kill("SIGQUIT"); // nginx: graceful stop
      const timer = setTimeout(() => child.kill("SIGKILL"), 2_000);
      await child.status;
      clearTimeout(timer);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A program node on a free port that believes nginx's X-Forwarded-For. */
async function startNode(pingInterval: number) {
  const port = freePort();
  const child = await spawnProgram([
    "--presence-store=memory",
    "--hostname=127.0.0.1",
    `--port=${port}`,
    `--ping-interval=${pingInterval}`,
    "--ping-timeout=2000",
    "--trusted-proxy=127.0.0.1",
    "--max-connections-per-ip=10000",
  ]);
  return {
    port,
    child,
    async stop() {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await child.status;
    },
  };
}

Deno.test("nginx, proxy_read_timeout 3 s: a client kept alive stays ≥ 10 s, a silent one is cut at ~3 s", async () => {
  const alive = await startNode(1_000); // pings after 1 s of silence
  const quiet = await startNode(60_000); // pings once a minute: keepalive off, in effect
  const nginx = await startNginx({ alive: [alive.port], quiet: [quiet.port] });
  const start = Date.now();
  const ended = new Map<string, number>();
  const open = (name: string, url: string) =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.onopen = () => resolve(ws);
      ws.onerror = () => reject(new Error(`${name}: could not connect`));
      ws.onclose = () => ended.set(name, Date.now() - start);
    });
  const socket = new ReconnectingSocket(`ws://127.0.0.1:${nginx.port}/ws?node=alive`, {
    id: "app",
    window: null,
    document: null,
  });
  let appCloses = 0;
  socket.addEventListener("close", () => appCloses++);
  try {
    // Raw WebSockets, which never ping: only the server's keepalive talks.
    const kept = await open("kept", `ws://127.0.0.1:${nginx.port}/echo?node=alive`);
    const silent = await open("silent", `ws://127.0.0.1:${nginx.port}/echo?node=quiet`);
    await waitFor(() => socket.readyState === 1, 3_000);
    await waitFor(() => ended.has("silent"), 6_000);
    const cutAt = ended.get("silent")!;
    await new Promise((resolve) => setTimeout(resolve, 10_500 - (Date.now() - start)));
    console.log(
      `silent client cut by nginx after ${cutAt} ms; kept-alive ones up ` +
        `${Date.now() - start} ms (app client: ${appCloses} closes)`,
    );
    assert(cutAt >= 2_800 && cutAt < 5_000, `cut at ${cutAt} ms`);
    assertEquals(silent.readyState, WebSocket.CLOSED);
    assertEquals(ended.has("kept"), false);
    assertEquals(kept.readyState, WebSocket.OPEN);
    assertEquals(appCloses, 0);
    assertEquals(socket.readyState, 1);
    kept.close();
  } finally {
    socket.close();
    await nginx.stop();
    await alive.stop();
    await quiet.stop();
  }
});

Deno.test("nginx, kill -9 one of two nodes: its clients come back on the other, nothing lost", async () => {
  const CLIENTS = 20;
  const MESSAGES = 40; // per client
  const nodes = [await startNode(1_000), await startNode(1_000)];
  const nginx = await startNginx({ both: nodes.map((node) => node.port) });
  const clients = Array.from({ length: CLIENTS }, (_, i) => {
    const socket = new ReconnectingSocket(`ws://127.0.0.1:${nginx.port}/ws`, {
      id: `c${i}`,
      backoff: { minDelay: 50, initialDelay: 200, maxDelay: 400 },
      window: null,
      document: null,
    });
    const state = {
      socket,
      acked: new Set<string>(),
      delivered: new Map<string, number>(),
      closes: 0,
      resumeFailed: 0,
    };
    socket.on<{ from: string; text: string }>("chat", (message) => {
      if (message.from !== `c${i}`) return;
      state.delivered.set(message.text, (state.delivered.get(message.text) ?? 0) + 1);
    });
    socket.addEventListener("close", () => state.closes++);
    socket.addEventListener("resume_failed", () => state.resumeFailed++);
    return state;
  });
  const requests: Promise<unknown>[] = [];
  try {
    await waitFor(() => clients.every((c) => c.socket.readyState === 1), 5_000);
    for (let n = 0; n < MESSAGES; n++) {
      for (const [i, client] of clients.entries()) {
        const text = `c${i}-${n}`;
        requests.push(client.socket.request("chat", { text }).then(() => client.acked.add(text)));
      }
      if (n === MESSAGES / 4) nodes[0].child.kill("SIGKILL");
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    await Promise.race([
      Promise.all(requests),
      new Promise((_, reject) => setTimeout(() => reject(new Error("acks missing")), 15_000)),
    ]);
    await waitFor(
      () => clients.every((c) => [...c.acked].every((text) => c.delivered.has(text))),
      5_000,
    );
    const moved = clients.filter((c) => c.closes > 0);
    const twice = clients.reduce(
      (sum, c) => sum + [...c.delivered.values()].filter((count) => count > 1).length,
      0,
    );
    console.log(
      `${moved.length} of ${CLIENTS} clients were on the killed node and came back on the ` +
        `other; ${CLIENTS * MESSAGES} messages acknowledged and delivered, ${twice} twice ` +
        `(memory stores: no exactly-once across nodes)`,
    );
    // least_conn put clients on both nodes; the killed node's all moved.
    assert(moved.length > 0 && moved.length < CLIENTS, `${moved.length} moved`);
    for (const client of moved) assert(client.resumeFailed > 0, "a new session on the other node");
    for (const client of clients) {
      assertEquals(client.acked.size, MESSAGES);
      assertEquals(client.socket.bufferedAmount, 0);
    }
  } finally {
    for (const client of clients) client.socket.close();
    await nginx.stop();
    for (const node of nodes) await node.stop();
  }
});
