/**
 * Decisions on hostile trees, end to end on a local destination: type
 * changes (file ↔ directory), a reused inode with other content, a write
 * that leaves the stat unchanged, and failed files after their fault is
 * fixed.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { MODIFIED } from "../../src/store/events.ts";
import { Store } from "../../src/store/store.ts";
import {
  cli,
  diffTrees,
  eventually,
  localConfig,
  spawn,
  tree,
  workspace,
  write,
} from "../_harness.ts";
import { assert, assertEquals } from "../_assert.ts";
import { NO_DAC, run, start } from "../reliability/_util.ts";
import { sftpRemote } from "../reliability/_remote.ts";
import { startServer } from "../_servers.ts";

function same(ws: { src: string; dst: string }) {
  return () => diffTrees(tree(ws.src), tree(ws.dst));
}

/** Replaces the file `x` by a directory `x/` holding files. */
function fileToDir(src: string) {
  fs.rmSync(path.join(src, "x"));
  write(path.join(src, "x/a.txt"), "a below x");
  write(path.join(src, "x/deep/b.txt"), "b below x");
}

/** Replaces the directory `x/` by a file `x`. */
function dirToFile(src: string) {
  fs.rmSync(path.join(src, "x"), { recursive: true });
  write(path.join(src, "x"), "x is a file again");
}

Deno.test("a file replaced by a directory and back converges with --once, each run a restart", async () => {
  const ws = workspace();
  try {
    write(path.join(ws.src, "x"), "x is a file");
    write(path.join(ws.src, "keep.txt"), "keep");
    localConfig(ws, { settings: { retryInitialDelay: "0.05", retryFailAfter: "2" } });
    const first = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(first.code, 0, first.stderr);
    assertEquals(same(ws)(), "");
    fileToDir(ws.src);
    const second = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(second.code, 0, second.stderr);
    assertEquals(same(ws)(), "", "file → directory");
    assert(fs.statSync(path.join(ws.dst, "x")).isDirectory());
    dirToFile(ws.src);
    const third = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(third.code, 0, third.stderr);
    assertEquals(same(ws)(), "", "directory → file");
    assertEquals(fs.readFileSync(path.join(ws.dst, "x"), "utf8"), "x is a file again");
    const status = JSON.parse((await cli(["status", "--config", ws.config, "--json"])).stdout);
    assertEquals(status.queue.failed, 0);
  } finally {
    ws.cleanup();
  }
});

Deno.test("files replaced by directories converge while their deletes run beside the uploads below", async () => {
  // Each old file's delete job runs in parallel with the uploads into the directory that
  // replaced it: an upload refused while the file was still there, whose conflict check comes
  // after the delete removed the file's record, must try again instead of failing.
  const ws = workspace();
  try {
    const n = 60;
    for (let i = 0; i < n; i++) write(path.join(ws.src, `f${i}`), `file ${i}`);
    localConfig(ws, { settings: { retryInitialDelay: "0.05", retryFailAfter: "1" } });
    const first = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(first.code, 0, first.stderr);
    for (let i = 0; i < n; i++) {
      fs.rmSync(path.join(ws.src, `f${i}`));
      for (const inner of ["a.txt", "b/c.txt", "d.txt"]) {
        write(path.join(ws.src, `f${i}`, inner), `${inner} below f${i}`);
      }
    }
    const second = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(second.code, 0, second.stderr);
    assertEquals(same(ws)(), "");
  } finally {
    ws.cleanup();
  }
});

