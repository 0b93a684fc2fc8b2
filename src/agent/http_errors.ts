/**
 * The one table from the agent's domain errors to HTTP. The API cannot know the IPAM's or the
 * mesh's errors (it imports neither); the agent can, so it answers `AgentPort.httpErrorOf` from
 * here. Only the error classes listed become 4xx/5xx with a meaning; anything else (a
 * TypeError, a RangeError: a bug) is left undefined and the API answers 500.
 */
import {
  BadRequestError,
  ConflictError,
  ExhaustedError,
  type HttpError,
  UnavailableError,
} from "../api/mod.ts";
import { IpamConflictError, NoSpaceError, NotReadyError } from "../ipam/mod.ts";
import { AddressError } from "../mesh/mod.ts";

type ErrorClass = new (...args: never[]) => Error;

const TABLE: Array<[ErrorClass, (message: string, options: ErrorOptions) => HttpError]> = [
  // the first split is not agreed yet, or this node was just reclaimed: it clears by itself
  [NotReadyError, (m, o) => new UnavailableError(m, o)],
  // no free address this node could get, as Weave Net answered
  [NoSpaceError, (m, o) => new ExhaustedError(m, o)],
  // the same container and interface asked for an address in another subnet
  [IpamConflictError, (m, o) => new ConflictError(m, o)],
  // a peer address the mesh cannot parse (connect / forget)
  [AddressError, (m, o) => new BadRequestError(m, o)],
];

export function httpErrorOf(error: unknown): HttpError | undefined {
  for (const [type, make] of TABLE) {
    if (error instanceof type) return make(error.message, { cause: error });
  }
  return undefined;
}
