/**
 * Servers are verified by default: SSH host keys (unknown or changed keys
 * are refused, with the offered fingerprint and how to trust it), TLS
 * certificates for FTPS and https S3 endpoints (a certificate nobody vouched
 * for is refused). Turning a check off takes an explicit setting, and the
 * daemon says so loudly.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { type Workspace, workspace, write } from "../_harness.ts";
import { startServer } from "../_servers.ts";
import { hasTransport, s3Remote, sftpRemote } from "../reliability/_remote.ts";
import { privateCa, tlsProxy } from "../reliability/_tls.ts";
import { run } from "../reliability/_util.ts";

function config(ws: Workspace, serverXml: string) {
  fs.writeFileSync(
    ws.config,
    `<config>
  <sources><source name="site" scanPath="${ws.src}" /></sources>
  <servers>
    ${serverXml}
  </servers>
  <rules><rule for="site" label="all"><destinations><destination server="dest" /></destinations></rule></rules>
  <settings>
    <dataDir>${ws.data}</dataDir>
    <retryFailAfter>1</retryFailAfter>
    <timeout>10</timeout>
  </settings>
</config>
`,
  );
}

/** Runs `sync --once` with a fresh data directory; HOME is the workspace (no ~/.ssh of root). */
async function once(ws: Workspace, env: Record<string, string> = {}) {
  fs.rmSync(ws.data, { recursive: true, force: true });
  return await run(["sync", "--once", "--config", ws.config], {
    env: { HOME: ws.root, ...env },
    timeoutMs: 60_000,
  });
}

Deno.test("sftp: host keys are verified by default; unknown and changed keys are refused", async () => {
  const ws = workspace("fc-hostkey-");
  const remote = await sftpRemote();
  const info = remote.info;
  const base = (extra: string) =>
    `<server name="dest" transporter="sftp">
      <host>127.0.0.1</host>
      <port>${info.port}</port>
      <username>${info.username}</username>
      <password>${info.password}</password>
      <path>${remote.dir}</path>
      <url>https://cdn.test/</url>
      ${extra}
    </server>`;
  const uploaded = () => fs.existsSync(path.join(info.root, remote.dir, "a.txt"));
  try {
    write(path.join(ws.src, "a.txt"), "a\n");
    // 1. Nothing configured, no ~/.ssh/known_hosts: refused, showing the key to trust.
    config(ws, base(""));
    let r = await once(ws);
    assertEquals(r.code, 1, r.stderr);
    assertIncludes(r.stderr, info.hostKeyFingerprint);
    assert(/unknown|not in known_hosts/i.test(r.stderr), r.stderr.slice(-1500));
    assert(!uploaded(), "uploaded to an unverified server");
    // 2. A pinned fingerprint that does not match (a man in the middle): refused.
    config(
      ws,
      base(
        "<host_key_fingerprint>SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA</host_key_fingerprint>",
      ),
    );
    r = await once(ws);
    assertEquals(r.code, 1);
    assertIncludes(r.stderr, "does not match");
    assert(!uploaded());
    // 3. known_hosts with another key for this host:port (the server changed keys): refused.
    const other = path.join(ws.root, "other_host_key");
    await new Deno.Command("ssh-keygen", { args: ["-q", "-t", "ed25519", "-N", "", "-f", other] })
      .output();
    const fakeKnown = path.join(ws.root, "known_hosts");
    fs.writeFileSync(
      fakeKnown,
      `[127.0.0.1]:${info.port} ${fs.readFileSync(other + ".pub", "utf8").trim()}\n`,
    );
    config(ws, base(`<known_hosts>${fakeKnown}</known_hosts>`));
    r = await once(ws);
    assertEquals(r.code, 1);
    assert(/does NOT match|changed|mismatch/i.test(r.stderr), r.stderr.slice(-1500));
    assert(!uploaded());
    // 4. The right key, pinned or from known_hosts: accepted.
    config(ws, base(`<host_key_fingerprint>${info.hostKeyFingerprint}</host_key_fingerprint>`));
    r = await once(ws);
    assertEquals(r.code, 0, r.stderr.slice(-1500));
    assert(uploaded());
    fs.rmSync(path.join(info.root, remote.dir), { recursive: true });
    config(ws, base(`<known_hosts>${info.knownHostsPath}</known_hosts>`));
    r = await once(ws);
    assertEquals(r.code, 0, r.stderr.slice(-1500));
    // 5. Turning the check off is explicit and loud.
    config(ws, base("<insecure_skip_host_key_check>true</insecure_skip_host_key_check>"));
    r = await once(ws);
    assertEquals(r.code, 0);
    assert(/WARN[^\n]*Host key checking is DISABLED/.test(r.stderr), r.stderr.slice(-1500));
  } finally {
    await remote.cleanup();
    ws.cleanup();
  }
});

Deno.test("ftps: certificates are verified by default; a pinned CA works; skipping is loud", async () => {
  const ws = workspace("fc-ftps-");
  const ftp = await startServer("ftp");
  const dir = `fc-tls-${crypto.randomUUID().slice(0, 8)}`;
  const base = (extra: string) =>
    `<server name="dest" transporter="ftp">
      <host>127.0.0.1</host>
      <port>${ftp.port}</port>
      <username>${ftp.username}</username>
      <password>${ftp.password}</password>
      <path>${dir}</path>
      <url>https://cdn.test/</url>
      <tls>explicit</tls>
      ${extra}
    </server>`;
  const uploaded = () => fs.existsSync(path.join(ftp.root, dir, "a.txt"));
  try {
    write(path.join(ws.src, "a.txt"), "a\n");
    config(ws, base(""));
    let r = await once(ws);
    assertEquals(r.code, 1, "a self-signed certificate was accepted by default");
    assert(/certificate|self[- ]signed|verify/i.test(r.stderr), r.stderr.slice(-1500));
    assert(!uploaded());
    config(ws, base(`<ca>${ftp.caPath}</ca>`));
    r = await once(ws);
    assertEquals(r.code, 0, r.stderr.slice(-1500));
    assert(uploaded());
    config(ws, base("<insecure_skip_verify>true</insecure_skip_verify>"));
    r = await once(ws);
    assertEquals(r.code, 0);
    assert(/WARN[^\n]*verification is DISABLED/.test(r.stderr), r.stderr.slice(-1500));
  } finally {
    fs.rmSync(path.join(ftp.root, dir), { recursive: true, force: true });
    ws.cleanup();
  }
});

Deno.test("s3: an https endpoint with a certificate nobody vouched for is refused", async () => {
  if (!hasTransport("s3")) throw new Error("The s3 transport is not registered");
  const ws = workspace("fc-s3tls-");
  const remote = await s3Remote();
  const { cert, key, caFile } = await privateCa(ws.root);
  const proxy = tlsProxy(remote.port, cert, key);
  try {
    write(path.join(ws.src, "a.txt"), "a\n");
    config(
      ws,
      remote.serverXml("dest", { port: proxy.port }).replace(
        "http://127.0.0.1",
        "https://127.0.0.1",
      ),
    );
    let r = await once(ws);
    assertEquals(r.code, 1, "an unverified certificate was accepted");
    assert(
      /certificate|UnknownIssuer|self[- ]signed|verify/i.test(r.stderr),
      r.stderr.slice(-1500),
    );
    // Trusting the private CA the standard way makes it work: verification, not a broken client.
    r = await once(ws, { DENO_CERT: caFile, NODE_EXTRA_CA_CERTS: caFile });
    assertEquals(r.code, 0, r.stderr.slice(-1500));
  } finally {
    proxy.close();
    await remote.cleanup();
    ws.cleanup();
  }
});
