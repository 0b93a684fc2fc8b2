/**
 * The agent's composition root. `Agent.launch(config)` builds and starts one node's share of
 * weft; `resetNode` removes it. Configuration comes from flags and environment through
 * `resolveAgentConfig`, validated once. The agent is the only place that knows all the other
 * modules: ipam, mesh and datapath never import each other, the agent wires their events.
 */
export { Agent, type AgentOptions } from "./agent.ts";
export { BRIDGE_CONTAINER_ID, type NodePhase } from "./node_setup.ts";
export {
  AGENT_ENV_NAMES,
  type AgentConfig,
  type AgentFlags,
  ConfigError,
  DEFAULTS,
  resolveAgentConfig,
} from "./config.ts";
export { POD_VETH_PREFIX, resetNode } from "./reset.ts";
