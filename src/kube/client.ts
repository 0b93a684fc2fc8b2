/**
 * A small fetch-based Kubernetes API client: JSON requests and watch streams, nothing else.
 * The official client pulls in a large dependency tree; weft needs five endpoints and must keep
 * the CNI plugin's start-up path free of all of it, so this module is only loaded by the agent.
 */
import type { KubeConfig } from "./config.ts";
import {
  kubeApiErrorFor,
  KubeConnectionError,
  type KubeStatus,
  KubeUnauthorizedError,
} from "./errors.ts";

export type QueryValue = string | number | boolean | undefined;

export interface KubeRequestOptions {
  query?: Record<string, QueryValue>;
  /** Serialized as JSON. */
  body?: unknown;
  /** Defaults to `application/json`; patches name their flavour here. */
  contentType?: string;
  signal?: AbortSignal;
}

export interface KubeWatchOptions {
  query?: Record<string, QueryValue>;
  signal?: AbortSignal;
  /**
   * A watch that sends nothing (not even a bookmark) for this long is treated as broken: half-dead
   * TCP connections otherwise leave a watcher waiting forever.
   */
  idleTimeoutMs?: number;
  /**
   * An event longer than this (in characters) ends the watch as broken instead of growing the
   * buffer without bound. The API server stores objects of at most about 1.5 MB.
   */
  maxEventLength?: number;
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK";

export interface WatchEvent<T> {
  type: WatchEventType;
  object: T;
}

export interface KubeClientOptions {
  /** Replaces the global fetch (tests route requests to an in-memory server). */
  fetch?: typeof fetch;
  now?: () => number;
  /** How long a token read from `tokenFile` is trusted before re-reading. */
  tokenRefreshMs?: number;
}

const WATCH_EVENT_TYPES = new Set(["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]);

export class KubeClient {
  readonly #config: KubeConfig;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #tokenRefreshMs: number;
  #httpClient?: Deno.HttpClient;
  #cachedToken?: { value: string; readAt: number };

  constructor(config: KubeConfig, options: KubeClientOptions = {}) {
    this.#config = config;
    this.#fetch = options.fetch ?? fetch;
    this.#now = options.now ?? Date.now;
    this.#tokenRefreshMs = options.tokenRefreshMs ?? 60_000;
    const tls = config.server.startsWith("https:");
    if (tls && (config.caPem || config.clientCertPem)) {
      this.#httpClient = Deno.createHttpClient({
        caCerts: config.caPem ? [config.caPem] : undefined,
        ...(config.clientCertPem && config.clientKeyPem
          ? { cert: config.clientCertPem, key: config.clientKeyPem }
          : {}),
      });
    }
  }

  get server(): string {
    return this.#config.server;
  }

  /** Sends one request and returns the decoded JSON body; throws a `KubeApiError` subclass. */
  async request<T>(method: string, path: string, options: KubeRequestOptions = {}): Promise<T> {
    const response = await this.#send(method, path, options);
    return await response.json() as T;
  }

  /**
   * Streams watch events for a collection path. Ends when the server closes the stream
   * (e.g. `timeoutSeconds`); throws `KubeGoneError` when the resourceVersion has expired, and
   * returns quietly when `signal` aborts.
   */
  async *watch<T>(path: string, options: KubeWatchOptions = {}): AsyncGenerator<WatchEvent<T>> {
    const { signal, idleTimeoutMs = 600_000, maxEventLength = 16 * 2 ** 20 } = options;
    const controller = new AbortController();
    const forwardAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener("abort", forwardAbort, { once: true });
    let idleTimer: ReturnType<typeof setTimeout> | undefined;
    let stalled = false;
    const arm = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        stalled = true;
        controller.abort();
      }, idleTimeoutMs);
    };
    try {
      if (signal?.aborted) return;
      let response: Response;
      try {
        response = await this.#send("GET", path, {
          query: { ...options.query, watch: "true" },
          signal: controller.signal,
        });
      } catch (error) {
        if (signal?.aborted) return;
        throw error;
      }
      arm();
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      try {
        while (true) {
          let chunk: ReadableStreamReadResult<string>;
          try {
            chunk = await reader.read();
          } catch (error) {
            if (signal?.aborted) return;
            throw new KubeConnectionError(
              stalled
                ? `Watch of ${path} at ${this.server} was silent for ${idleTimeoutMs} ms`
                : `Watch of ${path} at ${this.server} broke: ${(error as Error).message}`,
              { cause: error },
            );
          }
          if (chunk.done) break;
          arm();
          buffer += chunk.value;
          let newline: number;
          while ((newline = buffer.indexOf("\n")) >= 0) {
            const line = buffer.slice(0, newline).trim();
            buffer = buffer.slice(newline + 1);
            if (line) yield this.#watchEvent<T>(line, path);
          }
          if (buffer.length > maxEventLength) {
            throw new KubeConnectionError(
              `Watch of ${path} at ${this.server} sent an event longer than ${maxEventLength} ` +
                "characters",
            );
          }
        }
        if (buffer.trim()) yield this.#watchEvent<T>(buffer.trim(), path);
      } finally {
        await reader.cancel().catch(() => {});
      }
    } finally {
      clearTimeout(idleTimer);
      signal?.removeEventListener("abort", forwardAbort);
    }
  }

  /** Releases the TLS connection pool, if one was made. */
  close(): void {
    this.#httpClient?.close();
    this.#httpClient = undefined;
  }

  #watchEvent<T>(line: string, path: string): WatchEvent<T> {
    let event: { type?: string; object?: unknown };
    try {
      event = JSON.parse(line);
    } catch (error) {
      throw new KubeConnectionError(
        `Watch of ${path} at ${this.server} sent a line that is not JSON: ${line.slice(0, 120)}`,
        { cause: error },
      );
    }
    if (event.type === "ERROR") {
      const status = (event.object ?? {}) as KubeStatus;
      throw kubeApiErrorFor({
        status: status.code ?? 500,
        method: "WATCH",
        path,
        server: this.server,
        reason: status.reason,
        apiMessage: status.message,
        source: this.#config.source,
      });
    }
    if (!event.type || !WATCH_EVENT_TYPES.has(event.type) || typeof event.object !== "object") {
      throw new KubeConnectionError(
        `Watch of ${path} at ${this.server} sent an unknown event: ${line.slice(0, 120)}`,
      );
    }
    return event as WatchEvent<T>;
  }

  async #send(method: string, path: string, options: KubeRequestOptions): Promise<Response> {
    // Concatenate rather than resolve: a server URL may carry a path prefix (API proxies).
    const url = new URL(`${this.#config.server}${path}`);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers = new Headers({ accept: "application/json" });
    const token = await this.#token();
    if (token) headers.set("authorization", `Bearer ${token}`);
    let body: string | undefined;
    if (options.body !== undefined) {
      headers.set("content-type", options.contentType ?? "application/json");
      body = JSON.stringify(options.body);
    }
    let response: Response;
    try {
      response = await this.#fetch(url, {
        method,
        headers,
        body,
        signal: options.signal,
        ...(this.#httpClient ? { client: this.#httpClient } : {}),
      });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      throw new KubeConnectionError(
        `Cannot reach Kubernetes API at ${this.server} for ${method} ${path}: ${
          (error as Error).message
        }`,
        { cause: error },
      );
    }
    if (response.ok) return response;
    const text = await response.text().catch(() => "");
    let status: KubeStatus = {};
    try {
      status = JSON.parse(text);
    } catch {
      status = { message: text.slice(0, 200) || undefined };
    }
    throw kubeApiErrorFor({
      status: response.status,
      method,
      path,
      server: this.server,
      reason: status.reason,
      apiMessage: status.message,
      source: this.#config.source,
    });
  }

  async #token(): Promise<string | undefined> {
    if (this.#config.token) return this.#config.token;
    const file = this.#config.tokenFile;
    if (!file) return undefined;
    const cached = this.#cachedToken;
    if (cached && this.#now() - cached.readAt < this.#tokenRefreshMs) return cached.value;
    try {
      const value = (await Deno.readTextFile(file)).trim();
      this.#cachedToken = { value, readAt: this.#now() };
      return value;
    } catch (error) {
      // A transient failure during the kubelet's rewrite: keep using the last good token.
      if (cached) return cached.value;
      throw new KubeUnauthorizedError({
        status: 401,
        method: "READ",
        path: file,
        server: this.server,
        source: `token file "${file}" (${(error as Error).message})`,
      });
    }
  }
}
