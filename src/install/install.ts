/**
 * `weft install` / `weft uninstall`: put the plugin where the container runtime finds it.
 * A kubelet may run the plugin at any moment, including while a new version is being copied,
 * so nothing is ever written under its final name: each file is written to a temporary name in
 * the same directory, flushed, made executable and then renamed over the old one, which on one
 * filesystem is atomic (a reader sees the old file or the new one, never half of either, and a
 * running old binary keeps its inode).
 */

export const DEFAULT_CNI_BIN_DIR = "/opt/cni/bin";
export const DEFAULT_CNI_CONF_DIR = "/etc/cni/net.d";
export const BINARY_NAME = "weft";
export const CONFLIST_NAME = "10-weft.conflist";
/** Temporary files start with this; leftovers of a crashed install are swept by the next run. */
export const TEMP_PREFIX = ".weft-install-";

export interface ConflistOptions {
  /** The network name in the conflist (`name`); runtimes show it in errors. */
  networkName?: string;
  cniVersion?: string;
  /** Extra fields for the weft plugin entry (e.g. an API address or MTU the plugin reads). */
  plugin?: Record<string, unknown>;
  /** Chain the reference `portmap` plugin for hostPort support (default true). */
  portmap?: boolean;
}

export interface InstallOptions {
  /**
   * The executable to install. Defaults to the running one (`Deno.execPath()`), which is right
   * for the compiled binary; a bundle run by `deno` must name its launcher here.
   */
  source?: string;
  cniBinDir?: string;
  cniConfDir?: string;
  conflist?: ConflistOptions;
  /** Replaces `Deno.execPath` (tests). */
  execPath?: () => string;
}

export interface InstallResult {
  binary: string;
  conflist: string;
  binaryChanged: boolean;
  conflistChanged: boolean;
  /**
   * Network configs that sort before ours: runtimes use the first file in name order, so any of
   * these (e.g. Weave Net's `10-weave.conflist`) wins over weft until it is removed.
   */
  shadowedBy: string[];
}

export interface UninstallOptions {
  cniBinDir?: string;
  cniConfDir?: string;
}

export interface UninstallResult {
  removed: string[];
  /** Files under our names that install did not write (left alone). */
  kept: string[];
}

export class InstallError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InstallError";
  }
}

/** The conflist weft installs: weft first, then portmap for hostPorts, as Weave Net did. */
export function buildConflist(options: ConflistOptions = {}): Record<string, unknown> {
  const { networkName = "weft", cniVersion = "1.0.0", plugin = {}, portmap = true } = options;
  const plugins: Record<string, unknown>[] = [{ ...plugin, type: "weft" }];
  if (portmap) plugins.push({ type: "portmap", capabilities: { portMappings: true }, snat: true });
  return { cniVersion, name: networkName, plugins };
}

/** Copies the executable and writes the conflist, each atomically; a re-run changes nothing. */
export async function install(options: InstallOptions = {}): Promise<InstallResult> {
  const binDir = options.cniBinDir ?? DEFAULT_CNI_BIN_DIR;
  const confDir = options.cniConfDir ?? DEFAULT_CNI_CONF_DIR;
  const source = options.source ?? runningExecutable(options.execPath ?? Deno.execPath);
  await requireFile(source, "executable to install");
  for (const dir of [binDir, confDir]) {
    await Deno.mkdir(dir, { recursive: true });
    await sweepTemporaries(dir);
  }

  const binary = `${binDir}/${BINARY_NAME}`;
  const binaryChanged = !(await sameContent(source, binary));
  if (binaryChanged) {
    await writeAtomically(binary, 0o755, async (out) => {
      using input = await Deno.open(source, { read: true });
      const buffer = new Uint8Array(1 << 20);
      for (let n = await input.read(buffer); n !== null; n = await input.read(buffer)) {
        await writeAll(out, buffer.subarray(0, n));
      }
    });
  }

  const conflist = `${confDir}/${CONFLIST_NAME}`;
  const text = JSON.stringify(buildConflist(options.conflist), null, 2) + "\n";
  const conflistChanged = (await readTextOrUndefined(conflist)) !== text;
  if (conflistChanged) {
    await writeAtomically(conflist, 0o644, (out) => writeAll(out, new TextEncoder().encode(text)));
  }
  return {
    binary,
    conflist,
    binaryChanged,
    conflistChanged,
    shadowedBy: await earlierConfigs(confDir),
  };
}

