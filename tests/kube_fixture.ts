/**
 * Shared set-up for the Kubernetes tests: the in-memory API server behind a real HTTP listener
 * on 127.0.0.1 (ephemeral port), a client pointed at it with a bearer token, and a stop signal
 * for whatever the test starts. Disposal stops it all, so a test writes
 *
 *   await using cluster = startFakeCluster();
 *   const watcher = cluster.track(startNodeWatcher({ client: cluster.client, signal: cluster.signal, ... }));
 *
 * and nothing outlives it, also when an assertion fails.
 */
import { KubeClient } from "../src/kube/mod.ts";
import { FakeKubeApi, type FakeKubeApiOptions } from "./support/fake_kube_api.ts";

export const TOKEN = "weft-test-token";

export interface FakeClusterOptions extends Omit<FakeKubeApiOptions, "token"> {
  /** The token the client sends (the server expects TOKEN). */
  token?: string;
}

export class FakeCluster implements AsyncDisposable {
  readonly api: FakeKubeApi;
  readonly client: KubeClient;
  readonly url: string;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #stop = new AbortController();
  readonly #clients: KubeClient[] = [];
  readonly #running: Promise<unknown>[] = [];

  constructor(options: FakeClusterOptions = {}) {
    this.api = new FakeKubeApi({ ...options, token: TOKEN });
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      this.api.handler,
    );
    this.url = `http://127.0.0.1:${this.#server.addr.port}`;
    this.client = this.newClient({ token: options.token ?? TOKEN, source: "test token" });
  }

  /** Aborted by `stop()` or on disposal: give it to every watcher the test starts. */
  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  /** Another agent's client, with its own connections; closed on disposal. */
  newClient(options: { token?: string; source?: string } = {}): KubeClient {
    const client = new KubeClient({
      server: this.url,
      token: options.token ?? TOKEN,
      source: options.source ?? "test",
    });
    this.#clients.push(client);
    return client;
  }

  /** Disposal waits for `started.done`, so no loop outlives the test. */
  track<T extends { done: Promise<unknown> }>(started: T): T {
    this.#running.push(started.done);
    return started;
  }

  /** Aborts `signal`: everything started with it stops. */
  stop(): void {
    this.#stop.abort();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.stop();
    await Promise.allSettled(this.#running);
    this.api.endWatches();
    await this.#server.shutdown();
    for (const client of this.#clients) client.close();
  }
}

export function startFakeCluster(options: FakeClusterOptions = {}): FakeCluster {
  return new FakeCluster(options);
}

/** Polls until `check` is true; the limit only turns a hang into a readable failure. */
export async function waitFor(what: string, check: () => boolean, limitMs = 10_000) {
  const deadline = Date.now() + limitMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
