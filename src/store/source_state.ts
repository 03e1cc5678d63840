/**
 * Source state: the stored stat of every source file and directory, and the
 * source paths that cannot be synced (problems).
 *
 * @module
 */
import type { StatementSync } from "node:sqlite";
import { StoreConnection } from "./connection.ts";
import type { FileRow, ProblemRow } from "./types.ts";

/** The source-state part of {@linkcode Store}. */
export class SourceState extends StoreConnection {
  // ---- source state ----

  getFile(path: string): FileRow | undefined {
    return this.q("SELECT * FROM files WHERE path = ?").get(path) as FileRow | undefined;
  }

  children(dir: string): FileRow[] {
    return this.q("SELECT * FROM files WHERE dir = ?").all(dir) as unknown as FileRow[];
  }

  /**
   * The stored entries of directory `dir` (as `dir`, without a trailing
   * separator), by name: one query per directory, read as arrays (the rows
   * of a whole tree are read at every start and every full scan, and
   * SQLite's row objects cost more than building them here).
   *
   * `leaf`: the caller saw no subdirectory in `dir` on disk. The rows are
   * then read as the range of paths below `dir` in the table's own order
   * (its primary key), without a lookup per row from the `dir` index: a
   * quarter less time for a directory of files. The answer is the same
   * either way; the range also passes over what is stored below a
   * subdirectory that is gone from disk (once: the scan deletes it).
   */
  childrenByName(dir: string, options: { leaf?: boolean } = {}): Map<string, FileRow> {
    const leaf = options.leaf === true && !dir.endsWith("/");
    let s = leaf ? this.#leafRows : this.#childRows;
    if (!s) {
      const cols = "path, source, is_dir, size, mtime_ms, ctime_ms, ino, recorded_ms";
      // `+dir`: the range over the primary key, not the `dir` index, chooses the rows.
      s = this.db.prepare(
        leaf
          ? `SELECT ${cols} FROM files WHERE path > ? AND path < ? AND +dir = ?`
          : `SELECT ${cols} FROM files WHERE dir = ?`,
      );
      s.setReturnArrays(true);
      if (leaf) this.#leafRows = s;
      else this.#childRows = s;
    }
    const skip = dir.endsWith("/") ? dir.length : dir.length + 1;
    const out = new Map<string, FileRow>();
    // Paths below `dir` sort between `dir/` and `dir0` ("0" follows "/"), in bytes.
    const rows = leaf ? s.all(dir + "/", dir + "0", dir) : s.all(dir);
    for (const r of rows as unknown as ChildRow[]) {
      const p = r[0];
      out.set(p.slice(skip), {
        path: p,
        dir,
        source: r[1],
        is_dir: r[2],
        size: r[3],
        mtime_ms: r[4],
        ctime_ms: r[5],
        ino: r[6],
        recorded_ms: r[7],
      });
    }
    return out;
  }

  #childRows: StatementSync | undefined;
  #leafRows: StatementSync | undefined;

  putFile(row: FileRow): void {
    this.q(
      `INSERT INTO files(path, dir, source, is_dir, size, mtime_ms, ctime_ms, ino, recorded_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(path) DO UPDATE SET dir=excluded.dir, source=excluded.source, is_dir=excluded.is_dir,
         size=excluded.size, mtime_ms=excluded.mtime_ms, ctime_ms=excluded.ctime_ms, ino=excluded.ino,
         recorded_ms=excluded.recorded_ms`,
    ).run(
      row.path,
      row.dir,
      row.source,
      row.is_dir,
      row.size,
      row.mtime_ms,
      row.ctime_ms,
      row.ino,
      row.recorded_ms ?? 0,
    );
  }

  /** Files (not directories) stored at `path` or below it. */
  filesUnder(path: string): FileRow[] {
    return this.q(
      "SELECT * FROM files WHERE (path = ? OR (path > ? AND path < ?)) AND is_dir = 0",
    ).all(path, path + "/", path + "0") as unknown as FileRow[];
  }

  /** Removes `path` and everything stored below it. */
  deleteUnder(path: string): void {
    this.q("DELETE FROM files WHERE path = ? OR (path > ? AND path < ?)").run(
      path,
      path + "/",
      path + "0",
    );
  }

  deleteFile(path: string): void {
    this.q("DELETE FROM files WHERE path = ?").run(path);
  }

  recordedFiles(paths: readonly string[]): Map<string, FileRow> {
    if (paths.length === 0) return new Map();
    const rows = this.q(
      "SELECT * FROM files WHERE path IN (SELECT value FROM json_each(?)) AND is_dir = 0",
    ).all(JSON.stringify(paths)) as unknown as FileRow[];
    return new Map(rows.map((r) => [r.path, r]));
  }

  filesOf(source: string): { path: string; size: number }[] {
    return this.q("SELECT path, size FROM files WHERE source = ? AND is_dir = 0").all(
      source,
    ) as { path: string; size: number }[];
  }

  countFiles(source: string): number {
    return (this.q("SELECT COUNT(*) AS n FROM files WHERE source = ? AND is_dir = 0").get(
      source,
    ) as { n: number }).n;
  }

  // ---- problems: source paths that cannot be synced (unreadable, unrepresentable names) ----

  /** Records a path that cannot be synced, or updates its reason (keeping `since`). */
  recordProblem(source: string, path: string, reason: string, now: number): void {
    this.q(
      `INSERT INTO problems(path, source, reason, since) VALUES (?, ?, ?, ?)
       ON CONFLICT(path) DO UPDATE SET source = excluded.source, reason = excluded.reason`,
    ).run(path, source, reason, now);
  }

  /** Forgets the problems at `path` and below it. */
  clearProblems(path: string): void {
    this.q("DELETE FROM problems WHERE path = ? OR (path > ? AND path < ?)").run(
      path,
      path + "/",
      path + "0",
    );
  }

  /**
   * Replaces every problem of a source (after a full scan), keeping `since`
   * of the ones still there. Writes nothing when they are the same (a
   * periodic walk of an unchanged tree must not write).
   */
  setProblems(source: string, found: ReadonlyMap<string, string>, now: number): void {
    const stored = this.problems(source);
    const gone = stored.filter((p) => !found.has(p.path)).map((p) => p.path);
    const reasons = new Map(stored.map((p) => [p.path, p.reason]));
    const fresh = [...found].filter(([p, reason]) => reasons.get(p) !== reason);
    if (gone.length === 0 && fresh.length === 0) return;
    this.tx(() => {
      for (const p of gone) this.q("DELETE FROM problems WHERE path = ?").run(p);
      for (const [p, reason] of fresh) this.recordProblem(source, p, reason, now);
    });
  }

  /** Files of a source stored with inode `ino`: hard links, and symlinks to that file. */
  filesWithIno(source: string, ino: number): FileRow[] {
    return this.q("SELECT * FROM files WHERE ino = ? AND source = ? AND is_dir = 0").all(
      ino,
      source,
    ) as unknown as FileRow[];
  }

  /** Problems of one source, or of all, by path. */
  problems(source?: string): ProblemRow[] {
    return (source === undefined
      ? this.q("SELECT * FROM problems ORDER BY path").all()
      : this.q("SELECT * FROM problems WHERE source = ? ORDER BY path").all(
        source,
      )) as unknown as ProblemRow[];
  }
}

/** A `files` row as {@linkcode SourceState.childrenByName} reads it. */
type ChildRow = [string, string, 0 | 1, number, number, number, number, number];
