import assert from "node:assert/strict";
import { Admission } from "./admission.ts";

const limits = { unauthenticated: 4, unauthenticatedPerSource: 2, authenticated: 3 };

Deno.test("a source over its share loses its own oldest socket, never another source's", () => {
  const admission = new Admission(limits);
  const a1 = admission.admit("a").ticket;
  const b1 = admission.admit("b").ticket;
  const a2 = admission.admit("a").ticket;
  const third = admission.admit("a");
  assert.equal(third.evicted, a1);
  assert.equal(third.bucket, "source");
  assert.equal(a1.state, "released");
  assert.equal(b1.state, "unauthenticated");
  assert.equal(a2.state, "unauthenticated");
  assert.deepEqual(admission.counts(), {
    unauthenticated: 3,
    authenticated: 0,
    dialling: 0,
    sources: 2,
  });
});

Deno.test("a full total budget gives the oldest unauthenticated socket's place to the new one", () => {
  const admission = new Admission(limits);
  const first = ["a", "b", "c", "d"].map((s) => admission.admit(s).ticket);
  const next = admission.admit("e");
  assert.equal(next.evicted, first[0]);
  assert.equal(next.bucket, "total");
  assert.equal(admission.counts().unauthenticated, 4);
  // an authenticated socket leaves the unauthenticated budget and is never evicted
  assert.ok(admission.authenticate(first[1]));
  const more = admission.admit("f");
  assert.equal(more.evicted, undefined);
  const again = admission.admit("g");
  assert.equal(again.evicted, first[2]);
  assert.equal(first[1].state, "authenticated");
});

Deno.test("authenticated sockets, both directions, stop at the connection limit", () => {
  const admission = new Admission(limits);
  const inbound = [admission.admit("a").ticket, admission.admit("b").ticket];
  const outbound = [admission.dial("x:6783"), admission.dial("y:6783")];
  assert.equal(admission.counts().dialling, 2);
  assert.ok(admission.authenticate(inbound[0]));
  assert.ok(admission.authenticate(outbound[0]));
  assert.ok(admission.authenticate(outbound[1]));
  assert.equal(admission.authenticate(inbound[1]), false, "the fourth is over the limit of 3");
  assert.equal(inbound[1].state, "unauthenticated");
  assert.ok(admission.authenticate(inbound[0]), "authenticating twice is harmless");
  admission.release(outbound[0]);
  admission.release(outbound[0]);
  assert.ok(admission.authenticate(inbound[1]), "a released place is free again");
  assert.deepEqual(admission.counts(), {
    unauthenticated: 0,
    authenticated: 3,
    dialling: 0,
    sources: 0,
  });
});

Deno.test("releasing an unauthenticated socket frees its source's share", () => {
  const admission = new Admission(limits);
  const a1 = admission.admit("a").ticket;
  admission.admit("a");
  admission.release(a1);
  assert.equal(admission.admit("a").evicted, undefined);
  const dial = admission.dial("x:1");
  admission.release(dial);
  assert.equal(admission.counts().dialling, 0);
});
