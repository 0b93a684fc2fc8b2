/**
 * The NetworkPolicy engine: keeps `inet weft-policy` equal to what the cluster's policies say
 * about this node's pods, and makes a new pod's ADD wait until the kernel protects it.
 *
 * One loop applies changes, one transaction at a time. Watch events and ADDs/DELs only mark
 * what changed and ask for a run; a run rebuilds the state (policy_state.ts), replans the rules
 * if policies changed (members alone otherwise), diffs against what the kernel holds and applies
 * the patch. Whatever arrives while nft runs is taken in by the next run, so a burst of events
 * costs a few transactions, not one each. A caller that needs its change in the kernel (an ADD)
 * waits for the first run that started after its change; a failed run fails those callers,
 * and the loop retries on its own, with backoff, with a full replacement of the table.
 *
 * Start-up: a table an earlier run left keeps enforcing (the agent stopping never opens
 * anything); without one, a table with no policies is put in place at once so that `pending`
 * works. ADDs before the API has been listed go to `pending`. Once pods, namespaces and
 * policies are all listed, the table is replaced as a whole, and patched from then on.
 */
import type {
  Namespace as KubeNamespace,
  NamespaceIndex,
  NetworkPolicy as KubeNetworkPolicy,
  NetworkPolicyIndex,
  Pod as KubePod,
  PodIndex,
  ReadonlyStore,
} from "../kube/mod.ts";
import {
  compile,
  type CompiledRuleSet,
  computeMembers,
  diffRuleSets,
  isEmptyDiff,
  planRules,
  type RulePlan,
} from "../policy/mod.ts";
import type { Attachment, AttachmentBook, PodIdentity } from "./policy_attachments.ts";
import { PolicyHealth, type PolicyResource } from "./policy_health.ts";
import type { PolicyKernel } from "./policy_kernel.ts";
import { attachmentKey, buildPolicyState, type PolicyState } from "./policy_state.ts";

/** The cluster as the engine reads it (src/kube's cluster state, adapted by the wiring). */
export interface PolicyCluster {
  /** Resolves once pods, namespaces and policies have all been listed. */
  readonly synced: Promise<void>;
  readonly pods: ReadonlyStore<KubePod, PodIndex>;
  readonly namespaces: ReadonlyStore<KubeNamespace, NamespaceIndex>;
  readonly policies: ReadonlyStore<KubeNetworkPolicy, NetworkPolicyIndex>;
  /** One pod straight from the API (undefined when it does not exist). */
  fetchPod(
    namespace: string,
    name: string,
    options: { uid?: string; signal?: AbortSignal },
  ): Promise<KubePod | undefined>;
  /** `changed` runs after every change, and every list, of a resource. */
  subscribe(changed: (resource: PolicyResource) => void): void;
}

export interface PolicyEngineOptions {
  /** This node's name, as pods' spec.nodeName says it. */
  node: string;
  cluster: PolicyCluster;
  kernel: PolicyKernel;
  book: AttachmentBook;
  /** Log denied connections, at most this many a second per policy (kernel log). */
  logRate?: number;
  /**
   * The addresses this node's IPAM handed out before this engine started (pods attached before
   * the attachment book knew them: the API's address is all there is for them).
   */
  allocated?: () => Iterable<string>;
  health?: PolicyHealth;
  log?: (message: string) => void;
  now?: () => number;
  /** How long an ADD waits for the first list, or for a GET of its pod (default 1 s). */
  podWaitMs?: number;
  /** How long a watch-driven change waits for others to join it (default 5 ms). */
  batchMs?: number;
}

export interface ApplyRecord {
  at: number;
  kind: "replace" | "patch" | "pending";
  /** Lines of the nft script. */
  lines: number;
  ms: number;
}

