/**
 * Opens the SQLite database (node:sqlite, WAL) and applies versioned
 * migrations.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { takeCleanClose } from "./clean_close.ts";
import { damagedState, lostState, StateError, storeTrouble } from "./integrity.ts";

/** Schema migrations; index + 1 is the schema version after it runs. */
const MIGRATIONS: string[] = [
  `
  CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
  -- Known state of every source file and directory.
  CREATE TABLE files(
    path TEXT PRIMARY KEY,
    dir TEXT NOT NULL,
    source TEXT NOT NULL,
    is_dir INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ms REAL NOT NULL,
    ctime_ms REAL NOT NULL,
    ino INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX files_dir ON files(dir);
  CREATE INDEX files_source ON files(source);
  -- Work: one row per source file and destination (server + path).
  CREATE TABLE queue(
    id INTEGER PRIMARY KEY,
    input_file TEXT NOT NULL,
    source TEXT NOT NULL,
    server TEXT NOT NULL,
    dest TEXT NOT NULL,
    event INTEGER NOT NULL,
    gen INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'queued',
    running INTEGER NOT NULL DEFAULT 0,
    ready_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    requeues INTEGER NOT NULL DEFAULT 0,
    force INTEGER NOT NULL DEFAULT 0,
    -- 0 for uploads, 1 for deletes: deletes go last.
    prio INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    error_kind TEXT,
    discovered_at INTEGER NOT NULL,
    UNIQUE(input_file, server, dest)
  );
  CREATE INDEX queue_pick ON queue(server, state, running, prio, ready_at);
  CREATE INDEX queue_ready ON queue(state, running, ready_at);
  -- What is synced where. The first four columns are the original's table,
  -- read by the Drupal CDN module's "File Conveyor mode".
  CREATE TABLE synced_files(
    input_file TEXT NOT NULL,
    transported_file_basename TEXT NOT NULL,
    url TEXT NOT NULL,
    server TEXT NOT NULL,
    dest TEXT NOT NULL DEFAULT '',
    remote_path TEXT NOT NULL,
    size INTEGER,
    mtime_ms REAL,
    ctime_ms REAL,
    ino INTEGER,
    md5 TEXT,
    etag TEXT,
    chain TEXT,
    extras TEXT,
    synced_at INTEGER NOT NULL
  );
  CREATE UNIQUE INDEX file_unique_per_server ON synced_files(input_file, server, dest);
  CREATE INDEX synced_ino ON synced_files(server, ino);
  CREATE INDEX synced_remote ON synced_files(server, remote_path);
  -- Remote paths written but not yet recorded, or replaced and still to delete.
  CREATE TABLE intents(server TEXT NOT NULL, remote_path TEXT NOT NULL, input_file TEXT NOT NULL DEFAULT '',
    dest TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL, PRIMARY KEY(server, remote_path)) WITHOUT ROWID;
  CREATE INDEX intents_input ON intents(input_file, server, dest);
  -- Stylesheets (dependent) that embed the URL of another file (ref) on a server.
  CREATE TABLE deps(dependent TEXT NOT NULL, server TEXT NOT NULL, dest TEXT NOT NULL, ref TEXT NOT NULL,
    PRIMARY KEY(ref, server, dest, dependent)) WITHOUT ROWID;
  CREATE INDEX deps_dependent ON deps(dependent, server, dest);
  -- Source files to delete after sync (fileDeletionDelayAfterSync).
  CREATE TABLE source_deletions(path TEXT PRIMARY KEY, delete_at INTEGER NOT NULL) WITHOUT ROWID;
  -- Deletes held by the delete guard, per source.
  CREATE TABLE guard(source TEXT PRIMARY KEY, pending INTEGER NOT NULL, known INTEGER NOT NULL,
    since INTEGER NOT NULL, approved INTEGER NOT NULL DEFAULT 0);
  -- Server health, for status and metrics.
  CREATE TABLE servers(server TEXT PRIMARY KEY, failing_since INTEGER, last_error TEXT,
    blocked_until INTEGER, last_ok INTEGER, synced_bytes INTEGER NOT NULL DEFAULT 0,
    synced_count INTEGER NOT NULL DEFAULT 0, retries INTEGER NOT NULL DEFAULT 0);
  -- Recent transfers (bounded), for the status page and lag figures.
  CREATE TABLE transfers(id INTEGER PRIMARY KEY, at INTEGER NOT NULL, server TEXT NOT NULL,
    input_file TEXT NOT NULL, remote_path TEXT NOT NULL, event INTEGER NOT NULL, bytes INTEGER NOT NULL,
    ms INTEGER NOT NULL, lag_ms INTEGER NOT NULL);
  CREATE INDEX transfers_at ON transfers(at);
  -- Live state written by the running daemon (pid, heartbeat, watchers).
  CREATE TABLE runtime(key TEXT PRIMARY KEY, value TEXT NOT NULL);
  `,
  // MD5 of the source file when it was recorded: with processors, the uploaded content's MD5
  // cannot tell whether the source changed under an unchanged stat.
  `ALTER TABLE synced_files ADD COLUMN source_md5 TEXT;`,
  `
  -- Replaced or deleted remote files kept for a grace period (keepReplaced), deleted when due.
  CREATE TABLE retired(server TEXT NOT NULL, remote_path TEXT NOT NULL, input_file TEXT NOT NULL,
    due_at INTEGER NOT NULL, PRIMARY KEY(server, remote_path)) WITHOUT ROWID;
  CREATE INDEX retired_due ON retired(due_at);
  `,
  `
  -- Source paths that cannot be synced (unreadable, a name that is not UTF-8), for status and --once.
  CREATE TABLE problems(path TEXT PRIMARY KEY, source TEXT NOT NULL, reason TEXT NOT NULL,
    since INTEGER NOT NULL) WITHOUT ROWID;
  CREATE INDEX problems_source ON problems(source);
  -- When each file row was written (ms): a stat not safely older than that is "racy".
  ALTER TABLE files ADD COLUMN recorded_ms REAL NOT NULL DEFAULT 0;
  -- Other names of a changed file (hard links, in-tree symlinks store their target's inode).
  CREATE INDEX files_ino ON files(ino);
  `,
  `
  -- The queue's indexes without running: a pick marks its jobs running and a job that ends
  -- clears the mark, and with the column in both indexes each of those writes moved every
  -- picked row in two b-trees. Running rows are at most the transfer slots: the pick and the
  -- ready-time queries pass over them in the table instead.
  DROP INDEX queue_pick;
  CREATE INDEX queue_pick ON queue(server, state, prio, ready_at);
  DROP INDEX queue_ready;
  CREATE INDEX queue_ready ON queue(state, ready_at);
  `,
];

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Options for {@linkcode openDatabase}. */
export interface OpenOptions {
  /** Open read-only (status, url): never creates or migrates. */
  readOnly?: boolean;
  /**
   * Mode of the data directory (default 0700). 0750 when web application
   * databases readable by a group live in it; the database stays 0600.
   */
  dirMode?: number;
  /**
   * Start a new state: an existing database (damaged or not) is moved aside
   * as `fileconveyor.db.old-<time>` and a fresh one is created.
   */
  rebuild?: boolean;
}

