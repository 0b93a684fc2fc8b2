/**
 * CNI spec types and version handling.
 *
 * Results are built once in the 1.1.0 shape and converted to the request's version only when
 * printed, so handlers never branch on versions. The conversions are the few places where the
 * versions really differ: `ips[].version` before 1.0.0, and `interfaces[].mtu` (plus a few
 * route fields) only from 1.1.0.
 */

import { CniCode, CniError } from "./errors.ts";

export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: CniVersion = "1.1.0";

export type CniCommand = "ADD" | "DEL" | "CHECK" | "VERSION" | "STATUS" | "GC";
export const COMMANDS: readonly CniCommand[] = ["ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC"];

/** The first spec version in which each verb exists. */
const VERB_SINCE: Record<CniCommand, CniVersion> = {
  ADD: "0.3.0",
  DEL: "0.3.0",
  VERSION: "0.3.0",
  CHECK: "0.4.0",
  STATUS: "1.1.0",
  GC: "1.1.0",
};

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  [field: string]: unknown;
}

export interface CniIpConfig {
  address: string;
  gateway?: string;
  interface?: number;
  version?: "4" | "6";
  [field: string]: unknown;
}

export interface CniRoute {
  dst: string;
  gw?: string;
  [field: string]: unknown;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: CniDns;
  [field: string]: unknown;
}

export function isSupportedVersion(version: unknown): version is CniVersion {
  return typeof version === "string" && (SUPPORTED_VERSIONS as readonly string[]).includes(version);
}

/** Returns the version if weft speaks it; otherwise the spec's code 1 naming the bad value. */
export function negotiateVersion(requested: unknown): CniVersion {
  if (isSupportedVersion(requested)) return requested;
  throw new CniError(
    CniCode.incompatibleVersion,
    `Incompatible CNI version ${JSON.stringify(requested)}: weft supports ${
      SUPPORTED_VERSIONS.join(", ")
    }`,
  );
}

/** Orders two supported versions (negative when `a` is older). */
export function compareVersions(a: CniVersion, b: CniVersion): number {
  return SUPPORTED_VERSIONS.indexOf(a) - SUPPORTED_VERSIONS.indexOf(b);
}

/** CHECK needs 0.4.0 and GC/STATUS need 1.1.0; asking for them earlier is code 1. */
export function assertVerbAllowed(command: CniCommand, version: CniVersion): void {
  const since = VERB_SINCE[command];
  if (compareVersions(version, since) < 0) {
    throw new CniError(
      CniCode.incompatibleVersion,
      `CNI ${command} needs cniVersion ${since} or later, the config says "${version}"`,
    );
  }
}

/** The answer to VERSION: echo the request's version when we speak it. */
export function versionResult(requested: unknown): {
  cniVersion: string;
  supportedVersions: string[];
} {
  return {
    cniVersion: isSupportedVersion(requested) ? requested : LATEST_VERSION,
    supportedVersions: [...SUPPORTED_VERSIONS],
  };
}

const FIELDS_SINCE_1_1 = {
  interface: ["mtu", "socketPath", "pciID"],
  route: ["mtu", "advmss", "priority", "table", "scope"],
};

/** Converts a result to the shape of `version`, with `cniVersion` set to it. */
export function formatResult(result: CniResult, version: CniVersion): CniResult {
  const modern = compareVersions(version, "1.0.0") >= 0;
  const has11 = compareVersions(version, "1.1.0") >= 0;
  const out: CniResult = { ...result, cniVersion: version };
  if (result.interfaces) {
    out.interfaces = result.interfaces.map((iface) =>
      has11 ? { ...iface } : omit(iface, FIELDS_SINCE_1_1.interface)
    );
  }
  if (result.ips) {
    out.ips = result.ips.map((ipConfig) => {
      if (modern) return omit(ipConfig, ["version"]);
      return { ...ipConfig, version: ipConfig.address.includes(":") ? "6" : "4" } as CniIpConfig;
    });
  }
  if (result.routes) {
    out.routes = result.routes.map((route) =>
      has11 ? { ...route } : omit(route, FIELDS_SINCE_1_1.route)
    );
  }
  out.dns = result.dns ?? {};
  return out;
}

/**
 * Appends our interfaces, addresses and routes to a previous plugin's result, as the spec asks
 * of an interface-creating plugin that is not first in a chain: the earlier plugins' entries
 * keep their indices and ours are shifted past them. With no previous result, ours stands alone.
 */
export function mergeResults(previous: CniResult | undefined, ours: CniResult): CniResult {
  if (!previous) return ours;
  const offset = previous.interfaces?.length ?? 0;
  return {
    ...previous,
    cniVersion: ours.cniVersion,
    interfaces: [...(previous.interfaces ?? []), ...(ours.interfaces ?? [])],
    ips: [
      ...(previous.ips ?? []),
      ...(ours.ips ?? []).map((ipConfig) =>
        ipConfig.interface === undefined
          ? ipConfig
          : { ...ipConfig, interface: ipConfig.interface + offset }
      ),
    ],
    routes: [...(previous.routes ?? []), ...(ours.routes ?? [])],
    dns: mergeDns(previous.dns, ours.dns),
  };
}

function mergeDns(a: CniDns | undefined, b: CniDns | undefined): CniDns {
  const out: CniDns = { ...(b ?? {}), ...(a ?? {}) };
  for (const key of ["nameservers", "search", "options"] as const) {
    const merged = [...new Set([...(a?.[key] ?? []), ...(b?.[key] ?? [])])];
    if (merged.length) out[key] = merged;
  }
  return out;
}

function omit<T extends Record<string, unknown>>(value: T, keys: readonly string[]): T {
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    if (!keys.includes(key)) out[key] = field;
  }
  return out as T;
}
