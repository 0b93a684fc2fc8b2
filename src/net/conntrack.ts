/**
 * Connection tracking entries, through the `conntrack` tool (Debian's conntrack package).
 *
 * Firewalls that accept `ct state established` (weft's NetworkPolicy table does) let a tracked
 * connection outlive the rules that admitted it. When an address is released, its entries
 * must go before the address is handed to another pod, or the new pod inherits the old one's
 * open connections. An address can appear in an entry as the original source, the original
 * destination, or (behind DNAT, e.g. a Service) only as the reply's source: each is one run.
 */
import { CommandError, run } from "./exec.ts";

export class ConntrackError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConntrackError";
  }
}

const FILTERS = ["--orig-src", "--orig-dst", "--reply-src"] as const;

/** Deletes every entry `address` takes part in; returns how many were deleted. */
export async function deleteConntrackEntries(address: string): Promise<number> {
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(address)) {
    throw new TypeError(`Invalid IPv4 address "${address}"`);
  }
  let total = 0;
  // one after another: an entry matched by two filters must not be deleted by both at once
  for (const filter of FILTERS) {
    const command = ["conntrack", "-D", filter, address];
    let result;
    try {
      result = await run(command, { allowFailure: true });
    } catch (error) {
      if (error instanceof CommandError && error.code === 127) {
        throw new ConntrackError(
          "conntrack is not installed: weft needs the conntrack package (apt-get install conntrack)",
          { cause: error },
        );
      }
      throw error;
    }
    // "N flow entries have been deleted." on stderr; with none deleted the exit code is 1
    const deleted = /(\d+) flow entr(?:y has|ies have) been deleted/.exec(result.stderr);
    if (!deleted) {
      throw new ConntrackError(
        `${command.join(" ")} failed (exit ${result.code}): ${result.stderr.trim() || "no output"}`,
      );
    }
    total += Number(deleted[1]);
  }
  return total;
}
