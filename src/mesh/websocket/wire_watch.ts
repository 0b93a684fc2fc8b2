/**
 * What the wire tells people about trouble on the mesh port: counters for status and tests, log
 * lines that are rate-limited per kind (an attacker decides how many events there are, so never
 * one line per connection), and diagnostics (CONTRACTS #1) that stay while the trouble lasts and
 * clear `windowMs` after it stops.
 */
import type { Diagnostic } from "../diagnostics.ts";

const LOG_INTERVAL_MS = 60_000;
/** Sources counted by name during a flood; more are counted together, so memory stays bounded. */
const MAX_SOURCES = 256;

export interface WireCounters {
  /** Unauthenticated sockets closed to make room (per source or in total). */
  evicted: number;
  /** Requests that were not a valid upgrade, or not whole in time. */
  badRequests: number;
  /** Authentications refused at the connection limit. */
  overLimit: number;
  acceptErrors: number;
}

interface Episode {
  since: number;
  last: number;
  count: number;
}

export class WireWatch {
  readonly counters: WireCounters = { evicted: 0, badRequests: 0, overLimit: 0, acceptErrors: 0 };
  #log: (message: string) => void;
  #now: () => number;
  #windowMs: number;
  #logged = new Map<string, { at: number; suppressed: number }>();
  #flood?: Episode & { bySource: Map<string, number>; perSource: boolean };
  #exhausted?: Episode & { error: string };
  #overLimit?: Episode & { limit: number };
  #fileLimit?: Diagnostic;

  constructor(
    options: { log?: (message: string) => void; now?: () => number; windowMs?: number } = {},
  ) {
    this.#log = options.log ?? (() => {});
    this.#now = options.now ?? Date.now;
    this.#windowMs = options.windowMs ?? 300_000;
  }

  /** An unauthenticated socket from `source` gave up its place to a newer one. */
  evicted(source: string, limit: { perSource: boolean; value: number }): void {
    this.counters.evicted++;
    const episode = this.#episode(this.#flood, () => ({ bySource: new Map(), perSource: false }));
    this.#flood = episode;
    episode.perSource ||= limit.perSource;
    const key = episode.bySource.has(source) || episode.bySource.size < MAX_SOURCES
      ? source
      : "other addresses";
    episode.bySource.set(key, (episode.bySource.get(key) ?? 0) + 1);
    const which = limit.perSource ? `${limit.value} from ${source}` : `${limit.value} in total`;
    this.#notice(
      limit.perSource ? "evicted-source" : "evicted-total",
      `unauthenticated mesh connections at their limit (${which}): the oldest gives way`,
    );
  }

  badRequest(): void {
    this.counters.badRequests++;
  }

  overLimit(limit: number, remote: string): void {
    this.counters.overLimit++;
    this.#overLimit = { ...this.#episode(this.#overLimit, () => ({ limit })), limit };
    this.#notice("limit", `connection limit ${limit} reached; refused ${remote}`);
  }

  acceptFailed(error: string): void {
    this.counters.acceptErrors++;
    this.#exhausted = { ...this.#episode(this.#exhausted, () => ({ error })), error };
    this.#notice("accept", `cannot accept on the mesh port: ${error}`);
  }

  /** The unauthenticated budget was shrunk to fit the open-file limit (at start). */
  fileLimit(fileLimit: number, fitted: number, wanted: number, connLimit: number): void {
    const message = `The open-file limit ${fileLimit} leaves room for ${fitted} unauthenticated ` +
      `mesh connections (of ${wanted}) beside conn-limit ${connLimit}`;
    this.#fileLimit = {
      code: "file-limit-low",
      severity: "warning",
      message,
      fix: "Raise the agent's open-file limit (LimitNOFILE, or the container runtime's nofile " +
        "ulimit), or lower --conn-limit.",
    };
    this.#log(`${message}; raise the limit (LimitNOFILE) or lower --conn-limit`);
  }

  diagnostics(): Diagnostic[] {
    const now = this.#now();
    const recent = (episode?: Episode) => episode && now - episode.last < this.#windowMs;
    const list: Diagnostic[] = this.#fileLimit ? [this.#fileLimit] : [];
    const minutes = (episode: Episode) => Math.max(1, Math.round((now - episode.since) / 60_000));
    if (recent(this.#exhausted)) {
      const e = this.#exhausted!;
      list.push({
        code: "descriptors-exhausted",
        severity: "error",
        message: `The mesh port could not accept ${e.count} connection(s) in the last ` +
          `${minutes(e)} min: ${e.error}`,
        fix: "The agent ran out of file descriptors: raise its open-file limit (LimitNOFILE, or " +
          "the container runtime's nofile ulimit) and look for what holds them " +
          "(ls /proc/<agent pid>/fd).",
      });
    }
    if (recent(this.#flood)) {
      const f = this.#flood!;
      const top = [...f.bySource].sort((a, b) => b[1] - a[1]).slice(0, 3)
        .map(([source, count]) => `${source} (${count})`).join(", ");
      list.push({
        code: "mesh-port-flood",
        severity: "warning",
        message: `${f.count} unauthenticated connections to the mesh port were closed to make ` +
          `room in the last ${minutes(f)} min, most from ${top}`,
        fix: "Something opens connections to the mesh port without completing the handshake " +
          "(a scanner, a peer with the wrong password or version, or an attack). weft keeps " +
          "serving; if these addresses are not meant to be peers, block them in a firewall.",
      });
    }
    if (recent(this.#overLimit)) {
      const o = this.#overLimit!;
      list.push({
        code: "connection-limit",
        severity: "warning",
        message: `${o.count} authenticated connection(s) were refused at the connection limit ` +
          `of ${o.limit} in the last ${minutes(o)} min`,
        fix: "Raise --conn-limit (CONN_LIMIT), or turn discovery off (--no-discovery) and give " +
          "each node a few --peers.",
      });
    }
    return list;
  }

  #episode<T extends object>(current: (Episode & T) | undefined, fresh: () => T): Episode & T {
    const now = this.#now();
    if (current && now - current.last < this.#windowMs) {
      current.last = now;
      current.count++;
      return current;
    }
    return { since: now, last: now, count: 1, ...fresh() };
  }

  /** Logs the first of a kind, then at most once a minute with how many were not logged. */
  #notice(kind: string, message: string): void {
    const now = this.#now();
    const last = this.#logged.get(kind);
    if (last && now - last.at < LOG_INTERVAL_MS) {
      last.suppressed++;
      return;
    }
    const more = last?.suppressed
      ? ` (${last.suppressed} more like this since the last report)`
      : "";
    this.#logged.set(kind, { at: now, suppressed: 0 });
    this.#log(message + more);
  }
}
