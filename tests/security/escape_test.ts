/**
 * Nothing leaves its box: a symlink in a source tree that points outside it
 * (to /etc/passwd, to /etc, to a sibling directory) is never published, on
 * any destination; `..` in a destination path is refused; a crafted file
 * name (backslash traversal, dots) cannot write outside the destination
 * root, locally or remotely.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { cli, type Workspace, workspace, write } from "../_harness.ts";
import {
  hasTransport,
  rcloneList,
  type Remote,
  s3Remote,
  sftpRemote,
} from "../reliability/_remote.ts";
import { run } from "../reliability/_util.ts";

function config(ws: Workspace, remotes: Remote[], opts: { copy?: boolean; dest?: string } = {}) {
  fs.writeFileSync(
    ws.config,
    `<config>
  <sources><source name="site" scanPath="${ws.src}" /></sources>
  <servers>
    <server name="local" transporter="symlink_or_copy">
      <location>${ws.dst}</location>
      <url>http://cdn.test/</url>
      <copy>${opts.copy === false ? "false" : "true"}</copy>
    </server>
    ${remotes.map((r) => r.serverXml(r.kind)).join("\n    ")}
  </servers>
  <rules>
    <rule for="site" label="all">
      <destinations>
        <destination server="local" path="${opts.dest ?? "pub"}" />
        ${
      remotes.map((r) => `<destination server="${r.kind}" path="${opts.dest ?? "pub"}" />`).join(
        "\n        ",
      )
    }
      </destinations>
    </rule>
  </rules>
  <settings>
    <dataDir>${ws.data}</dataDir>
    <retryFailAfter>1</retryFailAfter>
  </settings>
</config>
`,
  );
}

/** A source tree full of ways out. */
function hostile(ws: Workspace) {
  write(path.join(ws.src, "ok/a.txt"), "public\n");
  write(path.join(ws.root, "outside/secret.txt"), "outside the source\n");
  fs.symlinkSync("/etc/passwd", path.join(ws.src, "passwd"));
  fs.symlinkSync("/etc/passwd", path.join(ws.src, "ok/passwd.css"));
  fs.symlinkSync("/etc", path.join(ws.src, "etc"));
  fs.symlinkSync("../outside/secret.txt", path.join(ws.src, "up.txt"));
  fs.symlinkSync("../../outside", path.join(ws.src, "ok/outside-dir"));
  fs.symlinkSync("a.txt", path.join(ws.src, "ok/inside-link.txt"));
  // Crafted names: backslash traversal (a separator on Windows servers), dots.
  write(path.join(ws.src, "..\\..\\evil.txt"), "crafted 1\n");
  write(path.join(ws.src, "ok", "a\\..\\..\\..\\evil2.txt"), "crafted 2\n");
  write(path.join(ws.src, "...txt"), "dots are fine\n");
  write(path.join(ws.src, "..hidden"), "dots are fine\n");
}

function walk(root: string): string[] {
  return fs.existsSync(root) ? fs.readdirSync(root, { recursive: true }).map(String).sort() : [];
}

Deno.test("symlinks out of the source and crafted names never publish outside, locally or remotely", async () => {
  const ws = workspace("fc-escape-");
  const remotes: Remote[] = [];
  if (hasTransport("sftp")) remotes.push(await sftpRemote());
  if (hasTransport("s3")) remotes.push(await s3Remote());
  try {
    hostile(ws);
    config(ws, remotes);
    const before = [...fs.readdirSync(ws.root), "data"].sort();
    const r = await run(["sync", "--once", "--config", ws.config], { timeoutMs: 120_000 });
    assertEquals(r.code, 1, "the crafted names fail (and only they)");
    assertIncludes(r.stderr, "points outside source");
    assertEquals(
      fs.readdirSync(ws.root).sort(),
      before,
      "something was written next to the destination",
    );
    // Local: exactly the safe files.
    const expected = ["...txt", "..hidden", "ok/a.txt", "ok/inside-link.txt"];
    const local = walk(path.join(ws.dst, "pub")).filter((f) =>
      fs.statSync(path.join(ws.dst, "pub", f)).isFile()
    );
    assertEquals(local, expected);
    assertEquals(
      walk(ws.dst).filter((f) => !f.startsWith("pub")),
      [],
      "outside the destination path",
    );
    const passwd = fs.readFileSync("/etc/passwd", "utf8");
    for (const f of local) {
      assert(
        fs.readFileSync(path.join(ws.dst, "pub", f), "utf8") !== passwd,
        `${f} is /etc/passwd`,
      );
    }
    // Remote: the same, and nothing beside the destination path.
    for (const remote of remotes) {
      const all = (await rcloneList(remote)).map((f) => f.Path).sort();
      assertEquals(all, expected.map((f) => `pub/${f}`), `${remote.kind} holds`);
      if (remote.kind === "sftp") {
        const s = remote as Remote & { info: { root: string }; dir: string };
        const home = fs.readdirSync(s.info.root);
        assert(
          !home.some((n) => n.includes("evil")),
          `written into the SFTP home: ${home.join(", ")}`,
        );
        assertEquals(walk(path.join(s.info.root, s.dir)).filter((f) => f.includes("evil")), []);
      }
    }
    // The crafted names failed alone, each with a reason.
    const st = JSON.parse((await cli(["status", "--config", ws.config, "--json"])).stdout) as {
      failures: { file: string; server: string; error: string }[];
    };
    const failedFiles = [...new Set(st.failures.map((f) => path.basename(f.file)))].sort();
    assertEquals(failedFiles, ["..\\..\\evil.txt", "a\\..\\..\\..\\evil2.txt"]);
    for (const f of st.failures) assertIncludes(f.error, "Unsafe remote path");
  } finally {
    for (const r of remotes) await r.cleanup();
    ws.cleanup();
  }
});

Deno.test("in symlink mode the local destination links only to files inside the source", async () => {
  const ws = workspace("fc-escape-link-");
  try {
    hostile(ws);
    config(ws, [], { copy: false });
    await run(["sync", "--once", "--config", ws.config], { timeoutMs: 60_000 });
    for (const f of walk(ws.dst)) {
      const p = path.join(ws.dst, f);
      const st = fs.lstatSync(p);
      if (!st.isSymbolicLink()) continue;
      const target = fs.realpathSync(p);
      assert(target.startsWith(ws.src + path.sep), `${f} links to ${target}`);
    }
    assert(!fs.existsSync(path.join(ws.dst, "pub/passwd")));
    assert(!fs.existsSync(path.join(ws.dst, "pub/etc")));
  } finally {
    ws.cleanup();
  }
});

Deno.test("'..' in a destination path is refused before anything runs", async () => {
  const ws = workspace("fc-escape-dest-");
  try {
    write(path.join(ws.src, "a.txt"), "a\n");
    for (const dest of ["../up", "a/../../up", "..\\up", "/../up", "a/./../../up"]) {
      config(ws, [], { dest });
      for (const cmd of [["validate"], ["sync", "--once"]]) {
        const r = await run([...cmd, "--config", ws.config]);
        assertEquals(r.code, 2, `${dest}: ${cmd[0]} → ${r.code}: ${r.stderr}`);
        assertIncludes(r.stderr, "must not contain");
      }
      assertEquals(walk(ws.dst), [], `${dest}: something was written`);
      assert(!fs.existsSync(path.join(ws.root, "up")));
      assert(!fs.existsSync(ws.data));
    }
  } finally {
    ws.cleanup();
  }
});
