/**
 * One lab node's data path, run as `ip netns exec NODE deno run -A datapath_node.ts CONFIG_JSON`.
 * The test drives it with one JSON command per stdin line and reads one JSON reply per stdout
 * line; logs go to stderr. Session keys travel as hex.
 */
import {
  installSleeveWorker,
  KernelDatapath,
  type KernelDatapathOptions,
  SLEEVE_WORKER_NAME,
} from "../../src/datapath/mod.ts";

// Bundled, this file is also the sleeve workers' module (see KernelDatapathOptions.workerUrl):
// in a worker it only installs the worker and runs nothing else.
if ((globalThis as { name?: string }).name === SLEEVE_WORKER_NAME) {
  installSleeveWorker();
} else {
  await runNode();
}

async function runNode(): Promise<void> {
  const config = JSON.parse(Deno.args[0]) as KernelDatapathOptions & {
    endpoints?: Array<{ mac: string; ip: string }>;
  };
  const bundled = !import.meta.url.endsWith(".ts");
  const datapath = new KernelDatapath({
    // From source the workers load sleeve_worker.ts; a bundle has only itself to offer.
    workerUrl: bundled ? Deno.mainModule : undefined,
    ...config,
    log: (message) => console.error(`[${config.name}] ${message}`),
  });
  const encoder = new TextEncoder();

  function reply(value: unknown): void {
    Deno.stdout.writeSync(encoder.encode(JSON.stringify(value) + "\n"));
  }

  function hexBytes(hex: string): Uint8Array {
    return new Uint8Array(hex.match(/../g)!.map((pair) => parseInt(pair, 16)));
  }

  let stopping = false;
  async function stop(): Promise<void> {
    if (stopping) return;
    stopping = true;
    await datapath.stop();
  }
  Deno.addSignalListener("SIGTERM", () => stop().finally(() => Deno.exit(0)));

  try {
    await datapath.start();
    datapath.setLocalEndpoints(config.endpoints ?? []);
    reply({ ready: true, blob: datapath.localData(), mtu: datapath.mtu() });
  } catch (error) {
    reply({ ready: false, error: String(error) });
    Deno.exit(1);
  }

  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  let pending = "";
  for await (const chunk of lines) {
    pending += chunk;
    let newline;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      const command = JSON.parse(line);
      try {
        switch (command.op) {
          case "upsert":
            await datapath.upsertPeer({
              ...command.peer,
              sessionKey: command.peer.sessionKey ? hexBytes(command.peer.sessionKey) : undefined,
            });
            reply({ id: command.id, ok: true });
            break;
          case "remove":
            await datapath.removePeer(command.name);
            reply({ id: command.id, ok: true });
            break;
          case "hints":
            await datapath.setUnderlayHints(command.addresses);
            reply({ id: command.id, ok: true, blob: datapath.localData() });
            break;
          case "diagnostics":
            reply({ id: command.id, ok: true, diagnostics: datapath.diagnostics() });
            break;
          case "endpoints":
            datapath.setLocalEndpoints(command.entries);
            reply({ id: command.id, ok: true, blob: datapath.localData() });
            break;
          case "status":
            reply({
              id: command.id,
              ok: true,
              status: datapath.status(),
              counters: datapath.counters(),
              threads: datapath.sleeveThreadsRunning,
            });
            break;
          case "stop":
            await stop();
            reply({ id: command.id, ok: true });
            Deno.exit(0);
        }
      } catch (error) {
        reply({ id: command.id, ok: false, error: String(error) });
      }
    }
  }
  await stop();
}
