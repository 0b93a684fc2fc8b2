/**
 * Why this peer's IPAM is not ready or not healthy, for people: one `Diagnostic` per problem,
 * with the specifics (quorum, peer names, addresses) and what to do about it. Pure: the agent
 * gathers these into GET /status (`problems`) and the readiness answer.
 */
import { formatCidr, formatIp } from "../net/cidr.ts";
import type { Diagnostic } from "./cluster_types.ts";
import type { StoreUnavailableError } from "./errors.ts";
import { consensusProgress } from "./consensus.ts";
import { adoptionBlocker } from "./reclaim.ts";
import type { Integrity } from "./local_ring.ts";
import { reclaimWaitingOn } from "./reclaim.ts";
import { isDead, livePeers, peerRecord } from "./ring.ts";
import { type PeerView, removal } from "./standing.ts";
import { hasOwnerlessSpace, pendingReclaims } from "./status.ts";

/** How long refused forgeries are reported after the last one. */
const SUSPICION_SHOWN_MS = 3_600_000;

export interface DiagnosticsInput extends PeerView {
  now: number;
  left: boolean;
  /** Addresses this peer owns (0: it needs a donation before its first allocation). */
  owned: number;
  strayAllocations: number;
  /** The state file's failure since the last successful write, with how long it has lasted. */
  store?: { error: StoreUnavailableError; forMs: number };
  /** What this peer could not take in from others (signatures, rights, missed versions). */
  integrity: Integrity;
}

export function ipamDiagnostics(input: DiagnosticsInput): Diagnostic[] {
  const { state, me, left } = input;
  if (left) {
    return [{
      code: "ipam-left",
      severity: "error",
      message: `This peer left the IPAM ring (weft reset) and hands out no addresses`,
      fix: `Restart weft on this node to join again as a new generation`,
    }];
  }
  const out: Diagnostic[] = [];
  if (input.store) out.push(storeDiagnostic(input.store.error, input.store.forMs));
  if (state.ringId === "") out.push(firstSplit(input));
  else if (input.mustHear) out.push(awaitingPeer(input));
  const cutOff = cutOffDiagnostic(input);
  if (cutOff) out.push(cutOff);
  if (state.ringId !== "" && hasOwnerlessSpace(state)) {
    const blocker = adoptionBlocker(state, { name: me, gen: input.gen });
    out.push({
      code: "ownerless-space",
      severity: "error",
      message: `No live peer owns any of ${formatCidr(input.cluster)}: every owner was removed ` +
        `or left, so no peer can hand out addresses` +
        (blocker ? ` (adopting it now would fail: ${blocker.message})` : ""),
      fix: `Run "weft ipam adopt" on exactly one node; it takes over the whole range. Never on ` +
        `two nodes that cannot reach each other: both would hand out the same addresses`,
    });
  }
  for (const reclaim of pendingReclaims(state)) {
    if (reclaim.waitingOn.length === 0) continue;
    const waiting = reclaim.waitingOn.map((name) => unreachableNote(name, input.reachable, me));
    out.push({
      code: "reclaim-waiting",
      severity: "warning",
      message: `The space of removed peer "${reclaim.peer}" (${reclaim.addresses} addresses) ` +
        `is reused only once every live peer has acknowledged the removal; waiting for ` +
        waiting.join(", "),
      fix: `Make sure ${reclaim.waitingOn.join(", ")} can reach this node; a peer that is gone ` +
        `for good must be removed too ("weft rmpeer NAME")`,
    });
  }
  const unknown = notKnownToAll(input);
  if (unknown) out.push(unknown);
  out.push(...integrityDiagnostics(input));
  if (input.strayAllocations > 0) {
    out.push({
      code: "stray-allocations",
      severity: "error",
      message: `${input.strayAllocations} addresses recorded on this node lie outside the ` +
        `ranges it owns; another node may hand them out again`,
      fix: `The state file predates this ring (an early single-node version, or a copy from ` +
        `another machine): drain the node and run "weft reset" on it`,
    });
  }
  return out;
}

