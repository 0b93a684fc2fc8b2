/**
 * A stand-in for the weft agent's HTTP API (the part the CNI plugin calls), serving the
 * in-memory allocator of src/cni/memory.ts. Kernel tests of the plugin run it inside their node
 * namespace when they want the plugin alone under test; they reach it only through
 * `startAgent` in plugin.ts, which can start the real agent instead.
 *
 *   deno run -A tests/support/fake_agent.ts --addr 127.0.0.1:6784 [--range 10.32.0.0/12]
 *     [--gateway 10.32.0.1] [--bridge weave] [--not-ready]
 */

import { AgentResponseError } from "../../src/cni/agent_client.ts";
import { MemoryAgent } from "../../src/cni/memory.ts";

export interface FakeAgentOptions {
  range?: string;
  gateway?: string;
  bridge?: string;
  ready?: boolean;
}

/** The request handler, separate from the listener so unit tests can call it directly. */
export function fakeAgentHandler(
  options: FakeAgentOptions = {},
): (r: Request) => Promise<Response> {
  const agent = new MemoryAgent(options);
  agent.ready = options.ready ?? true;
  return async (request) => {
    const url = new URL(request.url);
    const ifname = url.searchParams.get("ifname") ?? undefined;
    const ip = /^\/ip\/([^/]+)$/.exec(url.pathname);
    try {
      if (request.method === "GET" && url.pathname === "/status") {
        const status = await agent.status();
        return Response.json(status, { status: status.ready ? 200 : 503 });
      }
      if (request.method === "GET" && url.pathname === "/ip") {
        return Response.json(agent.allocations);
      }
      if (ip && request.method === "POST") {
        const body = await request.json().catch(() => ({}));
        if (typeof body.ifname !== "string") return error(400, '"ifname" is required');
        return Response.json(await agent.allocate(decodeURIComponent(ip[1]), body));
      }
      if (ip && request.method === "GET") {
        const found = await agent.lookup(decodeURIComponent(ip[1]), { ifname: ifname ?? "eth0" });
        return found ? Response.json(found) : error(404, `No address allocated to ${ip[1]}`);
      }
      if (ip && request.method === "DELETE") {
        await agent.release(decodeURIComponent(ip[1]), { ifname });
        return new Response(null, { status: 204 });
      }
      if (request.method === "POST" && url.pathname === "/gc") {
        const body = await request.json();
        if (!Array.isArray(body.valid)) return error(400, '"valid" must be a list');
        return Response.json(await agent.gc(body.valid, { network: body.network }));
      }
      return error(404, `No route for ${request.method} ${url.pathname}`);
    } catch (caught) {
      if (caught instanceof AgentResponseError) {
        return Response.json(
          { error: caught.agentMessage, ...(caught.retry ? { retry: true } : {}) },
          { status: caught.status },
        );
      }
      return error(500, (caught as Error).message);
    }
  };
}

function error(status: number, message: string): Response {
  return Response.json({ error: message }, { status });
}

if (import.meta.main) {
  const args = Deno.args;
  const flag = (name: string) => {
    const index = args.indexOf(name);
    return index >= 0 ? args[index + 1] : undefined;
  };
  const [hostname, port] = (flag("--addr") ?? "127.0.0.1:6784").split(":");
  Deno.serve(
    {
      hostname,
      port: Number(port),
      onListen: () => console.log("fake agent listening"),
    },
    fakeAgentHandler({
      range: flag("--range"),
      gateway: flag("--gateway"),
      bridge: flag("--bridge"),
      ready: !args.includes("--not-ready"),
    }),
  );
}
