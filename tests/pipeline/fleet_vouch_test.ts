/**
 * When a fleet node takes another node's fingerprint of a file on a shared
 * folder without reading the file (`vouchedMd5`), and what its mirror keeps
 * in memory for that (`FleetLocal.mirroredStat`).
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fingerprint, statId, vouchedMd5 } from "../../src/pipeline/fleet_keys.ts";
import { observe } from "../../src/pipeline/observe.ts";
import type { Fingerprint } from "../../src/pipeline/plan.ts";
import type { Source } from "../../src/config/types.ts";
import { FleetLocal, RECENT_RECORDS_MAX } from "../../src/store/fleet_local.ts";
import type { RecordChange, SharedKey, SharedRecord } from "../../src/store/shared/types.ts";
import { Store } from "../../src/store/store.ts";
import { RACY_MS } from "../../src/watch/_stat.ts";
import { assert, assertEquals } from "../_assert.ts";
import { withTempStore } from "../_store.ts";

const MD5 = "0123456789abcdef0123456789abcdef";
const STAT: Fingerprint = {
  size: 120,
  mtimeMs: 1_700_000_000_123.5,
  ctimeMs: 1_700_000_000_000,
  ino: 77,
};

/** The record another node publishes after uploading a file with `stat`, at `at`. */
function published(stat: Fingerprint, md5: string, at: number) {
  return {
    fingerprint: fingerprint(stat.size, stat.mtimeMs, md5),
    source_stat: statId(stat),
    synced_at: at,
  };
}

Deno.test("vouchedMd5: the same stat, a scan, a record not racy: the MD5 without a read", () => {
  const rec = published(STAT, MD5, STAT.mtimeMs + RACY_MS + 1);
  assertEquals(vouchedMd5(rec, STAT, 0), MD5);
});

Deno.test("vouchedMd5: any other stat, a watcher's write, a racy or older record: read the file", () => {
  const at = STAT.mtimeMs + RACY_MS + 1;
  const rec = published(STAT, MD5, at);
  // Another inode, change time, size or mtime (another mount, a rewrite, a copy).
  for (
    const other of [
      { ...STAT, ino: 78 },
      { ...STAT, ctimeMs: STAT.ctimeMs + 1000 },
      { ...STAT, size: 121 },
      { ...STAT, mtimeMs: STAT.mtimeMs + 0.5 },
    ]
  ) assertEquals(vouchedMd5(rec, other, 0), undefined);
  // A watcher saw a write: a single node compares content then too.
  assertEquals(vouchedMd5(rec, STAT, 1), undefined);
  assertEquals(vouchedMd5(rec, STAT, 2), undefined);
  // Racy: the mtime, or the change time, not safely older than the record.
  assertEquals(vouchedMd5(published(STAT, MD5, STAT.mtimeMs + RACY_MS), STAT, 0), undefined);
  const lateChange = { ...STAT, ctimeMs: STAT.mtimeMs + 1000 };
  assertEquals(vouchedMd5(published(lateChange, MD5, at), lateChange, 0), undefined);
  // Published by a node that did not say which stat it hashed.
  assertEquals(vouchedMd5({ ...rec, source_stat: "" }, STAT, 0), undefined);
  // A fingerprint that is not of this size and mtime, or holds no MD5.
  assertEquals(vouchedMd5({ ...rec, fingerprint: `120:1:${MD5}` }, STAT, 0), undefined);
  assertEquals(vouchedMd5({ ...rec, fingerprint: "120:1700000000123:x" }, STAT, 0), undefined);
});

