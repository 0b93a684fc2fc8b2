/**
 * manifests/weft.yaml: valid against the Kubernetes schemas, shaped as the docs say, mounting
 * what the code writes, using only env names the agent reads, and granting exactly the API
 * access the kube client uses (checked by running the client against the fake API server).
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { ClusterRole } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole";
import { ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { DEFAULT_CNI_BIN_DIR, DEFAULT_CNI_CONF_DIR } from "../src/install/mod.ts";
// imported, not looked up at run time: if these move, this test fails to load instead of skipping
import { AGENT_ENV_NAMES, DEFAULTS } from "../src/agent/mod.ts";
import {
  claimReclaim,
  getPod,
  RECLAIMS_CONFIGMAP,
  RECLAIMS_NAMESPACE,
  setNetworkAvailable,
  startClusterState,
  startNodeWatcher,
} from "../src/kube/mod.ts";
import { startFakeCluster, waitFor } from "./kube_fixture.ts";

const root = new URL("../", import.meta.url);
const manifestText = await Deno.readTextFile(new URL("manifests/weft.yaml", root));
// deno-lint-ignore no-explicit-any
type Json = any;
const objects: Json[] = parseAllDocuments(manifestText).map((doc) => doc.toJS()).filter(Boolean);

// deno-lint-ignore no-explicit-any
const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  "v1/ServiceAccount": ServiceAccount,
  "rbac.authorization.k8s.io/v1/ClusterRole": ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": ClusterRoleBinding,
  "rbac.authorization.k8s.io/v1/Role": Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": RoleBinding,
  "apps/v1/DaemonSet": DaemonSet,
};

function only(kind: string): Json {
  const found = objects.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `expected one ${kind}, found ${found.length}`);
  return found[0];
}

const daemonSet = only("DaemonSet");
const podSpec = daemonSet.spec.template.spec;
const agent = podSpec.containers.find((c: Json) => c.name === "weft");
const installer = podSpec.initContainers?.[0];

Deno.test("every object validates against its Kubernetes schema and has the required fields", () => {
  assert.deepEqual(objects.map((o) => o.kind), [
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "DaemonSet",
  ]);
  for (const object of objects) {
    const Model = MODELS[`${object.apiVersion}/${object.kind}`];
    assert.ok(Model, `no model for ${object.apiVersion} ${object.kind}`);
    new Model(object).validate();
    assert.ok(object.metadata?.name, `${object.kind} has a name`);
    if (!object.kind.startsWith("Cluster")) {
      assert.equal(object.metadata.namespace, "kube-system", `${object.kind} lives in kube-system`);
    }
  }
});

Deno.test("the schema check is real: a broken DaemonSet fails validation", () => {
  const broken = structuredClone(daemonSet);
  broken.spec.template.spec.containers[0].image = 42;
  assert.throws(() => new DaemonSet(broken).validate());
});

Deno.test("the DaemonSet runs one privileged host-network agent per node, on every node", () => {
  assert.equal(daemonSet.metadata.name, "weft");
  assert.equal(podSpec.hostNetwork, true);
  assert.equal(podSpec.priorityClassName, "system-node-critical");
  assert.deepEqual(podSpec.tolerations, [{ operator: "Exists" }]);
  assert.equal(daemonSet.spec.updateStrategy.type, "RollingUpdate");
  assert.equal(agent.securityContext.privileged, true);
  assert.deepEqual(agent.command.slice(1), ["launch"]);
  assert.deepEqual(installer.command.slice(1), ["install"]);
  for (const container of [...podSpec.containers, ...podSpec.initContainers]) {
    assert.ok(container.resources?.requests?.cpu && container.resources?.requests?.memory);
  }
  const selector = daemonSet.spec.selector.matchLabels;
  for (const [key, value] of Object.entries(selector)) {
    assert.equal(daemonSet.spec.template.metadata.labels[key], value, `pod label ${key}`);
  }
});

Deno.test("probes reach the loopback-only admin API: readiness /status, liveness /healthz", () => {
  // kubelet would probe the node IP for a hostNetwork pod; the API listens on 127.0.0.1 only.
  assert.deepEqual(agent.readinessProbe.httpGet, {
    host: "127.0.0.1",
    path: "/status",
    port: 6784,
  });
  assert.deepEqual(agent.livenessProbe.httpGet, {
    host: "127.0.0.1",
    path: "/healthz",
    port: 6784,
  });
});

function hostPathOf(container: Json, mountPath: string): { path: string; readOnly: boolean } {
  const mount = container.volumeMounts.find((m: Json) => m.mountPath === mountPath);
  assert.ok(mount, `${container.name} mounts ${mountPath}`);
  const volume = podSpec.volumes.find((v: Json) => v.name === mount.name);
  assert.ok(volume?.hostPath, `${mount.name} is a hostPath volume`);
  return { path: volume.hostPath.path, readOnly: mount.readOnly === true };
}

Deno.test("the DaemonSet mounts the host paths the code writes, at the paths the code uses", () => {
  assert.equal(hostPathOf(installer, DEFAULT_CNI_BIN_DIR).path, DEFAULT_CNI_BIN_DIR);
  assert.equal(hostPathOf(installer, DEFAULT_CNI_CONF_DIR).path, DEFAULT_CNI_CONF_DIR);
  const stateDir = DEFAULTS.stateDir;
  assert.deepEqual(hostPathOf(agent, stateDir), { path: stateDir, readOnly: false });
  assert.deepEqual(hostPathOf(agent, "/run/xtables.lock"), {
    path: "/run/xtables.lock",
    readOnly: false,
  });
  assert.deepEqual(hostPathOf(agent, "/etc/machine-id"), {
    path: "/etc/machine-id",
    readOnly: true,
  });
});

Deno.test("env: the documented settings, passwords from optional Secrets, node name from the pod", () => {
  const env = new Map(agent.env.map((e: Json) => [e.name, e]));
  for (
    const name of ["IPALLOC_RANGE", "WEFT_PASSWORD", "WEAVE_PASSWORD", "CONN_LIMIT", "WEAVE_MTU"]
  ) {
    assert.ok(env.has(name), `env ${name}`);
  }
  assert.deepEqual((env.get("NODE_NAME") as Json).valueFrom, {
    fieldRef: { fieldPath: "spec.nodeName" },
  });
  for (const name of ["WEFT_PASSWORD", "WEAVE_PASSWORD"]) {
    assert.equal((env.get(name) as Json).valueFrom.secretKeyRef.optional, true, name);
  }
});

Deno.test("env: the manifest uses only names the agent reads (AGENT_ENV_NAMES)", () => {
  const used = [...podSpec.containers, ...podSpec.initContainers]
    .flatMap((c: Json) => (c.env ?? []).map((e: Json) => e.name as string));
  const unread = used.filter((name) => !AGENT_ENV_NAMES.includes(name));
  assert.deepEqual(unread, [], `env names the agent never reads: ${unread.join(", ")}`);
});

Deno.test("RBAC binds the DaemonSet's ServiceAccount to the roles it defines", () => {
  const account = only("ServiceAccount");
  assert.equal(podSpec.serviceAccountName, account.metadata.name);
  for (
    const [bindingKind, roleKind] of [["ClusterRoleBinding", "ClusterRole"], [
      "RoleBinding",
      "Role",
    ]]
  ) {
    const binding = only(bindingKind);
    assert.equal(binding.roleRef.kind, roleKind);
    assert.equal(binding.roleRef.name, only(roleKind).metadata.name);
    assert.deepEqual(binding.subjects, [{
      kind: "ServiceAccount",
      name: account.metadata.name,
      namespace: account.metadata.namespace,
    }]);
  }
  assert.equal(only("Role").metadata.namespace, RECLAIMS_NAMESPACE);
});

interface Grant {
  verb: string;
  /** As the fake API logs requests: `pods`, `nodes/status`, `networkpolicies.networking.k8s.io`. */
  resource: string;
  resourceNames?: string[];
}

