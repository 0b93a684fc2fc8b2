/**
 * The generic nftables helper (src/net/nft.ts) against the kernel, in a namespace of its own
 * (`wtdn`): a script is one transaction, a refused one leaves nothing behind and says why in
 * nft's words, element removals tolerate absent elements, tables list with their counters.
 */
import assert from "node:assert/strict";
import { applyNft, deleteTable, listTable, NftError, setElementsScript } from "../src/net/nft.ts";
import { addNamespace } from "./support/netns.ts";
import { sweepLab } from "./support/datapath_lab.ts";

const NS = "wtdn";
await sweepLab(NS);

const TABLE = `table inet weft-test {
  set peers { type ipv4_addr; }
  chain input {
    type filter hook input priority filter; policy accept;
    udp dport 9 ip saddr != @peers counter drop comment "not a peer"
  }
}
`;

Deno.test("nft helper: atomic scripts, tolerant removals, listing with counters", async (t) => {
  await addNamespace(NS);
  const netns = { netns: NS };
  try {
    await t.step("a table and its elements appear together", async () => {
      await applyNft(TABLE + "add element inet weft-test peers { 192.0.2.1, 192.0.2.2 }\n", netns);
      const table = await listTable("inet", "weft-test", netns);
      assert.deepEqual(table?.sets.find((s) => s.name === "peers")?.elements, [
        "192.0.2.1",
        "192.0.2.2",
      ]);
      const rule = table?.rules.find((r) => r.comment === "not a peer");
      assert.deepEqual(rule?.counter, { packets: 0, bytes: 0 });
      assert.equal(table?.chains[0].hook, "input");
    });

    await t.step("a refused script changes nothing and quotes nft", async () => {
      const script = "add element inet weft-test peers { 192.0.2.3 }\n" +
        "table inet weft-half {\n  chain c {\n    type filter hook input priority 0;\n  }\n}\n" +
        "delete element inet weft-test peers { 192.0.2.9 }\n";
      const error = await applyNft(script, netns).then(() => undefined, (e) => e);
      assert.ok(error instanceof NftError, String(error));
      assert.match(error.message, /No such file or directory \(line 7: "delete element/);
      const table = await listTable("inet", "weft-test", netns);
      assert.deepEqual(table?.sets[0].elements, ["192.0.2.1", "192.0.2.2"], "no element added");
      assert.equal(await listTable("inet", "weft-half", netns), undefined, "no table half-made");
    });

    await t.step("removing elements that are gone does not fail the transaction", async () => {
      const set = { family: "inet" as const, table: "weft-test", name: "peers" };
      await applyNft(
        setElementsScript(set, { add: ["192.0.2.5"], remove: ["192.0.2.1", "192.0.2.77"] }),
        netns,
      );
      const table = await listTable("inet", "weft-test", netns);
      assert.deepEqual(table?.sets[0].elements, ["192.0.2.2", "192.0.2.5"]);
    });

    await t.step("deleting a table reports whether it was there", async () => {
      assert.equal(await deleteTable("inet", "weft-test", netns), true);
      assert.equal(await deleteTable("inet", "weft-test", netns), false);
      assert.equal(await listTable("inet", "weft-test", netns), undefined);
    });
  } finally {
    await sweepLab(NS);
  }
});
