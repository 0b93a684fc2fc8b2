/**
 * The kernel operations the plugin needs, as one interface.
 *
 * Handlers talk to `PodKernel` only, so the ADD/DEL/CHECK logic (and especially ADD's undo
 * paths) can be tested in memory (memory.ts), while `linuxKernel` maps each call onto
 * src/net, the only code that touches the kernel (rtnetlink, or `ip` as the fallback).
 */

import { CommandError } from "../net/exec.ts";
import {
  configurePodInterface,
  createVethOnBridge,
  DefaultRouteExistsError,
  deleteLink,
  linkExists,
  LinkExistsError,
  LinkNotFoundError,
  type LinkState,
  type PodAddressOptions,
  readDefaultRoutes,
  readLink,
  readMtu,
  type VethOptions,
} from "../net/link.ts";
import { NetlinkError } from "../net/netlink.ts";
import { inspectNetns, type NetnsInspection, NetnsNotFoundError } from "../net/netns.ts";
import { CniCode, CniError, toCniError } from "./errors.ts";

export interface PodKernel {
  /** What CNI_NETNS names: missing, not a network namespace, the node's own, or another. */
  inspectNetns(path: string): Promise<NetnsInspection>;
  /** Throws `LinkNotFoundError` when the bridge is missing. */
  linkMtu(name: string): Promise<number>;
  /** Throws `LinkExistsError` when a name is taken; leaves nothing behind when it throws. */
  createVeth(hostName: string, options: VethOptions): Promise<void>;
  /** Throws `DefaultRouteExistsError` when asked for a default route the pod already has. */
  configurePod(netns: string, options: PodAddressOptions): Promise<void>;
  /** Whether a node-side link exists; `bridge` lets the answer come from sysfs alone. */
  hostLinkExists(name: string, options: { bridge: string }): Promise<boolean>;
  /** Deletes a node-side link; false when it was already gone. */
  deleteHostLink(name: string): Promise<boolean>;
  readHostLink(name: string): Promise<LinkState | undefined>;
  readPodLink(netns: string, name: string): Promise<LinkState | undefined>;
  readPodDefaultRoutes(netns: string): Promise<{ gateway?: string; dev: string }[]>;
}

export const linuxKernel: PodKernel = {
  inspectNetns,
  linkMtu: (name) => readMtu(name),
  createVeth: (hostName, options) => createVethOnBridge(hostName, options),
  configurePod: (netns, options) => configurePodInterface(netns, options),
  hostLinkExists: (name, options) => linkExists(name, { knownLink: options.bridge }),
  deleteHostLink: (name) => deleteLink(name),
  readHostLink: (name) => readLink(name),
  readPodLink: (netns, name) => readLink(name, { netns }),
  readPodDefaultRoutes: (netns) => readDefaultRoutes({ netns }),
};

/**
 * Refuses a CNI_NETNS that ADD or CHECK cannot use, before any kernel work:
 * - nothing there, or something that is not a network namespace: code 3 (container unknown).
 *   The usual case of the second is the empty file a runtime bind-mounted the namespace on,
 *   left after the namespace was unmounted: the container's network is gone, and code 3 tells
 *   the runtime that nothing needs cleaning up (true: nothing was made);
 * - the node's own namespace (e.g. /proc/1/ns/net): code 4 (invalid environment). The value
 *   names a real namespace, but attaching there would move the pod's end of the veth, with its
 *   address and default route, into the node itself.
 */
export async function requirePodNetns(kernel: PodKernel, netns: string): Promise<void> {
  let found: NetnsInspection;
  try {
    found = await kernel.inspectNetns(netns);
  } catch (error) {
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new CniError(
        CniCode.invalidEnvironment,
        `Invalid CNI_NETNS "${netns}": permission denied`,
        { cause: error },
      );
    }
    throw kernelErrorToCni(error);
  }
  switch (found.kind) {
    case "missing":
      throw new CniError(CniCode.containerUnknown, `Cannot open netns "${netns}": no such file`);
    case "not-network":
      throw new CniError(
        CniCode.containerUnknown,
        `CNI_NETNS "${netns}" is not a network namespace but ${found.what} (a namespace that ` +
          `was unmounted, or never mounted there)`,
      );
    case "current":
      throw new CniError(
        CniCode.invalidEnvironment,
        `Invalid CNI_NETNS "${netns}": it is this node's own network namespace, not a pod's`,
      );
  }
}

/** Kernel failures as CNI errors: names taken 101, route clash 102, netns gone 3, others 100. */
export function kernelErrorToCni(error: unknown): CniError {
  if (error instanceof CniError) return error;
  if (error instanceof LinkExistsError) {
    return new CniError(CniCode.interfaceExists, error.message, { cause: error });
  }
  if (error instanceof DefaultRouteExistsError) {
    return new CniError(
      CniCode.defaultRouteConflict,
      `${error.message}; set "defaultRoute": false in the weft config to attach it as a ` +
        `secondary network`,
      { cause: error },
    );
  }
  if (error instanceof NetnsNotFoundError) {
    return new CniError(CniCode.containerUnknown, error.message, { cause: error });
  }
  if (
    error instanceof CommandError || error instanceof LinkNotFoundError ||
    error instanceof NetlinkError
  ) {
    return new CniError(CniCode.kernelFailure, error.message, { cause: error });
  }
  return toCniError(error);
}
