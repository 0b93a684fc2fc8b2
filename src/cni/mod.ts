/**
 * weft's CNI plugin: the runtime runs the `weft` executable with CNI_COMMAND set, and main.ts
 * hands over to `runPlugin` here.
 *
 * Design notes:
 * - The plugin owns no state. Addresses come from the node agent over HTTP on loopback; the
 *   node-side veth name is a hash of (container, interface), so DEL needs neither netns nor
 *   records. A dead agent makes ADD/DEL answer 11 (retry) and STATUS 50.
 * - Kernel work is rtnetlink from inside the process (src/net/netlink.ts), because starting
 *   processes is what an ADD costs; without FFI (or with WEFT_NETLINK=0) it falls back to two
 *   `ip -batch` processes (node side, pod side via nsenter). The veth and the agent's
 *   allocation are made concurrently; see add.ts for why that is safe.
 * - Handlers see two interfaces, `AgentApi` and `PodKernel`, with in-memory versions in
 *   memory.ts, so every error path is tested without root.
 * - Default route: by default the weft interface gets `default via <bridge address>`. A pod
 *   that already has a default route (another network attached first with a gateway) makes
 *   ADD fail with code 102 and undo itself, rather than silently losing one of the two
 *   routes; `"defaultRoute": false` attaches weft as a secondary network (range route only).
 * - Start-up stays lean: nothing here imports hono, prom-client, commander or sqlite.
 * - Nothing is trusted: stdin is capped at 1 MiB before it is buffered, CNI_NETNS must name a
 *   network namespace other than the node's own, and `agent` must be a loopback address; each
 *   is refused with its own code before any kernel work (docs/footprint.md).
 */

export { runPlugin } from "./dispatcher.ts";
export type { PluginIo, PluginOptions } from "./dispatcher.ts";
export { CniCode, CniError } from "./errors.ts";
export { type Attachment, parseConfig, parseEnvironment, type WeftConfig } from "./config.ts";
export type { AgentApi, AgentStatus, Allocation } from "./agent_client.ts";
export { HttpAgentClient } from "./agent_client.ts";
export type { PodKernel } from "./kernel.ts";
export { MemoryAgent, MemoryKernel } from "./memory.ts";
export { HOST_VETH_PREFIX, hostVethName } from "./names.ts";
export { type CniResult, SUPPORTED_VERSIONS } from "./spec.ts";
