/**
 * The sweep: when a source is due ({@linkcode sweepDue}, every case), and
 * the sweeping walk against a real tree and store — it finds a changed
 * symlink target, leaves racily clean rows to the full scans and writes
 * nothing to the database when nothing changed.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Source } from "../../src/config/types.ts";
import { logger } from "../../src/log.ts";
import { MODIFIED } from "../../src/store/events.ts";
import type { Store } from "../../src/store/store.ts";
import { tempSource } from "./_source.ts";
import { type Batch, type FsChange, RACY_MS, Scanner } from "../../src/watch/scanner.ts";
import { SWEEP_SHARE, sweepDue, type SweepState, sweepTick } from "../../src/watch/sweep.ts";
import type { WatchMode } from "../../src/watch/watcher.ts";
import { assert, assertEquals } from "../_assert.ts";

const DUE: SweepState = {
  interval: 15_000,
  now: 100_000,
  last: 100_000 - 15_000,
  lastMs: 300,
  mode: "native",
  ready: true,
  storeTrouble: false,
  held: false,
  queued: false,
  busy: false,
};

Deno.test("sweepDue() sweeps a quiet, natively watched source once an interval has passed", () => {
  assert(sweepDue(DUE));
  assert(sweepDue({ ...DUE, last: 0 }), "never walked");
  assert(!sweepDue({ ...DUE, last: DUE.now - 14_999 }), "too early");
  assert(!sweepDue({ ...DUE, interval: 0 }), "0 disables");
  assert(!sweepDue({ ...DUE, interval: -1 }));
  assert(!sweepDue({ ...DUE, interval: NaN }));
});

Deno.test("sweepDue() never sweeps a source that is not natively watched, before the first scan, on a store in trouble, with held deletions or a scan queued", () => {
  const modes: WatchMode[] = ["native", "polling", "starting", "restarting", "missing", "stopped"];
  for (const mode of modes) assertEquals(sweepDue({ ...DUE, mode }), mode === "native", mode);
  // Every combination of the blocking flags, also long overdue and busy or not.
  for (let bits = 0; bits < 32; bits++) {
    const s: SweepState = {
      ...DUE,
      ready: (bits & 1) === 0,
      storeTrouble: (bits & 2) !== 0,
      held: (bits & 4) !== 0,
      queued: (bits & 8) !== 0,
      busy: (bits & 16) !== 0,
      last: DUE.now - 10 * DUE.interval,
    };
    const blocked = !s.ready || s.storeTrouble || s.held || s.queued;
    assertEquals(sweepDue(s), !blocked, JSON.stringify(s));
  }
});

Deno.test("sweepDue() waits while the source is busy, for one more interval at most", () => {
  const busy = { ...DUE, busy: true };
  assert(!sweepDue(busy));
  assert(!sweepDue({ ...busy, last: DUE.now - 2 * DUE.interval + 1 }));
  assert(sweepDue({ ...busy, last: DUE.now - 2 * DUE.interval }));
  assert(sweepDue({ ...busy, last: 0 }));
});

Deno.test("sweepDue() spaces sweeps that take longer than a twentieth of the interval", () => {
  const slow = { ...DUE, lastMs: 1000 };
  assertEquals(SWEEP_SHARE, 20);
  assert(!sweepDue({ ...slow, last: DUE.now - 19_999 }));
  assert(sweepDue({ ...slow, last: DUE.now - 20_000 }));
  assert(sweepDue({ ...DUE, lastMs: 750 }), "exactly a twentieth");
  assert(!sweepDue({ ...DUE, lastMs: 751 }));
  // Busy: the wait is bounded by twice the spacing.
  assert(!sweepDue({ ...slow, busy: true, last: DUE.now - 39_999 }));
  assert(sweepDue({ ...slow, busy: true, last: DUE.now - 40_000 }));
});

Deno.test("sweepTick() looks often enough for short intervals, at most every second", () => {
  assertEquals(sweepTick(15_000), 1000);
  assertEquals(sweepTick(1000), 500);
  assertEquals(sweepTick(300), 150);
  assertEquals(sweepTick(10), 50);
});

interface Rig {
  src: string;
  source: Source;
  store: Store;
  scanner: Scanner;
  changes: FsChange[];
  close(): void;
}

function rig(): Rig {
  const { root, src, store, source } = tempSource("fc-sweep-");
  const changes: FsChange[] = [];
  const scanner = new Scanner({
    store,
    ignoredDirs: [],
    exclude: [],
    log: logger("scan"),
    guardShare: 0.5,
    guardMinFiles: 10,
    sink: (b: Batch) => {
      store.tx(() => {
        for (const r of b.removes) store.deleteUnder(r);
        for (const p of b.puts) store.putFile(p);
      });
      changes.push(...b.changes);
    },
  });
  return {
    src,
    source,
    store,
    scanner,
    changes,
    close() {
      scanner.close();
      store.close();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Rows changed on the store's connection so far. */
