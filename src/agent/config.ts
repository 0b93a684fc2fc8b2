/**
 * The agent's configuration: command-line flags first, then environment variables, then
 * defaults. Weave Net's environment names are accepted beside weft's own so a Weave Net
 * DaemonSet migrates by changing nothing but the image. Every value is validated here, once,
 * with a message naming the flag or variable, so the rest of the agent deals only in checked
 * values.
 */
import { type Cidr, formatCidr, parseCidr, parseIp } from "../net/cidr.ts";
import { type IpamInit, parseIpamInit } from "../ipam/mod.ts";
import { AddressError, isLocalAddress, normalizeAddress } from "../mesh/mod.ts";

export interface AgentConfig {
  bridge: string;
  ipallocRange: Cidr;
  /**
   * How the first split of the range is decided. Undefined on Kubernetes without IPALLOC_INIT:
   * the agent then counts the Nodes at its first list (consensus among all of them).
   */
  ipallocInit?: IpamInit;
  apiAddr: { hostname: string; port: number };
  stateDir: string;
  /** Overrides the MTU the data path would pick. */
  mtu?: number;
  nickname?: string;
  peerName?: string;
  password?: string;
  /** Encrypt pod traffic between nodes (default when a password is set). */
  encrypt: boolean;
  peers: string[];
  port: number;
  meshHost: string;
  discovery: boolean;
  connLimit: number;
  /** PEM contents (read from --tls-cert/--tls-key) for serving the mesh over TLS. */
  tls?: { cert: string; key: string };
  /** PEM roots trusted when dialling peers over TLS (--tls-ca), beside the system's. */
  tlsCa?: string[];
  vxlanPort: number;
  sleevePort: number;
  datapathMode: "auto" | "fastdp" | "sleeve" | "none";
  ipamReclaimAfterMs?: number;
  nodeName?: string;
  kubernetes: boolean;
  kubeconfig?: string;
  /**
   * The ConfigMap (kube-system) where agents race to claim a deleted Node's reclaim. Weave Net's
   * RBAC allows only `weave-net`, so its DaemonSet run with the weft image names that one.
   */
  reclaimConfigMap?: string;
  /** Enforce Kubernetes NetworkPolicy (on Kubernetes only; default on there). */
  networkPolicy: boolean;
  /** Log denied connections to the kernel log, at most this many a second per policy. */
  policyLogRate?: number;
}

/** Flags as commander hands them over (all optional strings/booleans). */
export interface AgentFlags {
  bridge?: string;
  ipallocRange?: string;
  ipallocInit?: string;
  apiAddr?: string;
  stateDir?: string;
  mtu?: string;
  nickname?: string;
  name?: string;
  passwordFile?: string;
  encrypt?: boolean;
  peers?: string;
  port?: string;
  host?: string;
  discovery?: boolean;
  connLimit?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  vxlanPort?: string;
  sleevePort?: string;
  datapath?: string;
  ipamReclaimAfter?: string;
  nodeName?: string;
  kubernetes?: boolean;
  kubeconfig?: string;
  /** `--no-network-policy` makes it false. */
  networkPolicy?: boolean;
  policyLogRate?: string;
}

/** Every environment variable the agent reads; the manifests may use only these. */
export const AGENT_ENV_NAMES = [
  "IPALLOC_RANGE",
  "IPALLOC_INIT",
  "WEFT_BRIDGE",
  "WEFT_API_ADDR",
  "WEFT_STATE_DIR",
  "WEFT_MTU",
  "WEAVE_MTU",
  "WEFT_NICKNAME",
  "WEFT_PEER_NAME",
  "WEFT_PASSWORD",
  "WEAVE_PASSWORD",
  "WEFT_PASSWORD_FILE",
  "WEFT_PEERS",
  "WEFT_PORT",
  "CONN_LIMIT",
  "WEFT_DATAPATH",
  "WEFT_VXLAN_PORT",
  "WEFT_SLEEVE_PORT",
  "IPAM_RECLAIM_AFTER",
  "NODE_NAME",
  "KUBERNETES_SERVICE_HOST",
  "KUBERNETES_SERVICE_PORT",
  "WEFT_IPTABLES",
  "WEFT_RECLAIM_CONFIGMAP",
  "WEFT_NETWORK_POLICY",
  "WEFT_POLICY_LOG_RATE",
] as const;

export const DEFAULTS = {
  bridge: "weave",
  ipallocRange: "10.32.0.0/12",
  apiAddr: "127.0.0.1:6784",
  stateDir: "/var/lib/weft",
  port: 6783,
  vxlanPort: 6784,
  sleevePort: 6783,
  connLimit: 200,
} as const;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

function integer(text: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < min || Number(text) > max) {
    throw new ConfigError(
      `Invalid ${what} "${text}": expected a whole number from ${min} to ${max}`,
    );
  }
  return Number(text);
}

