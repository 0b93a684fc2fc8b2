import { Hono } from "hono";
import type { Context } from "hono";
import type { AgentPort, AttachmentRef, PodRef } from "./types.ts";
import { BadRequestError, HttpError, NotFoundError } from "./errors.ts";
import { UI_CSP, UI_PAGE } from "./ui_page.ts";
import { type ApiLimits, DEFAULT_LIMITS, limitRequests, readBody } from "./limits.ts";

/**
 * Containers are named by the runtime; we accept what runtimes send (IDs, pod sandbox names)
 * but nothing that could smuggle path or shell syntax into logs and state.
 */
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,255}$/;
const IFNAME = /^[^\s/:]{1,15}$/;
/** CNI network names, as the spec allows them. */
const NETWORK = /^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$/;

function checkNetwork(name: string | undefined): string | undefined {
  if (name !== undefined && !NETWORK.test(name)) {
    throw new BadRequestError(
      `Invalid network name "${name}": letters, digits and _ . - only, up to 128 characters`,
    );
  }
  return name;
}

const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const POD_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const POD_UID = /^[A-Za-z0-9-]{1,64}$/;

/** The optional `pod` of an allocation request: the names the API would accept, or a 400. */
function checkPod(value: unknown): PodRef | undefined {
  if (value === undefined || value === null) return undefined;
  const pod = value as Record<string, unknown>;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new BadRequestError(`"pod" must be an object {namespace, name, uid?}`);
  }
  if (typeof pod.namespace !== "string" || !NAMESPACE.test(pod.namespace)) {
    throw new BadRequestError(
      `Invalid pod namespace ${JSON.stringify(pod.namespace)}: a DNS label (a-z, 0-9, -)`,
    );
  }
  if (typeof pod.name !== "string" || !POD_NAME.test(pod.name)) {
    throw new BadRequestError(
      `Invalid pod name ${JSON.stringify(pod.name)}: a DNS subdomain (a-z, 0-9, - and .)`,
    );
  }
  if (pod.uid !== undefined && (typeof pod.uid !== "string" || !POD_UID.test(pod.uid))) {
    throw new BadRequestError(`Invalid pod uid ${JSON.stringify(pod.uid)}`);
  }
  return { namespace: pod.namespace, name: pod.name, ...(pod.uid ? { uid: pod.uid } : {}) };
}

function checkContainerId(id: string): string {
  if (!CONTAINER_ID.test(id)) {
    throw new BadRequestError(
      `Invalid container ID "${id}": letters, digits and _ . : @ - only, up to 256 characters`,
    );
  }
  return id;
}

function checkIfname(name: string | undefined, required: boolean): string | undefined {
  if (name === undefined || name === "") {
    if (required) return "eth0";
    return undefined;
  }
  if (!IFNAME.test(name) || name === "." || name === "..") {
    throw new BadRequestError(
      `Invalid interface name "${name}": 1 to 15 characters, no spaces, "/" or ":"`,
    );
  }
  return name;
}

async function jsonBody(c: Context, limits: ApiLimits): Promise<Record<string, unknown>> {
  const text = await readBody(c.req.raw, limits);
  if (!text.trim()) return {};
  try {
    const value = JSON.parse(text);
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new BadRequestError("Request body must be a JSON object");
    }
    return value;
  } catch (error) {
    if (error instanceof BadRequestError) throw error;
    throw new BadRequestError(`Request body is not valid JSON: ${(error as Error).message}`);
  }
}

function optionalString(body: Record<string, unknown>, key: string): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw new BadRequestError(`"${key}" must be a string`);
  return value;
}

/**
 * The API listens on loopback only, but a browser on the node could still be talked into
 * sending it requests through a rebinding DNS name. Requiring a loopback Host header closes
 * that door without any authentication to manage.
 */
function isLoopbackHost(host: string | undefined): boolean {
  if (!host) return true;
  const name = host.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  return name === "localhost" || name === "::1" || /^127\.\d+\.\d+\.\d+$/.test(name);
}

