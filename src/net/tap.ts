/**
 * A TAP device driven through libc with Deno.dlopen, for the sleeve data path.
 *
 * Why these choices: a call across FFI costs far less than the kernel's work per frame only when
 * the frames are big, so the device is opened with IFF_VNET_HDR and TSO/checksum offloads. The
 * bridge then hands us 64 KB TCP superframes with a virtio-net header instead of 45 MTU-sized
 * frames, and the receiving node writes them back unsegmented; the kernel of the node that owns
 * the pod does the segmentation or none at all. The fd is non-blocking: waiting happens in
 * poll() on an FFI worker thread (so the event loop stays free), then every ready frame is drained
 * with cheap synchronous reads.
 */

const TUNSETIFF = 0x400454ca;
const TUNSETOFFLOAD = 0x400454d0;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
const TUN_F_CSUM = 0x01;
const TUN_F_TSO4 = 0x02;
const TUN_F_TSO6 = 0x04;
const TUN_F_TSO_ECN = 0x08;
const O_RDWR = 0x2;
const O_NONBLOCK = 0x800;
const O_CLOEXEC = 0x80000;
const POLLIN = 0x1;
const EAGAIN = 11;
const EINTR = 4;
/** Size of struct virtio_net_hdr (without the mergeable-buffers field). */
export const VNET_HEADER_BYTES = 10;

const symbols = {
  open: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  ioctlPointer: { name: "ioctl", parameters: ["i32", "u64", "buffer"], result: "i32" },
  ioctlValue: { name: "ioctl", parameters: ["i32", "u64", "u64"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof symbols>["symbols"];
let libc: Libc | undefined;

function loadLibc(): Libc {
  libc ??= Deno.dlopen("libc.so.6", symbols).symbols;
  return libc;
}

function errno(lib: Libc): number {
  const pointer = lib.__errno_location();
  return pointer === null ? 0 : new Deno.UnsafePointerView(pointer).getInt32();
}

export class TapError extends Error {
  constructor(message: string, readonly errno: number) {
    super(`${message} (errno ${errno})`);
    this.name = "TapError";
  }
}

export interface TapOptions {
  /** Ask the kernel for TSO superframes and partial checksums (needs the vnet header). */
  offloads?: boolean;
}

export class TapDevice {
  readonly name: string;
  #fd: number;
  #lib: Libc;
  #pollfd = new Uint8Array(8);
  #closed = false;
  #polling: Promise<unknown> | undefined;

  private constructor(name: string, fd: number, lib: Libc) {
    this.name = name;
    this.#fd = fd;
    this.#lib = lib;
    const view = new DataView(this.#pollfd.buffer);
    view.setInt32(0, fd, true);
    view.setInt16(4, POLLIN, true);
  }

  /** Creates (or attaches to) TAP `name` in the calling process's network namespace. */
  static open(name: string, options: TapOptions = {}): TapDevice {
    if (name.length === 0 || name.length > 15) {
      throw new RangeError(`TAP name "${name}" must be 1 to 15 characters`);
    }
    const lib = loadLibc();
    const path = new TextEncoder().encode("/dev/net/tun\0");
    const fd = lib.open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC, 0);
    if (fd < 0) throw new TapError(`Cannot open /dev/net/tun for "${name}"`, errno(lib));
    const ifreq = new Uint8Array(40);
    ifreq.set(new TextEncoder().encode(name), 0);
    new DataView(ifreq.buffer).setUint16(16, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, true);
    if (lib.ioctlPointer(fd, BigInt(TUNSETIFF), ifreq) < 0) {
      const code = errno(lib);
      lib.close(fd);
      throw new TapError(`TUNSETIFF "${name}" failed`, code);
    }
    if (options.offloads ?? true) {
      const flags = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
      if (lib.ioctlValue(fd, BigInt(TUNSETOFFLOAD), BigInt(flags)) < 0) {
        const code = errno(lib);
        lib.close(fd);
        throw new TapError(`TUNSETOFFLOAD on "${name}" failed`, code);
      }
    }
    return new TapDevice(name, fd, lib);
  }

  /** Resolves true when a frame is ready, false after `timeoutMs` (or once closed). */
  async waitReadable(timeoutMs: number): Promise<boolean> {
    if (this.#closed) return false;
    const pending = this.#lib.poll(this.#pollfd, 1n, timeoutMs);
    this.#polling = pending;
    const ready = await pending;
    this.#polling = undefined;
    return !this.#closed && ready > 0;
  }

  /**
   * Reads one frame (virtio-net header first) into `buffer`; returns its length, or -1 when no
   * frame is waiting.
   */
  readInto(buffer: Uint8Array): number {
    for (;;) {
      const n = Number(this.#lib.read(this.#fd, buffer, BigInt(buffer.length)));
      if (n >= 0) return n;
      const code = errno(this.#lib);
      if (code === EAGAIN) return -1;
      if (code !== EINTR) throw new TapError(`read from TAP "${this.name}" failed`, code);
    }
  }

  /** Writes one frame (virtio-net header first); false when the kernel refused it. */
  write(frame: Uint8Array): boolean {
    return Number(this.#lib.write(this.#fd, frame, BigInt(frame.length))) === frame.length;
  }

  /** Closes the fd (the kernel then deletes the device), after any pending poll returns. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#polling) await this.#polling;
    this.#lib.close(this.#fd);
  }
}
