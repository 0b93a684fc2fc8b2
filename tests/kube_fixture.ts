/**
 * Shared set-up for the Kubernetes tests: the in-memory API server behind a real HTTP listener
 * on 127.0.0.1 (ephemeral port), and a client pointed at it with a bearer token.
 */
import { FakeKubeApi, KubeClient } from "../src/kube/mod.ts";

export const TOKEN = "weft-test-token";

export interface FakeCluster {
  api: FakeKubeApi;
  client: KubeClient;
  url: string;
  close(): Promise<void>;
}

export function startFakeCluster(options: { token?: string } = {}): FakeCluster {
  const api = new FakeKubeApi({ token: TOKEN });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, api.handler);
  const url = `http://127.0.0.1:${server.addr.port}`;
  const client = new KubeClient({
    server: url,
    token: options.token ?? TOKEN,
    source: "test token",
  });
  return {
    api,
    client,
    url,
    async close() {
      api.endWatches();
      await server.shutdown();
      client.close();
    },
  };
}

/** Polls until `check` is true; the limit only turns a hang into a readable failure. */
export async function waitFor(what: string, check: () => boolean, limitMs = 10_000) {
  const deadline = Date.now() + limitMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
