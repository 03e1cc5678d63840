/**
 * The directory sweep: changes the OS watcher never reports (a file replaced
 * by a symlink out of the tree or by a looping one: Deno passes on no event
 * for them) are found by a watching daemon within a few sweeps, with the
 * full rescan off.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { DirSweep } from "../../src/watch/dir_sweep.ts";
import { diffTrees, eventually, localConfig, spawn, tree, workspace, write } from "../_harness.ts";
import { assertEquals } from "../_assert.ts";

/**
 * Replaces the file `p` by a symlink to `target`: removed, then linked at
 * once. Deno drops the event of the removal (the path exists again when it
 * looks, resolving out of the tree) and that of the link.
 */
function replaceBySymlink(p: string, target: string) {
  fs.rmSync(p);
  fs.symlinkSync(target, p);
}

Deno.test("a watching daemon finds files replaced by symlinks out of the tree or looping, by the directory sweep", async () => {
  const ws = workspace();
  const outside = path.join(ws.root, "outside.txt");
  write(outside, "outside the tree");
  // Many at once: the watcher thread falls behind, so most removals are looked at too late.
  const N = 60;
  for (let i = 0; i < N; i++) write(path.join(ws.src, `d/f${i}.txt`), `file ${i}`);
  write(path.join(ws.src, "d/keep.txt"), "stays");
  write(path.join(ws.src, "top.txt"), "becomes a link out of the tree too");
  localConfig(ws, {
    settings: { rescanInterval: "0", dirSweepInterval: "0.3", settleDelay: "20" },
  });
  const daemon = spawn(["sync", "--config", ws.config]);
  try {
    await eventually(() => diffTrees(tree(ws.src), tree(ws.dst)), 20_000, "the first sync");
    for (let i = 0; i < N; i++) {
      const p = path.join(ws.src, `d/f${i}.txt`);
      // Out of the tree, or a link to itself (ELOOP).
      replaceBySymlink(p, i % 3 === 0 ? `f${i}.txt` : outside);
    }
    replaceBySymlink(path.join(ws.src, "top.txt"), outside);
    const expected = new Set(["d/keep.txt"]);
    await eventually(
      () => {
        const got = [...tree(ws.dst).keys()].sort();
        return got.join(",") === [...expected].join(",") ? "" : `destination holds ${got}`;
      },
      10_000,
      "the replaced files to leave the destination",
    );
  } finally {
    await daemon.stop();
    ws.cleanup();
  }
});

/** Sets a directory's mtime well in the past (older than the sweep's racy window). */
function settle(...dirs: string[]) {
  const past = new Date(Date.now() - 60_000);
  for (const d of dirs) fs.utimesSync(d, past, past);
}

Deno.test("DirSweep names directories changed since the last sweep, and new ones changed since it began", async () => {
  const ws = workspace();
  try {
    const a = path.join(ws.src, "a");
    const b = path.join(ws.src, "b");
    fs.mkdirSync(a);
    fs.mkdirSync(b);
    settle(ws.src, a, b);
    const sweep = new DirSweep();
    // Tracking began after the directories last changed: nothing to rescan.
    sweep.begin("s", Date.now() + 60_000);
    assertEquals((await sweep.sweep("s", [ws.src, a, b])).changed, []);
    assertEquals((await sweep.sweep("s", [ws.src, a, b])).changed, []);
    write(path.join(a, "new.txt"), "x");
    fs.rmSync(b, { recursive: true });
    fs.mkdirSync(b); // Same name, another inode.
    const r = await sweep.sweep("s", [ws.src, a, b]);
    assertEquals(r.dirs, 3);
    assertEquals(r.changed.sort(), [ws.src, a, b].sort());
    // Changed just now (racy): looked at once more, then no more once settled.
    assertEquals((await sweep.sweep("s", [ws.src, a, b])).changed.sort(), [ws.src, a, b].sort());
    settle(ws.src, a, b);
    assertEquals((await sweep.sweep("s", [ws.src, a, b])).changed.sort(), [ws.src, a, b].sort());
    assertEquals((await sweep.sweep("s", [ws.src, a, b])).changed, []);
    // A file's content edited in place does not change its directory: not the sweep's job.
    fs.writeFileSync(path.join(a, "new.txt"), "y");
    assertEquals((await sweep.sweep("s", [ws.src, a, b])).changed, []);
    // A directory first seen that changed after tracking began is rescanned.
    const c = path.join(ws.src, "c");
    fs.mkdirSync(c);
    const fresh = new DirSweep();
    fresh.begin("s");
    assertEquals((await fresh.sweep("s", [c])).changed, [c]);
    settle(c);
    assertEquals((await fresh.sweep("s", [c])).changed, [c]);
    assertEquals((await fresh.sweep("s", [c])).changed, []);
  } finally {
    ws.cleanup();
  }
});