interface Waiter {
  generation: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;

export class PolicyEngine {
  readonly node: string;
  readonly health: PolicyHealth;
  readonly startedAt: number;
  readonly #options: PolicyEngineOptions;
  readonly #kernel: PolicyKernel;
  readonly #book: AttachmentBook;
  readonly #now: () => number;
  readonly #log: (message: string) => void;
  /** What the kernel holds, when this run built it (undefined: an earlier run's table). */
  #applied: CompiledRuleSet | undefined;
  /** Addresses this run put into `pending` of an earlier run's table. */
  #foreignPending = new Set<string>();
  #plan: RulePlan | undefined;
  #planDirty = true;
  /** Set at the first list and after a failure: the next run replaces the whole table. */
  #replaceNext = false;
  #synced = false;
  readonly #unsynced = new Set<string>();
  readonly #fetched = new Map<string, KubePod>();
  /** Addresses detached and not yet given back to the IPAM: no pod may keep them. */
  readonly #released = new Set<string>();
  #state: PolicyState | undefined;
  #appliedPolicies = 0;
  readonly #pendingSince = new Map<string, number>();
  #lastApply: ApplyRecord | undefined;
  #failure: { message: string; at: number } | undefined;
  #requested = 0;
  #waiters: Waiter[] = [];
  #running: Promise<void> | undefined;
  #timer: { id: ReturnType<typeof setTimeout>; due: number } | undefined;
  #failures = 0;
  #backoffUntil = 0;
  #stopped = false;

  constructor(options: PolicyEngineOptions) {
    this.#options = options;
    this.node = options.node;
    this.#kernel = options.kernel;
    this.#book = options.book;
    this.#now = options.now ?? Date.now;
    this.#log = options.log ?? ((message) => console.error(`weft: policy: ${message}`));
    this.health = options.health ?? new PolicyHealth({ now: this.#now });
    this.startedAt = this.#now();
  }

  /** Puts a table in place if there is none, then follows the cluster. */
  async start(): Promise<void> {
    if (!(await this.#kernel.tableExists())) {
      this.#applied = this.#bootstrap([]);
      await this.#kernel.replace(this.#applied);
    }
    const { cluster } = this.#options;
    cluster.subscribe((resource) => {
      this.health.recovered(resource);
      if (resource === "networkpolicies") this.#planDirty = true;
      if (this.#synced) this.#request(this.#options.batchMs ?? 5).catch(() => {});
    });
    cluster.synced.then(() => {
      this.#synced = true;
      this.#replaceNext = true;
      this.#request(0).catch(() => {});
    }, () => {});
  }

  get synced(): boolean {
    return this.#synced;
  }

  /**
   * Records that `ip` now belongs to the pod the ADD named, and resolves once the kernel holds
   * the pod's sets (or `pending`). Rejects when the table could not be changed: the caller must
   * then fail the ADD, since nothing protects the pod.
   */
  async attach(
    ref: { containerID: string; ifname: string },
    ip: string,
    pod?: PodIdentity,
  ): Promise<void> {
    if (this.#stopped) throw new Error("NetworkPolicy enforcement is stopping");
    const existing = this.#book.get(ref.containerID, ref.ifname);
    if (!existing || existing.ip !== ip || JSON.stringify(existing.pod) !== JSON.stringify(pod)) {
      await this.#book.set({ ...ref, ip, ...(pod ? { pod } : {}), since: this.#now() });
      if (!this.#synced) this.#unsynced.add(attachmentKey(ref));
    }
    if (pod) await this.#learnPod(pod);
    await this.#request(0, { urgent: true });
  }

  /**
   * Forgets released addresses: out of every set (one transaction), then their tracked
   * connections. Never rejects: a failure is logged and reported, and the loop retries.
   */
  async detach(
    released: readonly { containerID: string; ifname: string; ip: string }[],
  ): Promise<void> {
    if (released.length === 0) return;
    for (const r of released) {
      this.#released.add(r.ip);
      const gone = await this.#book.delete(r.containerID, r.ifname);
      this.#unsynced.delete(attachmentKey(r));
      if (gone?.pod) this.#fetched.delete(`${gone.pod.namespace}/${gone.pod.name}`);
    }
    // also without a book entry: a pod known by the API's address alone leaves the sets too
    await this.#request(0, { urgent: true }).catch((error) =>
      this.#log(`released addresses stay in the table until the retry: ${error.message}`)
    );
    for (const { ip } of released) {
      await this.#kernel.forgetConnections(ip).catch((error) =>
        this.#log(`cannot delete the tracked connections of ${ip}: ${error.message}`)
      );
    }
  }

  /** Waits for the first list (an ADD right after start), then for the pod, briefly. */
  async #learnPod(pod: PodIdentity): Promise<void> {
    const wait = this.#options.podWaitMs ?? 1000;
    const { cluster } = this.#options;
    if (!this.#synced) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        cluster.synced.catch(() => {}),
        new Promise((resolve) => timer = setTimeout(resolve, wait)),
      ]);
      clearTimeout(timer);
      if (!this.#synced) return; // pending until the first list
    }
    const key = `${pod.namespace}/${pod.name}`;
    const stored = cluster.pods.get(key);
    if (stored && (!pod.uid || stored.uid === pod.uid)) return;
    try {
      const read = await cluster.fetchPod(pod.namespace, pod.name, {
        uid: pod.uid,
        signal: AbortSignal.timeout(wait),
      });
      if (read && (!pod.uid || read.uid === pod.uid)) this.#fetched.set(key, read);
    } catch (error) {
      // pending covers it: the watch will deliver the pod
      this.#log(`pod ${key} is not known yet (${(error as Error).message}); it is held pending`);
    }
  }

  /**
   * Asks for a run; resolves when a run that started after this call has applied. An `urgent`
   * request (an ADD or DEL waits on it) does not wait out the backoff of a failure.
   */
  #request(delayMs: number, options: { urgent?: boolean } = {}): Promise<void> {
    const generation = ++this.#requested;
    const done = new Promise<void>((resolve, reject) => {
      this.#waiters.push({ generation, resolve, reject });
    });
    this.#schedule(options.urgent ? delayMs : Math.max(delayMs, this.#backoffUntil - this.#now()));
    return done;
  }

  #schedule(delayMs: number): void {
    if (this.#stopped || this.#running) return;
    const due = this.#now() + delayMs;
    if (this.#timer && this.#timer.due <= due) return;
    if (this.#timer) clearTimeout(this.#timer.id);
    this.#timer = {
      due,
      id: setTimeout(() => {
        this.#timer = undefined;
        this.#running = this.#loop().finally(() => {
          this.#running = undefined;
          // requests made while the last run settled its callers
          if (this.#waiters.length) {
            this.#schedule(Math.max(0, this.#backoffUntil - this.#now()));
          }
        });
      }, delayMs),
    };
  }

