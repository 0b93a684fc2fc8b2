/**
 * An IPv4 UDP socket through libc, so the sleeve's worker threads can block in poll() and
 * send/receive with synchronous calls (see libc.ts), and so UDP GSO/GRO can be switched on
 * (node:dgram exposes neither). Kernel fragmentation stays allowed as the last resort.
 */
import { EAGAIN, EINTR, errno, libc, LibcError, PollFd } from "./libc.ts";

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0x800;
const SOCK_CLOEXEC = 0x80000;
const SOL_SOCKET = 1;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SOL_UDP = 17;
const UDP_SEGMENT = 103;
const UDP_GRO = 104;
const EIO = 5;

function sockaddr(ip: string, port: number): Uint8Array {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  view.setUint16(0, AF_INET, true);
  view.setUint16(2, port);
  out.set(ip.split(".").map(Number), 4);
  return out;
}

export interface Datagram {
  length: number;
  address: string;
  port: number;
}

export class UdpSocket {
  readonly fd: number;
  #poll: PollFd;
  #from = new Uint8Array(16);
  #fromLength = new Uint32Array(1);
  #destinations = new Map<string, Uint8Array>();

  private constructor(fd: number) {
    this.fd = fd;
    this.#poll = new PollFd(fd);
  }

  /** Binds `address:port`; buffers are forced past rmem_max/wmem_max when we are root. */
  static bind(port: number, options: { address?: string; bufferBytes?: number } = {}): UdpSocket {
    const lib = libc();
    const fd = lib.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new LibcError("socket(AF_INET, SOCK_DGRAM) failed", errno());
    const size = new Int32Array([options.bufferBytes ?? 8 << 20]);
    const sizeBytes = new Uint8Array(size.buffer);
    for (const [forced, plain] of [[SO_RCVBUFFORCE, SO_RCVBUF], [SO_SNDBUFFORCE, SO_SNDBUF]]) {
      if (lib.setsockopt(fd, SOL_SOCKET, forced, sizeBytes, 4) < 0) {
        lib.setsockopt(fd, SOL_SOCKET, plain, sizeBytes, 4);
      }
    }
    const address = options.address ?? "0.0.0.0";
    if (lib.bind(fd, sockaddr(address, port), 16) < 0) {
      const code = errno();
      lib.close(fd);
      throw new LibcError(`Cannot bind UDP ${address}:${port}`, code);
    }
    return new UdpSocket(fd);
  }

  static fromFd(fd: number): UdpSocket {
    return new UdpSocket(fd);
  }

  waitReadable(timeoutMs: number): boolean {
    return this.#poll.wait(timeoutMs);
  }

  /**
   * Sends one datagram (with GSO on, a train of segments); returns 0, or the errno when the
   * kernel refused it (EAGAIN: buffer full; EIO/EINVAL: the route cannot do UDP GSO).
   */
  sendTo(data: Uint8Array, { address, port }: { address: string; port: number }): number {
    const key = `${address}:${port}`;
    let to = this.#destinations.get(key);
    if (!to) {
      to = sockaddr(address, port);
      if (this.#destinations.size > 4096) this.#destinations.clear();
      this.#destinations.set(key, to);
    }
    const sent = Number(libc().sendto(this.fd, data, BigInt(data.length), 0, to, 16));
    return sent === data.length ? 0 : sent < 0 ? errno() : EIO;
  }

  /**
   * Turns on UDP GSO (sends longer than `segmentBytes` leave as segments of that size, in one
   * skb through the stack) and UDP GRO (back-to-back segments may arrive in one read). Returns
   * what the kernel accepted; without them everything still works, only slower.
   */
  enableOffloads(segmentBytes: number): { gso: boolean; gro: boolean } {
    const lib = libc();
    const value = new Uint8Array(new Int32Array([segmentBytes]).buffer);
    const gso = lib.setsockopt(this.fd, SOL_UDP, UDP_SEGMENT, value, 4) === 0;
    const on = new Uint8Array(new Int32Array([1]).buffer);
    const gro = lib.setsockopt(this.fd, SOL_UDP, UDP_GRO, on, 4) === 0;
    return { gso, gro };
  }

  /** Receives one datagram into `buffer`, or undefined when none is waiting. */
  receiveInto(buffer: Uint8Array): Datagram | undefined {
    for (;;) {
      this.#fromLength[0] = 16;
      const n = Number(
        libc().recvfrom(
          this.fd,
          buffer,
          BigInt(buffer.length),
          0,
          this.#from,
          new Uint8Array(this.#fromLength.buffer),
        ),
      );
      if (n >= 0) {
        const f = this.#from;
        return {
          length: n,
          address: `${f[4]}.${f[5]}.${f[6]}.${f[7]}`,
          port: (f[2] << 8) | f[3],
        };
      }
      const code = errno();
      if (code === EAGAIN) return undefined;
      if (code !== EINTR) throw new LibcError("recvfrom failed", code);
    }
  }

  close(): void {
    libc().close(this.fd);
  }
}