/** Parses `host:port` and insists on a loopback host: the admin API has no authentication. */
export function parseApiAddr(text: string): { hostname: string; port: number } {
  const match = /^(.*):(\d+)$/.exec(text);
  if (!match) throw new ConfigError(`Invalid API address "${text}": expected host:port`);
  const hostname = match[1].replace(/^\[|\]$/g, "") || "127.0.0.1";
  const loopback = hostname === "localhost" || hostname === "::1" ||
    (/^\d+\.\d+\.\d+\.\d+$/.test(hostname) && parseIp(hostname) >>> 24 === 127);
  if (!loopback) {
    throw new ConfigError(
      `Invalid API address "${text}": the admin API has no authentication and listens on loopback only`,
    );
  }
  return { hostname, port: integer(match[2], "API port", 1, 65535) };
}

/** Parses a duration like `90s`, `10m`, `2h` into milliseconds. */
export function parseDuration(text: string, what: string): number {
  const match = /^(\d+)(ms|s|m|h)$/.exec(text.trim());
  if (!match) throw new ConfigError(`Invalid ${what} "${text}": expected e.g. 30s, 10m or 1h`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as "ms" | "s" | "m" | "h"];
  return Number(match[1]) * unit;
}

async function readPem(path: string, flag: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new ConfigError(`Cannot read ${flag} "${path}": ${(error as Error).message}`);
  }
  if (!text.includes("-----BEGIN ")) {
    throw new ConfigError(`${flag} "${path}" is not a PEM file`);
  }
  return text;
}

