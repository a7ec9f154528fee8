/**
 * A TCP relay on loopback for fault tests: it forwards both ways until told
 * to blackhole, then swallows what comes in one or both directions and sends
 * no FIN and no RST — a pulled cable, which neither end can tell from
 * silence. Only liveness checks (pings, heartbeats) find it.
 *
 * @module
 */

/** Which way a pipe of the proxy has stopped forwarding. */
export interface Dead {
  toServer: boolean;
  toClient: boolean;
}

/** A TCP relay that can be told to swallow everything on its current connections. */
export class BlackholeProxy {
  readonly port: number;
  #listener: Deno.Listener;
  #pipes = new Set<{ conns: Deno.Conn[]; dead: Dead }>();
  #tasks: Promise<unknown>[] = [];

  constructor(target: number) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#tasks.push(this.#accept(target));
  }

  async #accept(target: number): Promise<void> {
    for (;;) {
      let client: Deno.Conn;
      try {
        client = await this.#listener.accept();
      } catch {
        return; // closed
      }
      const upstream = await Deno.connect({ hostname: "127.0.0.1", port: target });
      const dead = { toServer: false, toClient: false };
      this.#pipes.add({ conns: [client, upstream], dead });
      this.#tasks.push(
        this.#pump(client, upstream, dead, "toServer"),
        this.#pump(upstream, client, dead, "toClient"),
      );
    }
  }

  async #pump(from: Deno.Conn, to: Deno.Conn, dead: Dead, way: keyof Dead): Promise<void> {
    const buffer = new Uint8Array(16 * 1024);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        // A dead path reads and drops: no data, no FIN, no RST — a pulled cable.
        if (!dead[way]) await to.write(buffer.subarray(0, n));
      }
      if (!dead[way]) to.closeWrite();
    } catch {
      // closed by close() or the other side
    }
  }

  /**
   * From now on the connections open so far forward nothing and never close
   * (or only in one direction: `toClient` loses the server's acks while the
   * client's messages still get through).
   */
  blackhole(ways: (keyof Dead)[] = ["toServer", "toClient"]): void {
    for (const pipe of this.#pipes) for (const way of ways) pipe.dead[way] = true;
  }

  async close(): Promise<void> {
    this.#listener.close();
    for (const pipe of this.#pipes) {
      for (const conn of pipe.conns) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
    }
    await Promise.allSettled(this.#tasks);
  }
}
