/**
 * A lab for NetworkPolicy: lab nodes whose agents run on Kubernetes (the fake API server as a
 * process on the underlay, a kubeconfig, a Node object per node), pods created as a kubelet
 * would (the Pod object first, then the CNI ADD with K8S_POD_NAMESPACE/NAME/UID, then the pod's
 * address written to its status), each pod running tests/support/policy_probe.ts inside its
 * namespace (servers on TCP and UDP 80 and 81, and a prober). Policies go through the API's REST
 * paths. The kernel is then asked, probe by probe, what the evaluator says it should allow.
 */
import {
  type ClusterState,
  type NetworkPolicy,
  type Probe,
  type Protocol,
  Reachability,
} from "../../src/policy/mod.ts";
import { describeProbe } from "../../src/policy/testing.ts";
import { Lab, type LabOptions, type LabPod, must, waitFor } from "./lab.ts";
import { JsonLinesProcess } from "./json_lines.ts";
import { LabKubeApi } from "./lab_kube_api.ts";

const TOKEN = "lab-policy-token";
const PROBE_SCRIPT = new URL("./policy_probe.ts", import.meta.url).pathname;

export interface PolicyPod {
  namespace: string;
  name: string;
  key: string;
  node: number;
  labels: Record<string, string>;
  ports: { name: string; containerPort: number; protocol: Protocol }[];
  uid: string;
  lab: LabPod;
  probe: ProbeProcess;
}

export type ProbeTarget = [ip: string, protocol: "tcp" | "udp", port: number];

/** A pod's policy_probe.ts process, spoken to over its stdin and stdout. */
export class ProbeProcess {
  readonly #process: JsonLinesProcess;
  readonly ready: Promise<void>;

