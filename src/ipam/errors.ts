/**
 * The IPAM's error classes. The CNI edge maps them to codes: `NotReadyError` and
 * `NoSpaceError` become "try again later" (11) because both can clear on their own (the
 * first split is agreed, a peer donates space, a pod is deleted). So does
 * `StoreUnavailableError` (the disk fills up or turns read-only; service resumes by itself).
 */

/** No free address in what this node owns, and no peer could give it more. */
export class NoSpaceError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NoSpaceError";
  }
}

/** The IPAM cannot hand out addresses yet, e.g. the initial split has not been agreed. */
export class NotReadyError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NotReadyError";
  }
}

/**
 * `adoptOrphans()` cannot take the ring's space now; `reason` says which precondition fails
 * and the message says what to do (wait, remove a peer, or nothing to adopt at all).
 */
export class CannotAdoptError extends Error {
  constructor(
    message: string,
    readonly reason: "no-ring" | "owned" | "not-live" | "unacknowledged" | "disagreement",
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "CannotAdoptError";
  }
}

/**
 * A request contradicts what is already recorded: the same (container, interface) asked for
 * an address in another subnet, or a state file written for another cluster range.
 */
export class IpamConflictError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "IpamConflictError";
  }
}

/** Why the state file cannot be written: `full` (no space), `read-only`, or another `io` error. */
export type StoreFailure = "full" | "read-only" | "io";

/**
 * The IPAM's state file cannot be written (or read): the disk is full, the file system or the
 * file is read-only, or an I/O error. The message names the database and what to do. Nothing
 * the failed write would have changed took effect (no address handed out, no ring change sent),
 * and the IPAM resumes by itself once the store works again.
 */
export class StoreUnavailableError extends Error {
  constructor(
    message: string,
    readonly reason: StoreFailure,
    readonly path: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "StoreUnavailableError";
  }
}
