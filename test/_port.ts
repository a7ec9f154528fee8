/**
 * A loopback port that was free a moment ago (listened on, then closed): for a
 * child server to start on, or for a connection nobody answers.
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
