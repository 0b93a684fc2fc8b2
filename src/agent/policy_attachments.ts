/**
 * Which pod each local address belongs to, as the CNI ADD said (K8S_POD_NAMESPACE, K8S_POD_NAME,
 * K8S_POD_UID). The API learns a new pod's address only after the ADD has returned, so for this
 * node's pods this book, not the API, says which address is whose: that is what lets the agent
 * put a pod into its sets before its first packet, and keeps a reused address from inheriting
 * the labels of a deleted pod the API still shows.
 *
 * It is kept in the state directory beside the IPAM's allocations (one small JSON file, replaced
 * by rename, so a crash leaves the old or the new one), so a restarted agent still knows its pods.
 */

export interface PodIdentity {
  namespace: string;
  name: string;
  /** K8S_POD_UID: tells this incarnation of the pod from an older one of the same name. */
  uid?: string;
}

export interface Attachment {
  containerID: string;
  ifname: string;
  ip: string;
  /** Absent when the ADD did not say (not a Kubernetes pod, or an old plugin). */
  pod?: PodIdentity;
  /** Epoch milliseconds of the ADD. */
  since: number;
}

const FILE_VERSION = 1;

export class AttachmentBook {
  readonly #path: string | undefined;
  readonly #entries = new Map<string, Attachment>();
  #writing: Promise<void> = Promise.resolve();

  private constructor(path: string | undefined) {
    this.#path = path;
  }

  /**
   * Loads the book from `path` (none: in memory only). A missing file is an empty book; an
   * unreadable one too, reported through `warn`, since the agent can still fall back on the
   * addresses the API reports for its pods.
   */
  static async open(
    path: string | undefined,
    options: { warn?: (message: string) => void } = {},
  ): Promise<AttachmentBook> {
    const book = new AttachmentBook(path);
    if (path === undefined) return book;
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return book;
      throw error;
    }
    try {
      const saved = JSON.parse(text) as { attachments?: unknown[] };
      for (const entry of saved.attachments ?? []) {
        const attachment = checkAttachment(entry);
        if (attachment) book.#entries.set(keyOf(attachment), attachment);
      }
    } catch (error) {
      options.warn?.(`ignoring ${path}: ${(error as Error).message}`);
    }
    return book;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(containerID: string, ifname: string): Attachment | undefined {
    return this.#entries.get(keyOf({ containerID, ifname }));
  }

  list(): Attachment[] {
    return [...this.#entries.values()];
  }

  /** Records an attachment and resolves once it is on disk. */
  async set(attachment: Attachment): Promise<void> {
    this.#entries.set(keyOf(attachment), attachment);
    await this.#save();
  }

  /** Forgets an attachment (no-op when unknown) and resolves once that is on disk. */
  async delete(containerID: string, ifname: string): Promise<Attachment | undefined> {
    const key = keyOf({ containerID, ifname });
    const old = this.#entries.get(key);
    if (!old) return undefined;
    this.#entries.delete(key);
    await this.#save();
    return old;
  }

  /** Writes are chained, so the file always ends as the latest state, whatever the timing. */
  #save(): Promise<void> {
    const path = this.#path;
    if (path === undefined) return Promise.resolve();
    const write = async () => {
      const text = JSON.stringify({ version: FILE_VERSION, attachments: this.list() });
      const temporary = `${path}.tmp`;
      await Deno.writeTextFile(temporary, text + "\n", { mode: 0o600 });
      await Deno.rename(temporary, path);
    };
    this.#writing = this.#writing.then(write, write);
    return this.#writing;
  }
}

function keyOf(ref: { containerID: string; ifname: string }): string {
  return `${ref.containerID}\0${ref.ifname}`;
}

function checkAttachment(value: unknown): Attachment | undefined {
  const entry = value as Partial<Attachment> | null;
  if (
    typeof entry?.containerID !== "string" || typeof entry.ifname !== "string" ||
    typeof entry.ip !== "string" || typeof entry.since !== "number"
  ) return undefined;
  const pod = entry.pod;
  const validPod = pod && typeof pod.namespace === "string" && typeof pod.name === "string" &&
    (pod.uid === undefined || typeof pod.uid === "string");
  return {
    containerID: entry.containerID,
    ifname: entry.ifname,
    ip: entry.ip,
    ...(validPod ? { pod: { namespace: pod.namespace, name: pod.name, uid: pod.uid } } : {}),
    since: entry.since,
  };
}