/** Removes the binary and conflist install wrote (and any temporaries); absent files are fine. */
export async function uninstall(options: UninstallOptions = {}): Promise<UninstallResult> {
  const binDir = options.cniBinDir ?? DEFAULT_CNI_BIN_DIR;
  const confDir = options.cniConfDir ?? DEFAULT_CNI_CONF_DIR;
  const removed: string[] = [];
  const kept: string[] = [];
  const conflist = `${confDir}/${CONFLIST_NAME}`;
  const text = await readTextOrUndefined(conflist);
  if (text !== undefined) {
    // Remove the conflist first: with it gone no runtime will call a binary that is going away.
    if (!isWeftConflist(text)) kept.push(conflist);
    else if (await removeIfPresent(conflist)) removed.push(conflist);
  }
  const binary = `${binDir}/${BINARY_NAME}`;
  if (await removeIfPresent(binary)) removed.push(binary);
  for (const dir of [binDir, confDir]) removed.push(...await sweepTemporaries(dir));
  return { removed, kept };
}

function runningExecutable(execPath: () => string): string {
  const path = execPath();
  if (/(^|\/)deno(\.exe)?$/.test(path)) {
    throw new InstallError(
      `The running executable "${path}" is the Deno runtime, not a compiled weft; pass the ` +
        "file to install as the source",
    );
  }
  return path;
}

function isWeftConflist(text: string): boolean {
  try {
    const parsed = JSON.parse(text) as { plugins?: { type?: string }[] };
    return parsed.plugins?.[0]?.type === "weft";
  } catch {
    return false;
  }
}

async function requireFile(path: string, what: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    throw new InstallError(`Cannot read ${what} "${path}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (!info.isFile) throw new InstallError(`The ${what} "${path}" is not a regular file`);
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) offset += await file.write(bytes.subarray(offset));
}

/** Write to a temporary in the same directory, fsync, chmod, rename over the final name. */
async function writeAtomically(
  path: string,
  mode: number,
  fill: (file: Deno.FsFile) => Promise<void>,
): Promise<void> {
  const slash = path.lastIndexOf("/");
  const dir = path.slice(0, slash);
  const temp = `${dir}/${TEMP_PREFIX}${path.slice(slash + 1)}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    {
      using file = await Deno.open(temp, { write: true, createNew: true, mode });
      await fill(file);
      await file.sync();
    }
    await Deno.chmod(temp, mode); // the umask may have narrowed the mode given to open
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw new InstallError(`Cannot install "${path}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  // Persist the rename itself, so a crash right after does not bring the old name back.
  try {
    using directory = await Deno.open(dir, { read: true });
    await directory.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  }
}

async function sameContent(a: string, b: string): Promise<boolean> {
  let sizeA: number, sizeB: number;
  try {
    [sizeA, sizeB] = [(await Deno.stat(a)).size, (await Deno.stat(b)).size];
  } catch {
    return false;
  }
  if (sizeA !== sizeB) return false;
  using fileA = await Deno.open(a, { read: true });
  using fileB = await Deno.open(b, { read: true });
  const bufA = new Uint8Array(1 << 20);
  const bufB = new Uint8Array(1 << 20);
  while (true) {
    const n = await readFull(fileA, bufA);
    const m = await readFull(fileB, bufB);
    if (n !== m) return false;
    if (n === 0) return true;
    for (let i = 0; i < n; i++) if (bufA[i] !== bufB[i]) return false;
  }
}

async function readFull(file: Deno.FsFile, buffer: Uint8Array): Promise<number> {
  let filled = 0;
  while (filled < buffer.length) {
    const n = await file.read(buffer.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return filled;
}

async function readTextOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

async function removeIfPresent(path: string): Promise<boolean> {
  try {
    await Deno.remove(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw new InstallError(`Cannot remove "${path}": ${(error as Error).message}`, {
      cause: error,
    });
  }
}

async function sweepTemporaries(dir: string): Promise<string[]> {
  const removed: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.name.startsWith(TEMP_PREFIX) && await removeIfPresent(`${dir}/${entry.name}`)) {
        removed.push(`${dir}/${entry.name}`);
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return removed;
}

/** Config files libcni would load before ours (it takes .conf, .conflist and .json by name). */
async function earlierConfigs(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (/\.(conflist|conf|json)$/.test(entry.name) && entry.name < CONFLIST_NAME) {
      names.push(`${dir}/${entry.name}`);
    }
  }
  return names.sort();
}
