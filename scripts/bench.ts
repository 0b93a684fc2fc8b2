/**
 * `make bench`: every benchmark under bench/, one after another, each printing its table
 * beside the baseline it measured in the same run. Nothing here asserts a number.
 */
const benches = [...Deno.readDirSync(new URL("../bench/", import.meta.url))]
  .filter((entry) => entry.isFile && entry.name.endsWith(".ts"))
  .map((entry) => entry.name)
  .sort();
let failed = 0;
for (const name of benches) {
  console.log(`\n== bench/${name}`);
  const status = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(`../bench/${name}`, import.meta.url).pathname],
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  if (!status.success) {
    console.error(`bench/${name} failed (exit ${status.code})`);
    failed++;
  }
}
Deno.exit(failed ? 1 : 0);
