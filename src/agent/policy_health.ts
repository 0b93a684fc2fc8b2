/**
 * What keeps NetworkPolicy enforcement from following the API, as diagnostics (CONTRACTS #1):
 * the informers retry on their own with backoff and only report each failure, so this keeps
 * the latest failure per resource until that resource's informer shows life again (an event or
 * a list) or the failure is older than any retry would be. A watch that merely broke and was
 * resumed is routine and not reported.
 */
import type { Diagnostic } from "../api/mod.ts";
import {
  KubeApiError,
  KubeConnectionError,
  KubeForbiddenError,
  KubeUnauthorizedError,
} from "../kube/mod.ts";

export type PolicyResource = "pods" | "namespaces" | "networkpolicies";
export const POLICY_RESOURCES: readonly PolicyResource[] = [
  "pods",
  "namespaces",
  "networkpolicies",
];

/** Retries back off to 30 s at most, so a failure not repeated for this long is over. */
const FORGET_AFTER_MS = 120_000;

interface Failure {
  diagnostic: Diagnostic;
  at: number;
}

export class PolicyHealth {
  readonly #failures = new Map<PolicyResource | "api", Failure>();
  readonly #now: () => number;

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** An informer's failure (or its listener's, which is weft's bug). */
  report(error: Error): void {
    const diagnostic = describe(error);
    if (!diagnostic) return;
    const resource = resourceOf(error) ?? "api";
    this.#failures.set(resource, { diagnostic, at: this.#now() });
  }

  /** The resource's informer delivered something: whatever failed before works now. */
  recovered(resource: PolicyResource): void {
    this.#failures.delete(resource);
    this.#failures.delete("api");
  }

  diagnostics(): Diagnostic[] {
    const now = this.#now();
    const found: Diagnostic[] = [];
    for (const [resource, failure] of this.#failures) {
      if (now - failure.at > FORGET_AFTER_MS) this.#failures.delete(resource);
      else found.push(failure.diagnostic);
    }
    return found;
  }
}

function resourceOf(error: Error): PolicyResource | undefined {
  const text = error instanceof KubeApiError ? error.path : error.message;
  return POLICY_RESOURCES.find((r) => new RegExp(`/${r}(\\b|$)`).test(text));
}

function describe(error: Error): Diagnostic | undefined {
  if (error instanceof KubeForbiddenError || error instanceof KubeUnauthorizedError) {
    const forbidden = error instanceof KubeForbiddenError;
    return {
      code: forbidden ? "kube-forbidden" : "kube-unauthorized",
      severity: "error",
      message: `NetworkPolicy enforcement cannot read the cluster: ${error.message}`,
      fix: forbidden
        ? "Apply the ClusterRole of manifests/weft.yaml (get, list, watch pods; list, watch " +
          "namespaces and networking.k8s.io networkpolicies) and bind it to weft's ServiceAccount."
        : "Check the agent's credentials: the ServiceAccount token, or the kubeconfig given " +
          "with --kubeconfig.",
    };
  }
  if (error instanceof KubeConnectionError) {
    // a watch that broke or went silent is resumed at once: not worth a person's attention
    if (!/^Cannot reach/.test(error.message)) return undefined;
    return {
      code: "kube-api-unreachable",
      severity: "error",
      message: `NetworkPolicy enforcement cannot reach the API: ${error.message}`,
      fix: "Check that the node reaches the API server (KUBERNETES_SERVICE_HOST, or the " +
        "server in --kubeconfig); changes to pods and policies are not enforced until it does.",
    };
  }
  const api = error instanceof KubeApiError;
  return {
    code: api ? "kube-api-error" : "policy-internal-error",
    severity: "warning",
    message: api
      ? `The API failed a request NetworkPolicy enforcement needs: ${error.message}`
      : `NetworkPolicy enforcement failed to take in a change: ${error.message}`,
    fix: api
      ? "Usually passing (an API server restart); if it stays, look at the API server's log."
      : "This is a bug in weft; include the agent's log when you report it.",
  };
}
