import assert from "node:assert/strict";
import { KubeConfigError, loadKubeConfig } from "./config.ts";

const CA = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";

function files(map: Record<string, string>) {
  return (path: string) => {
    if (path in map) return Promise.resolve(map[path]);
    return Promise.reject(new Deno.errors.NotFound(`No such file: ${path}`));
  };
}

Deno.test("in-cluster config reads the service account and brackets an IPv6 host", async () => {
  const read = files({ "/sa/token": "tok\n", "/sa/ca.crt": CA, "/sa/namespace": "kube-system" });
  const config = await loadKubeConfig({
    env: { KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "6443" },
    serviceAccountDir: "/sa",
    readTextFile: read,
  });
  assert.equal(config.server, "https://[fd00::1]:6443");
  assert.equal(config.caPem, CA);
  assert.equal(config.tokenFile, "/sa/token");
  assert.equal(config.token, undefined, "the token is re-read from its file, never frozen");
  assert.equal(config.namespace, "kube-system");
});

Deno.test("in-cluster config without a token mount names the missing file", async () => {
  await assert.rejects(
    loadKubeConfig({
      env: { KUBERNETES_SERVICE_HOST: "10.96.0.1" },
      serviceAccountDir: "/nope",
      readTextFile: files({}),
    }),
    (error: Error) => error instanceof KubeConfigError && error.message.includes("/nope/token"),
  );
});

Deno.test("no kubeconfig and no in-cluster env is a clear error", async () => {
  await assert.rejects(
    loadKubeConfig({ env: {}, readTextFile: files({}) }),
    /No Kubernetes API configured/,
  );
});

const KUBECONFIG = `
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: c1
  cluster:
    server: https://k8s.example:6443/
    certificate-authority-data: ${btoa(CA)}
- name: c2
  cluster:
    server: https://other:6443
    certificate-authority: pki/ca.crt
users:
- name: u1
  user:
    client-certificate-data: ${btoa("CERT")}
    client-key-data: ${btoa("KEY")}
- name: u2
  user:
    token: abc
- name: u3
  user:
    exec:
      command: aws
contexts:
- name: dev
  context: { cluster: c1, user: u1, namespace: team }
- name: other
  context: { cluster: c2, user: u2 }
- name: cloud
  context: { cluster: c1, user: u3 }
`;

Deno.test("kubeconfig current-context with inline certificate data", async () => {
  const config = await loadKubeConfig({
    kubeconfig: "/home/me/.kube/config",
    env: { KUBERNETES_SERVICE_HOST: "10.96.0.1" },
    readTextFile: files({ "/home/me/.kube/config": KUBECONFIG }),
  });
  assert.equal(config.server, "https://k8s.example:6443");
  assert.equal(config.caPem, CA);
  assert.equal(config.clientCertPem, "CERT");
  assert.equal(config.clientKeyPem, "KEY");
  assert.equal(config.namespace, "team");
  assert.equal(config.source, "/home/me/.kube/config");
});

Deno.test("kubeconfig context override, token and a CA path relative to the file", async () => {
  const config = await loadKubeConfig({
    context: "other",
    env: { KUBECONFIG: "/home/me/.kube/config:/etc/other" },
    readTextFile: files({ "/home/me/.kube/config": KUBECONFIG, "/home/me/.kube/pki/ca.crt": CA }),
  });
  assert.equal(config.server, "https://other:6443");
  assert.equal(config.caPem, CA);
  assert.equal(config.token, "abc");
});

Deno.test("kubeconfig exec plugins and unknown contexts are refused by name", async () => {
  const read = files({ "/k": KUBECONFIG });
  await assert.rejects(
    loadKubeConfig({ kubeconfig: "/k", context: "cloud", env: {}, readTextFile: read }),
    /user "u3" authenticates with "exec"/,
  );
  await assert.rejects(
    loadKubeConfig({ kubeconfig: "/k", context: "missing", env: {}, readTextFile: read }),
    /no context named "missing"/,
  );
});
