/**
 * Links, odd names and same-second rewrites: watch mode, a restart and
 * `--once` agree.
 *
 * - A hard link is another name of the same file: a change made through
 *   either name reaches both at the destination.
 * - A symlink inside the tree is published as its target's content: a
 *   change to the target reaches the link's copy.
 * - A name that is not UTF-8 cannot be represented (Deno decodes it
 *   lossily): it is listed in `status` and `--once` exits 1.
 * - A file rewritten in the second it was synced, same size, mtime restored,
 *   is found after a restart ("racily clean").
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import {
  cli,
  diffTrees,
  eventually,
  localConfig,
  sleep,
  spawn,
  tree,
  workspace,
  write,
} from "../_harness.ts";

Deno.test("hostile tree: changes through hard links and to symlink targets reach the destination in watch mode", async () => {
  const ws = workspace("fc-links-");
  localConfig(ws, { settings: { rescanInterval: "0" } });
  write(path.join(ws.src, "a.txt"), "original a\n");
  fs.linkSync(path.join(ws.src, "a.txt"), path.join(ws.src, "hard.txt"));
  write(path.join(ws.src, "dir/t.txt"), "target one\n");
  fs.symlinkSync("dir/t.txt", path.join(ws.src, "link.txt"));
  const d = spawn(["sync", "--config", ws.config]);
  try {
    await d.waitFor("Initial scan done");
    await eventually(() => diffTrees(tree(ws.src), tree(ws.dst)), 15_000, "initial sync");
    // Through the hard link, in place.
    fs.writeFileSync(path.join(ws.src, "hard.txt"), "changed through the hard link\n");
    // The symlink's target, in place.
    fs.writeFileSync(path.join(ws.src, "dir/t.txt"), "target two, in place\n");
    await eventually(() => diffTrees(tree(ws.src), tree(ws.dst)), 15_000, "changes via links");
    assertEquals(
      fs.readFileSync(path.join(ws.dst, "a.txt"), "utf8"),
      "changed through the hard link\n",
    );
    assertEquals(fs.readFileSync(path.join(ws.dst, "link.txt"), "utf8"), "target two, in place\n");
    // The target replaced by a rename (a new inode).
    write(path.join(ws.root, "t.new"), "target three, renamed over\n");
    fs.renameSync(path.join(ws.root, "t.new"), path.join(ws.src, "dir/t.txt"));
    await eventually(() => diffTrees(tree(ws.src), tree(ws.dst)), 15_000, "a replaced target");
    assertEquals(await d.stop(), 0);
    const once = await cli(["sync", "--once", "--config", ws.config]);
    assertEquals(once.code, 0, once.stderr.slice(-2000));
    assertEquals(diffTrees(tree(ws.src), tree(ws.dst)), "");
  } finally {
    await d.kill();
    ws.cleanup();
  }
});

Deno.test("hostile tree: names that are not UTF-8 are listed in status and fail --once", async () => {
  const ws = workspace("fc-names-");
  localConfig(ws);
  write(path.join(ws.src, "ok.txt"), "ok\n");
  const sh = await new Deno.Command("sh", {
    args: [
      "-c",
      "printf x > \"$(printf '\\377\\376.txt')\" && mkdir \"$(printf 'dir\\351')\" && printf y > \"$(printf 'dir\\351')/inner.txt\"",
    ],
    cwd: ws.src,
  }).output();
  assertEquals(sh.code, 0);
  try {
    const once = await cli(["sync", "--once", "--config", ws.config]);
    assertEquals(once.code, 1, once.stderr.slice(-2000));
    assertIncludes(once.stderr, "not valid UTF-8");
    assertEquals(fs.readFileSync(path.join(ws.dst, "ok.txt"), "utf8"), "ok\n");
    const st = JSON.parse((await cli(["status", "--config", ws.config, "--json"])).stdout) as {
      problems: { path: string; reason: string }[];
    };
    assertEquals(
      st.problems.map((p) => path.relative(ws.src, p.path)).sort(),
      ["dir\uFFFD", "\uFFFD\uFFFD.txt"].sort(),
    );
    const text = (await cli(["status", "--config", ws.config])).stdout;
    assertIncludes(text, "Cannot sync (2)");
  } finally {
    ws.cleanup();
  }
});

Deno.test("hostile tree: a same-second rewrite with the mtime restored is synced after a restart", async () => {
  const ws = workspace("fc-racy-");
  localConfig(ws, { settings: { rescanInterval: "0" } });
  const f = path.join(ws.src, "r.txt");
  let tries = 0;
  for (;;) {
    tries++;
    assert(tries <= 5, "could not create, sync and rewrite within one second");
    fs.rmSync(ws.dst, { recursive: true, force: true });
    fs.mkdirSync(ws.dst);
    fs.rmSync(ws.data, { recursive: true, force: true });
    fs.rmSync(f, { force: true });
    const d = spawn(["sync", "--config", ws.config]);
    await d.waitFor("Initial scan done");
    // Start right after a second boundary: the whole dance must fit in that second.
    await sleep(1000 - Date.now() % 1000 + 5);
    const second = Math.floor(Date.now() / 1000);
    write(f, "first!\n");
    try {
      await eventually(
        () => fs.existsSync(path.join(ws.dst, "r.txt")) ? "" : "not yet",
        900,
        "first sync",
      );
    } catch {
      await d.kill();
      continue;
    }
    // Freeze the daemon: it must not see the rewrite (as if it was down).
    d.child.kill("SIGSTOP");
    const before = fs.statSync(f);
    fs.writeFileSync(f, "second\n");
    fs.utimesSync(f, before.atime, before.mtime);
    const after = fs.statSync(f);
    await d.kill();
    if (
      Math.floor(after.ctimeMs / 1000) !== second || Math.floor(before.ctimeMs / 1000) !== second
    ) {
      continue;
    }
    break;
  }
  try {
    assertEquals(fs.readFileSync(path.join(ws.dst, "r.txt"), "utf8"), "first!\n");
    const once = await cli(["sync", "--once", "--config", ws.config]);
    assertEquals(once.code, 0, once.stderr.slice(-2000));
    assertEquals(fs.readFileSync(path.join(ws.dst, "r.txt"), "utf8"), "second\n");
  } finally {
    ws.cleanup();
  }
});
