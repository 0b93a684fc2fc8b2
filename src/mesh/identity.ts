/**
 * Who this peer is. The name must survive restarts (other peers' IPAM and routes refer to it), so
 * it is saved in the state dir and, the first time, derived from /etc/machine-id together with a
 * random salt made once and saved beside it (`name-salt`): machines cloned from one image share
 * the machine id but not the salt, so they get different names, while one machine keeps its
 * name across restarts. A saved `peer-name` always wins, so an upgrade never renames a peer.
 * The name is a MAC-like string as Weave used, with the locally-administered bit set so it
 * never looks like real hardware. The incarnation is new on every start and sorts by start time, so a restarted peer's
 * record supersedes the old one everywhere; the last one is saved so a clock that steps back
 * cannot produce an incarnation older than the previous life's.
 */
import { createHash, randomBytes } from "node:crypto";
import { IdentityError } from "./errors.ts";

/** Files in the state dir that make up the name: delete both on a clone to give it its own. */
export const PEER_NAME_FILE = "peer-name";
export const NAME_SALT_FILE = "name-salt";

export interface PeerIdentity {
  readonly name: string;
  readonly nickname: string;
  readonly incarnation: string;
}

export interface IdentityOptions {
  stateDir?: string;
  name?: string;
  nickname?: string;
  /** Wall-clock milliseconds, for the incarnation's time prefix. */
  now?: number;
  machineIdPath?: string;
}

/** `time` as 12 hex digits followed by 8 random hex digits; larger strings are later starts. */
export function newIncarnation(now: number, options: { after?: string } = {}): string {
  let time = Math.floor(now);
  if (options.after !== undefined) {
    const previous = parseInt(options.after.slice(0, 12), 16);
    if (Number.isFinite(previous) && previous >= time) time = previous + 1;
  }
  return time.toString(16).padStart(12, "0").slice(-12) + randomBytes(4).toString("hex");
}

/** A MAC-like name from a stable seed (e.g. the machine id). */
export function nameFromSeed(seed: string): string {
  const bytes = createHash("sha256").update(`weft-peer-name\n${seed.trim()}`).digest();
  bytes[0] = (bytes[0] & 0xfe) | 0x02;
  return [...bytes.subarray(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

async function readText(path: string): Promise<string | undefined> {
  try {
    const text = (await Deno.readTextFile(path)).trim();
    return text === "" ? undefined : text;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new IdentityError(`Cannot read "${path}": ${(error as Error).message}`, { cause: error });
  }
}

async function writeText(path: string, text: string): Promise<void> {
  try {
    const temporary = `${path}.tmp`;
    await Deno.writeTextFile(temporary, `${text}\n`);
    await Deno.rename(temporary, path);
  } catch (error) {
    throw new IdentityError(`Cannot write "${path}": ${(error as Error).message}`, {
      cause: error,
    });
  }
}

function defaultNickname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "weft";
  }
}

/** Loads (or creates and saves) this peer's name and makes a fresh incarnation. */
export async function loadIdentity(options: IdentityOptions = {}): Promise<PeerIdentity> {
  const now = options.now ?? Date.now();
  const dir = options.stateDir;
  if (dir !== undefined) await Deno.mkdir(dir, { recursive: true });
  let name = options.name;
  if (name === undefined && dir !== undefined) name = await readText(`${dir}/${PEER_NAME_FILE}`);
  if (name === undefined) {
    const machineId = await readText(options.machineIdPath ?? "/etc/machine-id");
    let salt = dir === undefined ? undefined : await readText(`${dir}/${NAME_SALT_FILE}`);
    if (salt === undefined) {
      salt = randomBytes(16).toString("hex");
      if (dir !== undefined) await writeText(`${dir}/${NAME_SALT_FILE}`, salt);
    }
    name = nameFromSeed(`${machineId ?? randomBytes(16).toString("hex")}\n${salt}`);
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$/.test(name)) {
    throw new IdentityError(`Invalid peer name "${name}": use letters, digits and ":._-"`);
  }
  let incarnation: string;
  if (dir !== undefined) {
    await writeText(`${dir}/${PEER_NAME_FILE}`, name);
    const previous = await readText(`${dir}/incarnation`);
    incarnation = newIncarnation(now, { after: previous });
    await writeText(`${dir}/incarnation`, incarnation);
  } else {
    incarnation = newIncarnation(now);
  }
  return { name, nickname: options.nickname ?? defaultNickname(), incarnation };
}