function writes(store: Store): number {
  return Number((store.db.prepare("SELECT total_changes() AS n").get() as { n: number }).n);
}

/** Sets a file's times well in the past (older than the racy window of its next record). */
function age(p: string) {
  const past = new Date(Date.now() - 60_000);
  fs.utimesSync(p, past, past);
}

Deno.test("a sweep finds a changed symlink target and writes nothing to the store when nothing changed", async () => {
  const r = rig();
  try {
    const target = path.join(r.src, "dir/t.txt");
    fs.mkdirSync(path.dirname(target));
    fs.writeFileSync(target, "one");
    fs.symlinkSync("dir/t.txt", path.join(r.src, "link.txt"));
    fs.writeFileSync(path.join(r.src, "plain.txt"), "plain");
    // A name that is not UTF-8: a problem, recorded once, not again at every sweep.
    const sh = new Deno.Command("sh", {
      args: ["-c", "printf x > \"$(printf 'odd\\377.txt')\""],
      cwd: r.src,
    }).outputSync();
    assertEquals(sh.code, 0);
    for (const p of [target, path.join(r.src, "plain.txt")]) age(p);
    const first = await r.scanner.scanSource(r.source);
    assertEquals(first.changes, 3);
    assertEquals(first.problems, 1);
    const before = writes(r.store);
    for (let i = 0; i < 3; i++) {
      const s = await r.scanner.scanSource(r.source, { sweep: true });
      assertEquals(s.changes, 0);
    }
    assertEquals(writes(r.store), before, "a sweep of an unchanged tree writes nothing");
    r.changes.length = 0;
    // The target rewritten in place: the link publishes its content, so both changed.
    fs.writeFileSync(target, "two, longer");
    const s = await r.scanner.scanSource(r.source, { sweep: true });
    assertEquals(s.changes, 2);
    assertEquals(r.changes.map((c) => [c.event, c.rel]).sort(), [
      [MODIFIED, "dir/t.txt"],
      [MODIFIED, "link.txt"],
    ]);
    assert(writes(r.store) > before);
  } finally {
    r.close();
  }
});

Deno.test("a sweep leaves racily clean rows to the full scan: no content compared, nothing written", async () => {
  const r = rig();
  try {
    const p = path.join(r.src, "racy.txt");
    fs.writeFileSync(p, "same size");
    await r.scanner.scanSource(r.source);
    // Recorded within RACY_MS of its mtime: racy until recorded again.
    const before = writes(r.store);
    r.changes.length = 0;
    assertEquals((await r.scanner.scanSource(r.source, { sweep: true })).changes, 0);
    assertEquals(writes(r.store), before);
    // A full scan compares it (verify) and records it again.
    await new Promise((ok) => setTimeout(ok, 10));
    assert(RACY_MS > 0);
    assertEquals((await r.scanner.scanSource(r.source)).changes, 1);
    assertEquals(r.changes.map((c) => c.verify), [true]);
  } finally {
    r.close();
  }
});