export interface ApiOptions {
  /** Where unexpected errors (the 500s) are reported; default stderr. */
  log?: (message: string) => void;
  /** Body size, body time and concurrency limits (see limits.ts for the defaults). */
  limits?: Partial<ApiLimits>;
}

export function createApi(agent: AgentPort, options: ApiOptions = {}): Hono {
  const app = new Hono();
  const log = options.log ?? ((message: string) => console.error(`weft: ${message}`));
  const limits = { ...DEFAULT_LIMITS, ...options.limits };

  app.use("*", async (c, next) => {
    if (!isLoopbackHost(c.req.header("host"))) {
      return c.json(
        { error: `Refused: Host "${c.req.header("host")}" is not a loopback name` },
        403,
      );
    }
    await next();
    agent.countRequest(c.req.routePath, c.req.method, c.res.status);
  });
  app.use("*", limitRequests(limits));

  app.onError((error, c) => {
    const known = error instanceof HttpError ? error : agent.httpErrorOf?.(error);
    if (known) return c.json({ error: known.message, ...known.body }, known.status);
    // not an error anyone expected: a bug, never a client's fault
    log(`api: ${c.req.method} ${c.req.path}: ${error.stack ?? error}`);
    return c.json({ error: `Internal error: ${error.message}` }, 500);
  });

  app.notFound((c) => c.json({ error: `No route for ${c.req.method} ${c.req.path}` }, 404));

  app.get("/healthz", (c) => c.text("ok\n"));

  app.get("/status", (c) => {
    const status = agent.status();
    return c.json(status, status.ready ? 200 : 503);
  });

  app.get("/status/ipam", (c) => c.json(agent.ipamStatus()));

  app.get("/status/policy", (c) => {
    if (!agent.policyStatus) throw new NotFoundError("This agent does not enforce NetworkPolicy");
    return c.json(agent.policyStatus());
  });

  app.get("/ip", (c) => c.json(agent.allocations()));

  app.post("/ip/:containerID", async (c) => {
    const containerID = checkContainerId(c.req.param("containerID"));
    const body = await jsonBody(c, limits);
    const ifname = checkIfname(optionalString(body, "ifname") ?? c.req.query("ifname"), true)!;
    const subnet = optionalString(body, "subnet") ?? c.req.query("subnet");
    const network = checkNetwork(optionalString(body, "network"));
    const pod = checkPod(body.pod);
    return c.json(await agent.allocate(containerID, { ifname, subnet, network, pod }));
  });

  app.get("/ip/:containerID", (c) => {
    const containerID = checkContainerId(c.req.param("containerID"));
    const ifname = checkIfname(c.req.query("ifname"), false);
    const found = agent.lookup(containerID, ifname);
    if (found.length === 0) {
      throw new NotFoundError(
        `No address allocated to ${containerID}${ifname ? "/" + ifname : ""}`,
      );
    }
    return c.json(ifname ? found[0] : found);
  });

  app.delete("/ip/:containerID", async (c) => {
    const containerID = checkContainerId(c.req.param("containerID"));
    const ifname = checkIfname(c.req.query("ifname"), false);
    await agent.release(containerID, ifname);
    return c.body(null, 204);
  });

  app.post("/gc", async (c) => {
    const body = await jsonBody(c, limits);
    if (!Array.isArray(body.valid)) {
      throw new BadRequestError(`"valid" must be a list of {containerID, ifname}`);
    }
    const valid: AttachmentRef[] = body.valid.map((entry: unknown, index: number) => {
      const item = entry as Record<string, unknown>;
      if (typeof item?.containerID !== "string" || typeof item?.ifname !== "string") {
        throw new BadRequestError(`"valid[${index}]" needs string containerID and ifname`);
      }
      return { containerID: item.containerID, ifname: item.ifname };
    });
    const network = checkNetwork(optionalString(body, "network"));
    return c.json({ released: await agent.retainOnly(valid, { network }) });
  });

  app.get("/metrics", async (c) => {
    const { contentType, body } = await agent.metrics();
    return c.body(body, 200, { "content-type": contentType });
  });

  app.post("/leave", async (c) => {
    if (!agent.leave) throw new NotFoundError("leave is not supported by this agent");
    return c.json(await agent.leave());
  });

  app.get("/report", async (c) => {
    if (!agent.report) throw new NotFoundError("report is not supported by this agent");
    const redact = c.req.query("redact");
    if (redact !== undefined && !["true", "false", "1", "0", ""].includes(redact)) {
      throw new BadRequestError(`Invalid "redact" query parameter "${redact}": true or false`);
    }
    return c.json(
      await agent.report({ redact: redact === "true" || redact === "1" || redact === "" }),
    );
  });

  app.post("/ipam/adopt", async (c) => {
    if (!agent.adoptOrphans) throw new NotFoundError("adopt is not supported by this agent");
    return c.json(await agent.adoptOrphans());
  });

  app.post("/expose", async (c) => {
    if (!agent.expose) throw new NotFoundError("expose is not supported by this agent");
    return c.json(await agent.expose());
  });
  app.post("/hide", async (c) => {
    if (!agent.hide) throw new NotFoundError("hide is not supported by this agent");
    return c.json(await agent.hide());
  });

  // The topology page and the one document it polls (see ui_page.ts and topology.ts).
  app.get("/ui", (c) =>
    c.html(UI_PAGE, 200, {
      "content-security-policy": UI_CSP,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "cache-control": "no-store",
    }));
  app.get("/status/topology", (c) => {
    if (!agent.topology) throw new NotFoundError("This agent does not report a topology");
    return c.json(agent.topology());
  });

  mountMeshRoutes(app, agent);
  return app;
}

