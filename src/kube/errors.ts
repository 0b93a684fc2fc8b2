/**
 * API failures as classes by meaning, so callers branch with `instanceof` (a watcher relists on
 * {@link KubeGoneError}, a claimer re-reads on {@link KubeConflictError}) and people get a
 * message that says what to fix, not just a status code.
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
}

/** Any non-2xx answer from the API server (or a watch ERROR event). */
export class KubeApiError extends Error {
  readonly status: number;
  readonly reason?: string;
  readonly method: string;
  readonly path: string;

  constructor(details: KubeApiErrorDetails, message?: string) {
    super(
      message ??
        `Kubernetes API at ${details.server} answered ${details.method} ${details.path} with ` +
          `${details.status}${details.reason ? ` ${details.reason}` : ""}${
            details.apiMessage ? `: ${details.apiMessage}` : ""
          }`,
    );
    this.name = "KubeApiError";
    this.status = details.status;
    this.reason = details.reason;
    this.method = details.method;
    this.path = details.path;
  }
}

export class KubeUnauthorizedError extends KubeApiError {
  constructor(details: KubeApiErrorDetails, source: string) {
    super(
      details,
      `Kubernetes API at ${details.server} rejected the credentials from ${source} on ` +
        `${details.method} ${details.path} (401 Unauthorized): the token or client certificate ` +
        "is missing, expired or not trusted by this cluster",
    );
    this.name = "KubeUnauthorizedError";
  }
}

export class KubeForbiddenError extends KubeApiError {
  constructor(details: KubeApiErrorDetails) {
    super(
      details,
      `Kubernetes API at ${details.server} refused ${details.method} ${details.path} ` +
        `(403 Forbidden)${details.apiMessage ? `: ${details.apiMessage}` : ""}; the weft ` +
        "ServiceAccount needs the ClusterRole and Role from manifests/weft.yaml",
    );
    this.name = "KubeForbiddenError";
  }
}

export class KubeNotFoundError extends KubeApiError {
  constructor(details: KubeApiErrorDetails) {
    super(details);
    this.name = "KubeNotFoundError";
  }
}

/** 409: an update lost an optimistic-concurrency race, or a create found the object present. */
export class KubeConflictError extends KubeApiError {
  constructor(details: KubeApiErrorDetails) {
    super(details);
    this.name = "KubeConflictError";
  }
}

/** 410: the resourceVersion a watch asked for has been compacted away; relist. */
export class KubeGoneError extends KubeApiError {
  constructor(details: KubeApiErrorDetails) {
    super(details);
    this.name = "KubeGoneError";
  }
}

/** The API server could not be reached, or a stream broke or went silent. */
export class KubeConnectionError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KubeConnectionError";
  }
}

/** Picks the class for a status code; `source` names the credentials for 401 messages. */
export function kubeApiErrorFor(details: KubeApiErrorDetails, source: string): KubeApiError {
  switch (details.status) {
    case 401:
      return new KubeUnauthorizedError(details, source);
    case 403:
      return new KubeForbiddenError(details);
    case 404:
      return new KubeNotFoundError(details);
    case 409:
      return new KubeConflictError(details);
    case 410:
      return new KubeGoneError(details);
    default:
      return new KubeApiError(details);
  }
}
