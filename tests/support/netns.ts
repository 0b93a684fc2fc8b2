/**
 * The two moves every lab here is built from: a namespace with its loopback up, and a veth
 * pair whose ends live in two namespaces (created in one, the peer born in the other, so no
 * link ever appears in the root namespace). Tests, the demo and the benchmarks share them.
 */
import { run } from "../../src/net/exec.ts";

/** Creates a network namespace and brings its loopback up. */
export async function addNamespace(name: string): Promise<void> {
  await run(["ip", "netns", "add", name]);
  await run(["ip", "-n", name, "link", "set", "lo", "up"]);
}

export interface VethEnd {
  netns: string;
  name: string;
}

/**
 * A veth pair from `a` to `b`. Options: an MTU for both ends, a MAC for `a`'s end, a bridge in
 * `b`'s namespace for its end to join; both ends are brought up.
 */
export async function addVeth(
  a: VethEnd,
  b: VethEnd,
  options: { mtu?: number; macA?: string; bridgeB?: string } = {},
): Promise<void> {
  const mtu = options.mtu === undefined ? [] : ["mtu", String(options.mtu)];
  await run([
    "ip",
    "-n",
    a.netns,
    "link",
    "add",
    a.name,
    ...mtu,
    "type",
    "veth",
    "peer",
    "name",
    b.name,
    ...mtu,
    "netns",
    b.netns,
  ]);
  const mac = options.macA === undefined ? [] : ["address", options.macA];
  await run(["ip", "-n", a.netns, "link", "set", a.name, ...mac, "up"]);
  const master = options.bridgeB === undefined ? [] : ["master", options.bridgeB];
  await run(["ip", "-n", b.netns, "link", "set", b.name, ...master, "up"]);
}
