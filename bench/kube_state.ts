/**
 * Cluster state for NetworkPolicy: heap per 1,000 pods and how fast a change arrives. Prints
 * tables, asserts nothing.
 *
 * The fake API server runs as its own process holding 1,000 realistic pods (labels, owner,
 * managedFields, a container with probes and resources, status with conditions: about what
 * `kubectl get pod -o json` shows for a Deployment's pod) in 20 namespaces, and 200 policies.
 * Each measurement runs in a fresh process with --expose-gc:
 * - baseline: list the same pods in the same pages and keep the whole objects by key, as an
 *   informer that keeps what the API sends would;
 * - weft, pods: one informer over pods (slim objects, four indexes), synced;
 * - weft, all: startClusterState (pods, namespaces, policies), synced.
 * Then, in the weft process, 200 label changes one after another: time from sending the write
 * to the informer announcing it (p50, p99).
 *
 *   deno run -A bench/kube_state.ts [--pods N] [--policies N]
 */
import {
  KubeClient,
  type Pod,
  POD_RESOURCE,
  type RawObject,
  startClusterState,
  startInformer,
} from "../src/kube/mod.ts";
import {
  measureInChild,
  option,
  percentile,
  startFakeKubeProcess,
} from "../tests/support/bench_support.ts";

const PODS = Number(option("--pods", "1000"));
const POLICIES = Number(option("--policies", "200"));
const NAMESPACES = 20;
const TOKEN = "bench-token";

function client(server: string): KubeClient {
  return new KubeClient({ server, token: TOKEN, source: "bench" });
}

function heapMiB(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run the measurement with --v8-flags=--expose-gc");
  for (let i = 0; i < 3; i++) gc();
  return Deno.memoryUsage().heapUsed / 2 ** 20;
}

function realisticPod(i: number) {
  const namespace = `ns${i % NAMESPACES}`;
  const app = `app${i % 50}`;
  const hash = (0x5f3a9c + i * 7919).toString(16).slice(0, 10);
  const name = `${app}-${hash}-${(i * 31).toString(36).padStart(5, "x")}`;
  const time = "2026-01-02T03:04:05Z";
  return {
    metadata: {
      name,
      namespace,
      labels: { app, "pod-template-hash": hash, tier: i % 2 ? "front" : "back" },
      ownerReferences: [{
        apiVersion: "apps/v1",
        kind: "ReplicaSet",
        name: `${app}-${hash}`,
        uid: crypto.randomUUID(),
        controller: true,
        blockOwnerDeletion: true,
      }],
      managedFields: [{
        manager: "kube-controller-manager",
        operation: "Update",
        apiVersion: "v1",
        time,
        fieldsType: "FieldsV1",
        fieldsV1: {
          "f:metadata": { "f:labels": { ".": {}, "f:app": {}, "f:pod-template-hash": {} } },
          "f:spec": { "f:containers": { 'k:{"name":"main"}': { ".": {}, "f:image": {} } } },
        },
      }, {
        manager: "kubelet",
        operation: "Update",
        apiVersion: "v1",
        time,
        fieldsType: "FieldsV1",
        subresource: "status",
        fieldsV1: { "f:status": { "f:conditions": {}, "f:podIP": {}, "f:podIPs": {} } },
      }],
    },
    spec: {
      nodeName: `node${i % 10}`,
      serviceAccountName: "default",
      restartPolicy: "Always",
      terminationGracePeriodSeconds: 30,
      dnsPolicy: "ClusterFirst",
      containers: [{
        name: "main",
        image: `registry.example/${app}:1.2.3`,
        ports: [{ name: "http", containerPort: 8080, protocol: "TCP" }, {
          name: "metrics",
          containerPort: 9090,
          protocol: "TCP",
        }],
        env: [{ name: "LOG_LEVEL", value: "info" }, { name: "APP", value: app }],
        resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "256Mi" } },
        readinessProbe: { httpGet: { path: "/ready", port: "http" }, periodSeconds: 10 },
        livenessProbe: { httpGet: { path: "/live", port: "http" }, periodSeconds: 10 },
        volumeMounts: [{
          name: "kube-api-access",
          mountPath: "/var/run/secrets/kubernetes.io/serviceaccount",
          readOnly: true,
        }],
        imagePullPolicy: "IfNotPresent",
      }],
      volumes: [{ name: "kube-api-access", projected: { sources: [{ serviceAccountToken: {} }] } }],
      tolerations: [{
        key: "node.kubernetes.io/not-ready",
        operator: "Exists",
        effect: "NoExecute",
        tolerationSeconds: 300,
      }],
    },
    status: {
      phase: "Running",
      hostIP: `192.168.0.${i % 10}`,
      podIP: `10.32.${i >> 8}.${i & 255}`,
      podIPs: [{ ip: `10.32.${i >> 8}.${i & 255}` }],
      startTime: time,
      qosClass: "Burstable",
      conditions: ["Initialized", "Ready", "ContainersReady", "PodScheduled"].map((type) => ({
        type,
        status: "True",
        lastTransitionTime: time,
      })),
      containerStatuses: [{
        name: "main",
        ready: true,
        restartCount: 0,
        image: `registry.example/${app}:1.2.3`,
        imageID: `registry.example/${app}@sha256:${"ab".repeat(32)}`,
        containerID: `containerd://${"cd".repeat(32)}`,
        started: true,
        state: { running: { startedAt: time } },
      }],
    },
  };
}