Deno.test("vouchedMd5: a file rewritten with the same size in the same millisecond is read again", () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "fc-vouch-"));
  const source = { name: "src", scanPath: root } as Source;
  try {
    const file = path.join(root, "a.txt");
    fs.writeFileSync(file, "version one");
    const before = observe(file, source).stat!;
    // The uploading node hashed this content and recorded it now.
    const md5 = createHash("md5").update("version one").digest("hex");
    const rec = published(before, md5, Date.now());
    // Rewritten with the same size, its mtime put back: the stat may not tell.
    fs.writeFileSync(file, "version two");
    const t = new Date(before.mtimeMs);
    fs.utimesSync(file, t, t);
    const after = observe(file, source).stat!;
    assertEquals([after.size, Math.trunc(after.mtimeMs)], [
      before.size,
      Math.trunc(before.mtimeMs),
    ]);
    assertEquals(vouchedMd5(rec, after, 0), undefined);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

function key(i: number): SharedKey {
  return { input_file: `/shared/f${i}.bin`, server: "cdn", dest: "" };
}

function change(seq: number, k: SharedKey, stat?: string): RecordChange {
  if (stat === undefined) return { seq, key: k };
  const record: SharedRecord = {
    ...k,
    transported_file_basename: path.basename(k.input_file),
    url: `https://cdn.example${k.input_file}`,
    remote_path: k.input_file.slice(1),
    fingerprint: `120:1700000000123:${MD5}`,
    node: "other",
    synced_at: 1_700_000_009_000,
    source_stat: stat,
  };
  return { seq, key: k, record };
}

Deno.test("FleetLocal.mirroredStat: what the feed brought, as the mirror holds it, forgetting removals", () =>
  withTempStore("fc-vouch-local-", (store) => {
    const local = new FleetLocal(store, "here");
    assertEquals(local.mirroredStat(key(1)), undefined);
    local.applyChanges([change(1, key(1), "s1"), change(2, key(2), "s2")], 2);
    assertEquals(local.mirroredStat(key(1)), {
      fingerprint: `120:1700000000123:${MD5}`,
      source_stat: "s1",
      synced_at: 1_700_000_009_000,
    });
    const row = store.db.prepare(
      "SELECT source_stat FROM fleet_records WHERE input_file = ?",
    ).get(key(2).input_file) as { source_stat: string };
    assertEquals(row.source_stat, "s2");
    // A newer record replaces the older; a removal forgets it.
    local.applyChanges([change(3, key(1), "s1b"), change(4, key(2))], 4);
    assertEquals(local.mirroredStat(key(1))?.source_stat, "s1b");
    assertEquals(local.mirroredStat(key(2)), undefined);
    // A copy of the whole record starts over: memory forgets what may be older.
    local.beginRebuild();
    assertEquals(local.mirroredStat(key(1)), undefined);
    local.rebuildPage([change(5, key(3), "s3").record!]);
    local.finishRebuild(5);
    const copied = store.db.prepare(
      "SELECT source_stat FROM fleet_records WHERE input_file = ?",
    ).get(key(3).input_file) as { source_stat: string };
    assertEquals(copied.source_stat, "s3");
  }));

Deno.test("FleetLocal.mirroredStat: keeps the most recent records only", () =>
  withTempStore("fc-vouch-local-", (store) => {
    const local = new FleetLocal(store, "here");
    const n = RECENT_RECORDS_MAX + 10;
    local.applyChanges(Array.from({ length: n }, (_, i) => change(i + 1, key(i), `s${i}`)), n);
    assertEquals(local.mirroredStat(key(9)), undefined);
    assertEquals(local.mirroredStat(key(10))?.source_stat, "s10");
    assertEquals(local.mirroredStat(key(n - 1))?.source_stat, `s${n - 1}`);
  }));

Deno.test("FleetLocal: a mirror made before records carried the source's stat gains the column", () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "fc-vouch-local-"));
  const data = path.join(root, "data");
  let store = new Store(data);
  try {
    store.db.exec(`CREATE TABLE fleet_records(
      input_file TEXT NOT NULL, server TEXT NOT NULL, dest TEXT NOT NULL,
      transported_file_basename TEXT NOT NULL, url TEXT NOT NULL, remote_path TEXT NOT NULL,
      fingerprint TEXT NOT NULL, node TEXT NOT NULL, synced_at INTEGER NOT NULL,
      PRIMARY KEY(input_file, server, dest)
    ) WITHOUT ROWID;
    INSERT INTO fleet_records VALUES ('/shared/old', 'cdn', '', 'old', 'u', 'old', 'fp', 'n', 1);`);
    store.close();
    store = new Store(data);
    const local = new FleetLocal(store, "here");
    local.applyChanges([change(1, key(1), "s1")], 1);
    const rows = store.db.prepare(
      "SELECT input_file, source_stat FROM fleet_records ORDER BY input_file",
    ).all() as { input_file: string; source_stat: string }[];
    assertEquals(rows.map((r) => [r.input_file, r.source_stat]), [
      ["/shared/f1.bin", "s1"],
      ["/shared/old", ""],
    ]);
    assert(local.mirrored() === 2);
  } finally {
    store.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});
