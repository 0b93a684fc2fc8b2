/**
 * Where the agent finds the Kubernetes API and how it proves who it is. Two sources, as
 * client-go has them: the pod's service account (token + CA mounted by the kubelet, address in
 * KUBERNETES_SERVICE_HOST/PORT) and a kubeconfig file for running outside the cluster. Only the
 * plain credential kinds are supported (bearer token, token file, client certificate); exec and
 * auth-provider plugins would drag cloud SDKs into a network agent, so they fail loudly instead.
 */
import { parse as parseYaml } from "yaml";

export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** Everything a {@link KubeClient} needs; built once by {@link loadKubeConfig}. */
export interface KubeConfig {
  /** Base URL without a trailing slash, e.g. `https://10.96.0.1:443`. */
  readonly server: string;
  /** PEM bundle trusted for the API server, beside the system roots. */
  readonly caPem?: string;
  readonly token?: string;
  /**
   * Projected service account tokens expire and the kubelet rewrites this file, so the client
   * re-reads it instead of keeping the token it started with.
   */
  readonly tokenFile?: string;
  readonly clientCertPem?: string;
  readonly clientKeyPem?: string;
  readonly namespace?: string;
  /** Where this came from (`in-cluster` or the kubeconfig path), for error messages. */
  readonly source: string;
}

export interface LoadKubeConfigOptions {
  /** An explicit kubeconfig path (`--kubeconfig`); wins over everything else. */
  kubeconfig?: string;
  /** Context to use instead of the file's `current-context`. */
  context?: string;
  env?: Record<string, string | undefined>;
  serviceAccountDir?: string;
  readTextFile?: (path: string) => Promise<string>;
}

export class KubeConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KubeConfigError";
  }
}

/**
 * Resolves the API location and credentials: `options.kubeconfig`, then `$KUBECONFIG` (its first
 * entry), then the in-cluster service account.
 */
export async function loadKubeConfig(options: LoadKubeConfigOptions = {}): Promise<KubeConfig> {
  const env = options.env ?? Deno.env.toObject();
  const read = options.readTextFile ?? Deno.readTextFile;
  const path = options.kubeconfig ?? env.KUBECONFIG?.split(":").find((p) => p !== "");
  if (path) return await loadKubeconfigFile(path, { context: options.context, read });
  if (env.KUBERNETES_SERVICE_HOST) {
    return await loadInCluster(env, options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR, read);
  }
  throw new KubeConfigError(
    "No Kubernetes API configured: pass --kubeconfig, set KUBECONFIG, or run in a pod " +
      "(KUBERNETES_SERVICE_HOST is not set)",
  );
}

async function loadInCluster(
  env: Record<string, string | undefined>,
  dir: string,
  read: (path: string) => Promise<string>,
): Promise<KubeConfig> {
  const host = env.KUBERNETES_SERVICE_HOST!;
  const port = env.KUBERNETES_SERVICE_PORT || "443";
  if (!/^\d{1,5}$/.test(port)) {
    throw new KubeConfigError(`Invalid KUBERNETES_SERVICE_PORT "${port}": expected a port number`);
  }
  const tokenFile = `${dir}/token`;
  // Read once now so a missing mount fails at start-up, not at the first request.
  await readRequired(read, tokenFile, "service account token");
  const caPem = await readRequired(read, `${dir}/ca.crt`, "service account CA");
  let namespace: string | undefined;
  try {
    namespace = (await read(`${dir}/namespace`)).trim() || undefined;
  } catch {
    namespace = undefined;
  }
  const hostPart = host.includes(":") ? `[${host}]` : host;
  return {
    server: `https://${hostPart}:${port}`,
    caPem,
    tokenFile,
    namespace,
    source: "in-cluster",
  };
}

async function readRequired(
  read: (path: string) => Promise<string>,
  path: string,
  what: string,
): Promise<string> {
  try {
    return await read(path);
  } catch (error) {
    throw new KubeConfigError(`Cannot read ${what} "${path}": ${(error as Error).message}`, {
      cause: error,
    });
  }
}

type YamlMap = Record<string, unknown>;