  constructor(netns: string) {
    const ready = Promise.withResolvers<void>();
    this.ready = ready.promise;
    this.#process = new JsonLinesProcess(
      ["ip", "netns", "exec", netns, Deno.execPath(), "run", "-A", "--no-config", PROBE_SCRIPT],
      { onLine: (line) => line.ready && ready.resolve() },
    );
    this.#process.ended.then(() =>
      ready.reject(new Error(`probe process in ${netns} ended before it was ready`))
    );
  }

  async probe(targets: ProbeTarget[], timeoutMs: number): Promise<boolean[]> {
    return (await this.#process.call({ op: "probe", targets, timeoutMs })).results as boolean[];
  }

  /** Sources that reached this pod's servers, as `tcp/80 10.32.0.3`. */
  async seen(options: { clear?: boolean } = {}): Promise<string[]> {
    const answer = await this.#process.call({ op: "seen", clear: options.clear ?? false });
    return answer.seen as string[];
  }

  /** Probes `targets` over and over until stopped; returns the loop's id. */
  async startLoop(targets: ProbeTarget[], options: { intervalMs?: number; timeoutMs?: number }) {
    return (await this.#process.call({ op: "loop", targets, ...options })).id as number;
  }

  async stopLoop(loop: number): Promise<{ rounds: number; successes: number[] }> {
    const answer = await this.#process.call({ op: "stop", loop });
    return { rounds: answer.rounds as number, successes: answer.successes as number[] };
  }

  close(): Promise<void> {
    return this.#process.close();
  }
}

export interface PolicyLabOptions {
  prefix: string;
  nodes: number;
  datapath: "fastdp" | "sleeve";
  /** More `weft launch` arguments for every node. */
  agentArgs?: string[];
}

export class PolicyLab {
  readonly lab: Lab;
  readonly pods = new Map<string, PolicyPod>();
  readonly namespaces = new Map<string, Record<string, string>>();
  readonly api: LabKubeApi;

  private constructor(lab: Lab, api: LabKubeApi) {
    this.lab = lab;
    this.api = api;
  }

  static async create(options: PolicyLabOptions): Promise<PolicyLab> {
    const lab = await Lab.create(
      {
        nodes: options.nodes,
        prefix: options.prefix,
        start: false,
        peers: false,
      } satisfies LabOptions,
    );
    let api: LabKubeApi | undefined;
    try {
      api = await LabKubeApi.start(lab, { token: TOKEN });
      const policyLab = new PolicyLab(lab, api);
      for (const node of lab.nodes) {
        await api.control(`addNode?name=node${node.index}&ip=${node.underlayIp}`);
        node.extraArgs = [
          "--kubeconfig",
          api.kubeconfig,
          "--node-name",
          `node${node.index}`,
          "--datapath",
          options.datapath,
          ...(options.agentArgs ?? []),
        ];
      }
      await Promise.all(lab.nodes.map((n) => lab.startAgent(n.index)));
      await Promise.all(lab.nodes.map((n) => policyLab.waitSynced(n.index)));
      return policyLab;
    } catch (error) {
      await api?.close();
      await lab.destroy();
      throw error;
    }
  }

  /** A REST call to the API, as kubectl would make it. */
  kube(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
    return this.api.rest(method, path, body);
  }

  async addNamespace(name: string, labels: Record<string, string>): Promise<void> {
    await this.kube("POST", "/api/v1/namespaces", { metadata: { name, labels } });
    this.namespaces.set(name, labels);
  }

  async setNamespaceLabels(name: string, labels: Record<string, string>): Promise<void> {
    const current = await this.kube("GET", `/api/v1/namespaces/${name}`);
    const metadata = current.metadata as Record<string, unknown>;
    await this.kube("PUT", `/api/v1/namespaces/${name}`, {
      ...current,
      metadata: { ...metadata, labels, resourceVersion: undefined },
    });
    this.namespaces.set(name, labels);
  }

  async addPolicy(policy: NetworkPolicy): Promise<void> {
    const { namespace, name } = policy.metadata;
    await this.kube("POST", `/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies`, {
      metadata: { namespace, name },
      spec: policy.spec,
    });
  }

  async replacePolicy(policy: NetworkPolicy): Promise<void> {
    const { namespace, name } = policy.metadata;
    const path = `/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies/${name}`;
    const current = await this.kube("GET", path);
    await this.kube("PUT", path, { ...current, spec: policy.spec });
  }

  async deletePolicy(namespace: string, name: string): Promise<void> {
    await this.kube(
      "DELETE",
      `/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies/${name}`,
    );
  }

  async listPolicies(): Promise<{ namespace: string; name: string }[]> {
    const list = await this.kube("GET", "/apis/networking.k8s.io/v1/networkpolicies");
    return (list.items as { metadata: { namespace: string; name: string } }[]).map((p) => ({
      namespace: p.metadata.namespace,
      name: p.metadata.name,
    }));
  }

  /**
   * A pod as the kubelet brings it up: the Pod object (bound to its node, no address), its probe
   * process started in its new namespace, the CNI ADD with the pod's identity, then the address
   * in the Pod's status (which is how other nodes learn it).
   */
  async addPod(
    namespace: string,
    name: string,
    options: {
      node: number;
      labels: Record<string, string>;
      ports?: PolicyPod["ports"];
      /** Skip creating the Pod object (the API does not know the pod yet). */
      inApi?: boolean;
      /** Skip writing the address to the Pod's status (a slow kubelet; call reportAddress). */
      report?: boolean;
      /** Runs after the probe process started, before the ADD (and its answer). */
      beforeAdd?: (probe: ProbeProcess) => Promise<void>;
    },
  ): Promise<PolicyPod> {
    const ports = options.ports ?? [];
    let uid = "";
    if (options.inApi !== false) {
      const created = await this.kube("POST", `/api/v1/namespaces/${namespace}/pods`, {
        metadata: { name, namespace, labels: options.labels },
        spec: { nodeName: `node${options.node}`, containers: [{ name: "main", ports }] },
        status: { phase: "Pending" },
      });
      uid = (created.metadata as { uid: string }).uid;
    }
    let probe: ProbeProcess | undefined;
    const lab = await this.lab.addPod(options.node, `${namespace}-${name}`, {
      args: {
        IgnoreUnknown: "1",
        K8S_POD_NAMESPACE: namespace,
        K8S_POD_NAME: name,
        ...(uid ? { K8S_POD_UID: uid } : {}),
      },
      prepare: async (netns) => {
        probe = new ProbeProcess(netns);
        await probe.ready;
        await options.beforeAdd?.(probe);
      },
    }).catch(async (error) => {
      await probe?.close();
      throw error;
    });
    const pod: PolicyPod = {
      namespace,
      name,
      key: `${namespace}/${name}`,
      node: options.node,
      labels: options.labels,
      ports,
      uid,
      lab,
      probe: probe!,
    };
    this.pods.set(pod.key, pod);
    if (options.inApi !== false && options.report !== false) await this.reportAddress(pod);
    return pod;
  }

  /** Creates the Pod object of a pod attached before the API knew it, with its address. */
  async createLatePod(pod: PolicyPod): Promise<void> {
    const created = await this.kube("POST", `/api/v1/namespaces/${pod.namespace}/pods`, {
      metadata: { name: pod.name, namespace: pod.namespace, labels: pod.labels },
      spec: { nodeName: `node${pod.node}`, containers: [{ name: "main", ports: pod.ports }] },
      status: { phase: "Pending" },
    });
    pod.uid = (created.metadata as { uid: string }).uid;
    await this.reportAddress(pod);
  }

  /** What the kubelet does once the sandbox is up: the pod's address into its status. */
  async reportAddress(pod: PolicyPod): Promise<void> {
    const path = `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`;
    const current = await this.kube("GET", path);
    await this.kube("PUT", path, {
      ...current,
      metadata: { ...(current.metadata as object), resourceVersion: undefined },
      status: { phase: "Running", podIP: pod.lab.ip, podIPs: [{ ip: pod.lab.ip }] },
    });
  }

  async deletePod(pod: PolicyPod): Promise<void> {
    await this.lab.delPod(pod.lab);
    await pod.probe.close();
    await this.kube("DELETE", `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`);
    this.pods.delete(pod.key);
  }

  /** The cluster as the evaluator reads it: the lab's pods with their real addresses. */
  state(policies: readonly NetworkPolicy[]): ClusterState {
    return {
      policies,
      namespaces: [...this.namespaces].map(([name, labels]) => ({ name, labels })),
      pods: [...this.pods.values()].map((p) => ({
        namespace: p.namespace,
        name: p.name,
        labels: p.labels,
        ip: p.lab.ip,
        node: `node${p.node}`,
        ports: p.ports,
      })),
    };
  }

  async metrics(index: number): Promise<string> {
    return (await this.lab.api(index, "GET", "/metrics")).text;
  }

  async policyStatus(index: number): Promise<PolicyStatus> {
    const answer = await this.lab.api(index, "GET", "/status/policy");
    if (answer.code !== 200) throw new Error(`GET /status/policy on node${index}: ${answer.text}`);
    return answer.json as PolicyStatus;
  }

  async waitSynced(index: number): Promise<void> {
    await waitFor(
      `node${index} to list the cluster`,
      async () => (await this.policyStatus(index)).synced,
      { timeoutMs: 30_000 },
    );
  }

  /**
   * Waits until every node's kernel holds `policies`: each node's status counts them, and names,
   * per local pod, the policies the evaluator says select it.
   */
  async waitEnforced(policies: readonly NetworkPolicy[], timeoutMs = 15_000): Promise<void> {
    const oracle = new Reachability(this.state(policies));
    let last = "";
    await waitFor("every node to enforce the policies", async () => {
      for (const node of this.lab.nodes) {
        const status = await this.policyStatus(node.index);
        const local = [...this.pods.values()].filter((p) => p.node === node.index);
        const byPod = new Map(status.pods.map((p) => [p.pod, p]));
        for (const pod of local) {
          const want = oracle.selecting(pod.key);
          const have = byPod.get(pod.key);
          const same = have?.state === "enforced" &&
            JSON.stringify(have.ingress) === JSON.stringify(want.ingress) &&
            JSON.stringify(have.egress) === JSON.stringify(want.egress);
          if (!same) {
            last = `node${node.index}: ${pod.key} is ${JSON.stringify(have)}, want ${
              JSON.stringify(want)
            }`;
            return false;
          }
        }
        if (status.policies !== policies.length) {
          last = `node${node.index} enforces ${status.policies} policies, want ${policies.length}`;
          return false;
        }
      }
      return true;
    }, { timeoutMs }).catch((error) => {
      throw new Error(`${error.message} (${last})`);
    });
  }

  /** Forgets every tracked connection on every node, so one case's replies do not leak into the next. */
  async flushConntrack(): Promise<void> {
    await Promise.all(this.lab.nodes.map((n) => must(["conntrack", "-F"], { netns: n.netns })));
  }

  /**
   * Every probe, run in the kernel: in parallel from every source pod, each with a short
   * deadline; a probe that fails is tried again with a longer one, so a slow machine does not
   * read as a denial. Returns the answers by `describeProbe` text.
   */
  async measure(probes: readonly Probe[]): Promise<Map<string, boolean>> {
    const answers = new Map<string, boolean>();
    let todo = [...probes];
    for (const timeoutMs of [400, 1500]) {
      const bySource = Map.groupBy(todo, (p) => (p.from as { pod: string }).pod);
      await Promise.all([...bySource].map(async ([source, list]) => {
        const targets: ProbeTarget[] = list.map((p) => [
          this.#pod((p.to as { pod: string }).pod).lab.ip,
          p.protocol.toLowerCase() as "tcp" | "udp",
          p.port,
        ]);
        const results = await this.#pod(source).probe.probe(targets, timeoutMs);
        list.forEach((p, i) => answers.set(describeProbe(p), results[i]));
      }));
      todo = todo.filter((p) => !answers.get(describeProbe(p)));
    }
    return answers;
  }

  /**
   * Measures `probes` and compares with the evaluator: the disagreements as lines for an
   * assertion message, and how many probes the evaluator denies (a case that denies nothing
   * proves little).
   */
  async check(policies: readonly NetworkPolicy[], probes: readonly Probe[]) {
    const oracle = new Reachability(this.state(policies));
    const measured = await this.measure(probes);
    let deniedCount = 0;
    const mismatches = probes.flatMap((probe) => {
      const want = oracle.check(probe).allowed;
      if (!want) deniedCount++;
      const got = measured.get(describeProbe(probe));
      return got === want ? [] : [
        `${describeProbe(probe)}: kernel ${got ? "allowed" : "denied"}, expected ${
          want ? "allowed" : "denied"
        }`,
      ];
    });
    return { mismatches, deniedCount };
  }

  #pod(key: string): PolicyPod {
    const pod = this.pods.get(key);
    if (!pod) throw new Error(`No lab pod ${key}`);
    return pod;
  }

  async destroy(): Promise<void> {
    await Promise.all([...this.pods.values()].map((p) => p.probe.close()));
    await this.api.close();
    await this.lab.destroy();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }
}

export interface PolicyStatus {
  enabled: boolean;
  synced: boolean;
  policies: number;
  pods: {
    pod?: string;
    address: string;
    state: string;
    ingress: string[];
    egress: string[];
    pendingSince?: string;
  }[];
  problems: { code: string; message: string }[];
}
