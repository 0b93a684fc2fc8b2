/**
 * `make test`: runs every test (pure unit tests beside the code, kernel and multi-node tests
 * in tests/) with one `deno test`, streams its output, and ends with the line CI reads:
 * `N passed, N failed`. Kernel tests need root and create only namespaces of their own.
 */
const deno = Deno.execPath();
const args = ["test", "-A", "--no-check", ...(Deno.args.length ? Deno.args : ["src/", "tests/"])];
const child = new Deno.Command(deno, { args, stdout: "piped", stderr: "inherit" }).spawn();

let tail = "";
const decoder = new TextDecoder();
for await (const chunk of child.stdout) {
  await Deno.stdout.write(chunk);
  tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4096);
}
const { code } = await child.status;

// deno test's summary: "ok | 12 passed (3 steps) | 0 failed (1s)" or "FAILED | 3 passed | 1 failed"
// deno-lint-ignore no-control-regex
const plain = tail.replace(/\x1b\[[0-9;]*m/g, "");
const summary = [...plain.matchAll(/(\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/g)].at(-1);
const passed = summary ? Number(summary[1]) : 0;
let failed = summary ? Number(summary[2]) : 0;
if (code !== 0 && failed === 0) failed = 1; // a crash or a type error before any test ran
console.log(`${passed} passed, ${failed} failed`);
Deno.exit(code);
