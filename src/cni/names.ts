/**
 * The node-side veth name of an attachment. It is derived from (container ID, interface name)
 * rather than stored, so DEL can find it without the netns and without state, and two weft
 * interfaces of one pod get different names.
 */

export const HOST_VETH_PREFIX = "vethwepl";

/** `vethwepl` + 7 hex digits of SHA-256(containerID/ifname): 15 characters, the kernel's limit. */
export async function hostVethName(containerID: string, ifname: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(`${containerID}/${ifname}`),
  );
  const hex = [...new Uint8Array(digest).slice(0, 4)]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${HOST_VETH_PREFIX}${hex.slice(0, 7)}`;
}
