/**
 * The in-memory Kubernetes API (src/kube/fake_api.ts) as a process, so lab agents in their own
 * network namespaces can reach it over the lab's underlay. A few `/__control/` routes let the
 * test add and delete Nodes and read back objects, as kubectl would.
 *
 *   deno run -A tests/support/fake_kube_server.ts HOST PORT TOKEN
 */
import { FakeKubeApi } from "../../src/kube/mod.ts";

const [hostname, port, token] = Deno.args;
const api = new FakeKubeApi({ token });

Deno.serve(
  { hostname, port: Number(port), onListen: () => console.log("listening") },
  (request) => {
    const url = new URL(request.url);
    const name = url.searchParams.get("name") ?? "";
    switch (url.pathname) {
      case "/__control/addNode":
        return Response.json(
          api.addNode(name, { internalIp: url.searchParams.get("ip") ?? undefined }),
        );
      case "/__control/deleteNode":
        api.deleteNode(name);
        return Response.json({ deleted: name });
      case "/__control/node":
        return Response.json(api.node(name) ?? null);
      case "/__control/configMap":
        return Response.json(
          api.configMap(url.searchParams.get("namespace") ?? "kube-system", name) ?? null,
        );
      default:
        return api.handler(request);
    }
  },
);
