/** The CLI as people meet it: the bundled artifact, run from a directory with no source tree. */
import assert from "node:assert/strict";
import { artifact } from "./support/artifact.ts";
import { sh } from "./support/lab.ts";

async function weft(args: string[], env: Record<string, string> = {}) {
  const { weft } = await artifact();
  const cwd = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command(weft, { args, cwd, env, stdout: "piped", stderr: "piped" })
      .output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
}

Deno.test("version and help work from any directory", async () => {
  const version = await weft(["version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^weft \d+\.\d+\.\d+/);
  const help = await weft(["--help"]);
  assert.equal(help.code, 0);
  for (const command of ["launch", "status", "ps", "reset", "connect", "forget", "rmpeer"]) {
    assert.match(help.stdout, new RegExp(`\\b${command}\\b`));
  }
  // the command the IPAM's "no live peer owns any space" message names exists
  const adoptHelp = await weft(["ipam", "adopt", "--help"]);
  assert.equal(adoptHelp.code, 0);
  assert.match(adoptHelp.stdout, /ONE node/);
  const launchHelp = await weft(["launch", "--help"]);
  assert.match(launchHelp.stdout, /--ipalloc-range/);
});

Deno.test("an unknown command is a usage error (exit 2) with help", async () => {
  const result = await weft(["frobnicate"]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /unknown command 'frobnicate'/);
});

Deno.test("talking to an agent that is not running says so, in one line", async () => {
  // an unused loopback port in a fresh namespace: nothing listens there
  const netns = "wtcli-ns";
  await sh(["ip", "netns", "del", netns]);
  await sh(["ip", "netns", "add", netns]);
  try {
    const { weft: bin } = await artifact();
    const result = await sh([bin, "status"], { netns });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /Cannot reach the weft agent at 127\.0\.0\.1:6784.*weft launch/);
    assert.equal(result.stderr.trim().split("\n").length, 1);
    const unknown = await sh([bin, "status", "everything"], { netns });
    assert.equal(unknown.code, 1);
  } finally {
    await sh(["ip", "netns", "del", netns]);
  }
});

Deno.test("install puts the executable and conflist in place, idempotently; uninstall removes them", async () => {
  const { weft: wrapper } = await artifact();
  const bin = await Deno.makeTempDir();
  const conf = await Deno.makeTempDir();
  try {
    const args = ["--cni-bin-dir", bin, "--cni-conf-dir", conf];
    const first = await weft(["install", "--source", wrapper, ...args]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /installed.*written/);
    const conflist = JSON.parse(await Deno.readTextFile(`${conf}/10-weft.conflist`));
    assert.deepEqual(conflist.plugins.map((p: { type: string }) => p.type), ["weft", "portmap"]);
    assert.equal(
      await Deno.readTextFile(`${bin}/weft`),
      await Deno.readTextFile(wrapper),
    );
    assert.ok(((await Deno.stat(`${bin}/weft`)).mode! & 0o111) !== 0, "installed executable");
    const again = await weft(["install", "--source", wrapper, ...args]);
    assert.match(again.stdout, /unchanged.*unchanged/);

    // run by deno with no --source, install must not copy the deno runtime itself
    const refused = await weft(["install", ...args]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /deno|source/i);

    const removed = await weft(["uninstall", ...args]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.deepEqual([...Deno.readDirSync(bin)], []);
    assert.deepEqual([...Deno.readDirSync(conf)], []);
  } finally {
    await Deno.remove(bin, { recursive: true });
    await Deno.remove(conf, { recursive: true });
  }
});
