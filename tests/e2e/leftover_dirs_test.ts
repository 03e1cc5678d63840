/**
 * After a directory is renamed or deleted in the source, the directories it
 * leaves empty on the destination go too (local, FTP, SFTP), while a
 * directory fileconveyor did not empty stays: an empty one made on the
 * server by someone else, and one that still holds someone else's file.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { cli, type Workspace, workspace, write } from "../_harness.ts";
import { startServer } from "../_servers.ts";

function config(ws: Workspace, serverXml: string) {
  fs.writeFileSync(
    ws.config,
    `<config>
  <sources><source name="site" scanPath="${ws.src}" /></sources>
  <servers>${serverXml}</servers>
  <rules>
    <rule for="site" label="all"><destinations><destination server="remote" /></destinations></rule>
  </rules>
  <settings>
    <dataDir>${ws.data}</dataDir>
    <retryInitialDelay>1</retryInitialDelay>
    <timeout>10</timeout>
  </settings>
</config>
`,
  );
}

/** Every directory below `root`, relative, sorted. */
function dirs(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(path.join(root, d), { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const rel = d ? `${d}/${e.name}` : e.name;
      out.push(rel);
      walk(rel);
    }
  };
  walk("");
  return out.sort();
}

async function once(ws: Workspace) {
  const r = await cli(["sync", "--once", "--config", ws.config]);
  assertEquals(r.code, 0, r.stdout + r.stderr);
}

const cases: { name: string; setup(ws: Workspace): Promise<{ xml: string; root: string }> }[] = [
  {
    name: "local",
    setup: (ws) =>
      Promise.resolve({
        root: ws.dst,
        xml: `<server name="remote" transporter="symlink_or_copy">
        <location>${ws.dst}</location><url>http://cdn.test/</url><copy>true</copy></server>`,
      }),
  },
  {
    name: "ftp",
    async setup() {
      const info = await startServer("ftp");
      const dir = `fc-leftover-${crypto.randomUUID().slice(0, 8)}`;
      return {
        root: path.join(info.root, dir),
        xml: `<server name="remote" transporter="ftp">
        <host>127.0.0.1</host><port>${info.port}</port><username>${info.username}</username>
        <password>${info.password}</password><path>${dir}</path><url>http://cdn.test/</url></server>`,
      };
    },
  },
  {
    name: "sftp",
    async setup() {
      const info = await startServer("sftp");
      const dir = `fc-leftover-${crypto.randomUUID().slice(0, 8)}`;
      return {
        root: path.join(info.root, dir),
        xml: `<server name="remote" transporter="sftp">
        <host>127.0.0.1</host><port>${info.port}</port><username>${info.username}</username>
        <password>${info.password}</password><path>${dir}</path><url>http://cdn.test/</url>
        <host_key_fingerprint>${info.hostKeyFingerprint}</host_key_fingerprint></server>`,
      };
    },
  },
];

for (const c of cases) {
  Deno.test(`${c.name}: renamed and deleted directories leave no empty directories behind`, async () => {
    const ws = workspace(`fc-leftover-${c.name}-`);
    const { xml, root } = await c.setup(ws);
    try {
      config(ws, xml);
      write(path.join(ws.src, "old/deep/er/a.css"), "a");
      write(path.join(ws.src, "old/b.css"), "b");
      write(path.join(ws.src, "gone/x/y.js"), "y");
      write(path.join(ws.src, "mixed/ours.txt"), "ours");
      write(path.join(ws.src, "stay/keep.txt"), "keep");
      await once(ws);
      // Someone else's things on the server.
      const owner = fs.statSync(path.join(root, "stay"));
      const theirs = path.join(root, "mixed", "theirs.txt");
      fs.writeFileSync(theirs, "theirs");
      fs.mkdirSync(path.join(root, "stay", "empty-by-user"));
      for (const p of [theirs, path.join(root, "stay", "empty-by-user")]) {
        fs.chownSync(p, owner.uid, owner.gid);
      }
      // A folder removed at the destination behind fileconveyor's back: its parent, emptied by
      // the deletes below, goes all the same.
      fs.rmSync(path.join(root, "gone", "x"), { recursive: true });
      // A directory renamed, one deleted, our file in the mixed one deleted.
      fs.renameSync(path.join(ws.src, "old"), path.join(ws.src, "new"));
      fs.rmSync(path.join(ws.src, "gone"), { recursive: true });
      fs.rmSync(path.join(ws.src, "mixed"), { recursive: true });
      await once(ws);
      assertEquals(dirs(root), [
        "mixed",
        "new",
        "new/deep",
        "new/deep/er",
        "stay",
        "stay/empty-by-user",
      ]);
      assert(fs.existsSync(theirs), "someone else's file was deleted");
      assertEquals(fs.readFileSync(path.join(root, "new/deep/er/a.css"), "utf8"), "a");
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
      ws.cleanup();
    }
  });
}