function grants(kind: string): Grant[] {
  return only(kind).rules.flatMap((rule: Json) =>
    rule.apiGroups.flatMap((group: string) =>
      rule.resources.flatMap((resource: string) =>
        rule.verbs.map((verb: string) => ({
          verb,
          resource: group ? `${resource}.${group}` : resource,
          resourceNames: rule.resourceNames,
        }))
      )
    )
  );
}

Deno.test("RBAC grants exactly what the kube client does, no more", async () => {
  await using cluster = startFakeCluster();
  const { api, client } = cluster;
  api.addNode("self", { internalIp: "10.0.0.1" });
  api.addPod("default", "web", { ip: "10.32.0.2", node: "self" });
  const watcher = cluster.track(startNodeWatcher({
    client,
    nodeName: "self",
    onPeers: () => {},
    signal: cluster.signal,
  }));
  const state = cluster.track(startClusterState({ client, signal: cluster.signal }));
  await watcher.ready;
  await state.synced;
  await waitFor("the four watches to open", () => api.openWatches === 4);
  assert.ok(await getPod(client, "default", "web"));
  await claimReclaim(client, "gone-1", { claimant: "self" }); // creates the ConfigMap
  await claimReclaim(client, "gone-2", { claimant: "self" }); // updates it
  await setNetworkAvailable(client, "self");
  cluster.stop();
  await watcher.done;
  await state.done;

  const used = new Set(api.requests);
  const granted = [...grants("ClusterRole"), ...grants("Role")];
  for (const request of used) {
    const [verb, resource] = request.split(" ");
    const grant = granted.find((g) => g.verb === verb && g.resource === resource);
    assert.ok(grant, `the manifest does not grant "${request}"`);
    if (grant.resourceNames) assert.deepEqual(grant.resourceNames, [RECLAIMS_CONFIGMAP]);
  }
  // `get nodes` is kept for the agent to read its own Node (the least-privilege set
  // is nodes get/list/watch); every other grant must be exercised by the client.
  const unused = granted.map((g) => `${g.verb} ${g.resource}`)
    .filter((g) => !used.has(g) && g !== "get nodes");
  assert.deepEqual(unused, [], "grants nothing uses");
});

Deno.test("docs/kubernetes.md applies this file and names the DaemonSet and container it has", async () => {
  const docs = await Deno.readTextFile(new URL("docs/kubernetes.md", root));
  assert.match(docs, /kubectl apply -f \S*manifests\/weft\.yaml/);
  assert.ok(
    docs.includes(
      `kubectl -n kube-system exec ds/${daemonSet.metadata.name} -c ${agent.name} -- weft status`,
    ),
    "docs show the status command for this DaemonSet and container",
  );
});