Deno.test("a file replaced by a directory and back converges in watch mode, without a batch lost", async () => {
  const ws = workspace();
  let d: ReturnType<typeof spawn> | undefined;
  try {
    write(path.join(ws.src, "x"), "x is a file");
    localConfig(ws, {
      settings: { rescanInterval: "0", retryInitialDelay: "0.05", retryMaxDelay: "0.2" },
    });
    d = spawn(["sync", "--config", ws.config]);
    await d.waitFor("Initial scan done");
    await eventually(same(ws), 10_000, "initial sync");
    fileToDir(ws.src);
    await eventually(same(ws), 15_000, "file → directory");
    dirToFile(ws.src);
    // Files created with the swap land in the same watcher batch as the swap.
    write(path.join(ws.src, "after.txt"), "after the swap");
    await eventually(same(ws), 15_000, "directory → file");
    assertEquals(fs.readFileSync(path.join(ws.dst, "x"), "utf8"), "x is a file again");
    assert(!d.log().includes("marked as failed"), d.log());
    assert(!d.log().includes("Scan failed"), d.log());
  } finally {
    await d?.stop();
    ws.cleanup();
  }
});

Deno.test("a renamed file rewritten with its old size and mtime is uploaded, not moved (inode reuse)", async () => {
  const ws = workspace();
  try {
    const old = path.join(ws.src, "old.txt");
    const renamed = path.join(ws.src, "new.txt");
    write(old, "old content!");
    localConfig(ws);
    assertEquals((await cli(["sync", "--config", ws.config, "--once"])).code, 0);
    const st = fs.statSync(old);
    // Same inode (a rename), same size, same mtime; other content.
    fs.renameSync(old, renamed);
    fs.writeFileSync(renamed, "NEW CONTENT!");
    fs.utimesSync(renamed, st.atime, st.mtime);
    assertEquals(fs.statSync(renamed).ino, st.ino);
    const r = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 0, r.stderr);
    assert(!r.stderr.includes("moved"), r.stderr);
    assertEquals(fs.readFileSync(path.join(ws.dst, "new.txt"), "utf8"), "NEW CONTENT!");
    assertEquals(same(ws)(), "");
  } finally {
    ws.cleanup();
  }
});

/** Makes the store hold `file`'s current stat and queues a content comparison for it. */
function verifyJob(data: string, file: string) {
  // What the scanner leaves when the clock is too coarse to show a write: the stored stat
  // equals the new one, and the watcher (or the racy check) asks for a content comparison.
  const now = fs.statSync(file);
  const store = new Store(data);
  try {
    const row = store.getFile(file)!;
    store.putFile({ ...row, ctime_ms: now.ctimeMs, mtime_ms: now.mtimeMs, ino: now.ino });
    const synced = store.syncedFor(file)[0]!;
    store.putSynced({ ...synced, ctime_ms: now.ctimeMs, mtime_ms: now.mtimeMs, ino: now.ino });
    store.enqueue([{
      input_file: file,
      source: "site",
      server: "local",
      dest: "",
      event: MODIFIED,
      force: 1,
    }], Date.now());
  } finally {
    store.close();
  }
}

Deno.test("a written file whose stat looks unchanged is compared by content also when processors run", async () => {
  const ws = workspace();
  try {
    const file = path.join(ws.src, "a b.txt");
    write(file, "first");
    localConfig(ws, {
      ruleBody:
        `<processorChain><processor name="filename.SpacesToUnderscores" /></processorChain>`,
    });
    assertEquals((await cli(["sync", "--config", ws.config, "--once"])).code, 0);
    assertEquals(fs.readFileSync(path.join(ws.dst, "a_b.txt"), "utf8"), "first");
    // Same content: the comparison proves it unchanged; nothing is uploaded.
    verifyJob(ws.data, file);
    const syncedAt = () => {
      const store = new Store(ws.data);
      try {
        return store.syncedFor(file)[0]!.synced_at;
      } finally {
        store.close();
      }
    };
    const before = syncedAt();
    let r = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 0, r.stderr);
    assert(r.stderr.includes("Done: 0 synced, 0 deleted, 0 failed, 1 unchanged"), r.stderr);
    // The comparison confirms the record: it is not racy any more.
    assert(syncedAt() > before, "the record's time was not refreshed");
    // Other content under the same stat: uploaded.
    const st = fs.statSync(file);
    fs.writeFileSync(file, "again");
    fs.utimesSync(file, st.atime, st.mtime);
    verifyJob(ws.data, file);
    r = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(fs.readFileSync(path.join(ws.dst, "a_b.txt"), "utf8"), "again");
  } finally {
    ws.cleanup();
  }
});

