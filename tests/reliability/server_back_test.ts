/**
 * A destination that refuses files and is then fixed, while the daemon keeps
 * watching: what failed because of it is retried promptly, without a
 * restart, a reload or any new change in the source. (A server that is down
 * is covered by `outage_test.ts`: its files wait for it instead of failing.)
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assertEquals } from "../_assert.ts";
import { cli, type Workspace, workspace, write } from "../_harness.ts";
import { rcloneCompare, sftpRemote } from "./_remote.ts";
import { start, until } from "./_util.ts";

function config(ws: Workspace, serverXml: string) {
  fs.writeFileSync(
    ws.config,
    `<config>
  <sources><source name="site" scanPath="${ws.src}" /></sources>
  <servers>${serverXml}</servers>
  <rules>
    <rule for="site" label="all">
      <destinations><destination server="remote" /></destinations>
    </rule>
  </rules>
  <settings>
    <dataDir>${ws.data}</dataDir>
    <settleDelay>20</settleDelay>
    <retryInitialDelay>0.2</retryInitialDelay>
    <retryMaxDelay>2</retryMaxDelay>
    <retryFailAfter>2</retryFailAfter>
    <rescanInterval>0</rescanInterval>
  </settings>
</config>
`,
  );
}

Deno.test("server back: files refused by an unwritable SFTP folder are retried once it is writable again, without a restart", async () => {
  const ws = workspace("fc-back-sftp-");
  const remote = await sftpRemote();
  const folder = path.join(remote.info.root, remote.dir, "sub");
  write(path.join(ws.src, "sub/first.txt"), "first\n");
  config(ws, remote.serverXml("remote"));
  const p = start(["sync", "--config", ws.config]);
  try {
    {
      await until(() => fs.existsSync(path.join(folder, "first.txt")), 30_000, "the first file");
      // The server's folder refuses writes (the SFTP user cannot write there).
      fs.chmodSync(folder, 0o555);
      for (let i = 0; i < 5; i++) write(path.join(ws.src, `sub/f${i}.txt`), `file ${i}\n`);
      await until(
        async () => {
          const s = JSON.parse((await cli(["status", "--config", ws.config, "--json"])).stdout) as {
            failures: { file: string; state: string }[];
          };
          return s.failures.filter((f) => f.state === "failed").length === 5 ? true : undefined;
        },
        60_000,
        "the five files to be marked failed",
      );
      // Fixed on the server; nothing changes in the source.
      fs.chmodSync(folder, 0o755);
      await until(
        async () => (await rcloneCompare(remote, ws.src)) === "" ? true : undefined,
        60_000,
        "the destination to converge once the folder is writable",
        1000,
      );
      const s = JSON.parse((await cli(["status", "--config", ws.config, "--json"])).stdout) as {
        failures: unknown[];
      };
      assertEquals(s.failures, []);
      assertEquals(await p.stop(), 0);
    }
  } finally {
    if (fs.existsSync(folder)) fs.chmodSync(folder, 0o755);
    await p.kill();
    await remote.cleanup();
    ws.cleanup();
  }
});
