/**
 * A typed client of the admin API for the CLI (and anything else that talks to a local agent).
 * Errors keep the distinction people need: the agent is not running at all (`AgentUnreachableError`)
 * versus it answered with an error (`ApiError`, carrying the status and the agent's message).
 */
import type {
  AllocationView,
  IpamStatusView,
  PolicyStatusView,
  ReportView,
  StatusView,
} from "./types.ts";

export class AgentUnreachableError extends Error {
  constructor(readonly address: string, cause: unknown) {
    super(
      `Cannot reach the weft agent at ${address}: ${
        (cause as Error).message ?? cause
      }. Is "weft launch" running?`,
      {
        cause,
      },
    );
    this.name = "AgentUnreachableError";
  }
}

export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly body?: unknown) {
    super(message);
    this.name = "ApiError";
  }
}

export class ApiClient {
  readonly #base: string;
  readonly #address: string;
  readonly #timeoutMs: number;

  constructor(address = "127.0.0.1:6784", options: { timeoutMs?: number } = {}) {
    this.#address = address;
    this.#base = address.startsWith("http") ? address : `http://${address}`;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** The agent's address as given (`host:port`). */
  get address(): string {
    return this.#address;
  }

  /** Sends a request and returns the parsed JSON (or text for non-JSON answers). */
  async request<T>(
    method: string,
    path: string,
    options: { body?: unknown; allowStatus?: number[] } = {},
  ): Promise<T> {
    let response: Response;
    try {
      response = await fetch(this.#base + path, {
        method,
        headers: options.body === undefined ? {} : { "content-type": "application/json" },
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      throw new AgentUnreachableError(this.#address, error);
    }
    const text = await response.text();
    const type = response.headers.get("content-type") ?? "";
    const value = type.includes("json") && text ? JSON.parse(text) : text;
    if (!response.ok && !options.allowStatus?.includes(response.status)) {
      const message = (value as { error?: string })?.error ?? (text || response.statusText);
      throw new ApiError(response.status, message, value);
    }
    return value as T;
  }

  status(): Promise<StatusView> {
    return this.request("GET", "/status", { allowStatus: [503] });
  }
  ipamStatus(): Promise<IpamStatusView> {
    return this.request("GET", "/status/ipam");
  }
  policyStatus(): Promise<PolicyStatusView> {
    return this.request("GET", "/status/policy");
  }
  allocations(): Promise<AllocationView[]> {
    return this.request("GET", "/ip");
  }
  allocate(containerID: string, options: { ifname?: string; subnet?: string } = {}) {
    return this.request<AllocationView>("POST", `/ip/${encodeURIComponent(containerID)}`, {
      body: options,
    });
  }
  release(containerID: string, ifname?: string): Promise<string> {
    const query = ifname ? `?ifname=${encodeURIComponent(ifname)}` : "";
    return this.request("DELETE", `/ip/${encodeURIComponent(containerID)}${query}`);
  }
  peers(): Promise<unknown[]> {
    return this.request("GET", "/status/peers");
  }
  connections(): Promise<unknown[]> {
    return this.request("GET", "/status/connections");
  }
  targets(): Promise<string[]> {
    return this.request("GET", "/status/targets");
  }
  connect(peer: string, replace = false): Promise<unknown> {
    return this.request("POST", `/connect?peer=${encodeURIComponent(peer)}&replace=${replace}`);
  }
  forget(peer: string): Promise<unknown> {
    return this.request("POST", `/forget?peer=${encodeURIComponent(peer)}`);
  }
  removePeer(name: string): Promise<unknown> {
    return this.request("DELETE", `/peer/${encodeURIComponent(name)}`);
  }
  rebindPeer(name: string, options: { fingerprint?: string } = {}): Promise<unknown> {
    const query = options.fingerprint
      ? `?fingerprint=${encodeURIComponent(options.fingerprint)}`
      : "";
    return this.request("POST", `/peer/${encodeURIComponent(name)}/rebind${query}`);
  }
  ring(): Promise<unknown> {
    return this.request("GET", "/ring");
  }
  metrics(): Promise<string> {
    return this.request("GET", "/metrics");
  }
  report(options: { redact?: boolean } = {}): Promise<ReportView> {
    return this.request("GET", `/report${options.redact ? "?redact=true" : ""}`);
  }
  adoptOrphans(): Promise<{ orphaned: number }> {
    return this.request("POST", "/ipam/adopt");
  }
  leave(): Promise<{ givenTo?: string; addresses: number }> {
    return this.request("POST", "/leave");
  }
  expose(): Promise<unknown> {
    return this.request("POST", "/expose");
  }
  hide(): Promise<unknown> {
    return this.request("POST", "/hide");
  }
}
