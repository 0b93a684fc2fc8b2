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
import { netnsExists, NetnsNotFoundError } from "../net/netns.ts";
import { CniCode, CniError, toCniError } from "./errors.ts";

export interface PodKernel {
  netnsExists(path: string): Promise<boolean>;
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
  netnsExists,
  linkMtu: (name) => readMtu(name),
  createVeth: (hostName, options) => createVethOnBridge(hostName, options),
  configurePod: (netns, options) => configurePodInterface(netns, options),
  hostLinkExists: (name, options) => linkExists(name, { knownLink: options.bridge }),
  deleteHostLink: (name) => deleteLink(name),
  readHostLink: (name) => readLink(name),
  readPodLink: (netns, name) => readLink(name, { netns }),
  readPodDefaultRoutes: (netns) => readDefaultRoutes({ netns }),
};

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
