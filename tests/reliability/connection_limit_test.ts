/**
 * A server that allows fewer connections than `maxConnections` (pure-ftpd
 * started with `-c 2` answers a third session with `421 2 users (the
 * maximum) are already logged in, sorry`): the run uses what the server
 * allows, completes, and says once which setting to lower.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { tree, workspace, write } from "../_harness.ts";
import { startServer } from "../_servers.ts";
import { figure, run } from "./_util.ts";

Deno.test("ftp: a server limit below maxConnections shrinks the pool with one warning", async () => {
  const info = await startServer("pureftpd");
  const ws = workspace("fc-limit-");
  const dir = `fc-limit-${crypto.randomUUID().slice(0, 8)}`;
  try {
    for (let i = 0; i < 60; i++) write(path.join(ws.src, `d${i % 4}`, `f${i}.txt`), `file ${i}\n`);
    fs.writeFileSync(
      ws.config,
      `<config>
  <sources><source name="site" scanPath="${ws.src}" /></sources>
  <servers>
    <server name="limited" transporter="ftp" maxConnections="6">
      <host>127.0.0.1</host>
      <port>${info.port}</port>
      <username>${info.username}</username>
      <password>${info.password}</password>
      <path>${dir}</path>
      <url>https://ftp.cdn.test/</url>
    </server>
  </servers>
  <rules>
    <rule for="site" label="all">
      <destinations><destination server="limited" /></destinations>
    </rule>
  </rules>
  <settings>
    <dataDir>${ws.data}</dataDir>
    <retryInitialDelay>1</retryInitialDelay>
    <timeout>10</timeout>
  </settings>
</config>
`,
    );
    const t0 = Date.now();
    const r = await run(["sync", "--once", "--config", ws.config], { timeoutMs: 180_000 });
    const ms = Date.now() - t0;
    figure("sync --once, 60 files, maxConnections 6 against a 2-session pure-ftpd (ms)", ms);
    const log = r.stdout + r.stderr;
    assertEquals(r.code, 0, log.slice(-3000));
    const warnings = log.split("\n").filter((l) => /refused more than/.test(l));
    assertEquals(warnings.length, 1, log.slice(-3000));
    assert(/maxConnections="2"/.test(warnings[0]!), warnings[0]);
    assert(/the maximum/.test(warnings[0]!), warnings[0]);
    assert(!log.includes(info.password), "the password was printed");
    // No file failed or waited for a retry.
    assert(!/retry \d+ in|marked as failed/.test(log), log.slice(-3000));
    assertEquals(tree(path.join(info.root, dir)), tree(ws.src));
  } finally {
    fs.rmSync(path.join(info.root, dir), { recursive: true, force: true });
    ws.cleanup();
  }
});
