/**
 * Kernel settings through /proc/sys. Writes are per network namespace for net.* keys, so a
 * node namespace in a test lab gets its own forwarding switch, as a real node would.
 */

function sysctlPath(key: string): string {
  if (!/^[a-z0-9_.\-/]+$/i.test(key)) throw new TypeError(`Invalid sysctl key "${key}"`);
  return `/proc/sys/${key.replaceAll(".", "/")}`;
}

export async function readSysctl(key: string): Promise<string> {
  return (await Deno.readTextFile(sysctlPath(key))).trim();
}

/** Sets a sysctl, skipping the write when it already has the value. */
export async function writeSysctl(key: string, value: string): Promise<void> {
  if ((await readSysctl(key)) === value) return;
  await Deno.writeTextFile(sysctlPath(key), value);
}
