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
import {
  CannotAdoptError,
  IpamConflictError,
  NoSpaceError,
  NotReadyError,
  StoreUnavailableError,
} from "../ipam/mod.ts";
import { AddressError } from "../mesh/mod.ts";

// deno-lint-ignore no-explicit-any
type ErrorClass<E extends Error> = new (...args: any[]) => E;

function entry<E extends Error>(
  type: ErrorClass<E>,
  make: (error: E, options: ErrorOptions) => HttpError,
) {
  return { type, make: make as (error: Error, options: ErrorOptions) => HttpError };
}

const TABLE = [
  // the first split is not agreed yet, or this node was just reclaimed: it clears by itself
  entry(NotReadyError, (e, o) => new UnavailableError(e.message, o)),
  // no free address this node could get, as Weave Net answered
  entry(NoSpaceError, (e, o) => new ExhaustedError(e.message, o)),
  // the same container and interface asked for an address in another subnet
  entry(IpamConflictError, (e, o) => new ConflictError(e.message, o)),
  // weft ipam adopt: waiting for the live peers to agree clears by itself; the rest (nothing is
  // orphaned, no ring, this peer left) contradicts the ring as it is
  entry(
    CannotAdoptError,
    (e, o) =>
      e.reason === "unacknowledged" || e.reason === "disagreement"
        ? new UnavailableError(e.message, o)
        : new ConflictError(e.message, o),
  ),
  // the state file cannot be written: no space is 507 as for addresses (the message says which
  // disk), read-only or an I/O error is 503 (the IPAM resumes by itself once it is fixed)
  entry(
    StoreUnavailableError,
    (e, o) =>
      e.reason === "full" ? new ExhaustedError(e.message, o) : new UnavailableError(e.message, o),
  ),
  // a peer address the mesh cannot parse (connect / forget)
  entry(AddressError, (e, o) => new BadRequestError(e.message, o)),
];

export function httpErrorOf(error: unknown): HttpError | undefined {
  for (const { type, make } of TABLE) {
    if (error instanceof type) return make(error, { cause: error });
  }
  return undefined;
}
