/**
 * WebDb: the published files follow the daemon's records (changes,
 * deletions, rolled-back writes), are in rollback-journal format, and a
 * reader that opened a version keeps a consistent view of it.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Store } from "../../src/store/store.ts";
import { pause, WEB_PAUSE_MAX, WebDb } from "../../src/store/web_db.ts";
import { CREATED } from "../../src/store/events.ts";
import { assertEquals, assertThrows } from "../_assert.ts";
import { syncedRow } from "../_synced_row.ts";

function published(file: string): { input_file: string; url: string; real_file: string }[] {
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    return db.prepare("SELECT input_file, url, real_file FROM synced_files ORDER BY input_file")
      .all() as unknown as { input_file: string; url: string; real_file: string }[];
  } finally {
    db.close();
  }
}

Deno.test("WebDb publishes every key of each record, follows changes, and old readers keep their snapshot", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fc-webdb-"));
  const store = new Store(path.join(dir, "data"));
  const synced = path.join(dir, "web", "synced_files.db");
  const web = new WebDb(store, {
    syncedFilesDb: synced,
    persistentDataDb: path.join(dir, "web", "persistent_data.db"),
    keys: (f) => [f, f + "%alias"],
  });
  try {
    store.tx(() => {
      store.putSynced(syncedRow("/s/a", { url: "u/a1" }));
      store.putSynced(syncedRow("/s/b", { url: "u/b1" }));
    });
    web.refresh(true);
    assertEquals(published(synced).map((r) => `${r.input_file} ${r.url} ${r.real_file}`), [
      "/s/a u/a1 /s/a",
      "/s/a%alias u/a1 /s/a",
      "/s/b u/b1 /s/b",
      "/s/b%alias u/b1 /s/b",
    ]);
    const reader = new DatabaseSync(synced, { readOnly: true });
    try {
      assertEquals(
        (reader.prepare("PRAGMA journal_mode").get() as { journal_mode: string }).journal_mode,
        "delete",
      );
      reader.exec("BEGIN");
      assertEquals(
        (reader.prepare("SELECT COUNT(*) AS n FROM synced_files").get() as { n: number }).n,
        4,
      );
      store.tx(() => {
        store.deleteSynced("/s/a", "cdn", "");
        store.putSynced(syncedRow("/s/b", { url: "u/b2" }));
      });
      // A write that rolls back leaves nothing behind.
      assertThrows(() =>
        store.tx(() => {
          store.putSynced(syncedRow("/s/c", { url: "u/c1" }));
          throw new Error("rolled back");
        })
      );
      web.refresh(true);
      // The open reader still sees the version it opened, whole.
      assertEquals(
        (reader.prepare("SELECT COUNT(*) AS n FROM synced_files").get() as { n: number }).n,
        4,
      );
      reader.exec("COMMIT");
    } finally {
      reader.close();
    }
    assertEquals(published(synced).map((r) => `${r.input_file} ${r.url}`), [
      "/s/b u/b2",
      "/s/b%alias u/b2",
    ]);
    // The queue, for the status report.
    store.enqueue(
      [{ input_file: "/s/d", source: "s", server: "cdn", dest: "", event: CREATED }],
      0,
    );
    web.refresh(true);
    const p = new DatabaseSync(path.join(dir, "web", "persistent_data.db"), { readOnly: true });
    try {
      assertEquals(
        (p.prepare("SELECT COUNT(*) AS n FROM pipeline_queue").get() as { n: number }).n,
        1,
      );
      assertEquals(
        (p.prepare("SELECT COUNT(*) AS n FROM pipeline_list").get() as { n: number }).n,
        0,
      );
    } finally {
      p.close();
    }
    assertEquals(fs.statSync(synced).mode & 0o777, 0o600);
    web.close();
    assertEquals(fs.existsSync(synced + ".stage"), false, "staging copy left behind");
    assertEquals(published(synced).length, 2, "published files stay");
  } finally {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("WebDb built in bulk publishes the same keys as file by file, also after a change to most rows", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fc-webdb-"));
  const store = new Store(path.join(dir, "data"));
  // Files under /t have an alias whatever their name; elsewhere only names with a space do.
  const keys = (f: string) => f.startsWith("/t/") || f.includes(" ") ? [f, f + "%alias"] : [f];
  const names = (i: number) => [`/s/f${i}`, `/s/f ${i}`, `/t/f${i}`];
  const expected = (n: number, url: string) =>
    Array.from({ length: n }, (_, i) => names(i)).flat().flatMap(keys).sort().map((k) =>
      `${k} ${url}${k.replace("%alias", "")}`
    );
  const synced = path.join(dir, "web", "synced_files.db");
  const web = new WebDb(store, {
    syncedFilesDb: synced,
    persistentDataDb: path.join(dir, "web", "persistent_data.db"),
    keys,
    aliased: () => ["/t"],
  });
  const sortedRows = () => published(synced).map((r) => `${r.input_file} ${r.url}`).sort();
  try {
    const n = 600;
    store.tx(() => {
      for (let i = 0; i < n; i++) {
        for (const f of names(i)) store.putSynced(syncedRow(f, { url: "a:" + f }));
      }
    });
    web.refresh(true);
    assertEquals(sortedRows(), expected(n, "a:"));
    // 1,800 changed records out of 1,800: the staging copy is rebuilt, with the same result.
    store.tx(() => {
      for (let i = 0; i < n; i++) {
        for (const f of names(i)) store.putSynced(syncedRow(f, { url: "b:" + f }));
      }
    });
    web.refresh(true);
    assertEquals(sortedRows(), expected(n, "b:"));
    // A few changed: updated row by row.
    store.tx(() => store.putSynced(syncedRow("/t/f1", { url: "c:/t/f1" })));
    web.refresh(true);
    assertEquals(
      sortedRows().filter((r) => r.startsWith("/t/f1 ") || r.startsWith("/t/f1%")),
      ["/t/f1 c:/t/f1", "/t/f1%alias c:/t/f1"],
    );
    web.close();
  } finally {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("pause(): twenty times an update's cost, counted as work (CPU) not as a stall, never beyond the bound", () => {
  assertEquals(pause(10, 10), 200);
  assertEquals(pause(10, 30), 200, "other threads' CPU does not lengthen it past the wall time");
  // Stopped (SIGSTOP) or descheduled for 7 s during a 5 ms update: the next one is not put off.
  assertEquals(pause(7000, 5), 100);
  assertEquals(pause(5000, 5000), WEB_PAUSE_MAX);
  assertEquals(pause(0, 0), 0);
  assertEquals(pause(10, -1), 0, "a clock read backwards is no pause");
});
