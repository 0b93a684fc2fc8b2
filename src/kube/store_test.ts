import assert from "node:assert/strict";
import { labelPair, objectKey, Store } from "./store.ts";
import { type Pod, POD_RESOURCE, slimPod } from "./cluster_objects.ts";

function pod(name: string, fields: Partial<Pod> = {}): Pod {
  return {
    namespace: "default",
    name,
    uid: `uid-${name}`,
    labels: {},
    ips: [],
    hostNetwork: false,
    phase: "Running",
    namedPorts: [],
    ...fields,
  };
}

const names = (pods: Pod[]) => pods.map((p) => objectKey(p)).sort();

Deno.test("indexes follow every add, update and delete", () => {
  const store = new Store(POD_RESOURCE.indexes);
  store.set(
    pod("a", { labels: { app: "web", tier: "front" }, nodeName: "n1", ips: ["10.32.0.1"] }),
  );
  store.set(pod("b", { labels: { app: "web" }, nodeName: "n2", ips: ["10.32.0.2"] }));
  store.set(pod("c", { namespace: "kube-system", labels: { app: "dns" }, nodeName: "n1" }));
  assert.deepEqual(names(store.byIndex("label", labelPair("app", "web"))), [
    "default/a",
    "default/b",
  ]);
  assert.deepEqual(names(store.byIndex("node", "n1")), ["default/a", "kube-system/c"]);
  assert.deepEqual(names(store.byIndex("namespace", "kube-system")), ["kube-system/c"]);
  assert.deepEqual(names(store.byIndex("ip", "10.32.0.2")), ["default/b"]);

  // a relabel and a move: the old index entries go, the new ones come
  const previous = store.set(
    pod("a", { labels: { app: "api" }, nodeName: "n2", ips: ["10.32.0.9"] }),
  );
  assert.equal(previous?.nodeName, "n1");
  assert.deepEqual(names(store.byIndex("label", labelPair("app", "web"))), ["default/b"]);
  assert.deepEqual(names(store.byIndex("label", labelPair("tier", "front"))), []);
  assert.deepEqual(names(store.byIndex("node", "n2")), ["default/a", "default/b"]);
  assert.deepEqual(names(store.byIndex("ip", "10.32.0.1")), []);
  assert.deepEqual(names(store.byIndex("ip", "10.32.0.9")), ["default/a"]);

  assert.equal(store.delete("default/b")?.name, "b");
  assert.equal(store.delete("default/b"), undefined);
  assert.deepEqual(names(store.byIndex("node", "n2")), ["default/a"]);
  assert.equal(store.size, 2);
  assert.deepEqual(names(store.list()), ["default/a", "kube-system/c"]);
});

Deno.test("a bucket grows from one object to many and back, and a repeated value counts once", () => {
  const store = new Store(POD_RESOURCE.indexes);
  const web = labelPair("app", "web");
  store.set(pod("a", { labels: { app: "web" }, ips: ["10.32.0.1", "10.32.0.1"] }));
  store.set(pod("b", { labels: { app: "web" } }));
  store.set(pod("c", { labels: { app: "web" } }));
  assert.deepEqual(names(store.byIndex("label", web)), ["default/a", "default/b", "default/c"]);
  store.delete("default/b");
  store.delete("default/a");
  assert.deepEqual(names(store.byIndex("label", web)), ["default/c"]);
  assert.deepEqual(names(store.byIndex("ip", "10.32.0.1")), []);
  store.set(pod("c", { labels: { app: "api" } }));
  assert.deepEqual(names(store.byIndex("label", web)), []);
  store.set(pod("d", { labels: { app: "web" } }));
  assert.deepEqual(names(store.byIndex("label", web)), ["default/d"]);
});

Deno.test("host-network and finished pods are not found by address", () => {
  const store = new Store(POD_RESOURCE.indexes);
  store.set(pod("host", { hostNetwork: true, ips: ["192.168.1.10"] }));
  store.set(pod("done", { phase: "Succeeded", ips: ["10.32.0.5"] }));
  store.set(pod("new", { ips: ["10.32.0.5"] }));
  assert.deepEqual(names(store.byIndex("ip", "192.168.1.10")), []);
  assert.deepEqual(names(store.byIndex("ip", "10.32.0.5")), ["default/new"]);
  assert.deepEqual(names(store.byIndex("node", "n1")), []);
});

Deno.test("an unknown index is a RangeError naming it", () => {
  const store = new Store(POD_RESOURCE.indexes);
  assert.throws(() => store.byIndex("colour" as "node", "red"), /no index "colour"/);
});

Deno.test("slimPod keeps what policy reads and drops the rest", () => {
  const slim = slimPod({
    metadata: {
      name: "web-0",
      namespace: "shop",
      uid: "u1",
      labels: { app: "web" },
      // @ts-expect-error: extra fields the API sends and the slim pod must not keep
      annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{...}" },
      managedFields: [{ manager: "kubectl" }],
    },
    spec: {
      nodeName: "n1",
      containers: [
        {
          ports: [
            { name: "http", containerPort: 8080 },
            { containerPort: 9090 },
            { name: "dns", containerPort: 53, protocol: "UDP" },
          ],
        },
        { ports: [{ name: "metrics", containerPort: 9100, protocol: "TCP" }] },
      ],
    },
    status: {
      phase: "Running",
      podIP: "10.32.0.4",
      podIPs: [{ ip: "10.32.0.4" }, { ip: "fd00::4" }],
    },
  });
  assert.deepEqual(slim, {
    namespace: "shop",
    name: "web-0",
    uid: "u1",
    labels: { app: "web" },
    nodeName: "n1",
    ips: ["10.32.0.4", "fd00::4"],
    hostNetwork: false,
    phase: "Running",
    namedPorts: [
      { name: "http", port: 8080, protocol: "TCP" },
      { name: "dns", port: 53, protocol: "UDP" },
      { name: "metrics", port: 9100, protocol: "TCP" },
    ],
  });
});

Deno.test("slimPod of a pod just created: no node, no address, Pending", () => {
  assert.deepEqual(slimPod({ metadata: { name: "p", namespace: "d", uid: "u" } }), {
    namespace: "d",
    name: "p",
    uid: "u",
    labels: {},
    ips: [],
    hostNetwork: false,
    phase: "Pending",
    namedPorts: [],
  });
  assert.deepEqual(slimPod({ metadata: { name: "p" }, status: { podIP: "10.32.0.8" } }).ips, [
    "10.32.0.8",
  ]);
});
