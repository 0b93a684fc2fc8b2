/**
 * The command line for people. Every subcommand but `launch`, `reset` and `version` is a call
 * to the local agent's admin API and prints its answer as a table, or as JSON with `--json`,
 * exactly as curl would get it. Errors are printed once, here, as one line without a stack
 * trace, and give exit code 1 (2 for usage errors, from commander).
 */
import { Command, CommanderError, Option } from "commander";
import { AgentUnreachableError, ApiClient, ApiError } from "../api/mod.ts";
import {
  Agent,
  type AgentFlags,
  ConfigError,
  DEFAULTS,
  resetNode,
  resolveAgentConfig,
} from "../agent/mod.ts";
import { CommandError } from "../net/exec.ts";
import {
  DEFAULT_CNI_BIN_DIR,
  DEFAULT_CNI_CONF_DIR,
  install,
  InstallError,
  uninstall,
} from "../install/mod.ts";
import { VERSION } from "../version.ts";
import { table } from "./format.ts";
import { renderIpam, renderRecords, renderStatus } from "./render.ts";
import { renderPolicy } from "./render_policy.ts";

function client(command: Command): ApiClient {
  const { apiAddr } = command.optsWithGlobals() as { apiAddr?: string };
  return new ApiClient(apiAddr ?? Deno.env.get("WEFT_API_ADDR") ?? DEFAULTS.apiAddr);
}

/** What `weft ui` prints: the page, and the two ways to reach a loopback-only API. */
export function uiHelp(address: string, nickname: string): string {
  const port = address.slice(address.lastIndexOf(":") + 1);
  return [
    `The topology page of ${nickname}: http://${address}/ui`,
    "",
    "The admin API listens on loopback only. From another machine, forward a local port to it:",
    `  ssh -N -L ${port}:${address} root@${nickname}`,
    `  kubectl -n kube-system port-forward pod/<the weft pod on ${nickname}> ${port}:${port}`,
    `then open http://127.0.0.1:${port}/ui (the page updates itself; no reload needed).`,
  ].join("\n");
}

function print(value: unknown, json: boolean, render: () => string): void {
  console.log(json ? JSON.stringify(value, null, 2) : render());
}

