/**
 * The agent's state directory on a small tmpfs (needs root for the mount): when it fills up,
 * allocations answer 507 with a message naming the database and the full disk, which the CNI
 * plugin passes on; when space returns, allocations work again without a restart.
 */
import assert from "node:assert/strict";
import { Agent, resolveAgentConfig } from "../src/agent/mod.ts";
import { createApi } from "../src/api/mod.ts";
import { must, sh } from "./support/lab.ts";

Deno.test("a full state disk answers 507 naming the file, and allocations resume when space returns", async () => {
  const dir = await Deno.makeTempDir({ prefix: "weft-state-disk-test-" });
  await must(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir]);
  let agent: Agent | undefined;
  try {
    const stateDir = `${dir}/state`;
    const config = await resolveAgentConfig({ stateDir, ipallocRange: "10.32.0.0/20" }, {});
    agent = await Agent.launch(config, { kernel: false, serve: false, mesh: false, log: () => {} });
    const app = createApi(agent);
    const allocate = (id: string) =>
      Promise.resolve(
        app.request(`http://127.0.0.1:6784/ip/${id}`, { method: "POST", body: "{}" }),
      );
    assert.equal((await allocate("before")).status, 200);
    // fill what is left of the disk
    await sh(["dd", "if=/dev/zero", `of=${dir}/filler`, "bs=16k"]);
    let refused: Response | undefined;
    for (let i = 0; i < 500 && !refused; i++) {
      const response = await allocate(`pod-${i}`);
      if (response.status !== 200) refused = response;
      else await response.body?.cancel();
    }
    assert.ok(refused, "the full disk was noticed");
    assert.equal(refused.status, 507);
    const { error } = await refused.json();
    assert.match(error, new RegExp(`${stateDir}/weft\\.db: the disk is full`));
    await Deno.remove(`${dir}/filler`);
    assert.equal((await allocate("after")).status, 200, "service resumes when space returns");
  } finally {
    await agent?.stop();
    await sh(["umount", dir]);
    await Deno.remove(dir, { recursive: true });
  }
});
