/**
 * The delete guard against a real store and a real tree: a deletion that a
 * watcher delivers in portions, with pauses, is judged as a whole (all of it
 * held, none applied, once its total crosses the allowance), deletions
 * applied shortly before count toward the next judgment, and a busy source
 * is not judged before it is quiet.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Source } from "../../src/config/types.ts";
import { logger, onLog } from "../../src/log.ts";
import { DELETED } from "../../src/store/events.ts";
import type { Store } from "../../src/store/store.ts";
import { tempSource } from "./_source.ts";
import { fileRow, type FsChange } from "../../src/watch/changes.ts";
import { DeleteGuard, type DeleteGuardOptions } from "../../src/watch/delete_guard.ts";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { sleep } from "../_harness.ts";

const FILES = 20;

interface Rig {
  source: Source;
  store: Store;
  guard: DeleteGuard;
  /** Deletions the guard passed on to be applied. */
  applied: FsChange[];
  files: string[];
  /** Deletes files `from` to `to` (exclusive) and gathers them as one watcher batch. */
  remove(from: number, to: number): void;
  close(): void;
}

/** 20 files known to the store; the guard holds from 5 deletions beyond half of them. */
function rig(options: Partial<DeleteGuardOptions> = {}): Rig {
  const { root, src, store, source } = tempSource("fc-guard-");
  const files: string[] = [];
  for (let i = 0; i < FILES; i++) {
    const p = path.join(src, `f${i}.txt`);
    fs.writeFileSync(p, `${i}`);
    store.putFile(fileRow(source, p, fs.lstatSync(p), false));
    files.push(p);
  }
  const applied: FsChange[] = [];
  const guard = new DeleteGuard({
    store,
    log: logger("scan"),
    share: 0.5,
    minFiles: 5,
    configFile: path.join(root, "fileconveyor.xml"),
    sink: (b) => {
      store.tx(() => {
        for (const r of b.removes) store.deleteUnder(r);
      });
      applied.push(...b.changes);
    },
    ...options,
  });
  return {
    source,
    store,
    guard,
    applied,
    files,
    remove(from, to) {
      const part = files.slice(from, to);
      for (const p of part) fs.rmSync(p);
      guard.gather(
        source,
        part,
        part.map((p) => ({ source, path: p, rel: path.basename(p), event: DELETED })),
      );
    },
    close() {
      guard.close();
      store.close();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

Deno.test("DeleteGuard holds all of a deletion delivered in portions with pauses longer than a second", async () => {
  const r = rig();
  try {
    // 12 of 20 files (beyond half), in three watcher batches 1.3 s apart: a loaded
    // watcher delivers an `rm -rf` like this. Each batch alone is within the allowance.
    r.remove(0, 4);
    await sleep(1300);
    assertEquals(r.applied.length, 0, "the first portion was applied before the rest came");
    r.remove(4, 8);
    await sleep(1300);
    assertEquals(r.applied.length, 0, "the second portion was applied before the rest came");
    r.remove(8, 12);
    await sleep(1300);
    assertEquals(r.applied.length, 0);
    const verdict = r.guard.flush("site");
    assertEquals(verdict, { applied: 0, held: 12, vanished: false });
    assertEquals(r.applied, []);
    assertEquals(r.store.countFiles("site"), FILES);
    assertEquals(r.store.guardFor("site")?.pending, 12);
  } finally {
    r.close();
  }
});

Deno.test("DeleteGuard counts recently applied deletions toward the next judgment", () => {
  const r = rig();
  const lines: string[] = [];
  const stop = onLog((rec) => lines.push(rec.message));
  try {
    // Judged one by one (each portion's window ended): 4 and 4 pass, 4 more cross half.
    r.remove(0, 4);
    assertEquals(r.guard.flush("site"), { applied: 4, held: 0, vanished: false });
    r.remove(4, 8);
    assertEquals(r.guard.flush("site"), { applied: 4, held: 0, vanished: false });
    r.remove(8, 12);
    assertEquals(r.guard.flush("site"), { applied: 0, held: 4, vanished: false });
    assertEquals(r.applied.length, 8);
    assertEquals(r.store.countFiles("site"), FILES - 8);
    assertEquals(r.store.guardFor("site")?.pending, 4);
    const said = lines.find((l) => l.startsWith("Delete guard"));
    assert(said, "the hold was not logged");
    assertIncludes(said, '4 deletions of source "site" are held');
    assertIncludes(said, "12 of its 20 files were deleted");
    assertIncludes(said, "8 of them in the last 60 s, applied before the rest was seen");
    assertIncludes(said, "fileconveyor approve-deletes --config");
    // Approved: applied, and what was applied before no longer counts.
    r.store.approveDeletes("site");
    r.remove(12, 13);
    assertEquals(r.guard.flush("site").applied, 1);
    r.store.clearGuard("site");
    r.remove(13, 17);
    assertEquals(r.guard.flush("site"), { applied: 4, held: 0, vanished: false });
  } finally {
    stop();
    r.close();
  }
});

Deno.test("DeleteGuard does not judge a source while it is busy", async () => {
  let busy = true;
  const r = rig({ window: 100, busy: () => busy });
  try {
    r.remove(0, 4);
    await sleep(500);
    assertEquals(r.applied.length, 0, "judged while more deletions could come");
    busy = false;
    await sleep(500);
    assertEquals(r.applied.length, 4);
    assertEquals(r.store.countFiles("site"), FILES - 4);
  } finally {
    r.close();
  }
});