Deno.test("a sweep ends at its next pause once its signal is aborted (the daemon stops)", async () => {
  const r = rig();
  try {
    for (let i = 0; i < 2500; i++) fs.writeFileSync(path.join(r.src, `f${i}.txt`), "x");
    await r.scanner.scanSource(r.source);
    const stop = new AbortController();
    stop.abort(new Error("stopping"));
    let thrown: unknown;
    try {
      await r.scanner.scanSource(r.source, { sweep: true, signal: stop.signal });
    } catch (e) {
      thrown = e;
    }
    assertEquals((thrown as Error)?.message, "stopping");
    // Without the signal the same walk ends normally.
    assertEquals((await r.scanner.scanSource(r.source, { sweep: true })).files, 2500);
  } finally {
    r.close();
  }
});

Deno.test("a sweep that met a deletion under way drops the deletions it saw, keeps type changes, and leaves gathered ones alone", async () => {
  const r = rig();
  try {
    for (const d of ["gone", "keep"]) {
      fs.mkdirSync(path.join(r.src, d));
      for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(r.src, d, `f${i}.txt`), "x");
    }
    fs.writeFileSync(path.join(r.src, "swap"), "a file, then a folder");
    await r.scanner.scanSource(r.source);
    const known = r.store.countFiles("site");
    // Half of "gone" removed (an rm -rf half done: within the guard's allowance alone),
    // and "swap" replaced by a folder.
    for (let i = 0; i < 10; i++) fs.rmSync(path.join(r.src, "gone", `f${i}.txt`));
    fs.rmSync(path.join(r.src, "swap"));
    fs.mkdirSync(path.join(r.src, "swap"));
    fs.writeFileSync(path.join(r.src, "swap/in.txt"), "inside");
    // One deletion reported by the watcher, gathered for the guard's judgment.
    const reported = path.join(r.src, "keep/f0.txt");
    fs.rmSync(reported);
    await r.scanner.scanPaths(r.source, [{ path: reported, written: false }]);
    assert(r.scanner.busy(r.source), "the reported deletion is gathered");
    r.changes.length = 0;
    let asked = 0;
    const s = await r.scanner.scanSource(r.source, {
      sweep: true,
      mayDelete: () => {
        asked++;
        return Promise.resolve(false);
      },
    });
    assertEquals(asked, 1);
    // The ten files seen gone and the reported one (still gathered) are dropped unjudged.
    assertEquals(s.deferred, 11);
    const events = r.changes.map((c) => [c.event, c.rel]).sort();
    assertEquals(events.filter(([, rel]) => String(rel).startsWith("gone/")), []);
    // The file replaced by a folder lost its row at once: its deletion is not dropped.
    assert(events.some(([e, rel]) => e !== MODIFIED && rel === "swap"), JSON.stringify(events));
    assert(events.some(([e, rel]) => e !== undefined && rel === "swap/in.txt"));
    assertEquals(r.store.countFiles("site"), known - 1 + 1, "rows of the dropped deletions stay");
    // The gathered deletion waits for its own judgment, not dropped by the sweep.
    assert(r.scanner.busy(r.source));
    assertEquals(r.scanner.flushDeletes(r.source), 1);
    assert(!r.scanner.busy(r.source));
    // The same walk when the source stayed quiet: the deletions are judged (and applied).
    r.changes.length = 0;
    const again = await r.scanner.scanSource(r.source, {
      sweep: true,
      mayDelete: () => Promise.resolve(true),
    });
    assertEquals(again.deferred, undefined);
    assertEquals(r.changes.filter((c) => c.rel.startsWith("gone/")).length, 10);
    assertEquals(r.store.countFiles("site"), known - 11);
    // Without deletions the question is not asked (a sweep of a quiet tree waits for nothing).
    await r.scanner.scanSource(r.source, {
      sweep: true,
      mayDelete: () => {
        asked++;
        return Promise.resolve(false);
      },
    });
    assertEquals(asked, 1);
  } finally {
    r.close();
  }
});
