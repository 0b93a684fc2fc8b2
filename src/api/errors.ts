/**
 * Errors that carry their own HTTP status, as hono's HTTPException does: whoever knows what went
 * wrong picks the status where it throws, and the API's one `onError` turns the error into
 * `{"error": message}` with that status. The agent turns its domain errors (IPAM, mesh) into
 * these through one table (`AgentPort.httpErrorOf`); anything else reaching `onError` is a bug
 * and answers 500, never a guessed 4xx.
 */

export type ErrorStatus = 400 | 403 | 404 | 408 | 409 | 413 | 500 | 503 | 507;

export class HttpError extends Error {
  /** Extra fields for the JSON body beside `error` (e.g. `retry: true`). */
  readonly body: Record<string, unknown>;

  constructor(
    readonly status: ErrorStatus,
    message: string,
    options: ErrorOptions & { body?: Record<string, unknown> } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.body = options.body ?? {};
  }
}

/** A base class for errors of one status: subclasses only name the meaning. */
function ofStatus(status: ErrorStatus, body?: Record<string, unknown>) {
  return class extends HttpError {
    constructor(message: string, options?: ErrorOptions) {
      super(status, message, { ...options, body });
    }
  };
}

/** Bad input the caller can fix: 400. */
export class BadRequestError extends ofStatus(400) {}

/** The thing named does not exist (or this agent does not offer the operation): 404. */
export class NotFoundError extends ofStatus(404) {}

/** The request contradicts the current state (a reachable peer to rmpeer, ...): 409. */
export class ConflictError extends ofStatus(409) {}

/** A request body over the API's limit, refused before it is buffered: 413. */
export class PayloadTooLargeError extends ofStatus(413) {}

/**
 * The agent is alive but cannot do this now (IPAM waiting for its first split, the state
 * directory read-only, too many requests at once): 503, and the body says to retry.
 */
export class UnavailableError extends ofStatus(503, { retry: true }) {}

/** No room: no free address anywhere this node could get one, or no space on the disk: 507. */
export class ExhaustedError extends ofStatus(507) {}
