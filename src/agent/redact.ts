/**
 * `weft report --redact`: the same document with what identifies the installation replaced by
 * stable placeholders, so it can be posted in a public issue and still be read (the same peer is
 * `peer-2` everywhere it appears, in the ring, the connections and the log lines alike).
 *
 * Replaced, in every string and every object key of the document, log lines and kernel output
 * included:
 * - the values the agent knows to be identifying: peer names (from machine ids), nicknames and
 *   Kubernetes Node names, the host name, container IDs, and the paths of the state directory and
 *   the kubeconfig (`peer-N`, `node-N`, `host-N`, `container-N`, `path-N`);
 * - IPv4 addresses outside the pod range (underlay and peer addresses, DNS servers, the API
 *   server): `ip-N`; the pod range's own addresses, loopback, 0.0.0.0 and multicast stay;
 * - IPv6 addresses other than `::` and `::1`: `ip6-N`;
 * - MAC addresses, except weft's own (`0a:58:` followed by a pod-range address) and
 *   broadcast/multicast ones: `mac-N`.
 * Secrets (the password, TLS keys, identity and session keys) are never in a report, redacted
 * or not: the report is built from a whitelist that leaves them out.
 */
import { type Cidr, cidrContains, parseIp } from "../net/cidr.ts";

export type IdentifyingKind = "peer" | "node" | "host" | "container" | "path";

export interface RedactOptions {
  /** Addresses in the pod range are weft's own and are kept. */
  podRange: Cidr;
  /** Values known to identify the installation. */
  known: Array<{ kind: IdentifyingKind; value: string }>;
}

const IPV4 = /(?<![\w.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\w]|\.\d)/g;
const MAC = /(?<![\w:])[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}(?![\w:])/g;
const IPV6 = /(?<![\w:.])(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}(?![\w:])/g;

export function redact<T>(document: T, options: RedactOptions): T {
  const redactor = new Redactor(options);
  return redactor.value(document) as T;
}

class Redactor {
  readonly #podRange: Cidr;
  readonly #tokens = new Map<string, string>();
  readonly #counts = new Map<string, number>();
  readonly #known: RegExp | undefined;
  readonly #kindOf = new Map<string, IdentifyingKind>();

  constructor(options: RedactOptions) {
    this.#podRange = options.podRange;
    for (const { kind, value } of options.known) {
      if (value.length >= 2 && !this.#kindOf.has(value)) this.#kindOf.set(value, kind);
    }
    // longest first, so a name that contains another is replaced whole
    const values = [...this.#kindOf.keys()].sort((a, b) => b.length - a.length);
    this.#known = values.length
      ? new RegExp(
        `(?<![A-Za-z0-9_-])(?:${values.map(escape).join("|")})(?![A-Za-z0-9_-])`,
        "g",
      )
      : undefined;
  }

  value(value: unknown): unknown {
    if (typeof value === "string") return this.text(value);
    if (Array.isArray(value)) return value.map((item) => this.value(item));
    if (value && typeof value === "object") {
      return Object.fromEntries(
        Object.entries(value).map(([key, item]) => [this.text(key), this.value(item)]),
      );
    }
    return value;
  }

  text(text: string): string {
    let out = this.#known
      ? text.replace(this.#known, (match) => this.#token(this.#kindOf.get(match)!, match))
      : text;
    out = out.replace(MAC, (mac) => this.#keepMac(mac) ? mac : this.#token("mac", mac));
    out = out.replace(
      IPV4,
      (ip, ...octets) => this.#keepIpv4(ip, octets.slice(0, 4)) ? ip : this.#token("ip", ip),
    );
    out = out.replace(IPV6, (ip) => this.#isIpv6(ip) ? this.#token("ip6", ip) : ip);
    return out;
  }

  #token(kind: string, value: string): string {
    const key = `${kind}\n${value.toLowerCase()}`;
    let token = this.#tokens.get(key);
    if (!token) {
      const count = (this.#counts.get(kind) ?? 0) + 1;
      this.#counts.set(kind, count);
      token = `${kind}-${count}`;
      this.#tokens.set(key, token);
    }
    return token;
  }

  #keepIpv4(ip: string, octets: string[]): boolean {
    if (octets.some((o) => Number(o) > 255)) return true; // not an address (a version, a count)
    const first = Number(octets[0]);
    if (first === 0 || first === 127 || first >= 224) return true;
    return cidrContains(this.#podRange, parseIp(ip));
  }

  #keepMac(mac: string): boolean {
    const bytes = mac.toLowerCase().split(":").map((b) => parseInt(b, 16));
    if (bytes[0] & 1) return true; // broadcast and multicast name no machine
    if (bytes.every((b) => b === 0)) return true;
    // weft's own: 0a:58 and the address it stands for, when that is a pod-range address
    if (bytes[0] === 0x0a && bytes[1] === 0x58) {
      const address = ((bytes[2] << 24) | (bytes[3] << 16) | (bytes[4] << 8) | bytes[5]) >>> 0;
      return cidrContains(this.#podRange, address);
    }
    return false;
  }

  #isIpv6(text: string): boolean {
    if (text === "::" || text === "::1") return false;
    const colons = text.split(":").length - 1;
    // full form, or compressed with "::"; fewer colons is a time of day or a ratio
    return /[0-9a-fA-F]/.test(text) && (colons === 7 || text.includes("::"));
  }
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
