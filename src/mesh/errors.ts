/** Domain errors of the mesh; each message names the bad value so logs explain themselves. */

/** A frame that does not parse, has the wrong shape, or is too large; closes that connection. */
export class MalformedFrameError extends Error {
  override name = "MalformedFrameError";
}

/** The handshake failed: versions, names, passwords, or messages in the wrong order. */
export class HandshakeError extends Error {
  override name = "HandshakeError";
}

/** The peer identity could not be loaded or saved in the state dir. */
export class IdentityError extends Error {
  override name = "IdentityError";
}

/** A peer address like `host[:port]` that cannot be understood. */
export class AddressError extends Error {
  override name = "AddressError";
}
