/**
 * The program's supervisor process, as `--workers 2` will run it once the
 * hub's stores are shared: runWorkers() with two program workers on the port
 * given as the first argument. Run by test/scale_workers_test.ts, which
 * signals it.
 *
 * @module
 */
import { runWorkers } from "../server/_supervisor.ts";
import { workerArgs } from "./_program.ts";

const port = Number(Deno.args[0]);
await runWorkers({
  workers: 2,
  // scale_workers_test's health poller would go over the default connection rate.
  args: workerArgs(["--hostname=127.0.0.1", `--port=${port}`, "--max-connection-rate-per-ip=0"]),
});
console.log("supervisor: workers listening");
