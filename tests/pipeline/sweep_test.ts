/**
 * The sweep of a watching daemon (in process, the full rescan off): what
 * the OS watcher never reports reaches the destination within a sweep,
 * without a restart — a change to a symlink's target whose event is
 * dropped on purpose (the daemon's `Deno.watchFs` filtered), and files
 * replaced by symlinks out of the tree or looping, for which Deno passes
 * on no event at all.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Daemon, loadConfig } from "../../mod.ts";
import { configureLog } from "../../src/log.ts";
import { assert, assertEquals } from "../_assert.ts";
import { eventually, localConfig, tree, type Workspace, workspace, write } from "../_harness.ts";

/** Log lines of the daemons in this process. */
const lines: string[] = [];
configureLog({ stderr: false, sink: (line) => void lines.push(line) });

/**
 * Makes every `Deno.watchFs` of this process drop the events on paths that
 * `drop` names: a lost event, on purpose. Returns the undo.
 */
function dropEvents(drop: (p: string) => boolean): () => void {
  const real = Deno.watchFs;
  Deno.watchFs = (paths, options) => {
    const w = real(paths, options);
    const filtered = {
      close: () => w.close(),
      return: (value?: unknown) => w.return?.(value),
      [Symbol.dispose]: () => w[Symbol.dispose](),
      async *[Symbol.asyncIterator]() {
        for await (const e of w) {
          const kept = e.paths.filter((p) => !drop(p));
          if (kept.length > 0 || e.paths.length === 0) yield { ...e, paths: kept };
        }
      },
    };
    return filtered as unknown as Deno.FsWatcher;
  };
  return () => {
    Deno.watchFs = real;
  };
}

/** Runs a watching daemon on `ws` until `body` is done. */
async function watching(ws: Workspace, body: () => Promise<void>): Promise<void> {
  const d = await Daemon.open(loadConfig(ws.config));
  let scanned!: () => void;
  const initial = new Promise<void>((r) => (scanned = r));
  d.on((e) => {
    if (e.type === "initial-scan-done") scanned();
  });
  const run = d.run().finally(() => scanned());
  try {
    await initial;
    await body();
  } finally {
    d.stop();
    await run;
  }
}

const SETTINGS = { rescanInterval: "0", dirSweepInterval: "0.5", settleDelay: "20" };

Deno.test("watch mode: a change to a symlink's target whose event is lost reaches the destination within a sweep", async () => {
  const ws = workspace("fc-sweep-");
  const target = path.join(ws.src, "dir/t.txt");
  const undo = dropEvents((p) => p === target);
  try {
    write(target, "target one\n");
    fs.symlinkSync("dir/t.txt", path.join(ws.src, "link.txt"));
    write(path.join(ws.src, "plain.txt"), "plain\n");
    localConfig(ws, { settings: SETTINGS });
    await watching(ws, async () => {
      const expect = (t: string) => () => {
        const dst = tree(ws.dst);
        const want = { "dir/t.txt": t, "link.txt": t, "plain.txt": "plain\n" };
        return Object.entries(want).filter(([k, v]) => dst.get(k) !== v).map(([k]) =>
          `${k}: ${JSON.stringify(dst.get(k))}`
        ).join("\n");
      };
      await eventually(expect("target one\n"), 20_000, "the first sync");
      lines.length = 0;
      // In place, and its event dropped: only the sweep can see it.
      fs.writeFileSync(target, "target two, in place\n");
      await eventually(expect("target two, in place\n"), 15_000, "the change of the target");
      assert(
        lines.some((l) => /Swept source "site".*2 changes the watcher did not report/.test(l)),
        `the sweep found both names:\n${lines.join("\n")}`,
      );
    });
  } finally {
    undo();
    ws.cleanup();
  }
});

Deno.test("watch mode: files replaced by symlinks out of the tree or looping leave the destination within a sweep", async () => {
  const ws = workspace("fc-sweep-");
  try {
    const outside = path.join(ws.root, "outside.txt");
    write(outside, "outside the tree\n");
    write(path.join(ws.src, "keep.txt"), "stays\n");
    // Many at once: the watcher thread falls behind, and finds each path a link already.
    const N = 60;
    for (let i = 0; i < N; i++) write(path.join(ws.src, `d/f${i}.txt`), `file ${i}\n`);
    // A link inside the tree whose target becomes a link out of the tree.
    fs.symlinkSync("d/f0.txt", path.join(ws.src, "via.txt"));
    localConfig(ws, { settings: SETTINGS });
    await watching(ws, async () => {
      const count = () => tree(ws.dst).size;
      await eventually(() => count() === N + 2 ? "" : `${count()} files`, 20_000, "the first sync");
      for (let i = 0; i < N; i++) {
        // Removed and linked at once: out of the tree, or to itself (ELOOP).
        const p = path.join(ws.src, `d/f${i}.txt`);
        fs.rmSync(p);
        fs.symlinkSync(i % 3 === 1 ? `f${i}.txt` : outside, p);
      }
      const names = () => [...tree(ws.dst).keys()].sort().join(",");
      await eventually(
        () => names() === "keep.txt" ? "" : `destination holds ${names()}`,
        15_000,
        "the replaced files to leave the destination",
      );
      assertEquals(fs.readFileSync(path.join(ws.dst, "keep.txt"), "utf8"), "stays\n");
    });
  } finally {
    ws.cleanup();
  }
});
