/**
 * The fake Kubernetes API server (fake_kube_server.ts) for a lab: a process on the lab's underlay
 * at 192.168.77.1:6443, a kubeconfig in the lab's work directory that points the agents at it,
 * and its `/__control/` routes and REST paths called from the underlay with curl, as kubectl
 * would. Closing it kills the process (the lab's destroy removes the rest).
 */
import { type Lab, must, sh, UNDERLAY_HOST, waitFor } from "./lab.ts";

const PORT = 6443;

export class LabKubeApi {
  readonly kubeconfig: string;
  readonly #lab: Lab;
  readonly #token: string;
  readonly #server: Deno.ChildProcess;

  private constructor(lab: Lab, token: string, server: Deno.ChildProcess, kubeconfig: string) {
    this.#lab = lab;
    this.#token = token;
    this.#server = server;
    this.kubeconfig = kubeconfig;
  }

  static async start(lab: Lab, options: { token: string }): Promise<LabKubeApi> {
    const server = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        lab.underlay,
        Deno.execPath(),
        "run",
        "-A",
        new URL("./fake_kube_server.ts", import.meta.url).pathname,
        UNDERLAY_HOST,
        String(PORT),
        options.token,
      ],
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    const kubeconfig = `${lab.workDir}/kubeconfig`;
    const api = new LabKubeApi(lab, options.token, server, kubeconfig);
    try {
      await Deno.writeTextFile(
        kubeconfig,
        [
          "apiVersion: v1",
          "kind: Config",
          `clusters: [{name: lab, cluster: {server: 'http://${UNDERLAY_HOST}:${PORT}'}}]`,
          `users: [{name: weft, user: {token: ${options.token}}}]`,
          "contexts: [{name: lab, context: {cluster: lab, user: weft}}]",
          "current-context: lab",
          "",
        ].join("\n"),
      );
      await waitFor("the fake API server", async () =>
        (await sh(
          [
            "curl",
            "-s",
            "--max-time",
            "1",
            `http://${UNDERLAY_HOST}:${PORT}/__control/node?name=x`,
          ],
          { netns: lab.underlay },
        )).code === 0);
    } catch (error) {
      await api.close();
      throw error;
    }
    return api;
  }

  /** A `/__control/` route (Nodes, ConfigMaps read back), without credentials. */
  async control(path: string): Promise<unknown> {
    const out = await must(
      ["curl", "-s", "--max-time", "5", `http://${UNDERLAY_HOST}:${PORT}/__control/${path}`],
      { netns: this.#lab.underlay },
    );
    return JSON.parse(out);
  }

  /** A REST call with the token; throws on a status of 300 or more. */
  async rest(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
    const args = [
      "curl",
      "-s",
      "--max-time",
      "5",
      "-X",
      method,
      "-H",
      `authorization: Bearer ${this.#token}`,
      "-w",
      "\n%{http_code}",
      `http://${UNDERLAY_HOST}:${PORT}${path}`,
    ];
    if (body !== undefined) {
      args.push("-H", "content-type: application/json", "-d", JSON.stringify(body));
    }
    const out = await must(args, { netns: this.#lab.underlay });
    const lines = out.trimEnd().split("\n");
    const code = Number(lines.pop());
    const json = JSON.parse(lines.join("\n") || "{}");
    if (code >= 300) throw new Error(`${method} ${path}: ${code} ${JSON.stringify(json)}`);
    return json;
  }

  async close(): Promise<void> {
    try {
      this.#server.kill("SIGKILL");
    } catch {
      // gone
    }
    await this.#server.status;
  }
}
