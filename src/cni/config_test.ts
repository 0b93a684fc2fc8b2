import assert from "node:assert/strict";
import { parseCniArgs, parseConfig, parseEnvironment } from "./config.ts";
import { CniCode, CniError } from "./errors.ts";

const fullEnv = {
  CNI_COMMAND: "ADD",
  CNI_CONTAINERID: "abc123",
  CNI_NETNS: "/var/run/netns/pod",
  CNI_IFNAME: "eth0",
  CNI_PATH: "/opt/cni/bin:/usr/lib/cni",
};

function codeOf(fn: () => unknown): number {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof CniError, `expected CniError, got ${error}`);
    return error.code;
  }
  assert.fail("expected an error");
}

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return (error as Error).message;
  }
  assert.fail("expected an error");
}

Deno.test("environment: a complete ADD environment parses, CNI_PATH split on ':'", () => {
  const env = parseEnvironment({ ...fullEnv, CNI_ARGS: "K8S_POD_NAME=web;IgnoreUnknown=1" });
  assert.equal(env.command, "ADD");
  assert.deepEqual(env.path, ["/opt/cni/bin", "/usr/lib/cni"]);
  assert.deepEqual(env.args, { K8S_POD_NAME: "web", IgnoreUnknown: "1" });
});

for (const name of ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]) {
  Deno.test(`environment: ADD without ${name} is code 4 naming it`, () => {
    const env: Record<string, string> = { ...fullEnv };
    delete env[name];
    assert.equal(codeOf(() => parseEnvironment(env)), CniCode.invalidEnvironment);
    assert.match(messageOf(() => parseEnvironment(env)), new RegExp(name));
  });
}

Deno.test("environment: DEL may come without CNI_NETNS, VERSION needs only the command", () => {
  const del = parseEnvironment({ ...fullEnv, CNI_COMMAND: "DEL", CNI_NETNS: "" });
  assert.equal(del.netns, "");
  assert.equal(parseEnvironment({ CNI_COMMAND: "VERSION" }).command, "VERSION");
});

Deno.test("environment: an unknown verb is code 4 naming it", () => {
  const message = messageOf(() => parseEnvironment({ ...fullEnv, CNI_COMMAND: "ATTACH" }));
  assert.match(message, /"ATTACH"/);
});

for (const bad of ["averyveryverylongname", "eth/0", "eth:0", "eth 0", ".", ".."]) {
  Deno.test(`environment: CNI_IFNAME ${JSON.stringify(bad)} is code 4 naming it`, () => {
    const env = { ...fullEnv, CNI_IFNAME: bad };
    assert.equal(codeOf(() => parseEnvironment(env)), CniCode.invalidEnvironment);
    assert.ok(messageOf(() => parseEnvironment(env)).includes(`"${bad}"`));
  });
}

Deno.test("environment: a container ID with a slash is code 4", () => {
  assert.equal(
    codeOf(() => parseEnvironment({ ...fullEnv, CNI_CONTAINERID: "../etc" })),
    CniCode.invalidEnvironment,
  );
});

Deno.test("environment: a CNI_NETNS path with a space is code 4", () => {
  assert.equal(
    codeOf(() => parseEnvironment({ ...fullEnv, CNI_NETNS: "/var/run/netns/a b" })),
    CniCode.invalidEnvironment,
  );
});

Deno.test("environment: CNI_ARGS pair without '=' is code 4", () => {
  assert.equal(codeOf(() => parseCniArgs("A=1;oops")), CniCode.invalidEnvironment);
});

const base = { cniVersion: "1.1.0", name: "weft", type: "weft" };

Deno.test("config: defaults for bridge, agent and default route", () => {
  const config = parseConfig(JSON.stringify(base));
  assert.equal(config.bridge, "weave");
  assert.equal(config.agent, "127.0.0.1:6784");
  assert.equal(config.defaultRoute, true);
  assert.equal(config.mtu, undefined);
});