export function buildCli(): Command {
  const program = new Command("weft")
    .description("weft: a pod network in the tradition of Weave Net")
    .version(VERSION, "-v, --version")
    .option(
      "--api-addr <host:port>",
      `the agent's admin API (env WEFT_API_ADDR, default ${DEFAULTS.apiAddr})`,
    )
    .showHelpAfterError()
    .exitOverride();

  program.command("launch")
    .description("run the node agent (bridge, IPAM, mesh, data path, admin API) in the foreground")
    .option("--bridge <name>", `bridge name (env WEFT_BRIDGE, default ${DEFAULTS.bridge})`)
    .option(
      "--ipalloc-range <cidr>",
      `cluster pod range (env IPALLOC_RANGE, default ${DEFAULTS.ipallocRange})`,
    )
    .option(
      "--ipalloc-init <mode>",
      "first split of the range: consensus=N, seed=a,b, observer (env IPALLOC_INIT)",
    )
    .option(
      "--state-dir <dir>",
      `state directory (env WEFT_STATE_DIR, default ${DEFAULTS.stateDir})`,
    )
    .option("--mtu <bytes>", "pod and bridge MTU, overriding detection (env WEFT_MTU or WEAVE_MTU)")
    .option("--nickname <name>", "a name for people (env WEFT_NICKNAME, default the hostname)")
    .option(
      "--name <peer>",
      "this peer's name (env WEFT_PEER_NAME, default derived from the machine id)",
    )
    .option(
      "--password-file <file>",
      "file holding the shared secret (else env WEFT_PASSWORD or WEAVE_PASSWORD)",
    )
    .option(
      "--no-encrypt",
      "with a password: authenticate peers but carry pod traffic unencrypted (allows kernel VXLAN)",
    )
    .option("--peers <list>", "peers to connect to, host[:port],... (env WEFT_PEERS)")
    .option("--port <port>", "mesh TCP port (env WEFT_PORT, default 6783)")
    .option("--host <addr>", "address the mesh listens on (default 0.0.0.0)")
    .option("--no-discovery", "connect only to the given peers, not to peers learnt through gossip")
    .option("--conn-limit <n>", "maximum mesh connections (env CONN_LIMIT, default 200)")
    .option("--tls-cert <file>", "serve the mesh over TLS with this certificate")
    .option("--tls-key <file>", "key for --tls-cert")
    .option("--tls-ca <file>", "CA that signed the peers' certificates (when dialling over TLS)")
    .option("--vxlan-port <port>", "kernel VXLAN UDP port (env WEFT_VXLAN_PORT, default 6784)")
    .option("--sleeve-port <port>", "userspace path UDP port (env WEFT_SLEEVE_PORT, default 6783)")
    .addOption(
      new Option("--datapath <mode>", "data path (env WEFT_DATAPATH)").choices([
        "auto",
        "fastdp",
        "sleeve",
        "none",
      ]),
    )
    .option(
      "--ipam-reclaim-after <duration>",
      "reclaim space of peers unreachable this long, e.g. 1h (default off)",
    )
    .option("--node-name <name>", "Kubernetes Node name (env NODE_NAME)")
    .option(
      "--kubeconfig <file>",
      "talk to Kubernetes with this kubeconfig instead of in-cluster config",
    )
    .option(
      "--no-network-policy",
      "on Kubernetes, do not enforce NetworkPolicy (env WEFT_NETWORK_POLICY=false)",
    )
    .option(
      "--policy-log-rate <n/s>",
      "log denied connections to the kernel log, at most n a second per policy (env WEFT_POLICY_LOG_RATE)",
    )
    .action(async (flags: AgentFlags, command: Command) => {
      const globals = command.optsWithGlobals() as { apiAddr?: string };
      const config = await resolveAgentConfig(
        { ...flags, apiAddr: globals.apiAddr },
        Deno.env.toObject(),
      );
      const agent = await Agent.launch(config);
      let stopping = false;
      const stop = (code = 0) => {
        if (stopping) return;
        stopping = true;
        console.error("weft: stopping (kernel state is kept; `weft reset` removes it)");
        // a stop that hangs (a stuck peer, a blocked device) must not keep the node from
        // restarting the agent: give it a few seconds, then leave anyway
        setTimeout(() => {
          console.error("weft: clean stop took over 5 s; exiting anyway");
          Deno.exit(1);
        }, 5000);
        agent.stop().then(() => Deno.exit(code));
      };
      Deno.addSignalListener("SIGTERM", () => stop());
      Deno.addSignalListener("SIGINT", () => stop());
      // A promise nobody awaited that fails is a bug somewhere; Deno would end the process
      // with its own trace and no stop(). Say what it was, then stop cleanly (exit 1), so the
      // supervisor restarts an agent that left its state consistent.
      globalThis.addEventListener("unhandledrejection", (event) => {
        event.preventDefault();
        const reason = event.reason as Error | undefined;
        console.error(`weft: unexpected failure, stopping: ${reason?.stack ?? reason}`);
        stop(1);
      });
      await agent.finished;
    });

  program.command("status")
    .description(
      "show the agent's status, or one part of it: ipam, peers, connections, targets, policy",
    )
    .argument("[what]", "ipam | peers | connections | targets | policy")
    .option("--json", "print the API's JSON answer")
    .action(async (what: string | undefined, options: { json?: boolean }, command: Command) => {
      const api = client(command);
      switch (what) {
        case undefined: {
          const status = await api.status();
          print(status, Boolean(options.json), () => renderStatus(status));
          if (!status.ready) Deno.exitCode = 1;
          return;
        }
        case "ipam": {
          const ipam = await api.ipamStatus();
          return print(ipam, Boolean(options.json), () => renderIpam(ipam));
        }
        case "policy": {
          const policy = await api.policyStatus();
          return print(policy, Boolean(options.json), () => renderPolicy(policy));
        }
        case "peers":
        case "connections":
        case "targets": {
          const records = what === "peers"
            ? await api.peers()
            : what === "connections"
            ? await api.connections()
            : (await api.targets()).map((target) => ({ target }));
          return print(records, Boolean(options.json), () => renderRecords(records));
        }
        default:
          throw new ConfigError(
            `Unknown status "${what}": expected ipam, peers, connections, targets or policy`,
          );
      }
    });

  program.command("ps")
    .description("list the addresses this node has handed out")
    .option("--json", "print the API's JSON answer")
    .action(async (options: { json?: boolean }, command: Command) => {
      const allocations = await client(command).allocations();
      print(allocations, Boolean(options.json), () =>
        table(
          ["CONTAINER", "IFNAME", "MAC", "ADDRESS"],
          allocations.map((a) => [a.containerID, a.ifname, a.mac, a.address]),
        ));
    });

  program.command("connect")
    .description("connect to a peer")
    .argument("<peer>", "host[:port]")
    .option("--replace", "replace the list of target peers with this one")
    .action(async (peer: string, options: { replace?: boolean }, command: Command) => {
      console.log(JSON.stringify(await client(command).connect(peer, Boolean(options.replace))));
    });

  program.command("forget")
    .description("stop connecting to a peer")
    .argument("<peer>", "host[:port]")
    .action(async (peer: string, _options: unknown, command: Command) => {
      console.log(JSON.stringify(await client(command).forget(peer)));
    });

  program.command("rmpeer")
    .description("reclaim the address space of a peer that is gone for good")
    .argument("<name>", "peer name or nickname")
    .action(async (name: string, _options: unknown, command: Command) => {
      console.log(JSON.stringify(await client(command).removePeer(name), null, 2));
    });

  const peer = program.command("peer").description("operator actions on one peer");
  peer.command("rebind")
    .description(
      "forget the identity key bound to a peer that was reinstalled and kept its name, so it binds again",
    )
    .argument("<name>", "peer name, as the key-mismatch problem shows it")
    .option("--fingerprint <SHA256:...>", "bind only this key (from the key-mismatch problem)")
    .action(async (name: string, options: { fingerprint?: string }, command: Command) => {
      console.log(JSON.stringify(await client(command).rebindPeer(name, options)));
    });

  program.command("report")
    .description("print everything support needs about this node, as one JSON document")
    .option(
      "--redact",
      "replace peer and host names, addresses outside the pod range, MACs, container IDs and paths",
    )
    .action(async (options: { redact?: boolean }, command: Command) => {
      const report = await client(command).report({ redact: Boolean(options.redact) });
      console.log(JSON.stringify(report, null, 2));
    });

  const ipam = program.command("ipam").description(
    "operator actions on the cluster's address space",
  );
  ipam.command("adopt")
    .description(
      "take the address space no live peer owns (all its owners were removed); run on ONE node",
    )
    .action(async (_options: unknown, command: Command) => {
      const { orphaned } = await client(command).adoptOrphans();
      console.log(
        orphaned
          ? `adopting ${orphaned} orphaned addresses; \`weft status ipam\` shows them once every live peer agreed`
          : "nothing to adopt: every part of the range has a live owner",
      );
    });

  program.command("ui")
    .description("print the topology page's address and how to open it from another machine")
    .action(async (_options: unknown, command: Command) => {
      const api = client(command);
      const status = await api.status();
      console.log(uiHelp(api.address, status.nickname));
    });

  program.command("expose")
    .description("give this node access to pods on every node through its bridge address")
    .action(async (_options: unknown, command: Command) => {
      console.log(JSON.stringify(await client(command).expose()));
    });

  program.command("hide")
    .description("undo expose")
    .action(async (_options: unknown, command: Command) => {
      console.log(JSON.stringify(await client(command).hide()));
    });

  program.command("reset")
    .description("remove weft from this node: pod veths, the bridge, iptables rules and state")
    .option("--bridge <name>", "bridge name", DEFAULTS.bridge)
    .option("--state-dir <dir>", "state directory", DEFAULTS.stateDir)
    .option("--force", "reset without asking a running agent to leave the cluster first")
    .action(
      async (options: { bridge: string; stateDir: string; force?: boolean }, command: Command) => {
        const api = client(command);
        const running = await api.status().then(() => true, () => false);
        if (running && !options.force) {
          // a clean leave: the agent gives its address space to a peer, then exits
          const left = await api.leave();
          console.log(
            `left the cluster: ${left.addresses} addresses given to ${
              left.givenTo ?? "nobody (no peer reachable)"
            }`,
          );
          const deadline = Date.now() + 15_000;
          while (await api.status().then(() => true, () => false)) {
            if (Date.now() > deadline) {
              throw new ConfigError("The agent did not stop after leaving");
            }
            await new Promise((r) => setTimeout(r, 200));
          }
        }
        const report = await resetNode(options);
        console.log(
          `removed ${report.removedLinks.length} links${
            report.removedLinks.length ? ` (${report.removedLinks.join(", ")})` : ""
          }` +
            `${report.removedStateDir ? ` and ${options.stateDir}` : ""}; weft's iptables chains${
              report.removedPolicyTable ? " and NetworkPolicy table" : ""
            } are gone`,
        );
      },
    );

  program.command("install")
    .description(
      "install this executable as the CNI plugin and write the weft conflist (atomically)",
    )
    .option("--source <file>", "executable to install (default: the running one)")
    .option("--cni-bin-dir <dir>", "CNI plugin directory", DEFAULT_CNI_BIN_DIR)
    .option("--cni-conf-dir <dir>", "CNI network config directory", DEFAULT_CNI_CONF_DIR)
    .action(async (options: { source?: string; cniBinDir: string; cniConfDir: string }) => {
      const result = await install(options);
      console.log(
        `${result.binary} ${result.binaryChanged ? "installed" : "unchanged"}, ` +
          `${result.conflist} ${result.conflistChanged ? "written" : "unchanged"}`,
      );
      for (const other of result.shadowedBy) {
        console.error(
          `weft: warning: ${other} sorts before weft's conflist and takes precedence; remove it`,
        );
      }
    });

  program.command("uninstall")
    .description("remove what `weft install` wrote")
    .option("--cni-bin-dir <dir>", "CNI plugin directory", DEFAULT_CNI_BIN_DIR)
    .option("--cni-conf-dir <dir>", "CNI network config directory", DEFAULT_CNI_CONF_DIR)
    .action(async (options: { cniBinDir: string; cniConfDir: string }) => {
      const result = await uninstall(options);
      console.log(
        result.removed.length ? `removed ${result.removed.join(", ")}` : "nothing to remove",
      );
    });

  program.command("version")
    .description("print the version")
    .action(() => console.log(`weft ${VERSION}`));

  return program;
}

/** Runs the CLI; returns the exit code. */
export async function runCli(argv: string[]): Promise<number> {
  const program = buildCli();
  try {
    await program.parseAsync(argv, { from: "user" });
    return typeof Deno.exitCode === "number" ? Deno.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 || error.code === "commander.helpDisplayed" ||
          error.code === "commander.version"
        ? 0
        : 2;
    }
    if (error instanceof ApiError) {
      console.error(`weft: the agent answered ${error.status}: ${error.message}`);
    } else if (
      error instanceof AgentUnreachableError || error instanceof ConfigError ||
      error instanceof CommandError || error instanceof InstallError
    ) {
      console.error(`weft: ${error.message}`);
    } else {
      console.error(`weft: ${(error as Error).stack ?? error}`);
    }
    return 1;
  }
}
