/**
 * A Kubernetes API client as a process, for benchmarks whose API server is only reachable from
 * inside a lab namespace (`ip netns exec NS deno run -A kube_actor.ts ...`). Every time it
 * prints is `performance.timeOrigin + performance.now()`: milliseconds since the epoch with
 * sub-millisecond precision, comparable between processes on one machine.
 *
 *   kube_actor.ts write SERVER TOKEN
 *     stdin:  {"id":1,"method":"PUT","path":"/apis/...","body":{...}}   one request a line
 *     stdout: {"id":1,"sent":<time just before the request>,"status":200}
 *   kube_actor.ts watch SERVER TOKEN
 *     stdout: {"t":<time>,"type":"updated","key":"ns/name","spec":{...}}  each NetworkPolicy change
 *             seen by weft's own informer (the floor any agent's reaction stands on)
 */
import { KubeClient, NETWORK_POLICY_RESOURCE, startInformer } from "../../src/kube/mod.ts";

const [mode, server, token] = Deno.args;
const now = () => performance.timeOrigin + performance.now();
const encoder = new TextEncoder();
const print = (value: unknown) =>
  Deno.stdout.writeSync(encoder.encode(JSON.stringify(value) + "\n"));

if (mode === "watch") {
  const client = new KubeClient({ server, token, source: "bench" });
  const informer = startInformer(NETWORK_POLICY_RESOURCE, { client });
  informer.subscribe({
    change: (change) => {
      const policy = change.object ?? change.old;
      print({
        t: now(),
        type: change.type,
        key: `${policy.namespace}/${policy.name}`,
        spec: change.object?.spec,
      });
    },
  });
  await informer.synced;
  print({ synced: true });
  await informer.done;
} else if (mode === "write") {
  let buffer = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const request = JSON.parse(buffer.slice(0, newline));
      buffer = buffer.slice(newline + 1);
      const sent = now();
      const response = await fetch(`${server}${request.path}`, {
        method: request.method,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: request.body === undefined ? undefined : JSON.stringify(request.body),
      });
      await response.body?.cancel();
      print({ id: request.id, sent, status: response.status });
    }
  }
} else {
  console.error("usage: kube_actor.ts write|watch SERVER TOKEN");
  Deno.exit(2);
}
