/**
 * API failures as classes by meaning, so callers branch with `instanceof` (an informer relists
 * on {@link KubeGoneError}, a claimer re-reads on {@link KubeConflictError}) and people get a
 * message that says what to fix, not just a status code. The message is built once, in the base
 * class, from the status; the subclasses exist only to be caught by meaning.
 */

/** The parts of a Kubernetes `Status` object the client keeps. */
export interface KubeStatus {
  code?: number;
  reason?: string;
  message?: string;
}

export interface KubeApiErrorDetails {
  status: number;
  method: string;
  path: string;
  server: string;
  reason?: string;
  apiMessage?: string;
  /** Where the credentials came from (a kubeconfig path, `in-cluster`), named on a 401. */
  source?: string;
}

/** Any non-2xx answer from the API server (or a watch ERROR event). */
export class KubeApiError extends Error {
  override name = "KubeApiError";
  readonly status: number;
  readonly reason?: string;
  readonly method: string;
  readonly path: string;

  constructor(details: KubeApiErrorDetails) {
    super(describe(details));
    this.status = details.status;
    this.reason = details.reason;
    this.method = details.method;
    this.path = details.path;
  }
}

export class KubeUnauthorizedError extends KubeApiError {
  override name = "KubeUnauthorizedError";
}

export class KubeForbiddenError extends KubeApiError {
  override name = "KubeForbiddenError";
}

export class KubeNotFoundError extends KubeApiError {
  override name = "KubeNotFoundError";
}

/** 409: an update lost an optimistic-concurrency race, or a create found the object present. */
export class KubeConflictError extends KubeApiError {
  override name = "KubeConflictError";
}

/** 410: the resourceVersion a watch (or a list's continue token) asked for has expired. */
export class KubeGoneError extends KubeApiError {
  override name = "KubeGoneError";
}

/** The API server could not be reached, or a stream broke or went silent. */
export class KubeConnectionError extends Error {
  override name = "KubeConnectionError";
}

const BY_STATUS: Record<number, typeof KubeApiError> = {
  401: KubeUnauthorizedError,
  403: KubeForbiddenError,
  404: KubeNotFoundError,
  409: KubeConflictError,
  410: KubeGoneError,
};

/** Picks the class for a status code. */
export function kubeApiErrorFor(details: KubeApiErrorDetails): KubeApiError {
  return new (BY_STATUS[details.status] ?? KubeApiError)(details);
}

function describe(details: KubeApiErrorDetails): string {
  const { server, method, path, status, reason, apiMessage } = details;
  const said = apiMessage ? `: ${apiMessage}` : "";
  switch (status) {
    case 401:
      return `Kubernetes API at ${server} rejected the credentials from ` +
        `${details.source ?? "the configuration"} on ${method} ${path} (401 Unauthorized): the ` +
        "token or client certificate is missing, expired or not trusted by this cluster";
    case 403:
      return `Kubernetes API at ${server} refused ${method} ${path} (403 Forbidden)${said}; ` +
        "the weft ServiceAccount needs the ClusterRole and Role from manifests/weft.yaml";
    default:
      return `Kubernetes API at ${server} answered ${method} ${path} with ${status}` +
        `${reason ? ` ${reason}` : ""}${said}`;
  }
}
