/**
 * Gathering what explains a node that is not ready or not healthy (CONTRACTS #1). The IPAM,
 * the mesh and the data path each declare the same `Diagnostic` shape and expose
 * `diagnostics()`; node set-up and the reclaimer are the agent's own. A component that cannot
 * explain itself yet still must not leave a not-ready node with an empty list: `fallback`
 * turns its one-line reason into a diagnostic.
 */
import type { Diagnostic } from "../api/mod.ts";

/** Anything that may be able to explain itself. */
export interface Diagnosable {
  diagnostics?(): Diagnostic[];
}

/** Everyone's diagnostics, errors before warnings, without repeats. */
export function gatherDiagnostics(sources: Array<Diagnosable | undefined>): Diagnostic[] {
  const seen = new Set<string>();
  const all: Diagnostic[] = [];
  for (const source of sources) {
    let found: Diagnostic[];
    try {
      found = source?.diagnostics?.() ?? [];
    } catch (error) {
      // a component that fails to explain itself is itself a problem, not a reason to fail status
      found = [{
        code: "diagnostics-failed",
        severity: "warning",
        message: `A component could not report its diagnostics: ${(error as Error).message}`,
        fix: "This is a bug in weft; include `weft report` when you report it.",
      }];
    }
    for (const diagnostic of found) {
      const key = `${diagnostic.code}\n${diagnostic.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      all.push(diagnostic);
    }
  }
  return all.sort((a, b) => rank(a) - rank(b));
}

function rank(diagnostic: Diagnostic): number {
  return diagnostic.severity === "error" ? 0 : 1;
}

/** A source with a fixed list: for a component that explains itself through a reason only. */
export function fixed(diagnostics: Diagnostic[]): Diagnosable {
  return { diagnostics: () => diagnostics };
}
