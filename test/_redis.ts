/**
 * A throwaway `redis-server` on a free loopback port for tests and benchmarks,
 * with persistence off and `DEBUG` allowed from loopback (for `DEBUG SLEEP`).
 * `down()` kills it as a crash and `up()` starts it again on the same port.
 *
 * @module
 */
import { freePort } from "./_port.ts";
import { waitFor } from "./_wait.ts";

/** A redis-server on 127.0.0.1 that can be stopped and started again on the same port. */
export class RedisServer {
  readonly port: number;
  #process: Deno.ChildProcess | undefined;

  private constructor(port: number) {
    this.port = port;
  }

  /** `redis://127.0.0.1:<port>`. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** The server's process id while it runs. */
  get pid(): number | undefined {
    return this.#process?.pid;
  }

  /** Starts a redis-server on a free port and waits until it answers PING. */
  static async start(): Promise<RedisServer> {
    const server = new RedisServer(freePort());
    await server.up();
    return server;
  }

  /** Starts the server (again) and waits until it answers PING. */
  async up(): Promise<void> {
    this.#process = new Deno.Command("redis-server", {
      args: [
        ...["--port", String(this.port), "--bind", "127.0.0.1"],
        ...["--save", "", "--appendonly", "no", "--loglevel", "warning"],
        ...["--enable-debug-command", "local"],
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitFor(() => this.#pong(), 5_000).catch(async () => {
      await this.down();
      throw new Error(`redis-server did not start on port ${this.port}`);
    });
  }

  /** Kills the server as a crash (nothing is saved anyway) and waits for it to exit. */
  down(): Promise<void> {
    return this.#end("SIGKILL");
  }

  /** Stops the server and waits for it to exit. */
  stop(): Promise<void> {
    return this.#end("SIGTERM");
  }

  async #end(signal: Deno.Signal): Promise<void> {
    const process = this.#process;
    if (!process) return;
    this.#process = undefined;
    process.kill(signal);
    await process.status;
  }

  async #pong(): Promise<boolean> {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
      try {
        await conn.write(new TextEncoder().encode("PING\r\n"));
        const buf = new Uint8Array(16);
        const n = await conn.read(buf);
        return n !== null && new TextDecoder().decode(buf.subarray(0, n)).startsWith("+PONG");
      } finally {
        conn.close();
      }
    } catch {
      return false; // not listening yet
    }
  }
}
