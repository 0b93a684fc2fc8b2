/**
 * Gathering what explains a node that is not ready or not healthy (CONTRACTS #1). The IPAM,
 * the mesh and the data path each declare the same `Diagnostic` shape and expose
 * `diagnostics()`; node set-up and the reclaimer are the agent's own. A component that cannot
 * explain itself yet (or explains nothing while not ready) still must not leave a not-ready node
 * with an empty list: its one-line reason becomes a diagnostic.
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

/** The IPAM's diagnostics; while it is not ready and says nothing more, its one-line reason. */
export function ipamDiagnostics(
  ipam: Diagnosable,
  view: { ready: boolean; reason?: string },
): Diagnostic[] {
  const own = gatherDiagnostics([ipam]);
  if (view.ready || own.some((d) => d.severity === "error")) return own;
  return [{
    code: "ipam-not-ready",
    severity: "error",
    message: `The IPAM is not ready: ${view.reason ?? "no reason given"}`,
    fix: "See `weft status ipam` for the peers it knows and waits for.",
  }, ...own];
}

/** All of the node's problems; while it is not ready, at least one error that says why. */
export function nodeProblems(
  sources: Array<Diagnosable | undefined>,
  options: { reason?: string },
): Diagnostic[] {
  const problems = gatherDiagnostics(sources);
  if (options.reason !== undefined && !problems.some((p) => p.severity === "error")) {
    problems.unshift({
      code: "not-ready",
      severity: "error",
      message: `The node is not ready: ${options.reason}`,
      fix: "Wait a few seconds; if it stays, look at the agent's log (`weft report`).",
    });
  }
  return problems;
}