Deno.test("files that failed on an unwritable destination are retried by the next start, without retry", async () => {
  const ws = workspace();
  try {
    write(path.join(ws.src, "sub/a.txt"), "a");
    write(path.join(ws.src, "sub/b.txt"), "b");
    write(path.join(ws.src, "top.txt"), "top");
    fs.mkdirSync(path.join(ws.dst, "sub"));
    fs.chmodSync(path.join(ws.dst, "sub"), 0o555);
    localConfig(ws, { settings: { retryInitialDelay: "0.05", retryFailAfter: "2" } });
    // Without CAP_DAC_OVERRIDE, root obeys the directory's mode like anyone else.
    const r = await run(["sync", "--config", ws.config, "--once"], { prefix: NO_DAC });
    assertEquals(r.code, 1, r.stderr);
    let status = JSON.parse((await cli(["status", "--config", ws.config, "--json"])).stdout);
    assertEquals(status.queue.failed, 2);
    assertEquals(fs.readFileSync(path.join(ws.dst, "top.txt"), "utf8"), "top");
    // The fault is fixed; nobody runs `retry`.
    fs.chmodSync(path.join(ws.dst, "sub"), 0o755);
    const again = await run(["sync", "--config", ws.config, "--once"], { prefix: NO_DAC });
    assertEquals(again.code, 0, again.stderr);
    assert(again.stderr.includes("Retrying 2 file(s) that failed before"), again.stderr);
    assertEquals(same(ws)(), "");
    status = JSON.parse((await cli(["status", "--config", ws.config, "--json"])).stdout);
    assertEquals(status.queue.failed, 0);
  } finally {
    fs.chmodSync(path.join(ws.dst, "sub"), 0o755);
    ws.cleanup();
  }
});

Deno.test("files that failed are retried when the configuration is reloaded", async () => {
  const ws = workspace();
  let d: ReturnType<typeof start> | undefined;
  try {
    write(path.join(ws.src, "sub/a.txt"), "a");
    fs.mkdirSync(path.join(ws.dst, "sub"));
    fs.chmodSync(path.join(ws.dst, "sub"), 0o555);
    localConfig(ws, {
      settings: { rescanInterval: "0", retryInitialDelay: "0.05", retryFailAfter: "2" },
    });
    d = start(["sync", "--config", ws.config], { prefix: NO_DAC });
    await d.waitFor("marked as failed");
    fs.chmodSync(path.join(ws.dst, "sub"), 0o755);
    d.child.kill("SIGHUP");
    await d.waitFor("Retrying 1 file(s) that failed before: the configuration was reloaded");
    await eventually(same(ws), 10_000, "after the reload");
  } finally {
    await d?.stop();
    fs.chmodSync(path.join(ws.dst, "sub"), 0o755);
    ws.cleanup();
  }
});

/** The file ↔ directory swap with `--once` against a network destination whose root is local. */
async function swapOnRemote(serverXml: string, dst: string) {
  const ws = workspace();
  try {
    fs.writeFileSync(
      ws.config,
      `<?xml version="1.0"?>
<config>
  <sources><source name="site" scanPath="${ws.src}" /></sources>
  <servers>${serverXml}</servers>
  <rules>
    <rule for="site" label="all"><destinations><destination server="remote" /></destinations></rule>
  </rules>
  <settings><dataDir>${ws.data}</dataDir><retryInitialDelay>0.05</retryInitialDelay>
    <retryFailAfter>2</retryFailAfter></settings>
</config>`,
    );
    const synced = () => diffTrees(tree(ws.src), tree(dst));
    write(path.join(ws.src, "x"), "x is a file");
    write(path.join(ws.src, "keep.txt"), "keep");
    let r = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(synced(), "");
    fileToDir(ws.src);
    r = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(synced(), "", "file → directory");
    dirToFile(ws.src);
    r = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(synced(), "", "directory → file");
    assertEquals(fs.readFileSync(path.join(dst, "x"), "utf8"), "x is a file again");
  } finally {
    ws.cleanup();
  }
}

