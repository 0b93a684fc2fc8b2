/**
 * A TAP device driven through libc with Deno.dlopen, for the sleeve data path.
 *
 * Why these choices: a call across FFI costs far less than the kernel's work per frame only when
 * the frames are big, so the device is opened with IFF_VNET_HDR and TSO/checksum offloads. The
 * bridge then hands us 64 KB TCP superframes with a virtio-net header instead of 45 MTU-sized
 * frames, and the receiving node writes them back unsegmented; the kernel of the node that owns
 * the pod does the segmentation or none at all. The fd is non-blocking and shared by number with
 * the worker threads that read and write it (see libc.ts for why workers).
 */
import { EAGAIN, EINTR, errno, libc, LibcError, PollFd } from "./libc.ts";

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
/** Size of struct virtio_net_hdr (without the mergeable-buffers field). */
export const VNET_HEADER_BYTES = 10;

export interface TapOptions {
  /** Ask the kernel for TSO superframes and partial checksums (needs the vnet header). */
  offloads?: boolean;
}

export class TapDevice {
  readonly name: string;
  readonly fd: number;
  #poll: PollFd;
  #closed = false;

  private constructor(name: string, fd: number) {
    this.name = name;
    this.fd = fd;
    this.#poll = new PollFd(fd);
  }

  /** Creates (or attaches to) TAP `name` in the calling process's network namespace. */
  static open(name: string, options: TapOptions = {}): TapDevice {
    if (name.length === 0 || name.length > 15) {
      throw new RangeError(`TAP name "${name}" must be 1 to 15 characters`);
    }
    const lib = libc();
    const path = new TextEncoder().encode("/dev/net/tun\0");
    const fd = lib.open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC, 0);
    if (fd < 0) throw new LibcError(`Cannot open /dev/net/tun for "${name}"`, errno());
    const ifreq = new Uint8Array(40);
    ifreq.set(new TextEncoder().encode(name), 0);
    new DataView(ifreq.buffer).setUint16(16, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, true);
    if (lib.ioctlPointer(fd, BigInt(TUNSETIFF), ifreq) < 0) {
      const code = errno();
      lib.close(fd);
      throw new LibcError(`TUNSETIFF "${name}" failed`, code);
    }
    if (options.offloads ?? true) {
      const flags = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
      if (lib.ioctlValue(fd, BigInt(TUNSETOFFLOAD), BigInt(flags)) < 0) {
        const code = errno();
        lib.close(fd);
        throw new LibcError(`TUNSETOFFLOAD on "${name}" failed`, code);
      }
    }
    return new TapDevice(name, fd);
  }

  /** Wraps an fd opened by `open` in another thread of this process. */
  static fromFd(name: string, fd: number): TapDevice {
    return new TapDevice(name, fd);
  }

  /** Blocks the calling thread until a frame is ready or `timeoutMs` passes. */
  waitReadable(timeoutMs: number): boolean {
    return this.#poll.wait(timeoutMs);
  }

  /**
   * Reads one frame (virtio-net header first) into `buffer`; returns its length, or -1 when no
   * frame is waiting.
   */
  readInto(buffer: Uint8Array): number {
    for (;;) {
      const n = Number(libc().read(this.fd, buffer, BigInt(buffer.length)));
      if (n >= 0) return n;
      const code = errno();
      if (code === EAGAIN) return -1;
      if (code !== EINTR) throw new LibcError(`read from TAP "${this.name}" failed`, code);
    }
  }

  /** Writes one frame (virtio-net header first); false when the kernel refused it. */
  write(frame: Uint8Array): boolean {
    return Number(libc().write(this.fd, frame, BigInt(frame.length))) === frame.length;
  }

  /** Closes the fd (the kernel then deletes the device); only the opener calls this. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc().close(this.fd);
  }
}