  async #loop(): Promise<void> {
    while (!this.#stopped && this.#waiters.length) {
      const generation = this.#requested;
      const settled = this.#waiters.filter((w) => w.generation <= generation);
      this.#waiters = this.#waiters.filter((w) => w.generation > generation);
      try {
        await this.#run();
        this.#failure = undefined;
        this.#failures = 0;
        this.#backoffUntil = 0;
        for (const waiter of settled) waiter.resolve();
      } catch (error) {
        const message = (error as Error).message;
        this.#failure = { message, at: this.#now() };
        this.#replaceNext = true;
        this.#log(`applying NetworkPolicy failed (the table is replaced on retry): ${message}`);
        for (const waiter of settled) waiter.reject(error as Error);
        this.#backoffUntil = this.#now() +
          Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** this.#failures++);
        // the retry, which heals the table even if nothing else changes
        this.#request(0).catch(() => {});
        return;
      }
    }
  }

  async #run(): Promise<void> {
    const { cluster } = this.#options;
    for (const key of this.#fetched.keys()) if (cluster.pods.get(key)) this.#fetched.delete(key);
    const allocated = this.#options.allocated && new Set(this.#options.allocated());
    // a released address the IPAM no longer holds needs no more guarding
    for (const ip of this.#released) if (!allocated?.has(ip)) this.#released.delete(ip);
    for (const ip of this.#released) allocated?.delete(ip);
    const state = buildPolicyState({
      node: this.node,
      synced: this.#synced,
      pods: cluster.pods.list(),
      pod: (key) => cluster.pods.get(key),
      fetched: this.#fetched,
      namespaces: cluster.namespaces.list(),
      policies: cluster.policies.list(),
      hasPolicy: (namespace) => cluster.policies.byIndex("namespace", namespace).length > 0,
      attachments: this.#book.list(),
      unsyncedAttachments: this.#unsynced,
      allocated,
    });
    this.#notePending(state);
    const started = performance.now();
    if (!this.#synced) {
      await this.#applyPending(state.pending);
    } else {
      if (this.#planDirty || !this.#plan) {
        this.#planDirty = false;
        this.#plan = planRules(state.policies, this.#planOptions());
      }
      const plan = this.#plan;
      const members = computeMembers(plan, state, { node: this.node, pending: state.pending });
      const desired: CompiledRuleSet = {
        node: this.node,
        sets: plan.sets,
        counters: plan.counters,
        chains: plan.chains,
        members,
        problems: plan.problems,
      };
      await this.#apply(desired, started);
      this.#unsynced.clear();
      this.#appliedPolicies = state.policies.length;
    }
    this.#state = state;
  }

  async #apply(desired: CompiledRuleSet, started: number): Promise<void> {
    const applied = this.#applied;
    if (!applied || this.#replaceNext) {
      const lines = await this.#kernel.replace(desired);
      this.#record("replace", lines, started);
      this.#foreignPending.clear();
    } else {
      const diff = diffRuleSets(applied, desired);
      if (isEmptyDiff(diff)) {
        this.#applied = desired;
        return;
      }
      const lines = await this.#kernel.patch(diff);
      this.#record(diff.kind === "replace" ? "replace" : "patch", lines, started);
    }
    this.#applied = desired;
    this.#replaceNext = false;
  }

  /** Before the first list: only `pending` changes, in whichever table the kernel has. */
  async #applyPending(pending: string[]): Promise<void> {
    const started = performance.now();
    if (this.#applied) {
      await this.#apply(this.#bootstrap(pending), started);
      return;
    }
    const want = new Set(pending);
    const add = pending.filter((ip) => !this.#foreignPending.has(ip));
    const remove = [...this.#foreignPending].filter((ip) => !want.has(ip));
    if (!add.length && !remove.length) return;
    await this.#kernel.changePending({ add, remove });
    this.#foreignPending = want;
    this.#record("pending", add.length + remove.length, started);
  }

  /** The table before anything is known: no policy, only `pending`. */
  #bootstrap(pending: string[]): CompiledRuleSet {
    return compile({ policies: [], pods: [], namespaces: [] }, {
      ...this.#planOptions(),
      node: this.node,
      pending,
    });
  }

  #planOptions() {
    const rate = this.#options.logRate;
    return rate ? { log: { perSecond: rate } } : {};
  }