function storeDiagnostic(error: StoreUnavailableError, forMs: number): Diagnostic {
  const fix = {
    full: `Free space on the file system that holds ${error.path} (df -h); nothing needs a ` +
      `restart: weft resumes by itself once it can write`,
    "read-only": `Make ${error.path} and its directory writable again (a read-write mount of ` +
      `the state directory); weft resumes by itself once it can write`,
    io: `Check the disk that holds ${error.path} (dmesg); weft retries by itself, and a ` +
      `failing disk means moving the state directory (--state-dir) elsewhere`,
  }[error.reason];
  return {
    code: "store-unavailable",
    severity: "error",
    message: `The IPAM cannot write its state for ${Math.round(forMs / 1000)}s, so it hands ` +
      `out no addresses and changes nothing in the ring: ${error.message}`,
    fix,
  };
}

function firstSplit(input: DiagnosticsInput): Diagnostic {
  const { state, me, init, cluster } = input;
  const range = formatCidr(cluster);
  if (init.mode === "consensus") {
    const progress = consensusProgress(state, me, init.peers);
    const known = progress.known.map((name) => unreachableNote(name, input.reachable, me));
    const agreement = progress.vote
      ? `; voted to split among ${progress.vote.join(", ")}, not yet agreed by ` +
        progress.notAgreed.map((name) => unreachableNote(name, input.reachable, me)).join(", ")
      : "";
    return {
      code: "awaiting-consensus",
      severity: "error",
      message: `IPAM waits for consensus on the first split of ${range}: quorum ` +
        `${progress.quorum}, ${progress.known.length} known (${known.join(", ")})${agreement}`,
      fix: `Start weft on ${Math.max(0, progress.quorum - progress.known.length) || "the other"} ` +
        `more peer(s) with the same --ipalloc-init consensus=${progress.quorum}, reachable on ` +
        `the mesh port; if fewer nodes will ever start together, restart with a smaller N`,
    };
  }
  const role = init.mode === "seed" ? "not among the seeds" : "an observer";
  return {
    code: "awaiting-initial-split",
    severity: "error",
    message: `IPAM waits for the first split of ${range} from other peers: this peer is ${role} ` +
      `and never splits the range itself; known peers: ${
        state.peers.filter((p) => p.name !== me).map((p) => p.name).join(", ") || "none"
      }`,
    fix: `Connect this node to a peer started with --ipalloc-init consensus=N or seed=...`,
  };
}

function awaitingPeer(input: DiagnosticsInput): Diagnostic {
  const others = livePeers(input.state).filter((p) => p.name !== input.me).map((p) => p.name);
  const reachable = others.filter((name) => input.reachable.has(name));
  return {
    code: "awaiting-peer",
    severity: "error",
    message: `IPAM restarted with a ring it shares with ${others.join(", ")} and waits to hear ` +
      `from one of them, to learn whether this peer was removed while it was away` +
      (reachable.length === 0 ? `; none of them is reachable now` : ""),
    fix: `Make sure one of ${others.join(", ")} runs and can reach this node ("weft status ` +
      `peers"); if all of them are gone for good, run "weft reset" on this node`,
  };
}

function cutOffDiagnostic(input: DiagnosticsInput): Diagnostic | undefined {
  const { cutOffMs, reclaimAfterMs } = input;
  if (cutOffMs === undefined || input.state.ringId === "") return undefined;
  const others = livePeers(input.state).filter((p) => p.name !== input.me);
  const reached = others.filter((p) => input.reachable.has(p.name)).map((p) => p.name);
  const lost = others.filter((p) => !input.reachable.has(p.name)).map((p) => p.name);
  const fenced = reclaimAfterMs !== undefined && cutOffMs >= reclaimAfterMs / 2;
  return {
    code: "cut-off",
    severity: fenced ? "error" : "warning",
    message: `Cut off from most IPAM peers for ${Math.round(cutOffMs / 1000)}s: reaching ` +
      `${reached.length} of ${others.length} (${reached.join(", ") || "none"}), not ` +
      lost.join(", ") +
      (fenced
        ? `; automatic reclaim is on, so the others may take this peer's space: it hands out ` +
          `no addresses until it reaches most of them again`
        : ""),
    fix: `Restore the connections to ${lost.join(", ")} (weft status peers and connections ` +
      `say which path fails)`,
  };
}

