/**
 * The libc calls the userspace data path needs, loaded once per thread with Deno.dlopen.
 *
 * Readiness is waited for with a *blocking* poll() inside a Worker rather than a nonblocking
 * FFI call on the main thread: measured on this runtime, a nonblocking FFI call costs ~50 us and
 * its promise can take milliseconds to be noticed by an idle event loop, which made the sleeve
 * 20x slower than the fast path's latency. A worker that blocks in poll() and then drains the
 * fd with synchronous calls pays a few hundred nanoseconds per call instead.
 */

const symbols = {
  open: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  ioctlPointer: { name: "ioctl", parameters: ["i32", "u64", "buffer"], result: "i32" },
  ioctlValue: { name: "ioctl", parameters: ["i32", "u64", "u64"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  recvfrom: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"], result: "isize" },
  // the mesh transport finds and shuts down sockets Deno will not close (socket_shutdown.ts)
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

export type Libc = Deno.DynamicLibrary<typeof symbols>["symbols"];
let loaded: Libc | undefined;

export function libc(): Libc {
  loaded ??= Deno.dlopen("libc.so.6", symbols).symbols;
  return loaded;
}

export function errno(): number {
  const pointer = libc().__errno_location();
  return pointer === null ? 0 : new Deno.UnsafePointerView(pointer).getInt32();
}

export const EAGAIN = 11;
export const EINTR = 4;
const POLLIN = 0x1;

/** A reusable pollfd for one fd; `wait` blocks the calling thread up to `timeoutMs`. */
export class PollFd {
  #buffer = new Uint8Array(8);

  constructor(fd: number) {
    const view = new DataView(this.#buffer.buffer);
    view.setInt32(0, fd, true);
    view.setInt16(4, POLLIN, true);
  }

  wait(timeoutMs: number): boolean {
    return libc().poll(this.#buffer, 1n, timeoutMs) > 0;
  }
}

export class LibcError extends Error {
  constructor(message: string, readonly errno: number) {
    super(`${message} (errno ${errno})`);
    this.name = "LibcError";
  }
}
