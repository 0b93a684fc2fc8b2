/**
 * The one error type that crosses the plugin's edge. Every failure inside the plugin is turned
 * into a `CniError` exactly once, in the dispatcher, and printed as the spec's error JSON; the
 * handlers throw whatever is natural and let `toCniError` decide the code.
 */

/** Error codes from the CNI spec (1.1.0), plus weft's own in the 100+ space. */
export const CniCode = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  containerUnknown: 3,
  invalidEnvironment: 4,
  ioFailure: 5,
  decodeFailure: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  pluginNotAvailable: 50,
  pluginNotAvailableLimited: 51,
  /** A kernel operation (ip, nsenter) failed for a reason not listed below. */
  kernelFailure: 100,
  /** ADD found the pod interface or its host-side veth already present. */
  interfaceExists: 101,
  /** The pod already has a default route and the config asks weft to add one. */
  defaultRouteConflict: 102,
  /** The agent answered with an error that retrying will not fix. */
  agentRejected: 103,
  /** CHECK found the attachment differs from what ADD made. */
  checkFailed: 104,
  /** Anything we did not foresee; the message carries the original error. */
  unexpected: 199,
} as const;

export type CniCodeValue = (typeof CniCode)[keyof typeof CniCode];

export class CniError extends Error {
  readonly code: number;
  readonly details: string;

  constructor(code: number, message: string, options: { details?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "CniError";
    this.code = code;
    this.details = options.details ?? "";
  }

  /** The spec's error object; `cniVersion` is the request's when we got far enough to know it. */
  toJson(cniVersion: string): { cniVersion: string; code: number; msg: string; details: string } {
    return { cniVersion, code: this.code, msg: this.message, details: this.details };
  }
}

/** Wraps anything thrown by a handler; known errors keep their meaning, the rest become 199. */
export function toCniError(error: unknown): CniError {
  if (error instanceof CniError) return error;
  if (error instanceof Error) {
    return new CniError(CniCode.unexpected, error.message, { details: error.name, cause: error });
  }
  return new CniError(CniCode.unexpected, String(error));
}
