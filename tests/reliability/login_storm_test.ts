/**
 * A wrong password must cost a handful of logins per run, not one per file
 * and retry (a storm of failed logins trips fail2ban and locks the user's
 * own address out). A TCP proxy in front of the real servers counts the
 * connections, hence the login attempts; the daemon runs `sync --once` and
 * in daemon mode against ProFTPD and OpenSSH.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { cli, type Workspace, workspace, write } from "../_harness.ts";
import { startServer } from "../_servers.ts";
import { TcpProxy } from "../_proxy.ts";
import { figure, run, start, until } from "./_util.ts";

const FILES = 50;

function config(ws: Workspace, serverXml: string, settings = "") {
  fs.writeFileSync(
    ws.config,
    `<config>
  <sources><source name="site" scanPath="${ws.src}" /></sources>
  <servers>
    ${serverXml}
  </servers>
  <rules>
    <rule for="site" label="all">
      <destinations><destination server="remote" /></destinations>
    </rule>
  </rules>
  <settings>
    <dataDir>${ws.data}</dataDir>
    <retryInitialDelay>1</retryInitialDelay>
    <retryMaxDelay>4</retryMaxDelay>
    <retryFailAfter>5</retryFailAfter>
    <timeout>5</timeout>
    <rescanInterval>0</rescanInterval>
    ${settings}
  </settings>
</config>
`,
  );
}

async function ftpXml(port: number): Promise<string> {
  const info = await startServer("ftp");
  return `<server name="remote" transporter="ftp" maxConnections="4">
      <host>127.0.0.1</host>
      <port>${port}</port>
      <username>${info.username}</username>
      <password>not-the-password</password>
      <path>fc-storm</path>
      <url>https://ftp.cdn.test/</url>
    </server>`;
}

async function sftpXml(port: number): Promise<string> {
  const info = await startServer("sftp");
  return `<server name="remote" transporter="sftp" maxConnections="4">
      <host>127.0.0.1</host>
      <port>${port}</port>
      <username>${info.username}</username>
      <password>not-the-password</password>
      <path>fc-storm</path>
      <url>https://sftp.cdn.test/</url>
      <host_key_fingerprint>${info.hostKeyFingerprint}</host_key_fingerprint>
    </server>`;
}

const servers = [
  { name: "ftp", port: async () => (await startServer("ftp")).port, xml: ftpXml },
  { name: "sftp", port: async () => (await startServer("sftp")).port, xml: sftpXml },
];

for (const srv of servers) {
  Deno.test(`a wrong ${srv.name} password pauses the server after one login (--once)`, async () => {
    const ws = workspace(`fc-storm-${srv.name}-`);
    const proxy = TcpProxy.start(await srv.port());
    try {
      for (let i = 0; i < FILES; i++) write(path.join(ws.src, `d${i % 5}`, `f${i}.txt`), `${i}\n`);
      config(ws, await srv.xml(proxy.port));
      const t0 = Date.now();
      const r = await run(["sync", "--once", "--config", ws.config], { timeoutMs: 120_000 });
      const ms = Date.now() - t0;
      figure(`login attempts for ${FILES} files, wrong ${srv.name} password, --once`, {
        logins: proxy.accepted,
        ms,
      });
      assertEquals(r.code, 1, r.stderr);
      assert(proxy.accepted >= 1 && proxy.accepted <= 3, `${proxy.accepted} logins`);
      const log = r.stdout + r.stderr;
      assert(/cannot log in as/.test(log) && /server "remote"/.test(log), log);
      // One error line for the server, not one per file.
      const errors = log.split("\n").filter((l) => /ERROR .*cannot log in as/.test(l));
      assertEquals(errors.length, 1, log);
      assert(/auth error/.test(errors[0]!), errors[0]);
      assert(!log.includes("not-the-password"), "the password was printed");
      const st = await cli(["status", "--config", ws.config, "--json"]);
      const s = JSON.parse(st.stdout) as { servers: { name: string; lastError: string | null }[] };
      const remote = s.servers.find((x) => x.name === "remote");
      assert(/cannot log in as/.test(remote?.lastError ?? ""), st.stdout);
    } finally {
      proxy.close();
      ws.cleanup();
    }
  });
}

Deno.test("a wrong sftp password in daemon mode: logins per server backoff, not per file", async () => {
  const ws = workspace("fc-storm-daemon-");
  const proxy = TcpProxy.start((await startServer("sftp")).port);
  for (let i = 0; i < FILES; i++) write(path.join(ws.src, `f${i}.txt`), `${i}\n`);
  const xml = await sftpXml(proxy.port);
  config(ws, xml);
  const p = start(["sync", "--config", ws.config]);
  try {
    await p.waitFor(/pausing server/, 30_000);
    // retryInitialDelay 1 s doubling to 4 s: over 8 s a per-file retry would
    // have dialed hundreds of times; the server-level backoff dials a few.
    await new Promise((r) => setTimeout(r, 8_000));
    figure("login attempts in 8 s, daemon, wrong sftp password, 50 files", proxy.accepted);
    assert(proxy.accepted >= 1 && proxy.accepted <= 6, `${proxy.accepted} logins`);
    await until(
      async () => {
        const st = await cli(["status", "--config", ws.config, "--json"]);
        const s = JSON.parse(st.stdout) as {
          servers: { name: string; lastError: string | null }[];
        };
        return /authentication failed/.test(
          s.servers.find((x) => x.name === "remote")?.lastError ?? "",
        );
      },
      10_000,
      "status to name the refused login",
    );
  } finally {
    await p.stop();
    proxy.close();
    ws.cleanup();
  }
});
