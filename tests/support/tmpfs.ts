/**
 * A small file system of its own for a test (a tmpfs in a temporary directory), to fill it up
 * or to see it through a read-only bind mount. `await using` unmounts and removes everything,
 * also when the test fails. Needs root; run such tests under /work/bin/ktest.
 */
import { run } from "../../src/net/exec.ts";

export interface Tmpfs extends AsyncDisposable {
  /** Where it is mounted (read-write). */
  readonly path: string;
  /** Fills the free space with a file; returns how to give the space back. */
  fill(): Promise<{ release(): Promise<void> }>;
  /** The same files through a read-only bind mount (unmounted with the tmpfs). */
  readOnlyView(): Promise<string>;
}

export async function tmpfs(options: { sizeKiB: number }): Promise<Tmpfs> {
  const dir = await Deno.makeTempDir({ prefix: "weft-tmpfs-" });
  const path = `${dir}/rw`;
  await Deno.mkdir(path);
  const mounts: string[] = [];
  try {
    await run(["mount", "-t", "tmpfs", "-o", `size=${options.sizeKiB}k,mode=0755`, "tmpfs", path]);
    mounts.unshift(path);
  } catch (error) {
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
  return {
    path,
    async fill() {
      const filler = `${path}/filler`;
      const file = await Deno.open(filler, { create: true, write: true });
      const chunk = new Uint8Array(4096);
      try {
        for (;;) await file.write(chunk);
      } catch (error) {
        if (!String(error).includes("No space left")) throw error;
      } finally {
        file.close();
      }
      return { release: () => Deno.remove(filler) };
    },
    async readOnlyView() {
      const view = `${dir}/ro`;
      await Deno.mkdir(view);
      await run(["mount", "--bind", path, view]);
      mounts.unshift(view);
      await run(["mount", "-o", "remount,ro,bind", view]);
      return view;
    },
    async [Symbol.asyncDispose]() {
      for (const mount of mounts) await run(["umount", mount]).catch(() => {});
      await Deno.remove(dir, { recursive: true });
    },
  };
}
