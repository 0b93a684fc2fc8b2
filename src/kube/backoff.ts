/**
 * Retry pacing for the watch loop. Exponential so a down API server is not hammered by every
 * node at once, with jitter so a thousand agents that lost the server together do not come back
 * in lockstep. Randomness and sleeping are passed in, so tests run instantly and repeatably.
 */

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  /** Returns a number in [0, 1). */
  random?: () => number;
}

/** Delay before retry number `attempt` (0-based): base doubling up to `maxMs`, times [0.5, 1). */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const { initialMs = 500, maxMs = 30_000, random = Math.random } = options;
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base * (0.5 + random() / 2));
}

/** Resolves after `ms`, or early (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
