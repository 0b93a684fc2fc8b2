/**
 * Deciding which agent reclaims a deleted node's address space, exactly once, with no leader.
 * Every agent sees the same DELETED event; each tries to record its claim in one ConfigMap
 * using the API server's optimistic concurrency (an update carries the resourceVersion it read,
 * and a stale one is refused with 409). Whoever's write lands first is the reclaimer; everyone
 * else re-reads, finds the claim and stands down. Claims are keyed by node name and uid, so a
 * node re-created under the same name can be reclaimed again later, and old claims are pruned
 * by age on the next write so the ConfigMap stays small.
 */
import type { KubeClient } from "./client.ts";
import { KubeConflictError, KubeNotFoundError } from "./errors.ts";

export const RECLAIMS_CONFIGMAP = "weft-reclaims";
export const RECLAIMS_NAMESPACE = "kube-system";

export interface ClaimReclaimOptions {
  /** Who is claiming: this agent's Node name. */
  claimant: string;
  /** The deleted Node's uid, from the watcher; without it the claim is by name only. */
  uid?: string;
  namespace?: string;
  configMapName?: string;
  now?: () => number;
  /** Claims older than this are dropped on the next write. */
  retentionMs?: number;
  /** Conflicts to absorb before giving up; each means another agent wrote in between. */
  maxAttempts?: number;
  signal?: AbortSignal;
}

/** One entry of the ConfigMap's `data`, JSON-encoded. */
export interface ReclaimRecord {
  peer: string;
  uid?: string;
  claimant: string;
  claimedAt: string;
}

interface ConfigMap {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  data?: Record<string, string>;
}

export class ReclaimClaimError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ReclaimClaimError";
  }
}

/** The ConfigMap key for a claim: node names never contain `_`, so the parts cannot collide. */
export function reclaimKey(peer: string, uid?: string): string {
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(peer)) {
    throw new TypeError(`Invalid node name "${peer}": expected a DNS subdomain`);
  }
  return uid ? `${peer}_${uid.replace(/[^-.a-zA-Z0-9]/g, "")}` : peer;
}

/**
 * Returns true when this agent is the one that must reclaim `peer`'s space (its claim landed,
 * now or in an earlier attempt that crashed before finishing), false when another agent has it.
 */
export async function claimReclaim(
  client: KubeClient,
  peer: string,
  options: ClaimReclaimOptions,
): Promise<boolean> {
  const {
    claimant,
    uid,
    namespace = RECLAIMS_NAMESPACE,
    configMapName = RECLAIMS_CONFIGMAP,
    now = Date.now,
    retentionMs = 30 * 24 * 3600_000,
    maxAttempts = 20,
    signal,
  } = options;
  const key = reclaimKey(peer, uid);
  const collection = `/api/v1/namespaces/${namespace}/configmaps`;
  const path = `${collection}/${configMapName}`;
  let lastConflict: unknown;
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    signal?.throwIfAborted();
    let current: ConfigMap | undefined;
    try {
      current = await client.request<ConfigMap>("GET", path, { signal });
    } catch (error) {
      if (!(error instanceof KubeNotFoundError)) throw error;
    }
    const existing = current?.data?.[key];
    if (existing !== undefined) return claimantOf(existing) === claimant;

    const record: ReclaimRecord = { peer, uid, claimant, claimedAt: new Date(now()).toISOString() };
    const data = {
      ...pruneOld(current?.data ?? {}, now() - retentionMs),
      [key]: JSON.stringify(record),
    };
    try {
      if (current) {
        // The resourceVersion we read is the precondition: if anyone wrote since, this is a 409.
        await client.request("PUT", path, {
          body: { ...current, data },
          signal,
        });
      } else {
        await client.request("POST", collection, {
          body: {
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: {
              name: configMapName,
              namespace,
              labels: { "app.kubernetes.io/name": "weft" },
            },
            data,
          },
          signal,
        });
      }
      return true;
    } catch (error) {
      if (!(error instanceof KubeConflictError)) throw error;
      lastConflict = error; // someone else wrote first; read their version and look again
    }
  }
  throw new ReclaimClaimError(
    `Gave up claiming the reclaim of node "${peer}" after ${maxAttempts} conflicting writes to ` +
      `ConfigMap ${namespace}/${configMapName}`,
    { cause: lastConflict },
  );
}

function claimantOf(value: string): string | undefined {
  try {
    return (JSON.parse(value) as ReclaimRecord).claimant;
  } catch {
    return undefined;
  }
}

function pruneOld(data: Record<string, string>, cutoff: number): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [key, value] of Object.entries(data)) {
    let claimedAt = NaN;
    try {
      claimedAt = Date.parse((JSON.parse(value) as ReclaimRecord).claimedAt);
    } catch {
      // Not ours to judge: keep entries we cannot read.
    }
    if (!(claimedAt < cutoff)) kept[key] = value;
  }
  return kept;
}
