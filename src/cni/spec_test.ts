import assert from "node:assert/strict";
import { CniCode, CniError } from "./errors.ts";
import {
  assertVerbAllowed,
  type CniResult,
  formatResult,
  mergeResults,
  negotiateVersion,
  SUPPORTED_VERSIONS,
  versionResult,
} from "./spec.ts";

const result: CniResult = {
  cniVersion: "1.1.0",
  interfaces: [
    { name: "vethwepl1234567", mac: "02:00:00:00:00:01", mtu: 1376 },
    { name: "eth0", mac: "0a:58:0a:20:00:05", mtu: 1376, sandbox: "/var/run/netns/p" },
  ],
  ips: [{ address: "10.32.0.5/12", gateway: "10.32.0.1", interface: 1 }],
  routes: [{ dst: "0.0.0.0/0", gw: "10.32.0.1" }],
  dns: {},
};

Deno.test("versions: every supported version negotiates to itself", () => {
  for (const version of SUPPORTED_VERSIONS) assert.equal(negotiateVersion(version), version);
});

for (const bad of ["0.1.0", "0.2.0", "2.0.0", "1.1", "", 1, null]) {
  Deno.test(`versions: ${JSON.stringify(bad)} is refused with code 1`, () => {
    assert.throws(
      () => negotiateVersion(bad),
      (error) => error instanceof CniError && error.code === CniCode.incompatibleVersion,
    );
  });
}

Deno.test("versions: CHECK needs 0.4.0, GC and STATUS need 1.1.0", () => {
  assert.throws(() => assertVerbAllowed("CHECK", "0.3.1"), CniError);
  assertVerbAllowed("CHECK", "0.4.0");
  assert.throws(() => assertVerbAllowed("GC", "1.0.0"), CniError);
  assert.throws(() => assertVerbAllowed("STATUS", "1.0.0"), CniError);
  assertVerbAllowed("GC", "1.1.0");
  assertVerbAllowed("ADD", "0.3.0");
});

Deno.test("versions: VERSION echoes a supported request and lists all versions", () => {
  assert.deepEqual(versionResult("0.4.0"), {
    cniVersion: "0.4.0",
    supportedVersions: [...SUPPORTED_VERSIONS],
  });
  assert.equal(versionResult(undefined).cniVersion, "1.1.0");
});

for (const version of ["0.3.0", "0.3.1", "0.4.0"] as const) {
  Deno.test(`result ${version}: ips carry version "4", interfaces no mtu, cniVersion set`, () => {
    const out = formatResult(result, version);
    assert.equal(out.cniVersion, version);
    assert.equal(out.ips![0].version, "4");
    assert.equal(out.ips![0].interface, 1);
    assert.equal(out.interfaces![1].mtu, undefined);
    assert.equal(out.interfaces![1].sandbox, "/var/run/netns/p");
    assert.deepEqual(out.dns, {});
  });
}

Deno.test("result 1.0.0: no ips version and no interface mtu", () => {
  const out = formatResult(result, "1.0.0");
  assert.equal(out.cniVersion, "1.0.0");
  assert.equal("version" in out.ips![0], false);
  assert.equal("mtu" in out.interfaces![1], false);
});

Deno.test("result 1.1.0: interface mtu kept, no ips version", () => {
  const out = formatResult({ ...result, ips: [{ ...result.ips![0], version: "4" }] }, "1.1.0");
  assert.equal(out.cniVersion, "1.1.0");
  assert.equal(out.interfaces![1].mtu, 1376);
  assert.equal("version" in out.ips![0], false);
});

Deno.test("merge: our interfaces follow the previous plugin's, ip indices shifted", () => {
  const previous: CniResult = {
    cniVersion: "1.1.0",
    interfaces: [{ name: "cni0" }, { name: "veth1" }, { name: "net1", sandbox: "/p" }],
    ips: [{ address: "10.99.0.2/16", gateway: "10.99.0.1", interface: 2 }],
    routes: [{ dst: "10.99.0.0/16" }],
    dns: { nameservers: ["10.96.0.10"] },
  };
  const merged = mergeResults(previous, result);
  assert.deepEqual(merged.interfaces!.map((i) => i.name), [
    "cni0",
    "veth1",
    "net1",
    "vethwepl1234567",
    "eth0",
  ]);
  assert.deepEqual(merged.ips!.map((i) => [i.address, i.interface]), [
    ["10.99.0.2/16", 2],
    ["10.32.0.5/12", 4],
  ]);
  assert.equal(merged.routes!.length, 2);
  assert.deepEqual(merged.dns, { nameservers: ["10.96.0.10"] });
});

Deno.test("merge: without a previous result ours stands alone", () => {
  assert.equal(mergeResults(undefined, result), result);
});
