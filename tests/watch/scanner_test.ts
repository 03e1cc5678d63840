/**
 * The scanner against a real tree and a real store: special files are never
 * opened, unreadable parts fail alone and are recorded as problems, names
 * Deno cannot represent are reported, racily clean rows are re-verified.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Source } from "../../src/config/types.ts";
import { logger } from "../../src/log.ts";
import { DELETED, MODIFIED } from "../../src/store/events.ts";
import type { Store } from "../../src/store/store.ts";
import { tempSource } from "./_source.ts";
import { type Batch, type FsChange, NON_UTF8, RACY_MS, Scanner } from "../../src/watch/scanner.ts";
import { assert, assertEquals } from "../_assert.ts";

interface Rig {
  root: string;
  src: string;
  source: Source;
  store: Store;
  scanner: Scanner;
  changes: FsChange[];
  /** Batches handed to the sink (each is a write transaction). */
  readonly batches: number;
  close(): void;
}

/** A scanner whose sink applies batches to the store, as the daemon does. */
function rig(
  options: {
    guardMinFiles?: number;
    guardShare?: number;
    ignoredDirs?: string[];
    exclude?: (src: string) => string[];
  } = {},
): Rig {
  const { root, src, store, source } = tempSource("fc-scanner-");
  const changes: FsChange[] = [];
  const sinks = { n: 0 };
  const scanner = new Scanner({
    store,
    ignoredDirs: options.ignoredDirs ?? [],
    exclude: options.exclude?.(src) ?? [],
    log: logger("scan"),
    guardShare: options.guardShare ?? 0.5,
    guardMinFiles: options.guardMinFiles ?? 10,
    sink: (b: Batch) => {
      sinks.n++;
      store.tx(() => {
        for (const r of b.removes) store.deleteUnder(r);
        for (const p of b.puts) store.putFile(p);
      });
      changes.push(...b.changes);
    },
  });
  return {
    root,
    src,
    source,
    store,
    scanner,
    changes,
    get batches() {
      return sinks.n;
    },
    close() {
      scanner.close();
      store.close();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

function put(p: string, content: string) {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
}

async function sh(script: string, cwd: string) {
  const r = await new Deno.Command("sh", { args: ["-c", script], cwd }).output();
  assertEquals(r.code, 0, new TextDecoder().decode(r.stderr));
}

Deno.test("scanner: FIFOs, sockets and device nodes are skipped without being opened", async () => {
  const r = rig();
  try {
    put(path.join(r.src, "a.txt"), "a");
    await sh("mkfifo pipe && mknod null c 1 3", r.src);
    const sock = Deno.listen({ transport: "unix", path: path.join(r.src, "s.sock") });
    try {
      // A FIFO opened for reading would block this scan (and the test) forever.
      const res = await r.scanner.scanSource(r.source);
      assertEquals(res.files, 1);
      assertEquals(r.changes.map((c) => c.rel), ["a.txt"]);
      assertEquals(res.problems, 0);
      assertEquals(await r.scanner.scanPath(r.source, path.join(r.src, "pipe"), true), 0);
    } finally {
      sock.close();
    }
  } finally {
    r.close();
  }
});

Deno.test("scanner: names that are not UTF-8 are recorded as problems, never dropped silently", async () => {
  const r = rig();
  try {
    put(path.join(r.src, "ok.txt"), "ok");
    await sh(
      "printf x > \"$(printf '\\377\\376.txt')\" && mkdir \"$(printf 'dir\\351')\" && printf y > \"$(printf 'dir\\351')/inner.txt\"",
      r.src,
    );
    const res = await r.scanner.scanSource(r.source);
    assertEquals(r.changes.map((c) => c.rel), ["ok.txt"]);
    const problems = r.store.problems("site");
    assertEquals(problems.length, 2, JSON.stringify(problems));
    for (const p of problems) assertEquals(p.reason, NON_UTF8);
    assert(problems.some((p) => p.path === path.join(r.src, "\uFFFD\uFFFD.txt")));
    assert(problems.some((p) => p.path === path.join(r.src, "dir\uFFFD")));
    assertEquals(res.problems, 2);
    // A watcher event for the name finds it again; once renamed, it is resolved.
    await r.scanner.scanPath(r.source, path.join(r.src, "\uFFFD\uFFFD.txt"));
    assertEquals(r.store.problems("site").length, 2);
    await sh("mv \"$(printf '\\377\\376.txt')\" renamed.txt", r.src);
    await r.scanner.scanPath(r.source, path.join(r.src, "\uFFFD\uFFFD.txt"));
    assertEquals(r.store.problems("site").length, 1);
    await r.scanner.scanSource(r.source);
    assert(r.changes.some((c) => c.rel === "renamed.txt"));
    assertEquals(r.store.problems("site").map((p) => p.path), [path.join(r.src, "dir\uFFFD")]);
  } finally {
    r.close();
  }
});

Deno.test("scanner: a racily clean file (same size, mtime restored, same second) is compared by content", async () => {
  const r = rig();
  try {
    const f = path.join(r.src, "a.txt");
    put(f, "one");
    await r.scanner.scanSource(r.source);
    assertEquals(r.changes.length, 1);
    const before = fs.statSync(f);
    put(f, "two");
    fs.utimesSync(f, before.atime, before.mtime);
    const after = fs.statSync(f);
    r.changes.length = 0;
    await r.scanner.scanSource(r.source);
    assertEquals(r.changes.length, 1, "the rewrite was not noticed");
    // Within the same millisecond the stat is the same and only the content tells; on a loaded
    // machine the ctime may move on, and the stat tells already.
    if (after.ctimeMs === before.ctimeMs) assertEquals(r.changes[0]!.verify, true);
    // Recorded again: once the file is older than its record, nothing more is reported.
    const row = r.store.getFile(f)!;
    r.store.putFile({ ...row, recorded_ms: Math.max(row.mtime_ms, row.ctime_ms) + RACY_MS + 1 });
    r.changes.length = 0;
    await r.scanner.scanSource(r.source);
    assertEquals(r.changes.length, 0);
  } finally {
    r.close();
  }
});

Deno.test("scanner: an untouched file recorded long after its last change is not racy", async () => {
  const r = rig();
  try {
    const f = path.join(r.src, "old.txt");
    put(f, "old");
    const t = new Date(Date.now() - 60_000);
    fs.utimesSync(f, t, t);
    await r.scanner.scanSource(r.source);
    r.changes.length = 0;
    // ctime is now (utimes changed it): wait until the row is safely newer.
    const row = r.store.getFile(f)!;
    r.store.putFile({ ...row, recorded_ms: row.ctime_ms + RACY_MS + 1 });
    await r.scanner.scanSource(r.source);
    assertEquals(r.changes.length, 0);
  } finally {
    r.close();
  }
});

Deno.test("scanner: deletions found from watcher events are gathered and judged together", async () => {
  const r = rig({ guardMinFiles: 3, guardShare: 0.5 });
  try {
    for (let i = 0; i < 4; i++) put(path.join(r.src, `d/f${i}.txt`), `${i}`);
    put(path.join(r.src, "x"), "a file, soon a directory");
    for (let i = 0; i < 6; i++) put(path.join(r.src, `keep/k${i}.txt`), `${i}`);
    await r.scanner.scanSource(r.source);
    r.changes.length = 0;
    // Two files deleted in two watcher batches: nothing is applied before the window ends.
    fs.rmSync(path.join(r.src, "d/f0.txt"));
    await r.scanner.scanPaths(r.source, [{ path: path.join(r.src, "d/f0.txt"), written: false }]);
    fs.rmSync(path.join(r.src, "d/f1.txt"));
    await r.scanner.scanPaths(r.source, [{ path: path.join(r.src, "d/f1.txt"), written: false }]);
    assertEquals(r.changes, []);
    // A file replaced by a directory: its deletion is kept; a deleted file that is back is not deleted.
    fs.rmSync(path.join(r.src, "x"));
    put(path.join(r.src, "x/inner.txt"), "inner");
    await r.scanner.scanPath(r.source, path.join(r.src, "x"));
    put(path.join(r.src, "d/f1.txt"), "back");
    assertEquals(r.scanner.flushDeletes(r.source), 2);
    const deleted = r.changes.filter((c) => c.event === DELETED).map((c) => c.rel).sort();
    assertEquals(deleted, ["d/f0.txt", "x"]);
    assertEquals(r.store.getFile(path.join(r.src, "d/f1.txt"))?.is_dir, 0);
    assertEquals(r.store.getFile(path.join(r.src, "x"))?.is_dir, 1);
    assertEquals(r.store.getFile(path.join(r.src, "d/f0.txt")), undefined);
    // Beyond the allowance (6 of 10 files): all of it is held, nothing applied.
    r.changes.length = 0;
    fs.rmSync(path.join(r.src, "keep"), { recursive: true });
    await r.scanner.scanPath(r.source, path.join(r.src, "keep"));
    assertEquals(r.scanner.flushDeletes(r.source), 0);
    assertEquals(r.changes.filter((c) => c.event === DELETED), []);
    assertEquals(r.store.guardFor("site")?.pending, 6);
    assertEquals(r.store.countFiles("site"), 10);
  } finally {
    r.close();
  }
});

Deno.test("scanner: a walk skips ignored directories, excluded paths and temp names, and writes nothing when nothing changed", async () => {
  const r = rig({ ignoredDirs: [".git"], exclude: (src) => [path.join(src, "app", "data")] });
  try {
    const files = ["top.css", "app/a.js", "app/lib/b.js", "app/data2/kept.txt", "deep/x/y/z.txt"];
    for (const f of files) put(path.join(r.src, f), f);
    for (const f of [".git/config", "app/.git/HEAD", "app/data/state.db", "app/.fctmp-1-x.js"]) {
      put(path.join(r.src, f), f);
    }
    put(path.join(r.src, "css", ".git"), "a file named like an ignored directory is kept");
    // Older than the racy window when recorded: the next scans trust their stat.
    await new Promise((resolve) => setTimeout(resolve, RACY_MS + 200));
    const first = await r.scanner.scanSource(r.source);
    const expected = [...files, "css/.git"].sort();
    assertEquals(r.changes.map((c) => c.rel).sort(), expected);
    assertEquals(first.files, expected.length);
    // Unchanged: no batch, so no transaction at all.
    const before = r.batches;
    r.changes.length = 0;
    const again = await r.scanner.scanSource(r.source);
    assertEquals(again.changes, 0);
    assertEquals(again.files, expected.length);
    assertEquals(r.batches, before);
    // One file rewritten with another size, one deleted: exactly those.
    put(path.join(r.src, "app/lib/b.js"), "longer content");
    fs.rmSync(path.join(r.src, "deep/x/y/z.txt"));
    const third = await r.scanner.scanSource(r.source);
    assertEquals(
      r.changes.map((c) => `${c.event}:${c.rel}`).sort(),
      [`${DELETED}:deep/x/y/z.txt`, `${MODIFIED}:app/lib/b.js`].sort(),
    );
    assertEquals(third.changes, 2);
  } finally {
    r.close();
  }
});

Deno.test("scanner: a full scan reports the time of its listing and of its stored rows", async () => {
  const r = rig();
  try {
    for (let i = 0; i < 20; i++) put(path.join(r.src, `d${i % 4}`, `f${i}.txt`), "x");
    const res = await r.scanner.scanSource(r.source);
    assertEquals(res.files, 20);
    const parts = res.parts!;
    assert(parts.listMs >= 0 && parts.storedMs >= 0, JSON.stringify(parts));
    assert(parts.listMs + parts.storedMs <= res.ms, JSON.stringify({ ...parts, ms: res.ms }));
  } finally {
    r.close();
  }
});
