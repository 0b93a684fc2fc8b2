/**
 * Throwaway TLS material for tests: a CA and one leaf certificate signed by it for the given IP
 * addresses (a self-signed leaf will not do: rustls refuses a CA certificate as a server's).
 */
import assert from "node:assert/strict";

export interface TestCertificates {
  /** Paths of the PEM files. */
  caFile: string;
  certFile: string;
  keyFile: string;
  /** The CA's PEM text. */
  ca: string;
  cert: string;
  key: string;
}

async function openssl(...args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" }).output();
  assert.ok(out.success, `openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
}

export async function makeTestCertificates(dir: string, ips: string[]): Promise<TestCertificates> {
  const caFile = `${dir}/ca.pem`;
  const certFile = `${dir}/cert.pem`;
  const keyFile = `${dir}/key.pem`;
  await openssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=weft-test-ca",
    "-keyout",
    `${dir}/ca.key`,
    "-out",
    caFile,
  );
  await openssl(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=weft-test-node",
    "-keyout",
    keyFile,
    "-out",
    `${dir}/leaf.csr`,
  );
  await Deno.writeTextFile(
    `${dir}/leaf.ext`,
    `subjectAltName=${ips.map((ip) => `IP:${ip}`).join(",")}\n` +
      "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
  );
  await openssl(
    "x509",
    "-req",
    "-in",
    `${dir}/leaf.csr`,
    "-CA",
    caFile,
    "-CAkey",
    `${dir}/ca.key`,
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    `${dir}/leaf.ext`,
    "-out",
    certFile,
  );
  return {
    caFile,
    certFile,
    keyFile,
    ca: await Deno.readTextFile(caFile),
    cert: await Deno.readTextFile(certFile),
    key: await Deno.readTextFile(keyFile),
  };
}
