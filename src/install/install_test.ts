import assert from "node:assert/strict";
import {
  buildConflist,
  CONFLIST_NAME,
  install,
  InstallError,
  TEMP_PREFIX,
  uninstall,
} from "./mod.ts";

async function withDirs(run: (dirs: { root: string; bin: string; conf: string }) => Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "wtk_install_" });
  try {
    await run({ root, bin: `${root}/opt/cni/bin`, conf: `${root}/etc/cni/net.d` });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

async function names(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) found.push(entry.name);
  return found.sort();
}

function bytes(size: number, seed: number): Uint8Array {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + seed) & 255;
  return data;
}

Deno.test("buildConflist chains weft then portmap with the portMappings capability", () => {
  assert.deepEqual(buildConflist({ plugin: { mtu: 1400 } }), {
    cniVersion: "1.0.0",
    name: "weft",
    plugins: [
      { mtu: 1400, type: "weft" },
      { type: "portmap", capabilities: { portMappings: true }, snat: true },
    ],
  });
});

Deno.test("install writes an executable weft and the conflist; a re-run changes nothing", async () => {
  await withDirs(async ({ root, bin, conf }) => {
    const source = `${root}/weft-build`;
    await Deno.writeFile(source, bytes(300_000, 1));
    const first = await install({ source, cniBinDir: bin, cniConfDir: conf });
    assert.equal(first.binaryChanged && first.conflistChanged, true);
    assert.deepEqual(await Deno.readFile(`${bin}/weft`), await Deno.readFile(source));
    assert.equal((await Deno.stat(`${bin}/weft`)).mode! & 0o777, 0o755);
    assert.deepEqual(
      JSON.parse(await Deno.readTextFile(`${conf}/${CONFLIST_NAME}`)),
      buildConflist(),
    );

    const before = (await Deno.stat(`${bin}/weft`)).ino;
    const second = await install({ source, cniBinDir: bin, cniConfDir: conf });
    assert.equal(second.binaryChanged || second.conflistChanged, false);
    assert.equal((await Deno.stat(`${bin}/weft`)).ino, before, "the same file, not a rewrite");
    assert.deepEqual(await names(bin), ["weft"]);
    assert.deepEqual(await names(conf), [CONFLIST_NAME]);
  });
});

Deno.test("an upgrade never shows a partial binary under the final name", async () => {
  await withDirs(async ({ root, bin, conf }) => {
    const size = 8 << 20;
    const oldBinary = bytes(size, 7);
    const newBinary = bytes(size, 9);
    await Deno.writeFile(`${root}/old`, oldBinary);
    await Deno.writeFile(`${root}/new`, newBinary);
    await install({ source: `${root}/old`, cniBinDir: bin, cniConfDir: conf });

    let finished = false;
    const upgrade = install({ source: `${root}/new`, cniBinDir: bin, cniConfDir: conf })
      .finally(() => finished = true);
    let sawTemporary = false;
    const seen = new Set<string>();
    // Observe between the installer's chunked writes: whatever is under the final name must be
    // one whole binary, the old or the new.
    while (!finished) {
      const head = new Uint8Array(2);
      {
        using file = Deno.openSync(`${bin}/weft`, { read: true });
        assert.equal(file.statSync().size, size, "partial file under the final name");
        file.readSync(head);
      }
      seen.add(head[1] === oldBinary[1] ? "old" : head[1] === newBinary[1] ? "new" : "?");
      if ((await names(bin)).some((n) => n.startsWith(TEMP_PREFIX))) sawTemporary = true;
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    await upgrade;
    assert.ok(sawTemporary, "the copy was observed in progress under a temporary name");
    assert.ok(seen.has("old") && !seen.has("?"));
    assert.deepEqual(await Deno.readFile(`${bin}/weft`), newBinary);
    assert.deepEqual(await names(bin), ["weft"], "no temporary left behind");
  });
});

Deno.test("install sweeps a crashed run's temporaries and names configs that shadow it", async () => {
  await withDirs(async ({ root, bin, conf }) => {
    await Deno.mkdir(bin, { recursive: true });
    await Deno.mkdir(conf, { recursive: true });
    await Deno.writeTextFile(`${bin}/${TEMP_PREFIX}weft-dead`, "half");
    await Deno.writeTextFile(`${conf}/10-weave.conflist`, "{}");
    await Deno.writeTextFile(`${conf}/99-loopback.conf`, "{}");
    await Deno.writeTextFile(`${root}/weft-build`, "#!/bin/sh\n");
    const result = await install({
      source: `${root}/weft-build`,
      cniBinDir: bin,
      cniConfDir: conf,
    });
    assert.deepEqual(await names(bin), ["weft"]);
    assert.deepEqual(result.shadowedBy, [`${conf}/10-weave.conflist`]);
  });
});

Deno.test("uninstall removes exactly what install wrote and is harmless when repeated", async () => {
  await withDirs(async ({ root, bin, conf }) => {
    await Deno.mkdir(bin, { recursive: true });
    await Deno.mkdir(conf, { recursive: true });
    await Deno.writeTextFile(`${bin}/portmap`, "other plugin");
    await Deno.writeTextFile(`${conf}/99-other.conflist`, "{}");
    await Deno.writeTextFile(`${root}/weft-build`, "#!/bin/sh\n");
    await install({ source: `${root}/weft-build`, cniBinDir: bin, cniConfDir: conf });
    const result = await uninstall({ cniBinDir: bin, cniConfDir: conf });
    assert.deepEqual(result.removed, [`${conf}/${CONFLIST_NAME}`, `${bin}/weft`]);
    assert.deepEqual(await names(bin), ["portmap"]);
    assert.deepEqual(await names(conf), ["99-other.conflist"]);
    assert.deepEqual(await uninstall({ cniBinDir: bin, cniConfDir: conf }), {
      removed: [],
      kept: [],
    });
  });
});

Deno.test("uninstall keeps a conflist under our name that install did not write", async () => {
  await withDirs(async ({ bin, conf }) => {
    await Deno.mkdir(conf, { recursive: true });
    const foreign = JSON.stringify({ name: "x", plugins: [{ type: "bridge" }] });
    await Deno.writeTextFile(`${conf}/${CONFLIST_NAME}`, foreign);
    const result = await uninstall({ cniBinDir: bin, cniConfDir: conf });
    assert.deepEqual(result.kept, [`${conf}/${CONFLIST_NAME}`]);
    assert.equal(await Deno.readTextFile(`${conf}/${CONFLIST_NAME}`), foreign);
  });
});

Deno.test("install refuses to copy the Deno runtime itself and names a missing source", async () => {
  await withDirs(async ({ bin, conf }) => {
    await assert.rejects(
      install({ execPath: () => "/usr/local/bin/deno", cniBinDir: bin, cniConfDir: conf }),
      (error: Error) =>
        error instanceof InstallError && /"\/usr\/local\/bin\/deno"/.test(error.message),
    );
    await assert.rejects(
      install({ source: "/nonexistent/weft", cniBinDir: bin, cniConfDir: conf }),
      /Cannot read executable to install "\/nonexistent\/weft"/,
    );
  });
});