async function populate(server: string): Promise<void> {
  const api = client(server);
  try {
    for (let n = 0; n < NAMESPACES; n++) {
      await api.request("POST", "/api/v1/namespaces", {
        body: { metadata: { name: `ns${n}`, labels: { team: `t${n % 4}` } } },
      });
    }
    for (let i = 0; i < PODS; i++) {
      const pod = realisticPod(i);
      await api.request("POST", `/api/v1/namespaces/${pod.metadata.namespace}/pods`, { body: pod });
    }
    for (let i = 0; i < POLICIES; i++) {
      await api.request(
        "POST",
        `/apis/networking.k8s.io/v1/namespaces/ns${i % NAMESPACES}/networkpolicies`,
        {
          body: {
            metadata: { name: `policy${i}` },
            spec: {
              podSelector: { matchLabels: { app: `app${i % 50}` } },
              ingress: [{
                from: [{ podSelector: { matchLabels: { tier: "front" } } }],
                ports: [{ port: "http" }],
              }],
            },
          },
        },
      );
    }
  } finally {
    api.close();
  }
}

/** Child process: one measurement, one JSON line on stdout. */
async function measure(kind: string, server: string): Promise<void> {
  const api = client(server);
  // Warm up the same code paths on an empty selection, so the difference below is the objects
  // kept, not compiled code and connection buffers.
  const nothing = new AbortController();
  const warmup = startInformer(POD_RESOURCE, {
    client: api,
    signal: nothing.signal,
    labelSelector: "bench-matches-nothing",
  });
  await warmup.synced;
  nothing.abort();
  await warmup.done;
  const before = heapMiB();
  const started = performance.now();
  if (kind === "baseline") {
    const kept = new Map<string, RawObject>();
    let token: string | undefined;
    do {
      const page = await api.request<{ metadata: { continue?: string }; items: RawObject[] }>(
        "GET",
        "/api/v1/pods",
        { query: { limit: 500, continue: token } },
      );
      for (const pod of page.items) {
        kept.set(`${pod.metadata?.namespace}/${pod.metadata?.name}`, pod);
      }
      token = page.metadata.continue;
    } while (token);
    const syncMs = performance.now() - started;
    console.log(JSON.stringify({ heap: heapMiB() - before, syncMs, pods: kept.size }));
    api.close();
    return;
  }
  const stop = new AbortController();
  if (kind === "pods") {
    const informer = startInformer(POD_RESOURCE, { client: api, signal: stop.signal });
    await informer.synced;
    const syncMs = performance.now() - started;
    console.log(JSON.stringify({ heap: heapMiB() - before, syncMs, pods: informer.store.size }));
    stop.abort();
    await informer.done;
    api.close();
    return;
  }
  const state = startClusterState({ client: api, signal: stop.signal, watchTimeoutSeconds: 600 });
  await state.synced;
  const syncMs = performance.now() - started;
  const heap = heapMiB() - before;
  const pods = state.pods.store.size;

  // Change latency: relabel one pod at a time, timing from the write to the announcement.
  const waiting = new Map<string, () => void>();
  state.pods.subscribe({
    change: (change) => {
      const pod = change.object as Pod | undefined;
      if (pod) waiting.get(`${pod.namespace}/${pod.name}`)?.();
    },
  });
  const latencies: number[] = [];
  const all = state.pods.store.list();
  for (let i = 0; i < 200; i++) {
    const pod = all[(i * 37) % all.length];
    const key = `${pod.namespace}/${pod.name}`;
    const path = `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`;
    const current = await api.request<RawObject & { metadata: Record<string, unknown> }>(
      "GET",
      path,
    );
    const labels = { ...current.metadata.labels as Record<string, string>, bench: String(i) };
    const seen = new Promise<void>((resolve) => waiting.set(key, resolve));
    const sent = performance.now();
    await api.request("PUT", path, {
      body: { ...current, metadata: { ...current.metadata, labels } },
    });
    await seen;
    latencies.push(performance.now() - sent);
    waiting.delete(key);
  }
  stop.abort();
  await state.done;
  api.close();
  console.log(JSON.stringify({
    heap,
    syncMs,
    pods,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  }));
}

