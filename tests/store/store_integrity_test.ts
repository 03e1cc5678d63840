import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { openDatabase } from "../../src/store/db.ts";
import { DbFileGuard, StateError, storeTrouble } from "../../src/store/integrity.ts";
import { Store } from "../../src/store/store.ts";

function tmp(): string {
  return fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "fc-integrity-")));
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("did not throw");
}

Deno.test("storeTrouble() tells a full database from a damaged one by SQLite's result code", () => {
  const dir = tmp();
  try {
    const db = new DatabaseSync(path.join(dir, "x.db"));
    db.exec("CREATE TABLE t(v TEXT)");
    db.exec("PRAGMA max_page_count = 3");
    const full = thrown(() => {
      for (let i = 0; i < 100; i++) db.prepare("INSERT INTO t VALUES (?)").run("x".repeat(2000));
    });
    assertEquals(storeTrouble(full), "full", String(full));
    db.close();

    fs.writeFileSync(path.join(dir, "junk.db"), "garbage ".repeat(1000));
    const notADb = thrown(() => new DatabaseSync(path.join(dir, "junk.db")).exec("SELECT 1"));
    assertEquals(storeTrouble(notADb), "damaged", String(notADb));
    assertEquals(storeTrouble(new Error("plain")), undefined);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("openDatabase() refuses a damaged file, and a deleted one that existed, with the fix", () => {
  const dir = tmp();
  try {
    const store = new Store(dir);
    store.tx(() => {
      for (let i = 0; i < 500; i++) {
        store.putFile({
          path: `/s/f${i}`,
          dir: "/s",
          source: "s",
          is_dir: 0,
          size: i,
          mtime_ms: i,
          ctime_ms: i,
          ino: i,
        });
      }
    });
    store.close();
    const file = path.join(dir, "fileconveyor.db");
    const fd = fs.openSync(file, "r+");
    fs.writeSync(fd, new Uint8Array(4096).fill(0x41), 0, 4096, 4096 * 2);
    fs.closeSync(fd);
    const e = thrown(() => openDatabase(dir));
    assert(e instanceof StateError, String(e));
    assert(e.message.includes(`"${file}" is damaged`) && e.message.includes("--rebuild-state"));

    // A rebuild moves the damaged file aside and starts a new state.
    const rebuilt = new Store(dir, { rebuild: true });
    const info = rebuilt.stateInfo();
    assert(info.previous?.startsWith(`${file}.old-`) && fs.existsSync(info.previous!));
    assert(info.rebuiltAt !== null && info.createdAt !== null);
    rebuilt.close();

    for (const ext of ["", "-wal", "-shm"]) fs.rmSync(file + ext, { force: true });
    for (const readOnly of [false, true]) {
      const lost = thrown(() => openDatabase(dir, { readOnly }));
      assert(lost instanceof StateError && /is missing \(it was deleted\)/.test(lost.message));
    }
    // A data directory fileconveyor never used is a first start, not a loss.
    const fresh = tmp();
    assertThrows(() => openDatabase(fresh, { readOnly: true }), Deno.errors.NotFound);
    fs.rmSync(fresh, { recursive: true, force: true });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("DbFileGuard notices the database file deleted or replaced while open", () => {
  const dir = tmp();
  try {
    const file = path.join(dir, "x.db");
    fs.writeFileSync(file, "");
    // Held open, as SQLite holds the database: its inode cannot be reused by a new file.
    const fd = fs.openSync(file, "r");
    const guard = new DbFileGuard(file);
    assertEquals(guard.check(), undefined);
    fs.rmSync(file);
    assertEquals(guard.check(), "was deleted while fileconveyor ran");
    fs.writeFileSync(file, "");
    assertEquals(guard.check(), "was replaced by another file while fileconveyor ran");
    fs.closeSync(fd);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
