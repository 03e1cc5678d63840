/**
 * A destination folder removed behind the daemon's back (`rm -r dst/a`):
 * the next upload into `a/` creates the folder again (the transports cache
 * the folders they made), and `verify --repair` restores the files that
 * went with it. Local and SFTP destinations (S3 and Swift have no folders).
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assertEquals } from "../_assert.ts";
import { cli, type Workspace, workspace, write } from "../_harness.ts";
import { rcloneCompare, sftpRemote } from "./_remote.ts";
import { diffR, type Proc, start, until } from "./_util.ts";

function config(ws: Workspace, serverXml: string) {
  fs.writeFileSync(
    ws.config,
    `<config>
  <sources><source name="site" scanPath="${ws.src}" /></sources>
  <servers>${serverXml}</servers>
  <rules><rule for="site" label="all"><destinations><destination server="dst" /></destinations></rule></rules>
  <settings>
    <dataDir>${ws.data}</dataDir>
    <settleDelay>20</settleDelay>
    <retryInitialDelay>0.2</retryInitialDelay>
    <retryMaxDelay>1</retryMaxDelay>
  </settings>
</config>
`,
  );
}

interface Target {
  serverXml: string;
  /** The destination's folder on this machine. */
  root: string;
  /** "" when the destination equals the source. */
  diff(): Promise<string>;
  cleanup(): Promise<void>;
}

async function scenario(ws: Workspace, target: Target) {
  for (let i = 0; i < 5; i++) write(path.join(ws.src, "a", `f${i}.txt`), `a ${i}\n`);
  write(path.join(ws.src, "a", "deep", "d.txt"), "deep\n");
  write(path.join(ws.src, "b", "x.txt"), "x\n");
  config(ws, target.serverXml);
  let d: Proc | undefined = start(["sync", "--config", ws.config]);
  try {
    await d.waitFor("Initial scan done");
    await until(async () => (await target.diff()) === "", 30_000, "the first sync", 250);
    fs.rmSync(path.join(target.root, "a"), { recursive: true });
    // New and changed files in the removed folder (and below it) are uploaded.
    write(path.join(ws.src, "a", "new.txt"), "new\n");
    write(path.join(ws.src, "a", "f0.txt"), "a 0, changed\n");
    write(path.join(ws.src, "a", "deep", "d.txt"), "deep, changed\n");
    const at = (p: string) => {
      try {
        return fs.readFileSync(path.join(target.root, p), "utf8");
      } catch {
        return undefined;
      }
    };
    await until(
      () =>
        at("a/new.txt") === "new\n" && at("a/f0.txt") === "a 0, changed\n" &&
        at("a/deep/d.txt") === "deep, changed\n",
      30_000,
      "uploads into the removed folder",
      100,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}\n${d!.log().slice(-3000)}`);
    });
    // The unchanged files that went with the folder: verify finds them, --repair restores them.
    const v = await cli(["verify", "--config", ws.config]);
    assertEquals(v.code, 1, `verify missed the removed files:\n${v.stdout}`);
    const r = await cli(["verify", "--repair", "--config", ws.config]);
    assertEquals(r.code === 0 || r.code === 1, true, r.stderr);
    await until(async () => (await target.diff()) === "", 30_000, "the repair", 250);
    await until(
      async () => (await cli(["verify", "--config", ws.config])).code === 0,
      20_000,
      "verify to agree",
      500,
    );
    assertEquals(await d.stop(), 0, d.log().slice(-2000));
    d = undefined;
  } finally {
    await d?.kill();
  }
}

Deno.test("destination folder removed: local destination recreates it; verify --repair restores", async () => {
  const ws = workspace("fc-dstdir-local-");
  try {
    await scenario(ws, {
      serverXml: `<server name="dst" transporter="symlink_or_copy">
      <location>${ws.dst}</location><url>http://cdn.test/</url><copy>true</copy></server>`,
      root: ws.dst,
      diff: () => diffR(ws.src, ws.dst),
      cleanup: () => Promise.resolve(),
    });
  } finally {
    ws.cleanup();
  }
});

Deno.test("destination folder removed: SFTP destination recreates it; verify --repair restores", async () => {
  const ws = workspace("fc-dstdir-sftp-");
  const remote = await sftpRemote();
  try {
    await scenario(ws, {
      serverXml: remote.serverXml("dst"),
      root: path.join(remote.info.root, remote.dir),
      diff: () => rcloneCompare(remote, ws.src),
      cleanup: () => remote.cleanup(),
    });
  } finally {
    await remote.cleanup();
    ws.cleanup();
  }
});