/** A peer that owns nothing gets space only once every live peer lists it (docs/ipam.md). */
function notKnownToAll(input: DiagnosticsInput): Diagnostic | undefined {
  const { state, me, gen } = input;
  if (state.ringId === "" || input.owned > 0 || isDead(state, me, gen)) return undefined;
  const incarnation = `${me}@${gen}`;
  const unaware = livePeers(state)
    .filter((p) => p.name !== me && !(p.known ?? []).includes(incarnation))
    .map((p) => unreachableNote(p.name, input.reachable, me));
  if (unaware.length === 0 || !peerRecord(state, me)) return undefined;
  return {
    code: "unknown-to-peers",
    severity: "warning",
    message: `This peer owns no addresses yet, and donors give only to a peer every live peer ` +
      `knows: ${unaware.join(", ")} ${unaware.length === 1 ? "does" : "do"} not list ` +
      `${incarnation} yet`,
    fix: `Make sure those peers can reach this node; remove any that is gone for good ` +
      `("weft rmpeer NAME")`,
  };
}

/** A removal of this peer it contests, other rings, writes it could not check or that conflict. */
function integrityDiagnostics(input: DiagnosticsInput): Diagnostic[] {
  const { state, me, gen, integrity } = input;
  const out: Diagnostic[] = [];
  if (removal(state, { me, gen }) === "contested") {
    const waiting = reclaimWaitingOn(state, me).filter((name) => name !== me);
    out.push({
      code: "removal-contested",
      severity: "warning",
      message: `Peer "${state.proofs[me]?.by ?? "?"}" removed this peer (gen ${gen}) while it ` +
        `runs; ${waiting.join(", ") || "no peer"} can still reach it and will not acknowledge ` +
        `that, so it keeps its ranges and pods but gets no new space`,
      fix: `If this node should go, drain its pods and run "weft reset" on it; if not, find out ` +
        `why "${state.proofs[me]?.by ?? "?"}" removed it (a mistaken rmpeer, or a hostile peer)`,
    });
  }
  if (integrity.foreignRing) {
    const { ringId, from } = integrity.foreignRing;
    out.push({
      code: "ring-conflict",
      severity: "error",
      message: `Peer "${from}" uses another first split of the range (${ringId}) than this ` +
        `peer (${state.ringId}); their states are refused, and both may hand out the same ` +
        `addresses`,
      fix: `Two groups of peers each made a first split (consensus=N on more than 2N nodes, ` +
        `or a peer that is not one of ours): drain the nodes of one group and run "weft reset" ` +
        `on them so they join this ring`,
    });
  }
  if (integrity.conflicts.size > 0) {
    const tokens = [...integrity.conflicts.keys()].map(formatIp).join(", ");
    out.push({
      code: "ring-conflict",
      severity: "error",
      message: `A peer signed two different writes of the same version for the range(s) at ` +
        `${tokens} (last seen from "${[...integrity.conflicts.values()].at(-1)}"): two peers ` +
        `may believe they own the same addresses`,
      fix: `A peer gave the same range away twice: look for a peer that misbehaves (weft ` +
        `status ipam on the owners), remove it with "weft rmpeer", and reset the nodes whose ` +
        `pods it misled`,
    });
  }
  if (integrity.unverified.size > 0) {
    const tokens = [...integrity.unverified.keys()].map(formatIp).join(", ");
    out.push({
      code: "ring-unverified",
      severity: "warning",
      message: `Newer writes for the range(s) at ${tokens} could not be checked yet (last ` +
        `from "${[...integrity.unverified.values()].at(-1)?.from}": a version this peer missed, ` +
        `or a deed they build on still on its way); it keeps what it could check and claims ` +
        `nothing meanwhile`,
      fix: `Usually clears by itself as the owners write again; if it stays, drain this node and ` +
        `run "weft reset" on it (it then takes the cluster's ring afresh)`,
    });
  }
  const suspicious = integrity.suspicious;
  if (suspicious && input.now - suspicious.at < SUSPICION_SHOWN_MS) {
    out.push({
      code: "ring-forgery",
      severity: "warning",
      message: `${suspicious.count} write(s) in states from other peers were refused as not ` +
        `signed by a peer with the right to make them, the last ${
          Math.round((input.now - suspicious.at) / 1000)
        }s ago ${suspicious.last}`,
      fix: `Writes that are not signed by a peer with the right to make them are refused on ` +
        `purpose; if the writer is one of ours, check its identity key (weft status peers)`,
    });
  }
  return out;
}

function unreachableNote(name: string, reachable: ReadonlySet<string>, me: string): string {
  return name === me || reachable.has(name) ? name : `${name} (unreachable)`;
}
