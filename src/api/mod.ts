/**
 * The admin API: a Hono app built from an `AgentPort` (what it needs from the agent), and a
 * typed client for it. The API knows nothing of the kernel, the mesh or the IPAM; it turns
 * HTTP into calls on the port, and errors into status codes in one place (`onError`): errors
 * that carry their own status (`HttpError` and its subclasses) keep it, the port maps its
 * domain errors through `httpErrorOf`, and anything else is a 500.
 * Tests drive it with `app.request()` against a test double of the port; no socket needed.
 */
export { createApi } from "./app.ts";
export { AgentUnreachableError, ApiClient, ApiError } from "./client.ts";
export * from "./errors.ts";
export * from "./types.ts";
export { buildTopology } from "./topology.ts";
export type * from "./topology.ts";