Deno.test("config: explicit fields are kept", () => {
  const config = parseConfig(JSON.stringify({
    ...base,
    bridge: "weft0",
    agent: "127.0.0.1:7000",
    mtu: 1400,
    subnet: "10.32.8.0/24",
    defaultRoute: false,
    "cni.dev/valid-attachments": [{ containerID: "a", ifname: "eth0" }],
  }));
  assert.equal(config.bridge, "weft0");
  assert.equal(config.agent, "127.0.0.1:7000");
  assert.equal(config.mtu, 1400);
  assert.equal(config.subnet, "10.32.8.0/24");
  assert.equal(config.defaultRoute, false);
  assert.deepEqual(config.validAttachments, [{ containerID: "a", ifname: "eth0" }]);
});

Deno.test("config: text that is not JSON is code 6", () => {
  assert.equal(codeOf(() => parseConfig("{not json")), CniCode.decodeFailure);
  assert.match(messageOf(() => parseConfig("{not json")), /\{not json/);
});

Deno.test("config: an unsupported cniVersion is code 1 naming it", () => {
  const text = JSON.stringify({ ...base, cniVersion: "0.2.0" });
  assert.equal(codeOf(() => parseConfig(text)), CniCode.incompatibleVersion);
  assert.match(messageOf(() => parseConfig(text)), /"0\.2\.0"/);
});

const invalid: [string, Record<string, unknown>][] = [
  ["an array", [] as unknown as Record<string, unknown>],
  ["no cniVersion", { name: "weft", type: "weft" }],
  ["no name", { cniVersion: "1.0.0", type: "weft" }],
  ["mtu 10", { ...base, mtu: 10 }],
  ["mtu as text", { ...base, mtu: "1400" }],
  ["a subnet with host bits", { ...base, subnet: "10.32.1.1/24" }],
  ["a bridge name too long", { ...base, bridge: "averyveryverylongbridge" }],
  ["an agent without port", { ...base, agent: "localhost" }],
  ["an agent port out of range", { ...base, agent: "127.0.0.1:70000" }],
  ["defaultRoute as text", { ...base, defaultRoute: "yes" }],
  ["valid-attachments not a list", { ...base, "cni.dev/valid-attachments": {} }],
  ["a valid-attachment without ifname", {
    ...base,
    "cni.dev/valid-attachments": [{ containerID: "x" }],
  }],
];
for (const [what, conf] of invalid) {
  Deno.test(`config: ${what} is code 7`, () => {
    assert.equal(codeOf(() => parseConfig(JSON.stringify(conf))), CniCode.invalidConfig);
  });
}

for (const agent of ["10.0.0.5:6784", "http://node1:6784", "[fd00::1]:6784", "0.0.0.0:6784"]) {
  Deno.test(`config: a non-loopback agent ${agent} is code 7 saying loopback only`, () => {
    const text = JSON.stringify({ ...base, agent });
    assert.equal(codeOf(() => parseConfig(text)), CniCode.invalidConfig);
    assert.match(messageOf(() => parseConfig(text)), /loopback only/);
  });
}

Deno.test("config: loopback agents in every spelling are accepted", () => {
  for (const agent of ["127.0.0.1:6784", "127.1.2.3:1", "localhost:6784", "[::1]:6784"]) {
    assert.equal(parseConfig(JSON.stringify({ ...base, agent })).agent, agent);
  }
  assert.equal(
    parseConfig(JSON.stringify({ ...base, agent: "http://127.0.0.1:6784/" })).agent,
    "http://127.0.0.1:6784/",
  );
});

Deno.test("config: an ipam block is refused as an unsupported field (code 2)", () => {
  const text = JSON.stringify({ ...base, ipam: { type: "host-local" } });
  assert.equal(codeOf(() => parseConfig(text)), CniCode.unsupportedField);
  assert.match(messageOf(() => parseConfig(text)), /ipam.*host-local/);
});
