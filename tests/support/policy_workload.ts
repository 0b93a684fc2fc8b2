/**
 * The NetworkPolicy workload of the policy benchmarks: pods labelled with one of 50 apps, and
 * policies that mix what clusters run (a default deny in one of ten, else an app admitting the
 * next app and a group of namespaces, on a numbered port and a named one).
 */

export const appOf = (i: number): string => `app${i % 50}`;

/** Policy `i`'s spec; `port` is the numbered port its rule allows (benchmarks change it). */
export function policySpec(i: number, port = 8080) {
  if (i % 10 === 0) return { podSelector: {}, policyTypes: ["Ingress"] };
  return {
    podSelector: { matchLabels: { app: appOf(i) } },
    ingress: [{
      from: [
        { podSelector: { matchLabels: { app: appOf(i + 1) } } },
        { namespaceSelector: { matchLabels: { team: `t${i % 4}` } } },
      ],
      ports: [{ protocol: "TCP", port }, { port: "metrics" }],
    }],
  };
}
