import assert from "node:assert/strict";
import { loadIdentity, nameFromSeed, newIncarnation } from "./identity.ts";
import { IdentityError } from "./errors.ts";

Deno.test("the name is derived from the machine id, MAC-like and locally administered", () => {
  const name = nameFromSeed("0123456789abcdef");
  assert.match(name, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  assert.equal(parseInt(name.slice(0, 2), 16) & 0x03, 0x02);
  assert.equal(nameFromSeed("0123456789abcdef\n"), name);
  assert.notEqual(nameFromSeed("another"), name);
});

Deno.test("incarnations sort by start time, even when the clock steps back", () => {
  const first = newIncarnation(1000);
  assert.ok(newIncarnation(2000) > first);
  assert.ok(newIncarnation(500, { after: first }) > first);
  assert.notEqual(newIncarnation(1000), newIncarnation(1000));
});

Deno.test("the name persists in the state dir and each start gets a newer incarnation", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wtm-identity-" });
  try {
    const machineIdPath = `${dir}/machine-id`;
    await Deno.writeTextFile(machineIdPath, "feedface\n");
    const first = await loadIdentity({ stateDir: `${dir}/state`, machineIdPath, nickname: "n1" });
    const salt = (await Deno.readTextFile(`${dir}/state/name-salt`)).trim();
    assert.equal(first.name, nameFromSeed(`feedface\n${salt}`));
    assert.equal(first.nickname, "n1");
    await Deno.writeTextFile(machineIdPath, "changed\n");
    const second = await loadIdentity({ stateDir: `${dir}/state`, machineIdPath, now: 1 });
    assert.equal(second.name, first.name);
    assert.ok(second.incarnation > first.incarnation);
    await assert.rejects(() => loadIdentity({ name: "bad name!" }), IdentityError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("clones of one machine get different names; a saved name is kept on upgrade", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wtm-identity-" });
  try {
    const machineIdPath = `${dir}/machine-id`;
    await Deno.writeTextFile(machineIdPath, "0123456789abcdef0123456789abcdef\n");
    const a = await loadIdentity({ stateDir: `${dir}/a`, machineIdPath });
    const b = await loadIdentity({ stateDir: `${dir}/b`, machineIdPath });
    assert.notEqual(a.name, b.name, "same machine-id, different installations");
    assert.equal((await loadIdentity({ stateDir: `${dir}/a`, machineIdPath })).name, a.name);
    // A state dir from before the salt: its peer-name stays, and no salt renames it.
    await Deno.mkdir(`${dir}/old`);
    await Deno.writeTextFile(`${dir}/old/peer-name`, "aa:bb:cc:dd:ee:ff\n");
    assert.equal(
      (await loadIdentity({ stateDir: `${dir}/old`, machineIdPath })).name,
      "aa:bb:cc:dd:ee:ff",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
