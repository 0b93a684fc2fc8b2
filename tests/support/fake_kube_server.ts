/**
 * The in-memory Kubernetes API (fake_kube_api.ts) as a process, so lab agents in their own
 * network namespaces, and benchmarks, can reach it over HTTP. Objects are created, replaced and
 * deleted through the standard REST API; a few `/__control/` routes add and delete Nodes and read
 * objects back without credentials, as a test's kubectl would.
 *
 *   deno run -A tests/support/fake_kube_server.ts HOST PORT TOKEN
 *
 * It prints `listening PORT` once it accepts connections (PORT 0 picks a free one).
 */
import { FakeKubeApi } from "./fake_kube_api.ts";

const [hostname, port, token] = Deno.args;
const api = new FakeKubeApi({ token });

Deno.serve(
  { hostname, port: Number(port), onListen: (addr) => console.log(`listening ${addr.port}`) },
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
      case "/__control/bookmarks":
        api.sendBookmarks();
        return Response.json({ watches: api.openWatches });
      default:
        return api.handler(request);
    }
  },
);
