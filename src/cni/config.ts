/**
 * Reading what the runtime hands the plugin: CNI_* environment variables and the network
 * configuration on stdin. Both are validated up front so handlers can trust every field, and
 * every rejection names the variable or key and the value at fault.
 */

import { isValidLinkName } from "../net/link.ts";
import { parseCidr } from "../net/cidr.ts";
import { CniCode, CniError } from "./errors.ts";
import {
  type CniCommand,
  type CniResult,
  type CniVersion,
  COMMANDS,
  negotiateVersion,
} from "./spec.ts";

export interface CniEnvironment {
  command: CniCommand;
  containerID: string;
  /** Empty for DEL when the runtime no longer has a namespace. */
  netns: string;
  ifname: string;
  path: string[];
  /** CNI_ARGS as key/value pairs (e.g. K8S_POD_NAME). */
  args: Record<string, string>;
}

/** Which variables each verb needs, as the reference tooling (skel) enforces them. */
const REQUIRED: Record<CniCommand, readonly string[]> = {
  ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  DEL: ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
  GC: ["CNI_PATH"],
  STATUS: ["CNI_PATH"],
  VERSION: [],
};

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function invalidEnv(message: string): CniError {
  return new CniError(CniCode.invalidEnvironment, message);
}

/** Validates the CNI_* variables for the verb in CNI_COMMAND (error code 4 otherwise). */
export function parseEnvironment(env: Record<string, string | undefined>): CniEnvironment {
  const rawCommand = env.CNI_COMMAND;
  if (!rawCommand) throw invalidEnv("Required environment variable CNI_COMMAND is missing");
  if (!(COMMANDS as readonly string[]).includes(rawCommand)) {
    throw invalidEnv(`Unknown CNI_COMMAND "${rawCommand}": expected one of ${COMMANDS.join(", ")}`);
  }
  const command = rawCommand as CniCommand;
  const missing = REQUIRED[command].filter((name) => !env[name]);
  if (missing.length) {
    throw invalidEnv(
      `Required environment variable(s) ${missing.join(", ")} missing for ${command}`,
    );
  }
  const containerID = env.CNI_CONTAINERID ?? "";
  if (containerID && !CONTAINER_ID.test(containerID)) {
    throw invalidEnv(
      `Invalid CNI_CONTAINERID "${containerID}": must start with a letter or digit and contain ` +
        `only letters, digits, '_', '.' and '-'`,
    );
  }
  const ifname = env.CNI_IFNAME ?? "";
  if (ifname && !isValidLinkName(ifname)) {
    throw invalidEnv(
      `Invalid CNI_IFNAME "${ifname}": an interface name has 1-15 characters and no '/', ':' ` +
        `or whitespace`,
    );
  }
  const netns = env.CNI_NETNS ?? "";
  if (/[\s"'\\]/.test(netns)) {
    // the path is handed to `ip -batch`, whose lines are split on whitespace
    throw invalidEnv(`Invalid CNI_NETNS "${netns}": a namespace path with whitespace or quotes`);
  }
  return {
    command,
    containerID,
    netns,
    ifname,
    path: (env.CNI_PATH ?? "").split(":").filter(Boolean),
    args: parseCniArgs(env.CNI_ARGS ?? ""),
  };
}

/** Parses CNI_ARGS (`K=V;K2=V2`); a pair without '=' is an error naming it. */
export function parseCniArgs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of text.split(";")) {
    if (!pair) continue;
    const eq = pair.indexOf("=");
    if (eq <= 0) throw invalidEnv(`Invalid CNI_ARGS pair "${pair}": expected KEY=VALUE`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

export interface Attachment {
  containerID: string;
  ifname: string;
}

/** The weft network configuration, with defaults applied. */
export interface WeftConfig {
  cniVersion: CniVersion;
  name: string;
  type: string;
  /** Bridge the host-side veths join; the agent creates it. */
  bridge: string;
  /** Agent API address, `host:port` or a URL. */
  agent: string;
  /** Pod interface MTU; the bridge's MTU when absent. */
  mtu?: number;
  /** A subnet of the cluster range this network's pods take addresses from. */
  subnet?: string;
  /** Whether ADD adds `default via <bridge address>` (false for a secondary network). */
  defaultRoute: boolean;
  prevResult?: CniResult;
  /** GC only: attachments the runtime still uses. */
  validAttachments?: Attachment[];
}

export const DEFAULT_AGENT = "127.0.0.1:6784";
export const DEFAULT_BRIDGE = "weave";

function invalidConfig(message: string): CniError {
  return new CniError(CniCode.invalidConfig, message);
}

/** Reads a cniVersion from config text without judging anything else (for error replies). */
export function peekVersion(text: string): unknown {
  try {
    const value = JSON.parse(text);
    return value && typeof value === "object" ? value.cniVersion : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Parses and validates the config from stdin. Codes: 6 for text that is not JSON, 1 for a
 * version weft does not speak, 2 for a field weft refuses, 7 for anything else wrong.
 */
export function parseConfig(text: string): WeftConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    const shown = text.length > 80 ? `${text.slice(0, 80)}...` : text;
    throw new CniError(
      CniCode.decodeFailure,
      `Cannot decode network config ${JSON.stringify(shown)}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    throw invalidConfig(`Network config must be a JSON object, got ${JSON.stringify(raw)}`);
  }
  const conf = raw as Record<string, unknown>;
  if (conf.cniVersion === undefined) throw invalidConfig('Network config has no "cniVersion"');
  const cniVersion = negotiateVersion(conf.cniVersion);
  const name = requireString(conf, "name");
  const type = requireString(conf, "type");

  const bridge = optionalString(conf, "bridge") ?? DEFAULT_BRIDGE;
  if (!isValidLinkName(bridge)) {
    throw invalidConfig(`Invalid "bridge" ${JSON.stringify(bridge)}: not an interface name`);
  }
  const agent = parseAgentAddress(optionalString(conf, "agent") ?? DEFAULT_AGENT);
  let mtu: number | undefined;
  if (conf.mtu !== undefined) {
    if (
      typeof conf.mtu !== "number" || !Number.isInteger(conf.mtu) || conf.mtu < 68 ||
      conf.mtu > 65535
    ) {
      throw invalidConfig(`Invalid "mtu" ${JSON.stringify(conf.mtu)}: expected 68..65535`);
    }
    mtu = conf.mtu;
  }
  const subnet = optionalString(conf, "subnet");
  if (subnet !== undefined) {
    try {
      parseCidr(subnet);
    } catch (error) {
      throw invalidConfig(`Invalid "subnet": ${(error as Error).message}`);
    }
  }
  let defaultRoute = true;
  if (conf.defaultRoute !== undefined) {
    if (typeof conf.defaultRoute !== "boolean") {
      throw invalidConfig(
        `Invalid "defaultRoute" ${JSON.stringify(conf.defaultRoute)}: expected true or false`,
      );
    }
    defaultRoute = conf.defaultRoute;
  }
  if (conf.ipam !== undefined) {
    // The agent is weft's IPAM; silently ignoring a host-local block would hand out addresses
    // the operator did not expect, so say so instead.
    throw new CniError(
      CniCode.unsupportedField,
      `Unsupported field "ipam": ${
        JSON.stringify(conf.ipam)
      } (weft takes addresses from its agent)`,
    );
  }
  let prevResult: CniResult | undefined;
  if (conf.prevResult !== undefined) {
    if (!conf.prevResult || typeof conf.prevResult !== "object" || Array.isArray(conf.prevResult)) {
      throw invalidConfig(`Invalid "prevResult" ${JSON.stringify(conf.prevResult)}`);
    }
    prevResult = conf.prevResult as CniResult;
  }
  let validAttachments: Attachment[] | undefined;
  const valid = conf["cni.dev/valid-attachments"];
  if (valid !== undefined) validAttachments = parseAttachments(valid);
  return {
    cniVersion,
    name,
    type,
    bridge,
    agent,
    mtu,
    subnet,
    defaultRoute,
    prevResult,
    validAttachments,
  };
}

/**
 * The agent's API listens on loopback only (it refuses anything else), so an `agent` elsewhere
 * can only time out; refuse it at parse with a message instead of after 30 seconds.
 */
function parseAgentAddress(agent: string): string {
  const match = /^(?:http:\/\/)?(\[[^\]\s/]+\]|[^\s/:\[\]]+):(\d{1,5})\/?$/.exec(agent);
  const port = Number(match?.[2]);
  if (!match || port < 1 || port > 65535) {
    throw invalidConfig(`Invalid "agent" ${JSON.stringify(agent)}: expected host:port`);
  }
  const host = match[1].replace(/^\[|\]$/g, "");
  if (!(host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host))) {
    throw invalidConfig(
      `Invalid "agent" ${JSON.stringify(agent)}: the weft agent's API listens on loopback ` +
        `only; use 127.0.0.1, ::1 or localhost with its port (default ${DEFAULT_AGENT})`,
    );
  }
  return agent;
}

function parseAttachments(value: unknown): Attachment[] {
  if (!Array.isArray(value)) {
    throw invalidConfig(
      `Invalid "cni.dev/valid-attachments" ${JSON.stringify(value)}: expected an array`,
    );
  }
  return value.map((entry) => {
    if (!entry || typeof entry.containerID !== "string" || typeof entry.ifname !== "string") {
      throw invalidConfig(
        `Invalid entry in "cni.dev/valid-attachments": ${
          JSON.stringify(entry)
        } (needs containerID and ifname)`,
      );
    }
    return { containerID: entry.containerID, ifname: entry.ifname };
  });
}

function requireString(conf: Record<string, unknown>, key: string): string {
  const value = conf[key];
  if (typeof value !== "string" || !value) {
    throw invalidConfig(
      `Network config field "${key}" must be a non-empty string, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function optionalString(conf: Record<string, unknown>, key: string): string | undefined {
  const value = conf[key];
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !value) {
    throw invalidConfig(`Invalid "${key}" ${JSON.stringify(value)}: expected a non-empty string`);
  }
  return value;
}