  #record(kind: ApplyRecord["kind"], lines: number, started: number): void {
    this.#lastApply = { at: this.#now(), kind, lines, ms: performance.now() - started };
  }

  #notePending(state: PolicyState): void {
    const now = this.#now();
    const pending = new Set(state.pending);
    for (const ip of this.#pendingSince.keys()) {
      if (!pending.has(ip)) this.#pendingSince.delete(ip);
    }
    for (const ip of pending) if (!this.#pendingSince.has(ip)) this.#pendingSince.set(ip, now);
  }

  /** What the status view and the diagnostics read. */
  snapshot(): PolicySnapshot {
    return {
      node: this.node,
      synced: this.#synced,
      startedAt: this.startedAt,
      state: this.#state,
      applied: this.#applied,
      plan: this.#plan,
      attachments: this.#book.list(),
      pendingSince: new Map(this.#pendingSince),
      lastApply: this.#lastApply,
      failure: this.#failure,
      policyCount: this.#appliedPolicies,
    };
  }

  /** Packets counted by the table's named counters. */
  counters(): Promise<Map<string, number>> {
    return this.#kernel.counters();
  }

  /** Stops following the cluster; the table stays as it is. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer.id);
    this.#timer = undefined;
    await this.#running;
    for (const waiter of this.#waiters.splice(0)) {
      waiter.reject(new Error("NetworkPolicy enforcement stopped"));
    }
  }
}

export interface PolicySnapshot {
  node: string;
  synced: boolean;
  startedAt: number;
  state?: PolicyState;
  applied?: CompiledRuleSet;
  plan?: RulePlan;
  attachments: Attachment[];
  pendingSince: Map<string, number>;
  lastApply?: ApplyRecord;
  failure?: { message: string; at: number };
  /** Policies in the rule set the kernel holds. */
  policyCount: number;
}
