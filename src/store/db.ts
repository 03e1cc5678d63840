/**
 * Opens the SQLite database (node:sqlite, WAL) and applies versioned
 * migrations.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";

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
}

/**
 * Opens (and creates, privately) the database in `dataDir`, in WAL mode,
 * migrated to {@linkcode SCHEMA_VERSION}.
 */
export function openDatabase(dataDir: string, options: OpenOptions = {}): DatabaseSync {
  const file = path.join(dataDir, "fileconveyor.db");
  if (options.readOnly) {
    if (!fs.existsSync(file)) {
      throw new Deno.errors.NotFound(
        `No database at "${file}": the daemon has not run with this data directory yet`,
      );
    }
    const db = new DatabaseSync(file, { readOnly: true });
    db.exec("PRAGMA busy_timeout = 5000");
    return db;
  }
  const dirMode = options.dirMode ?? 0o700;
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dataDir, dirMode);
  const fresh = !fs.existsSync(file);
  if (fresh) fs.closeSync(fs.openSync(file, "a", 0o600));
  const db = new DatabaseSync(file);
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = NORMAL");
  db.exec("PRAGMA busy_timeout = 5000");
  db.exec("PRAGMA foreign_keys = ON");
  // Checkpoints (which fsync) every 16 MiB of WAL instead of 4 MiB: a busy queue commits often.
  db.exec("PRAGMA wal_autocheckpoint = 4096");
  migrate(db);
  for (const f of [file, file + "-wal", file + "-shm"]) {
    try {
      fs.chmodSync(f, 0o600);
    } catch {
      // The -wal and -shm files may not exist yet.
    }
  }
  return db;
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
