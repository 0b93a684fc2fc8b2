/**
 * The plugin's view of the node agent: five calls over plain HTTP on loopback.
 *
 * The plugin declares the interface it needs (`AgentApi`) so the dispatcher can be tested with
 * the in-memory agent in memory.ts, and keeps its own small fetch client rather than the
 * admin API's client, so that starting the plugin loads nothing but this file.
 */

import type { Attachment } from "./config.ts";
import { CniCode, CniError, toCniError } from "./errors.ts";
import { type HttpAnswer, httpRequest } from "./http1.ts";

export interface Allocation {
  containerID: string;
  ifname: string;
  /** Address with the cluster range's prefix, e.g. 10.32.0.5/12. */
  address: string;
  gateway: string;
  mac: string;
}

export interface AgentStatus {
  ready: boolean;
  bridge?: { name: string; address: string; mtu: number };
  range?: string;
  [field: string]: unknown;
}

/** The pod an ADD attaches (from CNI_ARGS), for the agent's NetworkPolicy sets. */
export interface PodIdentity {
  namespace: string;
  name: string;
  uid?: string;
}

export interface AgentApi {
  status(): Promise<AgentStatus>;
  /**
   * `network` is the config's `name`: GC of one weft network leaves the others' addresses.
   * `pod` lets the agent protect the pod with its NetworkPolicies before the answer comes.
   */
  allocate(
    containerID: string,
    options: { ifname: string; subnet?: string; network?: string; pod?: PodIdentity },
  ): Promise<Allocation>;
  /** Releases the allocation for one interface, or every one of the container without ifname. */
  release(containerID: string, options?: { ifname?: string }): Promise<void>;
  lookup(containerID: string, options: { ifname: string }): Promise<Allocation | undefined>;
  gc(valid: Attachment[], options?: { network?: string }): Promise<{ released: unknown[] }>;
}

/** The agent could not be reached at all (refused, reset, timed out). */
export class AgentUnreachableError extends Error {
  constructor(readonly address: string, options: { cause?: unknown } = {}) {
    const reason = options.cause instanceof Error ? `: ${options.cause.message}` : "";
    super(`Cannot reach the weft agent at ${address}${reason}`, options);
    this.name = "AgentUnreachableError";
  }
}

/** The agent answered with an error status; `retry` when it said trying later may help. */
export class AgentResponseError extends Error {
  readonly agentMessage: string;
  readonly retry: boolean;
  readonly request: string;

  constructor(
    readonly status: number,
    options: { message: string; request: string; retry?: boolean },
  ) {
    super(`Weft agent answered ${status} to ${options.request}: ${options.message}`);
    this.name = "AgentResponseError";
    this.agentMessage = options.message;
    this.retry = options.retry ?? false;
    this.request = options.request;
  }
}

export interface HttpAgentOptions {
  /** Milliseconds before a request is abandoned as unreachable. */
  timeoutMs?: number;
}

export class HttpAgentClient implements AgentApi {
  readonly #hostPort: string;
  readonly #address: string;
  readonly #timeoutMs: number;

  constructor(address: string, options: HttpAgentOptions = {}) {
    this.#address = address;
    this.#hostPort = address.replace(/^http:\/\//, "").replace(/\/$/, "");
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  async status(): Promise<AgentStatus> {
    // A not-ready agent answers 503 with its status (and a reason); that is an answer, not a
    // failure, so STATUS can pass the reason on.
    return await this.#request<AgentStatus>("GET", "/status", { okStatuses: [503] }) as AgentStatus;
  }

  async allocate(
    containerID: string,
    options: { ifname: string; subnet?: string; network?: string; pod?: PodIdentity },
  ): Promise<Allocation> {
    const body: Record<string, unknown> = { ifname: options.ifname };
    if (options.subnet) body.subnet = options.subnet;
    if (options.network) body.network = options.network;
    if (options.pod) body.pod = options.pod;
    return await this.#request<Allocation>("POST", `/ip/${encodeURIComponent(containerID)}`, {
      body,
    }) as Allocation;
  }

  async release(containerID: string, options: { ifname?: string } = {}): Promise<void> {
    const query = options.ifname ? `?ifname=${encodeURIComponent(options.ifname)}` : "";
    await this.#request("DELETE", `/ip/${encodeURIComponent(containerID)}${query}`);
  }

  async lookup(containerID: string, options: { ifname: string }): Promise<Allocation | undefined> {
    return await this.#request<Allocation>(
      "GET",
      `/ip/${encodeURIComponent(containerID)}?ifname=${encodeURIComponent(options.ifname)}`,
      { notFoundIsUndefined: true },
    );
  }

  async gc(
    valid: Attachment[],
    options: { network?: string } = {},
  ): Promise<{ released: unknown[] }> {
    return await this.#request<{ released: unknown[] }>("POST", "/gc", {
      body: { valid, network: options.network },
    }) ?? { released: [] };
  }

  async #request<T>(
    method: string,
    path: string,
    options: { body?: unknown; notFoundIsUndefined?: boolean; okStatuses?: number[] } = {},
  ): Promise<T | undefined> {
    const request = `${method} ${path}`;
    let answer: HttpAnswer;
    try {
      answer = await httpRequest(this.#hostPort, {
        method,
        path,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        timeoutMs: this.#timeoutMs,
      });
    } catch (error) {
      throw new AgentUnreachableError(this.#address, { cause: error });
    }
    const text = answer.body;
    const response = { status: answer.status, ok: answer.status >= 200 && answer.status < 300 };
    if (response.status === 404 && options.notFoundIsUndefined) return undefined;
    let body: unknown = undefined;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (!response.ok && !(options.okStatuses?.includes(response.status) && body)) {
      const fields = (body ?? {}) as { error?: unknown; retry?: unknown };
      const message = typeof fields.error === "string" ? fields.error : text.trim() || "no body";
      throw new AgentResponseError(response.status, {
        message,
        request,
        retry: fields.retry === true,
      });
    }
    return body as T;
  }
}

/**
 * How an agent failure reads to the runtime: unreachable or "not ready" is code 11 (the
 * runtime retries), no free address is 11 with the agent's words, bad input is 7, the rest 103.
 */
export function agentErrorToCni(error: unknown): CniError {
  if (error instanceof AgentUnreachableError) {
    return new CniError(CniCode.tryAgainLater, error.message, { cause: error });
  }
  if (error instanceof AgentResponseError) {
    if (error.retry || error.status === 503 || error.status === 507) {
      return new CniError(CniCode.tryAgainLater, error.message, { cause: error });
    }
    if (error.status === 400) {
      return new CniError(CniCode.invalidConfig, error.message, { cause: error });
    }
    return new CniError(CniCode.agentRejected, error.message, { cause: error });
  }
  return toCniError(error);
}
