/**
 * How long each live peer has been out of reach, and how long this peer has been cut off from
 * most of them: the clocks behind automatic reclaim and its fencing rule. The mesh says who is
 * reachable now; this remembers since when it is not.
 */
export class Reachability {
  #unreachableSince = new Map<string, number>();
  #cutOffSince: number | undefined;
  #live = new Set<string>();

  /**
   * Records the mesh's view at `now` for the live peers `others` (this peer excluded) and the
   * removed ones whose removal we may have to acknowledge (`removed`). Returns whether we reach
   * a majority of the live peers, counting ourselves.
   */
  update(
    now: number,
    reachable: ReadonlySet<string>,
    peers: { others: readonly string[]; removed?: readonly string[] },
  ): boolean {
    const { others } = peers;
    this.#live = new Set(others);
    const seen = others.filter((name) => reachable.has(name)).length;
    const majority = (seen + 1) * 2 > others.length + 1;
    if (majority) this.#cutOffSince = undefined;
    else this.#cutOffSince ??= now;
    const tracked = new Set([...others, ...(peers.removed ?? [])]);
    for (const name of [...this.#unreachableSince.keys()]) {
      if (!tracked.has(name)) this.#unreachableSince.delete(name);
    }
    for (const name of tracked) {
      if (reachable.has(name)) this.#unreachableSince.delete(name);
      else if (!this.#unreachableSince.has(name)) this.#unreachableSince.set(name, now);
    }
    return majority;
  }

  /** The live peers (of the last update) unreachable for at least `ms`, by name, with how long. */
  overdue(now: number, ms: number): Array<[string, number]> {
    return [...this.#unreachableSince].map(([name, since]): [string, number] => [name, now - since])
      .filter(([name, away]) => away >= ms && this.#live.has(name))
      .sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
  }

  /** Milliseconds `name` has been unreachable at `now`; undefined when reachable or not tracked. */
  unreachableFor(name: string, now: number): number | undefined {
    const since = this.#unreachableSince.get(name);
    return since === undefined ? undefined : now - since;
  }

  /** Milliseconds we have been cut off from most peers, or undefined when we are not. */
  cutOffFor(now: number): number | undefined {
    return this.#cutOffSince === undefined ? undefined : now - this.#cutOffSince;
  }

  forget(name: string): void {
    this.#unreachableSince.delete(name);
  }
}