/** The database file of a data directory. */
export function databaseFile(dataDir: string): string {
  return path.join(dataDir, "fileconveyor.db");
}

/**
 * Written next to the database when it is created: a data directory that
 * has it but no database lost its state (deleted by hand or by a clean-up
 * job), which must not pass for a first run.
 */
const MARKER = "state-created";

/**
 * Opens (and creates, privately) the database in `dataDir`, in WAL mode,
 * migrated to {@linkcode SCHEMA_VERSION}. Throws a {@linkcode StateError}
 * (with the way to recover) when the file is damaged (`PRAGMA quick_check`
 * fails) or when the data directory had a database that is gone.
 */
export function openDatabase(dataDir: string, options: OpenOptions = {}): DatabaseSync {
  return openState(dataDir, options).db;
}

/**
 * {@linkcode openDatabase}, also saying when the file's integrity was last
 * checked (`verifiedAt`, ms; 0 for a read-only connection): an existing file
 * is checked now unless it is exactly as a clean close left it after a
 * recent check (see `clean_close.ts`); `trusted` says it was.
 */
export function openState(
  dataDir: string,
  options: OpenOptions = {},
): { db: DatabaseSync; verifiedAt: number; trusted: boolean } {
  const file = databaseFile(dataDir);
  const marker = path.join(dataDir, MARKER);
  if (options.readOnly) {
    const missing = missingDatabase(dataDir);
    if (missing) throw missing;
    const db = guarded(file, () => {
      const db = new DatabaseSync(file, { readOnly: true });
      db.exec("PRAGMA busy_timeout = 5000");
      try {
        db.prepare("SELECT COUNT(*) FROM sqlite_master").get(); // A file that is no database fails here.
      } catch (e) {
        db.close();
        throw e;
      }
      return db;
    });
    return { db, verifiedAt: 0, trusted: false };
  }
  const dirMode = options.dirMode ?? 0o700;
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dataDir, dirMode);
  let previous: string | undefined;
  if (options.rebuild) previous = moveAside(file);
  else if (!fs.existsSync(file) && fs.existsSync(marker)) {
    throw lostState(file, "is missing (it was deleted)");
  }
  const fresh = !fs.existsSync(file);
  // Consumed before anything is written: a crash from here on leaves no record.
  const trustedSince = fresh ? undefined : takeCleanClose(dataDir, file);
  if (fresh) {
    // A WAL left without its database belongs to another state: never replay it into a new one.
    for (const ext of ["-wal", "-shm"]) fs.rmSync(file + ext, { force: true });
    fs.closeSync(fs.openSync(file, "a", 0o600));
  }
  const db = guarded(file, () => {
    const db = new DatabaseSync(file);
    try {
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = NORMAL");
      db.exec("PRAGMA busy_timeout = 5000");
      db.exec("PRAGMA foreign_keys = ON");
      // Checkpoints (which fsync) every 16 MiB of WAL instead of 4 MiB: a busy queue commits often;
      // but the WAL never gets more than an eighth of the data disk's free space, or a small disk
      // is filled by the WAL alone before its first checkpoint.
      db.exec(`PRAGMA wal_autocheckpoint = ${walPages(path.dirname(file))}`);
      // After a checkpoint the WAL shrinks back to 4 MiB: a small data disk is not kept full.
      db.exec("PRAGMA journal_size_limit = 4194304");
      if (!fresh && trustedSince === undefined) quickCheck(db, file);
      migrate(db);
      if (fresh) {
        const now = String(Date.now());
        const put = db.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)");
        put.run("created_at", now);
        if (options.rebuild) {
          put.run("rebuilt_at", now);
          put.run("previous", previous ?? "");
        }
      }
      return db;
    } catch (e) {
      db.close();
      throw e;
    }
  });
  if (!fs.existsSync(marker)) {
    fs.writeFileSync(marker, new Date().toISOString() + "\n", { mode: 0o600 });
  }
  for (const f of [file, file + "-wal", file + "-shm"]) {
    try {
      fs.chmodSync(f, 0o600);
    } catch {
      // The -wal and -shm files may not exist yet.
    }
  }
  return { db, verifiedAt: trustedSince ?? Date.now(), trusted: trustedSince !== undefined };
}

