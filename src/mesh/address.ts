/** Peer addresses as people type them (`host`, `host:port`, `[v6]:port`), made canonical. */
import { AddressError } from "./errors.ts";

export const DEFAULT_PORT = 6783;

/** `host[:port]` -> `host:port`, defaulting the port; throws `AddressError` naming bad input. */
export function normalizeAddress(text: string, options: { defaultPort?: number } = {}): string {
  const port = options.defaultPort ?? DEFAULT_PORT;
  const value = text.trim();
  const v6 = /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(value);
  const plain = /^([A-Za-z0-9][A-Za-z0-9.-]*)(?::(\d{1,5}))?$/.exec(value);
  const match = v6 ?? plain;
  const portNumber = match?.[2] === undefined ? port : Number(match[2]);
  if (!match || portNumber < 1 || portNumber > 65535) {
    throw new AddressError(`Invalid peer address "${text}": expected host[:port]`);
  }
  return v6 ? `[${match[1]}]:${portNumber}` : `${match[1]}:${portNumber}`;
}

/** The host part of `host:port`, brackets kept for IPv6. */
export function hostOf(address: string): string {
  const colon = address.lastIndexOf(":");
  return colon < 0 ? address : address.slice(0, colon);
}