Deno.test("a file replaced by a directory and back converges on an SFTP destination", async () => {
  const remote = await sftpRemote();
  try {
    await swapOnRemote(remote.serverXml("remote"), path.join(remote.info.root, remote.dir));
  } finally {
    await remote.cleanup();
  }
});

Deno.test("a file replaced by a directory and back converges on an FTP destination", async () => {
  const info = await startServer("ftp");
  const dir = `fc-swap-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await swapOnRemote(
      `<server name="remote" transporter="ftp">
        <host>127.0.0.1</host><port>${info.port}</port>
        <username>${info.username}</username><password>${info.password}</password>
        <path>${dir}</path><url>https://ftp.cdn.test/${dir}/</url>
      </server>`,
      path.join(info.root, dir),
    );
  } finally {
    fs.rmSync(path.join(info.root, dir), { recursive: true, force: true });
  }
});

Deno.test("files that failed with a wrong SFTP password are retried by a start with the right one", async () => {
  const ws = workspace();
  const remote = await sftpRemote();
  try {
    const writeConfig = (password: string) =>
      fs.writeFileSync(
        ws.config,
        `<?xml version="1.0"?>
<config>
  <sources><source name="site" scanPath="${ws.src}" /></sources>
  <servers>${remote.serverXml("sftp").replace(remote.info.password, password)}</servers>
  <rules>
    <rule for="site" label="all"><destinations><destination server="sftp" /></destinations></rule>
  </rules>
  <settings><dataDir>${ws.data}</dataDir><retryInitialDelay>0.05</retryInitialDelay>
    <retryFailAfter>2</retryFailAfter></settings>
</config>`,
      );
    write(path.join(ws.src, "a.txt"), "a");
    write(path.join(ws.src, "d/b.txt"), "b");
    writeConfig("not-the-password");
    const r = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(r.code, 1, r.stderr);
    const status = JSON.parse((await cli(["status", "--config", ws.config, "--json"])).stdout);
    assertEquals(status.queue.failed, 2);
    // The fix: the right password (a secret: it changes no file's remote form).
    writeConfig(remote.info.password);
    const again = await cli(["sync", "--config", ws.config, "--once"]);
    assertEquals(again.code, 0, again.stderr);
    const dst = path.join(remote.info.root, remote.dir);
    assertEquals(diffTrees(tree(ws.src), tree(dst)), "");
  } finally {
    await remote.cleanup();
    ws.cleanup();
  }
});

Deno.test("a rename onto an existing name and a swap of two names converge in watch mode", async () => {
  const ws = workspace();
  let d: ReturnType<typeof spawn> | undefined;
  try {
    write(path.join(ws.src, "a.txt"), "content of a");
    write(path.join(ws.src, "b.txt"), "content of b, longer");
    write(path.join(ws.src, "c.txt"), "content of c");
    write(path.join(ws.src, "e.txt"), "content of e");
    localConfig(ws, { settings: { rescanInterval: "0" } });
    d = spawn(["sync", "--config", ws.config]);
    await d.waitFor("Initial scan done");
    await eventually(same(ws), 10_000, "initial sync");
    // Onto an existing name: b.txt now holds a's content, a.txt is gone.
    fs.renameSync(path.join(ws.src, "a.txt"), path.join(ws.src, "b.txt"));
    // A swap through a temporary name.
    fs.renameSync(path.join(ws.src, "c.txt"), path.join(ws.src, "tmp.txt"));
    fs.renameSync(path.join(ws.src, "e.txt"), path.join(ws.src, "c.txt"));
    fs.renameSync(path.join(ws.src, "tmp.txt"), path.join(ws.src, "e.txt"));
    await eventually(same(ws), 15_000, "renames");
    assertEquals(fs.readFileSync(path.join(ws.dst, "b.txt"), "utf8"), "content of a");
    assertEquals(fs.readFileSync(path.join(ws.dst, "c.txt"), "utf8"), "content of e");
  } finally {
    await d?.stop();
    ws.cleanup();
  }
});
