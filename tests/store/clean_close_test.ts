import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { takeCleanClose, TRUST_MS } from "../../src/store/clean_close.ts";
import { databaseFile, openState } from "../../src/store/db.ts";
import { StateError } from "../../src/store/integrity.ts";
import { Store } from "../../src/store/store.ts";
import { WEB_PUBLISHED_KEY } from "../../src/store/web_db.ts";

function tmp(): string {
  return fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "fc-clean-close-")));
}

/** A data directory with a few hundred rows, closed cleanly; returns when its last check passed. */
function cleanState(dir: string): number {
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
  const record = JSON.parse(fs.readFileSync(path.join(dir, "state-clean"), "utf8"));
  return record.verifiedAt;
}

Deno.test("openState() trusts a file as a clean close left it, once, and checks it otherwise", async () => {
  const dir = tmp();
  try {
    const verified = cleanState(dir);
    const first = openState(dir);
    first.db.close();
    // Trusted: the check of the earlier open stands.
    assertEquals(first.verifiedAt, verified);
    assert(!fs.existsSync(path.join(dir, "state-clean")), "the record is consumed by the open");
    // No close recorded since (as after a crash): checked now.
    await new Promise((r) => setTimeout(r, 5));
    const second = openState(dir);
    second.db.close();
    assert(second.verifiedAt > verified, `${second.verifiedAt} vs ${verified}`);
    assert(!fs.existsSync(path.join(dir, "state-clean")));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("openState() refuses a file damaged after a clean close, also with its size kept", () => {
  const dir = tmp();
  try {
    cleanState(dir);
    const file = databaseFile(dir);
    const size = fs.statSync(file).size;
    const fd = fs.openSync(file, "r+");
    fs.writeSync(fd, new Uint8Array(4096).fill(0x41), 0, 4096, 4096 * 2);
    fs.closeSync(fd);
    assertEquals(fs.statSync(file).size, size);
    let err: unknown;
    try {
      openState(dir).db.close();
    } catch (e) {
      err = e;
    }
    assert(err instanceof StateError && /is damaged/.test(err.message), String(err));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("takeCleanClose() trusts neither an old check, a pending WAL, nor an unclean close", () => {
  const dir = tmp();
  try {
    const file = databaseFile(dir);
    const verified = cleanState(dir);
    assertEquals(takeCleanClose(dir, file, verified + TRUST_MS + 1), undefined);

    cleanState(dir);
    fs.writeFileSync(file + "-wal", "pending");
    assertEquals(takeCleanClose(dir, file), undefined);
    fs.rmSync(file + "-wal");

    // A run that ended on a damaged state records nothing.
    const store = new Store(dir);
    store.close({ clean: false });
    assert(!fs.existsSync(path.join(dir, "state-clean")));
    assertEquals(takeCleanClose(dir, file), undefined);

    // A clean close records the check made at its open.
    const reopened = new Store(dir);
    assert(!reopened.closedCleanly, "opened after an unclean close");
    reopened.close();
    const again = new Store(dir);
    assert(again.closedCleanly, "opened after a clean close");
    again.close();
    const at = takeCleanClose(dir, file);
    assert(at !== undefined && at >= verified, String(at));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("Store.close() forgets what the web databases published when synced rows changed unpublished", () => {
  const dir = tmp();
  try {
    const store = new Store(dir);
    store.setRuntime(WEB_PUBLISHED_KEY, "keys");
    store.close();
    const kept = new Store(dir);
    assertEquals(kept.getRuntime(WEB_PUBLISHED_KEY), "keys");
    kept.syncedChanged.add("/s/a.txt");
    kept.close();
    const after = new Store(dir);
    assertEquals(after.getRuntime(WEB_PUBLISHED_KEY), undefined);
    after.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