/**
 * Why `dataDir` has no database to read, or `undefined` when it has one: a
 * {@linkcode StateError} when it had one (deleted), `Deno.errors.NotFound`
 * when fileconveyor never ran with it.
 */
export function missingDatabase(dataDir: string): Error | undefined {
  const file = databaseFile(dataDir);
  if (fs.existsSync(file)) return undefined;
  if (fs.existsSync(path.join(dataDir, MARKER))) {
    return lostState(file, "is missing (it was deleted)");
  }
  return new Deno.errors.NotFound(
    `No database at "${file}": the daemon has not run with this data directory yet`,
  );
}

/** Runs `open`; a SQLite error that means a damaged file becomes a {@linkcode StateError}. */
function guarded(file: string, open: () => DatabaseSync): DatabaseSync {
  try {
    return open();
  } catch (e) {
    if (e instanceof StateError) throw e;
    if (storeTrouble(e) === "damaged") {
      throw damagedState(file, (e as Error).message, e);
    }
    throw e;
  }
}

/**
 * Checks the database file of `dataDir` through a connection of its own: the
 * daemon's connection trusts the pages it has cached, so only a fresh one
 * sees damage done to the file behind its back. Throws a
 * {@linkcode StateError}; linear in the size of the file.
 */
export function checkDatabase(dataDir: string): void {
  const file = databaseFile(dataDir);
  guarded(file, () => {
    const db = new DatabaseSync(file, { readOnly: true });
    try {
      db.exec("PRAGMA busy_timeout = 5000");
      quickCheck(db, file);
    } finally {
      db.close();
    }
    return db;
  });
}

/** `PRAGMA quick_check`: the b-trees and pages are sound (linear in the size of the file). */
/**
 * WAL pages between automatic checkpoints for a database in `dir`: 4,096 (16 MiB) where there is
 * room, down to 256 (1 MiB) so that the WAL stays under an eighth of the free space.
 */
export function walPages(dir: string): number {
  try {
    const s = fs.statfsSync(dir);
    return Math.max(256, Math.min(4096, Math.floor((s.bavail * s.bsize) / 8 / 4096)));
  } catch {
    return 1000;
  }
}

function quickCheck(db: DatabaseSync, file: string): void {
  const rows = db.prepare("PRAGMA quick_check(5)").all() as { quick_check: string }[];
  const found = rows.map((r) => r.quick_check);
  if (found.length !== 1 || found[0] !== "ok") {
    throw damagedState(file, `integrity check: ${found.join("; ")}`);
  }
}

/**
 * Moves a database (with its WAL) aside as `<file>.old-<time>`, so a rebuild
 * keeps it for inspection; returns the new path, or `undefined` when there
 * was none.
 */
function moveAside(file: string): string | undefined {
  if (!fs.existsSync(file)) return undefined;
  const to = `${file}.old-${new Date().toISOString().replace(/[:.]/g, "-")}`;
  fs.renameSync(file, to);
  for (const ext of ["-wal", "-shm"]) {
    try {
      if (ext === "-wal") fs.renameSync(file + ext, to + ext);
      else fs.rmSync(file + ext, { force: true });
    } catch {
      // No WAL left behind.
    }
  }
  return to;
}

function migrate(db: DatabaseSync): void {
  const version = Number(
    (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version,
  );
  if (version > SCHEMA_VERSION) {
    throw new Error(
      `The database schema is version ${version}, newer than this fileconveyor understands (${SCHEMA_VERSION}); upgrade fileconveyor`,
    );
  }
  for (let v = version; v < SCHEMA_VERSION; v++) {
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(MIGRATIONS[v]!);
      db.exec(`PRAGMA user_version = ${v + 1}`);
      db.exec("COMMIT");
    } catch (e) {
      db.exec("ROLLBACK");
      throw e;
    }
  }
}
