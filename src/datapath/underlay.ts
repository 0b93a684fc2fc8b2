/**
 * Which of this node's addresses peers send pod traffic to (the underlay address).
 *
 * An address given by the operator wins. Otherwise the kernel's route lookup toward the first
 * peer address that has a route decides: the peers' published addresses first, then the
 * addresses the mesh dials or was dialled from (two nodes that know nothing yet but each
 * other's mesh address must both be able to start). A node with no peers needs no underlay
 * address at all: it starts, and its fast path waits. The first address found is kept until
 * the data path stops, because peers program it into their forwarding entries.
 */
import { type UnderlayEndpoint, underlayOf, underlayToward } from "../net/mtu.ts";
import type { Diagnostic } from "./types.ts";

export interface UnderlayCandidate {
  address: string;
  /** Who named it, for people: `peer n2`, `mesh address 192.0.2.7:6783`. */
  from: string;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** The IPv4 address in a mesh address (`host:port`), or undefined for names and IPv6. */
export function ipv4Of(address: string): string | undefined {
  const host = address.replace(/:\d+$/, "");
  const m = IPV4.exec(host);
  return m && m.slice(1).every((part) => Number(part) <= 255) ? host : undefined;
}

type Refusal = UnderlayCandidate & { error: string };

/** How long the same unroutable candidates wait before the kernel is asked again. */
const RETRY_MS = 5000;

/** How many unroutable candidates a diagnostic list names (the rest are alike). */
const REPORTED = 3;

export class UnderlayChoice {
  #explicit?: string;
  #chosen?: UnderlayEndpoint;
  /** Why each candidate of the last attempt was refused. */
  #failures: Refusal[] = [];
  /** The last failed attempt: the same candidates are not asked again before RETRY_MS. */
  #lastAttempt = { key: "", at: -Infinity };
  #now: () => number;

  constructor(explicit?: string, options: { now?: () => number } = {}) {
    this.#explicit = explicit;
    this.#now = options.now ?? (() => performance.now());
  }

  get endpoint(): UnderlayEndpoint | undefined {
    return this.#chosen;
  }

  /**
   * Settles the underlay from `candidates` unless it is settled already; undefined while no
   * candidate has a route. An explicit address that no link holds is an UnderlayError.
   */
  async resolve(candidates: UnderlayCandidate[]): Promise<UnderlayEndpoint | undefined> {
    if (this.#chosen) return this.#chosen;
    if (this.#explicit) return this.#chosen = await underlayOf(this.#explicit);
    // Callers ask on every mesh pass; a route lookup per candidate is a process each.
    const key = candidates.map((c) => c.address).join(",");
    const now = this.#now();
    if (key === this.#lastAttempt.key && now - this.#lastAttempt.at < RETRY_MS) return undefined;
    this.#lastAttempt = { key, at: now };
    const failures: Refusal[] = [];
    const tried = new Set<string>();
    for (const candidate of candidates) {
      if (tried.has(candidate.address)) continue;
      tried.add(candidate.address);
      try {
        this.#chosen = await underlayToward(candidate.address);
        this.#failures = [];
        return this.#chosen;
      } catch (error) {
        failures.push({ ...candidate, error: (error as Error).message });
      }
    }
    this.#failures = failures;
    return undefined;
  }

  /** Forgets the choice (the data path stopped): the next start looks again. */
  reset(): void {
    this.#chosen = undefined;
    this.#failures = [];
    this.#lastAttempt = { key: "", at: -Infinity };
  }

  /**
   * When the pod MTU was chosen before the underlay was known (from a guess) and is too big for
   * it, a warning that says so.
   */
  mtuDiagnostics(options: { podMtu: number; overhead: number }): Diagnostic[] {
    const underlay = this.#chosen;
    if (!underlay) return [];
    const fits = underlay.mtu - options.overhead;
    if (options.podMtu <= fits) return [];
    return [{
      code: "mtu-too-large",
      severity: "warning",
      message: `Pods here got MTU ${options.podMtu}, chosen before the underlay was known ` +
        `(${underlay.device}, MTU ${underlay.mtu}, fits ${fits}): bigger packets need path MTU ` +
        `discovery`,
      fix: `Restart the agent (a known underlay gives the right MTU), or set --mtu ${fits}; ` +
        `pods created before keep theirs until they restart.`,
    }];
  }

  diagnostics(): Diagnostic[] {
    if (this.#chosen) return [];
    return this.#failures.slice(0, REPORTED).map((failure) => ({
      code: "no-route-to-peer",
      severity: "error",
      message: `${failure.error} (the address of ${failure.from}): this node cannot tell which ` +
        `of its addresses peers should send pod traffic to, so it carries none to other nodes`,
      fix: `Add a route toward ${failure.address} (a default route, or one for the peers' ` +
        `network), or start weft with --host set to this node's address on that network.`,
    }));
  }
}