function mountMeshRoutes(app: Hono, agent: AgentPort) {
  const mesh = () => {
    if (!agent.mesh) throw new NotFoundError("This agent runs without a mesh");
    return agent.mesh;
  };
  const peerParam = (c: Context) => {
    const peer = c.req.query("peer");
    if (!peer || !/^[A-Za-z0-9_.:\[\]-]{1,255}$/.test(peer)) {
      throw new BadRequestError(`Missing or invalid "peer" query parameter: "${peer ?? ""}"`);
    }
    return peer;
  };
  app.get("/status/peers", (c) => c.json(mesh().peers()));
  app.get("/status/connections", (c) => c.json(mesh().connections()));
  app.get("/status/targets", (c) => c.json(mesh().targets()));
  app.post("/connect", (c) => {
    const peer = peerParam(c);
    mesh().connect(peer, { replace: c.req.query("replace") === "true" });
    return c.json({ connecting: peer });
  });
  app.post("/forget", (c) => {
    const peer = peerParam(c);
    mesh().forget(peer);
    return c.json({ forgotten: peer });
  });
  app.get("/ring", (c) => {
    const ring = mesh().ring?.();
    if (ring === undefined) throw new NotFoundError("No IPAM ring on this agent");
    return c.json(ring);
  });
  app.post("/peer/:name/rebind", async (c) => {
    const port = mesh();
    if (!port.rebindPeer) throw new NotFoundError("rebind is not supported by this agent");
    const name = c.req.param("name");
    if (!/^[A-Za-z0-9_.:-]{1,255}$/.test(name)) {
      throw new BadRequestError(`Invalid peer name "${name}"`);
    }
    const fingerprint = c.req.query("fingerprint");
    if (fingerprint !== undefined && !/^SHA256:[A-Za-z0-9_-]{1,86}$/.test(fingerprint)) {
      throw new BadRequestError(
        `Invalid fingerprint "${fingerprint}": expected SHA256:... as the key-mismatch problem shows it`,
      );
    }
    return c.json(await port.rebindPeer(name, { fingerprint }));
  });
  app.delete("/peer/:name", async (c) => {
    const port = mesh();
    if (!port.removePeer) throw new NotFoundError("rmpeer is not supported by this agent");
    return c.json(await port.removePeer(c.req.param("name")));
  });
}
