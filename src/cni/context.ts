/**
 * What every verb handler receives. The config is parsed on first use so that VERSION, which
 * may arrive with an empty or partial stdin, never trips over validation meant for ADD.
 */

import type { AgentApi } from "./agent_client.ts";
import { type CniEnvironment, parseConfig, type WeftConfig } from "./config.ts";
import type { PodKernel } from "./kernel.ts";

export class HandlerContext {
  readonly env: CniEnvironment;
  readonly stdin: string;
  readonly kernel: PodKernel;
  readonly #agentFor: (address: string) => AgentApi;
  #config: WeftConfig | undefined;
  #agent: AgentApi | undefined;

  constructor(
    env: CniEnvironment,
    options: { stdin: string; kernel: PodKernel; agentFor: (address: string) => AgentApi },
  ) {
    this.env = env;
    this.stdin = options.stdin;
    this.kernel = options.kernel;
    this.#agentFor = options.agentFor;
  }

  get config(): WeftConfig {
    this.#config ??= parseConfig(this.stdin);
    return this.#config;
  }

  /** The agent named by the config (`"agent"`, default 127.0.0.1:6784). */
  get agent(): AgentApi {
    this.#agent ??= this.#agentFor(this.config.agent);
    return this.#agent;
  }
}

export type Handler = (context: HandlerContext) => Promise<object | undefined>;
