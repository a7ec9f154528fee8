/**
 * A terminal chat client for `examples/chat_presence.ts` (or `deno task start`):
 * each line you type is a chat message; messages and who comes and goes are
 * printed as they arrive. It reconnects by itself (kill the server and start
 * it again) and resumes where it left off. End input (Ctrl-D) to leave.
 *
 * ```sh
 * deno run --allow-net examples/chat_client.ts ws://localhost:8080/ws ann
 * ```
 *
 * @module
 */
import { ReconnectingSocket } from "@heartwire/heartwire/client";

const [url = "ws://localhost:8080/ws", id = "guest"] = Deno.args;
const socket = new ReconnectingSocket(url, { id });

socket.addEventListener("open", (e) => console.log(`connected as ${e.detail.id}`));
socket.addEventListener("reconnecting", (e) => {
  console.log(`connection lost, retrying in ${(e.detail.delay / 1000).toFixed(1)} s`);
});
// Delivered once and in order, also across reconnects (topic offsets, docs/05_reconnecting.md).
socket.on<{ from: string; text: string }>("chat", (m) => console.log(`${m.from}: ${m.text}`));

const lobby = socket.presence("lobby");
lobby.addEventListener(
  "sync",
  () => console.log(`online: ${[...lobby.members.keys()].join(", ")}`),
);
lobby.addEventListener("join", (e) => console.log(`${e.detail.member.id} joined`));
lobby.addEventListener("leave", (e) => {
  console.log(`${e.detail.member.id} left (${e.detail.reason})`);
});

/** The lines typed on stdin, until it ends. */
async function* lines(): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    yield* parts;
  }
  if (rest) yield rest;
}

for await (const line of lines()) {
  // Resolves once the server has processed the message (its ack): nothing is lost on the way.
  if (line.trim()) await socket.request("chat", { text: line });
}
socket.close();