function named(list: unknown, name: string, kind: string, file: string): YamlMap {
  const entries = Array.isArray(list) ? list as YamlMap[] : [];
  const found = entries.find((entry) => entry?.name === name);
  const inner = found?.[kind];
  if (!inner || typeof inner !== "object") {
    throw new KubeConfigError(`Kubeconfig "${file}" has no ${kind} named "${name}"`);
  }
  return inner as YamlMap;
}

function text(map: YamlMap, key: string): string | undefined {
  const value = map[key];
  return typeof value === "string" && value !== "" ? value : undefined;
}

function decodeBase64(value: string, what: string, file: string): string {
  try {
    return new TextDecoder().decode(Uint8Array.from(atob(value.trim()), (c) => c.charCodeAt(0)));
  } catch (error) {
    throw new KubeConfigError(`Kubeconfig "${file}": ${what} is not valid base64`, {
      cause: error,
    });
  }
}

function resolvePath(path: string, file: string): string {
  if (path.startsWith("/")) return path;
  const slash = file.lastIndexOf("/");
  return slash < 0 ? path : `${file.slice(0, slash)}/${path}`;
}

async function loadKubeconfigFile(
  file: string,
  options: { context?: string; read: (path: string) => Promise<string> },
): Promise<KubeConfig> {
  const { read } = options;
  let doc: YamlMap;
  try {
    doc = parseYaml(await read(file)) as YamlMap;
  } catch (error) {
    throw new KubeConfigError(`Cannot load kubeconfig "${file}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (!doc || typeof doc !== "object") {
    throw new KubeConfigError(`Kubeconfig "${file}" is empty or not a YAML mapping`);
  }
  const contextName = options.context ?? text(doc, "current-context");
  if (!contextName) {
    throw new KubeConfigError(`Kubeconfig "${file}" has no current-context; pass a context`);
  }
  const context = named(doc.contexts, contextName, "context", file);
  const clusterName = text(context, "cluster");
  if (!clusterName) {
    throw new KubeConfigError(`Kubeconfig "${file}": context "${contextName}" names no cluster`);
  }
  const cluster = named(doc.clusters, clusterName, "cluster", file);
  const userName = text(context, "user");
  const user = userName ? named(doc.users, userName, "user", file) : {};

  const server = text(cluster, "server")?.replace(/\/+$/, "");
  if (!server || !/^https?:\/\//.test(server)) {
    throw new KubeConfigError(
      `Kubeconfig "${file}": cluster "${clusterName}" has no http(s) server (got "${
        cluster.server ?? ""
      }")`,
    );
  }
  if (cluster["insecure-skip-tls-verify"] === true) {
    // Deno's fetch can only skip verification process-wide, which would weaken every other
    // connection the agent makes; better to refuse than to do it silently.
    throw new KubeConfigError(
      `Kubeconfig "${file}": cluster "${clusterName}" sets insecure-skip-tls-verify, which weft ` +
        "does not support; give certificate-authority-data instead",
    );
  }
  for (const unsupported of ["exec", "auth-provider", "username"]) {
    if (user[unsupported] !== undefined) {
      throw new KubeConfigError(
        `Kubeconfig "${file}": user "${userName}" authenticates with "${unsupported}", which weft ` +
          "does not support; use a token, tokenFile or client certificate",
      );
    }
  }

  // Each PEM comes either inline (`*-data`, base64) or as a path relative to the kubeconfig.
  const pem = async (map: YamlMap, key: string, what: string) => {
    const data = text(map, `${key}-data`);
    if (data) return decodeBase64(data, `${key}-data`, file);
    const path = text(map, key);
    return path ? await readRequired(read, resolvePath(path, file), what) : undefined;
  };
  const caPem = await pem(cluster, "certificate-authority", "cluster CA");
  const clientCertPem = await pem(user, "client-certificate", "client certificate");
  const clientKeyPem = await pem(user, "client-key", "client key");
  if ((clientCertPem === undefined) !== (clientKeyPem === undefined)) {
    throw new KubeConfigError(
      `Kubeconfig "${file}": user "${userName}" has a client certificate or key but not both`,
    );
  }
  const tokenFile = text(user, "tokenFile");
  return {
    server,
    caPem,
    token: text(user, "token"),
    tokenFile: tokenFile ? resolvePath(tokenFile, file) : undefined,
    clientCertPem,
    clientKeyPem,
    namespace: text(context, "namespace"),
    source: file,
  };
}
