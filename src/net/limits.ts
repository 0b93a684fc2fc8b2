/**
 * The process's resource limits, read from /proc/self/limits. Deno already raises the soft
 * open-file limit to the hard one when it starts, so nothing here sets limits: listeners size
 * their budgets from what the process really has.
 */

/** Parses the "Max open files" soft limit out of /proc/<pid>/limits text; undefined if absent. */
export function parseOpenFileLimit(text: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith("Max open files"));
  const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
  if (soft === undefined) return undefined;
  if (soft === "unlimited") return Number.MAX_SAFE_INTEGER;
  const value = Number(soft);
  return Number.isInteger(value) && value > 0 ? value : undefined;
}

/** This process's soft open-file limit, or undefined where /proc cannot tell. */
export function openFileLimit(): number | undefined {
  try {
    return parseOpenFileLimit(Deno.readTextFileSync("/proc/self/limits"));
  } catch {
    return undefined;
  }
}
