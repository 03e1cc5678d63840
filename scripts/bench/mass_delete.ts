/**
 * Scenario d: create, delete (`rm -rf`) and recreate a large directory while
 * fileconveyor watches, to a local folder. Each phase is timed from its
 * first change in the source until the destination holds exactly the
 * source's files (counted, then compared by name). The deletion stays within
 * the delete guard's allowance (the untouched files outnumber it), so all of
 * it must go, in whatever batches the watcher reports it; then a deletion
 * beyond the allowance must be held as a whole, with nothing deleted.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { type Context, startFc } from "./_context.ts";
import { fcConfig } from "./_tools.ts";
import { countFiles, makeTree, rmTree, say, sleep } from "./_util.ts";

/** Scenario d results. */
export interface MassDeleteResult {
  /** Files in the directory created, deleted and recreated. */
  files: number;
  /** Files beside it that stay (so the deletion is within the guard's allowance). */
  kept: number;
  /** From the first write until the destination holds all of them. */
  create: Phase;
  /** From `rm -rf` until the destination holds none of them. */
  delete: Phase;
  /** Deletions the guard held during that deletion (0: it judged the whole, within allowance). */
  heldWithin: number;
  /** From the first write of the recreation until all arrived again. */
  recreate: Phase;
  /** Deleting everything (beyond the allowance): ms until the guard reported holding it. */
  guardMs: number;
  /** Files the destination lost meanwhile (must be 0: held as a whole). */
  deletedBeyond: number;
}

/** Files below `root` by relative path (temp files excluded). */
function names(root: string): Set<string> {
  const out = new Set<string>();
  const walk = (dir: string, rel: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(dir, e.name), r);
      else if (!e.name.startsWith(".")) out.add(r);
    }
  };
  walk(root, "");
  return out;
}

/** A phase's outcome: ms until converged, or how far from it the destination still was. */
export interface Phase {
  /** Wall time until the destination held exactly the source's files; null: it did not. */
  ms: number | null;
  /** Files the destination lacked (or held too many) when the wait ended. */
  off: number;
}

/** Waits until `dst` holds exactly the files of `src`, at most `timeoutMs`. */
async function converged(src: string, dst: string, t0: number, timeoutMs: number): Promise<Phase> {
  let off = 0;
  while (performance.now() - t0 < timeoutMs) {
    const a = names(src);
    const b = names(dst);
    off = Math.abs(a.size - b.size);
    if (off === 0 && [...a].every((x) => b.has(x))) return { ms: performance.now() - t0, off: 0 };
    await sleep(100);
  }
  return { ms: null, off };
}

/** Runs scenario d. */
export async function massDelete(ctx: Context): Promise<MassDeleteResult> {
  const files = ctx.sizes.massDeleteFiles;
  const kept = Math.ceil(files * 1.2);
  const src = path.join(ctx.work, "sd-src");
  const dst = path.join(ctx.work, "sd-dst");
  const data = path.join(ctx.data, "sd");
  for (const d of [src, dst, data]) rmTree(d);
  const big = path.join(src, "big");
  const tree = (root: string, n: number) =>
    makeTree(root, { files: n, dirs: 50, minBytes: 64, maxBytes: 256, seed: 7 });
  tree(path.join(src, "keep"), kept);
  const config = fcConfig(path.join(ctx.work, "sd.xml"), {
    src,
    dest: { kind: "local", dir: dst },
    dataDir: data,
    concurrency: ctx.concurrency,
    settings: { rescanInterval: "0" },
  });
  const log = path.join(ctx.work, "sd-fc.log");
  // A phase that has not converged by then is reported as such (lost watcher events wait
  // for the periodic rescan, which this scenario turns off).
  const limit = 5 * 60_000;
  const fc = await startFc(ctx, config, log, "d fileconveyor watch mode (mass delete)", limit);
  try {
    // Setup, not measured: as long as it takes on a loaded machine.
    const initial = await converged(src, dst, performance.now(), 4 * limit);
    if (initial.ms === null) throw new Error(`the initial sync is ${initial.off} files off`);
    say(`scenario d: creating ${files} files while watching`);
    let t0 = performance.now();
    tree(big, files);
    const create = await converged(src, dst, t0, limit);
    say("scenario d: rm -rf of them");
    const before = (fc.bg.text().match(/Delete guard/g) ?? []).length;
    t0 = performance.now();
    fs.rmSync(big, { recursive: true });
    const deleted = await converged(src, dst, t0, limit);
    const heldWithin = (fc.bg.text().match(/Delete guard/g) ?? []).length - before;
    say("scenario d: recreating them");
    t0 = performance.now();
    tree(big, files);
    const recreate = await converged(src, dst, t0, limit);
    say("scenario d: deleting everything (beyond the guard's allowance)");
    const all = countFiles(dst);
    t0 = performance.now();
    // The contents, not the watched root itself (a missing root never counts as deleted).
    for (const d of ["big", "keep"]) rmTree(path.join(src, d));
    if (!(await fc.bg.waitFor(/Delete guard/, limit))) {
      throw new Error("the delete guard did not hold a deletion of every file");
    }
    const guardMs = performance.now() - t0;
    // Whatever batches the watcher reports it in: nothing may be deleted.
    await sleep(2000);
    const deletedBeyond = all - countFiles(dst);
    return {
      files,
      kept,
      create,
      delete: deleted,
      heldWithin,
      recreate,
      guardMs,
      deletedBeyond,
    };
  } finally {
    await fc.bg.stop();
    for (const d of [src, dst, data]) rmTree(d);
  }
}
