/**
 * The record of a clean close, which lets the next open skip the integrity
 * check (`PRAGMA quick_check` reads the whole file: about a second per
 * 100,000 files).
 *
 * After the last connection closed and SQLite folded the WAL back into the
 * database file, the file is stamped: its mtime is set to a moment in the
 * past that no later write can produce (a write sets the current time), and
 * its size, mtime, ctime, inode and device are written to `state-clean`.
 * The next open consumes the record (it is removed before anything is
 * written, so a crash leaves none) and trusts the file only when all of
 * these still match, no WAL with content is waiting, and the last full
 * check passed less than a day ago. Anything else — a crash, a kill, a run
 * that found the file damaged, a file written, truncated, restored or
 * replaced meanwhile — runs the full check. Damage that leaves the file's
 * metadata untouched (failing media, or a write behind the back of a
 * running daemon) is found by the periodic check of a watching daemon, and
 * at the latest by the daily check at a start.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";

/** The record's file name in the data directory. */
const RECORD = "state-clean";

/** How far in the past the stamp sets the file's mtime (ms). */
const STAMP_BACK_MS = 1000;

/** A file is trusted without a check for at most this long after its last full check (ms). */
export const TRUST_MS = 24 * 3600_000;

interface Fingerprint {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
}

function fingerprint(file: string): Fingerprint | undefined {
  try {
    const st = Deno.statSync(file);
    return {
      size: st.size,
      mtimeMs: st.mtime?.getTime() ?? -1,
      ctimeMs: st.ctime?.getTime() ?? -1,
      ino: st.ino ?? -1,
      dev: st.dev,
    };
  } catch {
    return undefined;
  }
}

/** Whether a WAL with content waits next to the database file. */
function walPending(file: string): boolean {
  try {
    return fs.statSync(file + "-wal").size > 0;
  } catch {
    return false;
  }
}

/**
 * Records that the database `file` (in `dataDir`) was closed cleanly, its
 * last full check having passed at `verifiedAt` (ms): call after its last
 * connection was closed. Does nothing when a WAL remains (another
 * connection still has the file open). Best effort: without the record,
 * the next open checks the file.
 */
export function recordCleanClose(dataDir: string, file: string, verifiedAt: number): void {
  try {
    if (walPending(file)) return;
    const st = fs.statSync(file);
    const stamp = new Date(Math.floor(Date.now() / 1000) * 1000 - STAMP_BACK_MS);
    fs.utimesSync(file, st.atime, stamp);
    const fp = fingerprint(file);
    if (!fp || fp.mtimeMs !== stamp.getTime()) return;
    const record = path.join(dataDir, RECORD);
    const tmp = `${record}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ ...fp, verifiedAt }) + "\n", { mode: 0o600 });
    fs.renameSync(tmp, record);
  } catch {
    // Not recorded: the next open checks the file.
  }
}

/**
 * When the database `file` was last fully checked, if it is exactly as a
 * clean close left it and that check is recent enough to trust it
 * ({@linkcode TRUST_MS}); `undefined` when it must be checked. Consumes the
 * record either way: call once per open, before anything is written.
 */
export function takeCleanClose(
  dataDir: string,
  file: string,
  now: number = Date.now(),
): number | undefined {
  const record = path.join(dataDir, RECORD);
  let saved: Fingerprint & { verifiedAt: number };
  try {
    saved = JSON.parse(fs.readFileSync(record, "utf8"));
  } catch {
    return undefined;
  } finally {
    fs.rmSync(record, { force: true });
  }
  if (!(typeof saved.verifiedAt === "number" && now - saved.verifiedAt < TRUST_MS)) {
    return undefined;
  }
  const fp = fingerprint(file);
  if (!fp || walPending(file)) return undefined;
  const same = fp.size === saved.size && fp.mtimeMs === saved.mtimeMs &&
    fp.ctimeMs === saved.ctimeMs && fp.ino === saved.ino && fp.dev === saved.dev;
  return same ? saved.verifiedAt : undefined;
}