function splitList(text: string | undefined): string[] {
  return (text ?? "").split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

/**
 * How many peers agree the first split by default: this one and every DISTINCT other peer in
 * `--peers`. The same command line on every node (`--peers A,B,C` on A, B and C) must give
 * every node the same quorum, so this node's own entry (one of its addresses with its mesh
 * port) is left out, and repeats (`A` and `A:6783`) count once. Host names are not resolved:
 * name yourself by address, or give `--ipalloc-init`.
 */
export function defaultQuorum(
  peers: string[],
  options: { port: number; hostAddresses?: readonly string[] },
): number {
  const others = new Set<string>();
  for (const peer of peers) {
    let address: string;
    try {
      address = normalizeAddress(peer);
    } catch (error) {
      if (error instanceof AddressError) throw new ConfigError(`Invalid --peers: ${error.message}`);
      throw error;
    }
    if (!isLocalAddress(address, options)) others.add(address);
  }
  return others.size + 1;
}

export interface ResolveOptions {
  /** This host's addresses (default: its interfaces), to find itself in `--peers`. */
  hostAddresses?: readonly string[];
}

export async function resolveAgentConfig(
  flags: AgentFlags,
  env: Record<string, string | undefined>,
  options: ResolveOptions = {},
): Promise<AgentConfig> {
  const pick = (flag: string | undefined, ...names: string[]) =>
    flag ?? names.map((n) => env[n]).find((v) => v !== undefined && v !== "");

  const rangeText = pick(flags.ipallocRange, "IPALLOC_RANGE") ?? DEFAULTS.ipallocRange;
  let ipallocRange: Cidr;
  try {
    ipallocRange = parseCidr(rangeText);
  } catch (error) {
    throw new ConfigError(`Invalid --ipalloc-range/IPALLOC_RANGE: ${(error as Error).message}`);
  }
  if (ipallocRange.prefix > 30) {
    throw new ConfigError(
      `Invalid --ipalloc-range "${formatCidr(ipallocRange)}": too small for pods`,
    );
  }

  const bridge = pick(flags.bridge, "WEFT_BRIDGE") ?? DEFAULTS.bridge;
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(bridge)) {
    throw new ConfigError(`Invalid bridge name "${bridge}": 1 to 15 letters, digits, _ . -`);
  }

  const mtuText = pick(flags.mtu, "WEFT_MTU", "WEAVE_MTU");
  const passwordFile = pick(flags.passwordFile, "WEFT_PASSWORD_FILE");
  let password = env.WEFT_PASSWORD || env.WEAVE_PASSWORD || undefined;
  if (passwordFile) {
    try {
      password = (await Deno.readTextFile(passwordFile)).trim();
    } catch (error) {
      throw new ConfigError(
        `Cannot read password file "${passwordFile}": ${(error as Error).message}`,
      );
    }
    if (!password) throw new ConfigError(`Password file "${passwordFile}" is empty`);
  }
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
    throw new ConfigError("--tls-cert and --tls-key go together");
  }
  const datapathMode =
    (pick(flags.datapath, "WEFT_DATAPATH") ?? "auto") as AgentConfig["datapathMode"];
  if (!["auto", "fastdp", "sleeve", "none"].includes(datapathMode)) {
    throw new ConfigError(
      `Invalid --datapath "${datapathMode}": expected auto, fastdp, sleeve or none`,
    );
  }
  const reclaim = pick(flags.ipamReclaimAfter, "IPAM_RECLAIM_AFTER");
  const nodeName = pick(flags.nodeName, "NODE_NAME");
  // In a pod (the service account's API address is set) or pointed at a cluster with
  // --kubeconfig, and told which Node this is: peers then come from the Node list.
  const kubernetes = flags.kubernetes ??
    Boolean((env.KUBERNETES_SERVICE_HOST || flags.kubeconfig) && nodeName);
  const peers = splitList(pick(flags.peers, "WEFT_PEERS"));
  const port = integer(
    pick(flags.port, "WEFT_PORT") ?? String(DEFAULTS.port),
    "mesh port",
    1,
    65535,
  );
  const initText = pick(flags.ipallocInit, "IPALLOC_INIT");
  let ipallocInit: IpamInit | undefined;
  if (initText !== undefined) {
    try {
      ipallocInit = parseIpamInit(initText);
    } catch (error) {
      throw new ConfigError(
        `Invalid --ipalloc-init/IPALLOC_INIT "${initText}": ${(error as Error).message}`,
      );
    }
  } else if (!kubernetes) {
    // As Weave Net: the initial peers are this one and those it is told to connect to.
    ipallocInit = {
      mode: "consensus",
      peers: defaultQuorum(peers, { port, hostAddresses: options.hostAddresses }),
    };
  }

  return {
    bridge,
    ipallocRange,
    ipallocInit,
    apiAddr: parseApiAddr(pick(flags.apiAddr, "WEFT_API_ADDR") ?? DEFAULTS.apiAddr),
    stateDir: pick(flags.stateDir, "WEFT_STATE_DIR") ?? DEFAULTS.stateDir,
    mtu: mtuText === undefined ? undefined : integer(mtuText, "MTU (--mtu/WEAVE_MTU)", 576, 65535),
    nickname: pick(flags.nickname, "WEFT_NICKNAME") ?? nodeName,
    peerName: pick(flags.name, "WEFT_PEER_NAME"),
    password,
    encrypt: Boolean(password) && flags.encrypt !== false,
    peers,
    port,
    meshHost: flags.host ?? "0.0.0.0",
    discovery: flags.discovery ?? true,
    connLimit: integer(
      pick(flags.connLimit, "CONN_LIMIT") ?? String(DEFAULTS.connLimit),
      "connection limit (--conn-limit/CONN_LIMIT)",
      0,
      100_000,
    ),
    tls: flags.tlsCert
      ? {
        cert: await readPem(flags.tlsCert, "--tls-cert"),
        key: await readPem(flags.tlsKey!, "--tls-key"),
      }
      : undefined,
    tlsCa: flags.tlsCa ? [await readPem(flags.tlsCa, "--tls-ca")] : undefined,
    vxlanPort: integer(
      pick(flags.vxlanPort, "WEFT_VXLAN_PORT") ?? String(DEFAULTS.vxlanPort),
      "VXLAN port",
      1,
      65535,
    ),
    sleevePort: integer(
      pick(flags.sleevePort, "WEFT_SLEEVE_PORT") ?? String(DEFAULTS.sleevePort),
      "sleeve port",
      1,
      65535,
    ),
    datapathMode,
    ipamReclaimAfterMs: reclaim ? parseDuration(reclaim, "--ipam-reclaim-after") : undefined,
    nodeName,
    kubernetes,
    kubeconfig: flags.kubeconfig,
    reclaimConfigMap: env.WEFT_RECLAIM_CONFIGMAP || undefined,
    networkPolicy: flags.networkPolicy === false
      ? false
      : parseSwitch(env.WEFT_NETWORK_POLICY, "WEFT_NETWORK_POLICY") ?? true,
    policyLogRate: parseRate(pick(flags.policyLogRate, "WEFT_POLICY_LOG_RATE")),
  };
}

function parseSwitch(text: string | undefined, what: string): boolean | undefined {
  if (text === undefined || text === "") return undefined;
  if (/^(true|1|yes|on)$/i.test(text)) return true;
  if (/^(false|0|no|off)$/i.test(text)) return false;
  throw new ConfigError(`Invalid ${what} "${text}": expected true or false`);
}

/** `--policy-log-rate`: `N/s` or `N` (a second), 1 to 10,000; `0` or `off` logs nothing. */
export function parseRate(text: string | undefined): number | undefined {
  if (text === undefined || /^(0|off)$/i.test(text.trim())) return undefined;
  const match = /^(\d+)(\/s)?$/.exec(text.trim());
  if (!match || Number(match[1]) > 10_000) {
    throw new ConfigError(
      `Invalid --policy-log-rate/WEFT_POLICY_LOG_RATE "${text}": expected N/s, N from 1 to 10000`,
    );
  }
  return Number(match[1]);
}
