import assert from "node:assert/strict";
import { describeSelector, matches, parseSelector, selectorKey } from "./selector.ts";

Deno.test("an empty selector selects everything, even pods without labels", () => {
  assert.ok(matches(parseSelector({}), {}));
  assert.ok(matches(parseSelector({ matchLabels: {}, matchExpressions: [] }), { a: "b" }));
});

Deno.test("matchLabels and matchExpressions must all hold", () => {
  const s = parseSelector({
    matchLabels: { app: "web" },
    matchExpressions: [{ key: "tier", operator: "In", values: ["front", "edge"] }],
  });
  assert.ok(matches(s, { app: "web", tier: "edge" }));
  assert.ok(!matches(s, { app: "web", tier: "db" }));
  assert.ok(!matches(s, { app: "web" }));
  assert.ok(!matches(s, { tier: "front" }));
});

Deno.test("each operator: In, NotIn (true without the label), Exists, DoesNotExist", () => {
  const prod: Record<string, string>[] = [{ env: "prod" }, { env: "dev" }, {}];
  const any: Record<string, string>[] = [{ env: "" }, {}];
  const op = (operator: "In" | "NotIn" | "Exists" | "DoesNotExist", values?: string[]) =>
    parseSelector({ matchExpressions: [{ key: "env", operator, values }] });
  assert.deepEqual(
    prod.map((l) => matches(op("In", ["prod"]), l)),
    [true, false, false],
  );
  assert.deepEqual(
    prod.map((l) => matches(op("NotIn", ["prod"]), l)),
    [false, true, true],
  );
  assert.deepEqual(any.map((l) => matches(op("Exists"), l)), [true, false]);
  assert.deepEqual(any.map((l) => matches(op("DoesNotExist"), l)), [false, true]);
});

Deno.test("a label named like an Object.prototype member is not present by accident", () => {
  const s = parseSelector({ matchExpressions: [{ key: "constructor", operator: "Exists" }] });
  assert.ok(!matches(s, {}));
});

Deno.test("selectors that mean the same pods have the same key", () => {
  const a = parseSelector({ matchLabels: { b: "2", a: "1" } });
  const b = parseSelector({
    matchExpressions: [
      { key: "a", operator: "In", values: ["1"] },
      { key: "b", operator: "In", values: ["2"] },
      { key: "a", operator: "In", values: ["1"] },
    ],
  });
  assert.equal(selectorKey(a), selectorKey(b));
  const c = parseSelector({
    matchExpressions: [{ key: "x", operator: "In", values: ["q", "p", "q"] }],
  });
  assert.deepEqual(c[0].values, ["p", "q"]);
  assert.notEqual(selectorKey(a), selectorKey(parseSelector({ matchLabels: { a: "1" } })));
});

Deno.test("malformed selectors are refused with the reason", () => {
  const bad: [unknown, RegExp][] = [
    [
      { matchExpressions: [{ key: "a", operator: "Equals", values: ["x"] }] },
      /unknown operator "Equals"/,
    ],
    [{ matchExpressions: [{ key: "a", operator: "In", values: [] }] }, /In needs values/],
    [
      { matchExpressions: [{ key: "a", operator: "Exists", values: ["x"] }] },
      /Exists takes no values/,
    ],
    [
      { matchExpressions: [{ key: "", operator: "Exists" }] },
      /label key must be a non-empty string/,
    ],
    [{ matchLabels: { a: 1 } }, /matchLabels\["a"\] must be a string/],
    [null, /must be an object/],
  ];
  for (const [selector, message] of bad) {
    // deno-lint-ignore no-explicit-any
    assert.throws(() => parseSelector(selector as any), message);
  }
});

Deno.test("selectors read like kubectl's", () => {
  assert.equal(describeSelector(parseSelector({})), "all");
  assert.equal(
    describeSelector(parseSelector({
      matchLabels: { pod: "a" },
      matchExpressions: [
        { key: "tier", operator: "NotIn", values: ["db"] },
        { key: "legacy", operator: "DoesNotExist" },
      ],
    })),
    "!legacy,pod=a,tier notin (db)",
  );
});
