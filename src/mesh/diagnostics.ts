/**
 * What the mesh can say about why this node is not working as it should, in the shape every area
 * of weft uses (CONTRACTS #1: the agent gathers them into GET /status `problems`). Findings that
 * come from evidence seen at one moment (a peer that answered with our name) are kept while the
 * evidence keeps coming and dropped some time after it stops, so a fixed problem clears itself.
 */
import { hostOf } from "./address.ts";
import type { Target } from "./connection_maker.ts";

export interface Diagnostic {
  /** A stable kebab-case id, e.g. "name-collision". */
  code: string;
  severity: "error" | "warning";
  /** What is wrong, with specifics (names, addresses, numbers). */
  message: string;
  /** What a person should do about it. */
  fix: string;
}

/** Findings keyed by what they are about, each forgotten `keepMs` after it was last reported. */
export class Findings {
  #items = new Map<string, { diagnostic: Diagnostic; at: number }>();
  #keepMs: number;

  constructor(options: { keepMs: number }) {
    this.#keepMs = options.keepMs;
  }

  /** Records (or refreshes) a finding; true when it is new, so the caller logs it once. */
  report(key: string, diagnostic: Diagnostic, now: number): boolean {
    const fresh = !this.#items.has(key);
    this.#items.set(key, { diagnostic, at: now });
    return fresh;
  }

  clear(key: string): void {
    this.#items.delete(key);
  }

  list(now: number): Diagnostic[] {
    const list: Diagnostic[] = [];
    for (const [key, item] of this.#items) {
      if (now - item.at > this.#keepMs) this.#items.delete(key);
      else list.push(item.diagnostic);
    }
    return list;
  }
}

const NO_ROUTE = /no route|unreachable|timed? ?out|timeout/i;

/** A dial target that keeps failing: no route (or a timeout), or refused for another reason. */
export function targetDiagnostic(target: Target): Diagnostic | undefined {
  if (target.state !== "failed" && target.state !== "retrying") return undefined;
  if (target.lastError === undefined) return undefined;
  const error = target.lastError;
  // Reported as a name collision, with the fix, by CollisionWatch.
  if (/name collision/i.test(error)) return undefined;
  const port = target.address.slice(target.address.lastIndexOf(":") + 1);
  if (NO_ROUTE.test(error)) {
    return {
      code: "no-route-to-peer",
      severity: "warning",
      message: `No route to peer ${target.address}: ${error}`,
      fix: `Check that ${
        hostOf(target.address)
      } is up and that this node can reach it on TCP ${port} (routes, firewalls, security groups); or remove it from --peers with 'weft forget ${target.address}'.`,
    };
  }
  return {
    code: "peer-connection-failed",
    severity: "warning",
    message: `Cannot connect to peer ${target.address}: ${error}`,
    fix: /password/i.test(error)
      ? "Give every node the same password (--password-file, WEFT_PASSWORD or WEAVE_PASSWORD)."
      : `Check that weft runs on ${hostOf(target.address)} and listens on port ${port}.`,
  };
}