function child(kind: string, server: string) {
  // deno-lint-ignore no-explicit-any
  return measureInChild<any>(new URL(import.meta.url), ["--measure", kind, "--server", server]);
}

async function main() {
  const server = await startFakeKubeProcess(TOKEN);
  try {
    const populated = performance.now();
    const url = server.url;
    await populate(url);
    console.log(
      `\ncluster state: ${PODS} pods in ${NAMESPACES} namespaces, ${POLICIES} policies ` +
        `(created in ${((performance.now() - populated) / 1000).toFixed(1)} s)`,
    );
    const baseline = await child("baseline", url);
    const pods = await child("pods", url);
    const weft = await child("all", url);
    const per1000 = (mib: number) => ((mib * 1000) / PODS).toFixed(2);
    console.log("| what is kept | heap MiB | MiB per 1,000 pods | list+sync ms |");
    console.log("| --- | --- | --- | --- |");
    console.log(
      `| baseline: whole pod objects (${baseline.pods}) | ${baseline.heap.toFixed(2)} | ` +
        `${per1000(baseline.heap)} | ${baseline.syncMs.toFixed(0)} |`,
    );
    console.log(
      `| weft: slim pods with indexes (${pods.pods}) | ${pods.heap.toFixed(2)} | ` +
        `${per1000(pods.heap)} | ${pods.syncMs.toFixed(0)} |`,
    );
    console.log(
      `| weft: all of the cluster state, + ${POLICIES} policies, ${NAMESPACES + 2} namespaces | ` +
        `${weft.heap.toFixed(2)} | ${per1000(weft.heap)} | ${weft.syncMs.toFixed(0)} |`,
    );
    console.log(
      `\nwrite -> informer announcement, 200 pod relabels: p50 ${weft.p50.toFixed(2)} ms, ` +
        `p99 ${weft.p99.toFixed(2)} ms`,
    );
  } finally {
    await server.close();
  }
}

const measureKind = Deno.args.includes("--measure") ? option("--measure", "") : undefined;
if (measureKind) await measure(measureKind, option("--server", ""));
else await main();
