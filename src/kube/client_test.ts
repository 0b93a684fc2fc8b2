import assert from "node:assert/strict";
import { KubeClient } from "./client.ts";
import { KubeConnectionError } from "./errors.ts";

Deno.test("requests keep a path prefix in the server URL and drop undefined query values", async () => {
  const seen: string[] = [];
  const client = new KubeClient({ server: "https://proxy.example/k8s/clusters/c-1", source: "t" }, {
    fetch: (input) => {
      seen.push(String(input));
      return Promise.resolve(Response.json({ items: [] }));
    },
  });
  await client.request("GET", "/api/v1/nodes", { query: { labelSelector: undefined, limit: 5 } });
  assert.deepEqual(seen, ["https://proxy.example/k8s/clusters/c-1/api/v1/nodes?limit=5"]);
});

Deno.test("watch reassembles events split across chunks, even inside a UTF-8 character", async () => {
  const lines = [
    JSON.stringify({ type: "ADDED", object: { metadata: { name: "nœud-1" } } }),
    JSON.stringify({ type: "BOOKMARK", object: { metadata: { resourceVersion: "9" } } }),
  ].join("\n") + "\n";
  const bytes = new TextEncoder().encode(lines);
  const cut = bytes.indexOf(0xc5) + 1; // between the two bytes of "œ"
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const piece of [bytes.slice(0, 3), bytes.slice(3, cut), bytes.slice(cut)]) {
        controller.enqueue(piece);
      }
      controller.close();
    },
  });
  const client = new KubeClient({ server: "http://fake", source: "t" }, {
    fetch: () => Promise.resolve(new Response(body)),
  });
  const seen: string[] = [];
  for await (const event of client.watch<{ metadata: Record<string, string> }>("/api/v1/nodes")) {
    seen.push(
      `${event.type} ${event.object.metadata.name ?? event.object.metadata.resourceVersion}`,
    );
  }
  assert.deepEqual(seen, ["ADDED nœud-1", "BOOKMARK 9"]);
});

Deno.test("a watch event longer than maxEventLength ends the watch instead of filling memory", async () => {
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      // an endless line, as a broken proxy might send
      controller.enqueue(new TextEncoder().encode("x".repeat(1024)));
      sent += 1024;
    },
  });
  const client = new KubeClient({ server: "http://fake", source: "t" }, {
    fetch: () => Promise.resolve(new Response(body)),
  });
  await assert.rejects(
    async () => {
      for await (const _ of client.watch("/api/v1/pods", { maxEventLength: 64 * 1024 })) {
        // nothing is ever complete
      }
    },
    (error: Error) =>
      error instanceof KubeConnectionError && /longer than 65536 characters/.test(error.message),
  );
  assert.ok(sent < 80 * 1024, `read ${sent} bytes before giving up`);
});
