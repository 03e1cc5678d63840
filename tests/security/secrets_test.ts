/**
 * Secrets — passwords, keys, tokens, whether written in the file, given by
 * `${env:NAME}` or read with `${file:PATH}` — never appear in any output of
 * a run with wrong credentials: validate, sync (--once and the daemon, text
 * and JSON logs, debug logging), the log file, status (text, JSON, the HTTP
 * status page, /metrics, /api/status), verify, url, and the database.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { sleep, workspace, write } from "../_harness.ts";
import { hasTransport, s3Remote, sftpRemote } from "../reliability/_remote.ts";
import { run, start, until } from "../reliability/_util.ts";
import { startServer } from "../_servers.ts";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("secrets never appear in logs, status, validate output, error messages or the database", async () => {
  const ws = workspace("fc-secrets-");
  const sftp = await sftpRemote();
  const ftp = await startServer("ftp");
  const s3 = hasTransport("s3") ? await s3Remote() : undefined;
  // Wrong credentials everywhere, each given a different way; all distinctive.
  const secrets = {
    sftpEnv: "Sftp-Env-Secret-7c1f9e2a",
    sftpPassphrase: "Passphrase-Inline-3b8d0c44",
    ftpFile: "Ftp-File-Secret-e41a77d2",
    s3Inline: "S3-Inline-Secret-0a9b8c7d6e5f",
    s3Token: "S3-Session-Token-52c3d4e5",
  };
  fs.writeFileSync(path.join(ws.root, "ftp-password.txt"), secrets.ftpFile + "\n");
  const env = { FC_TEST_SFTP_PASSWORD: secrets.sftpEnv, FILECONVEYOR_DEBUG: "*" };
  const port = freePort();
  write(path.join(ws.src, "a.txt"), "a\n");
  write(path.join(ws.src, "b/c.css"), "c{}\n");
  fs.writeFileSync(
    ws.config,
    `<config>
  <sources><source name="site" scanPath="${ws.src}" /></sources>
  <servers>
    <server name="sftp" transporter="sftp">
      <host>127.0.0.1</host>
      <port>${sftp.info.port}</port>
      <username>${sftp.info.username}</username>
      <password>\${env:FC_TEST_SFTP_PASSWORD}</password>
      <path>${sftp.dir}</path>
      <url>https://cdn.test/</url>
      <host_key_fingerprint>${sftp.info.hostKeyFingerprint}</host_key_fingerprint>
    </server>
    <server name="sftpkey" transporter="sftp">
      <host>127.0.0.1</host>
      <port>${sftp.info.port}</port>
      <username>${sftp.info.username}</username>
      <key>${sftp.info.keyPath}</key>
      <passphrase>${secrets.sftpPassphrase}</passphrase>
      <path>${sftp.dir}</path>
      <url>https://cdn.test/</url>
      <host_key_fingerprint>${sftp.info.hostKeyFingerprint}</host_key_fingerprint>
    </server>
    <server name="ftp" transporter="ftp">
      <host>127.0.0.1</host>
      <port>${ftp.port}</port>
      <username>${ftp.username}</username>
      <password>\${file:ftp-password.txt}</password>
      <url>https://cdn.test/</url>
    </server>
    ${
      s3
        ? `<server name="s3" transporter="s3">
      <access_key_id>${s3.info.accessKeyId}</access_key_id>
      <secret_access_key>${secrets.s3Inline}</secret_access_key>
      <session_token>${secrets.s3Token}</session_token>
      <bucket_name>${s3.bucket}</bucket_name>
      <endpoint>${s3.info.s3Endpoint}</endpoint>
      <force_path_style>true</force_path_style>
      <checksum>when_required</checksum>
      <create_bucket>true</create_bucket>
    </server>`
        : ""
    }
  </servers>
  <rules>
    <rule for="site" label="all">
      <destinations>
        <destination server="sftp" />
        <destination server="sftpkey" path="k" />
        <destination server="ftp" />
        ${s3 ? '<destination server="s3" />' : ""}
      </destinations>
    </rule>
  </rules>
  <settings>
    <dataDir>${ws.data}</dataDir>
    <logFile>${path.join(ws.root, "fileconveyor.log")}</logFile>
    <retryInitialDelay>0.2</retryInitialDelay>
    <retryFailAfter>2</retryFailAfter>
    <timeout>5</timeout>
  </settings>
</config>
`,
  );
  const outputs: { what: string; text: string }[] = [];
  const record = (what: string, r: { stdout: string; stderr: string }) =>
    outputs.push({ what, text: r.stdout + r.stderr });
  try {
    record("validate", await run(["validate", "--config", ws.config], { env }));
    const once = await run(["sync", "--once", "--config", ws.config], { env, timeoutMs: 120_000 });
    record("sync --once", once);
    assertEquals(once.code, 1, "the wrong credentials must fail the run");
    record(
      "sync --once --log-format json",
      await run(["sync", "--once", "--log-format", "json", "--config", ws.config], {
        env,
        timeoutMs: 120_000,
      }),
    );
    const d = start(["sync", "--config", ws.config, "--http", `127.0.0.1:${port}`], { env });
    try {
      await d.waitFor("Initial scan done");
      await until(
        async () => {
          const r = await run(["status", "--config", ws.config, "--json"], { env });
          return (JSON.parse(r.stdout).failures as unknown[]).length > 0;
        },
        60_000,
        "failures to show",
      );
      for (const p of ["/", "/metrics", "/healthz", "/api/status", "/app.js"]) {
        const res = await fetch(`http://127.0.0.1:${port}${p}`);
        outputs.push({ what: `GET ${p}`, text: await res.text() });
      }
      record("status", await run(["status", "--config", ws.config], { env }));
      record("status --json", await run(["status", "--config", ws.config, "--json"], { env }));
      record(
        "verify",
        await run(["verify", "--config", ws.config, "--json"], { env, timeoutMs: 60_000 }),
      );
      record("url", await run(["url", "--config", ws.config, path.join(ws.src, "a.txt")], { env }));
      record("retry", await run(["retry", "--config", ws.config], { env }));
      await sleep(1000);
    } finally {
      await d.stop();
      outputs.push({ what: "daemon log", text: d.log() });
    }
    outputs.push({
      what: "log file",
      text: fs.readFileSync(path.join(ws.root, "fileconveyor.log"), "latin1"),
    });
    for (const f of fs.readdirSync(ws.data, { recursive: true })) {
      const p = path.join(ws.data, String(f));
      if (fs.statSync(p).isFile()) {
        outputs.push({ what: `data/${f}`, text: fs.readFileSync(p, "latin1") });
      }
    }
    // The outputs really cover the failures (a test that saw nothing proves nothing).
    const all = outputs.map((o) => o.text).join("\n");
    assert(
      /sftp/.test(all) && /authenticat|password|login|denied/i.test(all),
      "no login failure reported",
    );
    const leaks: string[] = [];
    for (const [name, secret] of Object.entries(secrets)) {
      if (name.startsWith("s3") && !s3) continue;
      for (const o of outputs) {
        if (o.text.includes(secret)) leaks.push(`${name} in ${o.what}`);
        // Also halves (a secret split across a line wrap or a truncated message).
        if (o.text.includes(secret.slice(0, 12)) || o.text.includes(secret.slice(-12))) {
          leaks.push(`part of ${name} in ${o.what}`);
        }
      }
    }
    assertEquals([...new Set(leaks)], []);
    assert(outputs.length >= 15, `only ${outputs.length} outputs checked`);
  } finally {
    await sftp.cleanup();
    await s3?.cleanup();
    ws.cleanup();
  }
});
