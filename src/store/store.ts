/**
 * Typed access to the database: source state, the persistent work queue,
 * the synced-files record and the daemon's runtime state. Every method is
 * synchronous (node:sqlite); batches run in one transaction.
 *
 * @module
 */
import { retire } from "./retired.ts";
import * as fs from "node:fs";
import * as path from "node:path";
import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import { DELETED, type FileEvent, mergeEvents } from "./events.ts";
import { checkDatabase, databaseFile, openDatabase, type OpenOptions } from "./db.ts";
import { DbFileGuard } from "./integrity.ts";

/** Stored state of one source file or directory. */
export interface FileRow {
  path: string;
  dir: string;
  source: string;
  is_dir: number;
  size: number;
  mtime_ms: number;
  ctime_ms: number;
  ino: number;
  /** When the row was written (ms since the epoch); 0 when unknown. */
  recorded_ms?: number;
}

/** One queued unit of work: a file for one destination. */
export interface Job {
  id: number;
  input_file: string;
  source: string;
  server: string;
  dest: string;
  event: FileEvent;
  gen: number;
  state: "queued" | "failed";
  attempts: number;
  requeues: number;
  /** 0: skip when unchanged; 1: compare content hashes; 2: always process. */
  force: number;
  last_error: string | null;
  error_kind: string | null;
  discovered_at: number;
  ready_at: number;
}

/** A change to put into the queue. */
export interface Change {
  input_file: string;
  source: string;
  server: string;
  dest: string;
  event: FileEvent;
  force?: number;
}

/** What is synced for one file at one destination. */
export interface SyncedRow {
  input_file: string;
  transported_file_basename: string;
  url: string;
  server: string;
  dest: string;
  remote_path: string;
  size: number | null;
  mtime_ms: number | null;
  ctime_ms: number | null;
  ino: number | null;
  md5: string | null;
  etag: string | null;
  chain: string | null;
  /** JSON array of extra remote paths (precompressed variants). */
  extras: string | null;
  synced_at: number;
  /** MD5 of the source file when recorded (null when unknown). */
  source_md5?: string | null;
}

/** Health of one server. */
export interface ServerRow {
  server: string;
  failing_since: number | null;
  last_error: string | null;
  blocked_until: number | null;
  last_ok: number | null;
  synced_bytes: number;
  synced_count: number;
  retries: number;
}

/**
 * What the pipeline needs from its state store: the work queue, the record
 * of synced files, intents, source state and runtime values. The SQLite
 * {@linkcode Store} implements it; another database can sit beside it
 * without the pipeline changing. Every method is synchronous and joins the
 * transaction of an enclosing {@linkcode PipelineStore.tx}.
 */
export interface PipelineStore {
  /** Runs `fn` in one transaction; nested calls are savepoints. */
  tx<T>(fn: () => T): T;
  close(): void;
  // the database file
  /** The database file. */
  readonly file: string;
  /** `undefined` while the database file is the one opened; otherwise what happened to it. */
  lost(): string | undefined;
  /** Throws a `StateError` when the database file is damaged (large files: at most every 10 min). */
  checkFile(now?: number): void;
  /** Checkpoints and truncates the WAL (frees space on a full disk); best effort. */
  checkpoint(): boolean;
  // source state
  putFile(row: FileRow): void;
  deleteFile(path: string): void;
  deleteUnder(path: string): void;
  /** Every regular file known in `source`, with its size. */
  filesOf(source: string): { path: string; size: number }[];
  // queue
  enqueue(changes: readonly Change[], now: number, delayMs?: number, deleteDelayMs?: number): void;
  resetRunning(): void;
  pick(server: string, limit: number, now: number): Job[];
  complete(job: Job): void;
  requeue(job: Job, readyAt: number, message?: string, countRequeue?: boolean): void;
  /** Puts a job back until its server's pause ends, noting the server's error on it. */
  deferForServer(job: Job, readyAt: number, message: string, kind?: string): void;
  fail(job: Job, kind: string, message: string, readyAt: number, failAfter: number): void;
  retryFailed(now: number, server?: string): number;
  retryAfterFix(now: number, server?: string): number;
  nextReadyAt(): number | undefined;
  hasActive(): boolean;
  activeCount(): number;
  /** Whether `inputFile` has queued work other than a delete. */
  hasPendingUpload(inputFile: string): boolean;
  findMoveSource(server: string, dest: string, ino: number, size: number): SyncedRow | undefined;
  // synced files
  getSynced(inputFile: string, server: string, dest: string): SyncedRow | undefined;
  syncedFor(inputFile: string): SyncedRow[];
  urlFor(inputFile: string, server?: string): string | undefined;
  putSynced(row: SyncedRow): void;
  /** Records a server-side move of `from` to `row`, dropping `from`'s record and queued work. */
  recordMove(from: SyncedRow, row: SyncedRow): void;
  /**
   * Notes that a file's content was compared and found unchanged at `at`:
   * the record is no longer racy, and its source MD5 is known.
   */
  confirmSynced(
    inputFile: string,
    server: string,
    dest: string,
    at: number,
    sourceMd5: string,
  ): void;
  /** Forgets what was synced of a file at a destination (after its remote delete). */
  recordDeleted(inputFile: string, server: string, dest: string): void;
  /**
   * Schedules the deletion of replaced or deleted remote files at `dueAt`
   * (the keepReplaced grace); call inside the transaction that records
   * what replaced them.
   */
  retire(server: string, remotePaths: readonly string[], dueAt: number, inputFile: string): void;
  remotePathInUse(server: string, remotePath: string): boolean;
  /** Synced files of `server` recorded at any of `remotePaths`. */
  syncedAtPaths(server: string, remotePaths: readonly string[]): SyncedRow[];
  /** Synced files of `server` recorded below the directory `remotePath`. */
  syncedBelow(server: string, remotePath: string): SyncedRow[];
  // intents
  addIntent(
    server: string,
    remotePath: string,
    now: number,
    inputFile?: string,
    dest?: string,
  ): void;
  intentsFor(inputFile: string, server: string, dest: string): string[];
  dropIntent(server: string, remotePath: string): void;
  intents(server: string): string[];
  // dependencies
  setDeps(dependent: string, server: string, dest: string, refs: readonly string[]): void;
  dependents(ref: string, server: string): { dependent: string; dest: string }[];
  // source deletions, guard
  scheduleSourceDeletion(path: string, at: number): void;
  unscheduleSourceDeletion(path: string): void;
  dueSourceDeletions(now: number, limit?: number): string[];
  guards(): { source: string; pending: number; known: number; since: number; approved: number }[];
  approveDeletes(source?: string): number;
  // servers, transfers, runtime
  serverOk(server: string, bytes: number, now: number): void;
  serverFailed(server: string, message: string, blockedUntil: number | null, now: number): void;
  addTransfer(
    t: {
      server: string;
      input_file: string;
      remote_path: string;
      event: number;
      bytes: number;
      ms: number;
      lag_ms: number;
    },
    now: number,
  ): void;
  pruneTransfers(now: number, max?: number): void;
  setRuntime(key: string, value: unknown): void;
  getRuntime<T>(key: string): T | undefined;
}

/** Upper bound for a "never" timestamp in the queue. */
export const NEVER = 8_640_000_000_000_000;

/** The database of one data directory. */
export class Store implements PipelineStore {
  /**
   * The connection. Internal to `src/store/`: code elsewhere asks
   * {@linkcode Store} methods or the read model (`read_model.ts`); nothing outside this folder uses it.
   */
  readonly db: DatabaseSync;
  /** The database file. */
  readonly file: string;
  readonly #stmts = new Map<string, StatementSync>();
  readonly #guard: DbFileGuard;
  #depth = 0;
  /**
   * Input files whose `synced_files` rows changed (or were written in a
   * transaction that may have rolled back) since a copy of them last took
   * this set; copies re-read those rows.
   */
  syncedChanged: Set<string> = new Set();

  constructor(dataDir: string, options: OpenOptions = {}) {
    this.file = databaseFile(dataDir);
    this.db = openDatabase(dataDir, options);
    this.#guard = new DbFileGuard(this.file);
  }

  /**
   * `undefined` while the database file at its path is the one this store
   * opened; otherwise what happened to it (deleted, replaced): SQLite keeps
   * writing to the open file, so nothing else would notice.
   */
  lost(): string | undefined {
    return this.#guard.check();
  }

  /**
   * Throws a `StateError` when the database file is damaged (see
   * `checkDatabase`). The check reads the whole file and blocks meanwhile
   * (about 1 s per 50 MB): a large database is checked at most every 10
   * minutes, a small one at every call.
   */
  checkFile(now: number = Date.now()): void {
    let size = 0;
    try {
      size = fs.statSync(this.file).size;
    } catch {
      // Gone: the next heartbeat reports it.
    }
    if (size > 8 * 1024 * 1024 && now - this.#checkedAt < 600_000) return;
    this.#checkedAt = now;
    checkDatabase(path.dirname(this.file));
  }

  /** When the file was last checked (opening checks it). */
  #checkedAt = Date.now();

  /** When this state was created, and whether it replaced a lost or damaged one. */
  stateInfo(): { createdAt: number | null; rebuiltAt: number | null; previous: string | null } {
    const rows = this.q("SELECT key, value FROM meta").all() as { key: string; value: string }[];
    const get = (k: string) => rows.find((r) => r.key === k)?.value;
    const num = (v: string | undefined) => (v ? Number(v) : null);
    return {
      createdAt: num(get("created_at")),
      rebuiltAt: num(get("rebuilt_at")),
      previous: get("previous") ?? null,
    };
  }

  /**
   * Moves what the WAL holds into the database file and truncates the WAL:
   * frees space when the disk is full (best effort, `false` when it could not).
   */
  checkpoint(): boolean {
    try {
      const r = this.db.prepare("PRAGMA wal_checkpoint(TRUNCATE)").get() as { busy: number };
      return r.busy === 0;
    } catch {
      return false;
    }
  }

  /** Prepares (once) and returns a statement. Internal to `src/store/`, like {@linkcode Store.db}. */
  q(sql: string): StatementSync {
    let s = this.#stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.#stmts.set(sql, s);
    }
    return s;
  }

  /** Runs `fn` in one IMMEDIATE transaction. */
  tx<T>(fn: () => T): T {
    // Nested calls become savepoints, so callers compose freely.
    if (this.#depth > 0) {
      const name = `sp${this.#depth}`;
      this.#depth++;
      this.db.exec(`SAVEPOINT ${name}`);
      try {
        const out = fn();
        this.db.exec(`RELEASE ${name}`);
        return out;
      } catch (e) {
        try {
          this.db.exec(`ROLLBACK TO ${name}`);
          this.db.exec(`RELEASE ${name}`);
        } catch {
          // The outer transaction is gone (e.g. disk full); it reports the error.
        }
        throw e;
      } finally {
        this.#depth--;
      }
    }
    this.db.exec("BEGIN IMMEDIATE");
    this.#depth++;
    try {
      const out = fn();
      this.db.exec("COMMIT");
      return out;
    } catch (e) {
      try {
        this.db.exec("ROLLBACK");
      } catch {
        // The transaction may already be gone (e.g. disk full).
      }
      throw e;
    } finally {
      this.#depth--;
    }
  }

  close(): void {
    this.#stmts.clear();
    try {
      this.db.close();
    } catch {
      // Already closed.
    }
  }

  // ---- source state ----

  getFile(path: string): FileRow | undefined {
    return this.q("SELECT * FROM files WHERE path = ?").get(path) as FileRow | undefined;
  }

  children(dir: string): FileRow[] {
    return this.q("SELECT * FROM files WHERE dir = ?").all(dir) as unknown as FileRow[];
  }

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

  // ---- queue ----

  /**
   * Adds changes to the queue, merging with queued work per the combination
   * table. `delayMs` delays the work (deletes are held longer). Call inside
   * a transaction for batches.
   */
  enqueue(changes: readonly Change[], now: number, delayMs = 0, deleteDelayMs = 0): void {
    const get = this.q(
      "SELECT id, event, running, state FROM queue WHERE input_file = ? AND server = ? AND dest = ?",
    );
    // New work (the common case: an initial sync) is one statement; queued work is merged.
    const insert = this.q(
      `INSERT INTO queue(input_file, source, server, dest, event, prio, ready_at, force, discovered_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(input_file, server, dest) DO NOTHING`,
    );
    for (const c of changes) {
      const ready = now + (c.event === DELETED ? deleteDelayMs : delayMs);
      const added = insert.run(
        c.input_file,
        c.source,
        c.server,
        c.dest,
        c.event,
        c.event === DELETED ? 1 : 0,
        ready,
        c.force ?? 0,
        now,
      );
      if (Number(added.changes) > 0) continue;
      const old = get.get(c.input_file, c.server, c.dest) as {
        id: number;
        event: FileEvent;
        running: number;
        state: string;
      };
      let next = mergeEvents(old.event, c.event);
      if (next === null) {
        // Cancel only work that never started and left nothing remote (no record, and no
        // intent: an upload that finished but was not recorded left a remote file).
        if (
          old.running === 0 && !this.getSynced(c.input_file, c.server, c.dest) &&
          this.intentsFor(c.input_file, c.server, c.dest).length === 0
        ) {
          this.q("DELETE FROM queue WHERE id = ?").run(old.id);
          continue;
        }
        next = DELETED;
      }
      this.q(
        `UPDATE queue SET event = ?, prio = ?, gen = gen + 1, state = 'queued', attempts = 0, requeues = 0,
           ready_at = ?, force = MAX(force, ?), last_error = NULL, error_kind = NULL WHERE id = ?`,
      ).run(next, next === DELETED ? 1 : 0, ready, c.force ?? 0, old.id);
    }
  }

  /** Marks every job as not running (after a crash or restart). */
  resetRunning(): void {
    this.q("UPDATE queue SET running = 0 WHERE running = 1").run();
  }

  /** Takes up to `limit` ready jobs of `server`, uploads before deletes, and marks them running. */
  pick(server: string, limit: number, now: number): Job[] {
    // One transaction: when a write fails (disk full) no job is left marked but not started.
    // One statement (hence atomic): when the write fails (disk full) no job is left marked but
    // not started. RETURNING gives no order: the jobs are sorted as picked.
    const jobs = this.q(
      `UPDATE queue SET running = 1 WHERE id IN (
         SELECT id FROM queue INDEXED BY queue_pick
         WHERE server = ? AND state = 'queued' AND running = 0 AND ready_at <= ?
         ORDER BY prio, ready_at LIMIT ?)
       RETURNING *`,
    ).all(server, now, limit) as unknown as (Job & { prio: number })[];
    return jobs.sort((a, b) => a.prio - b.prio || a.ready_at - b.ready_at);
  }

  /** Finishes a job; when a newer event arrived meanwhile, the job runs again instead. */
  complete(job: Job): void {
    const r = this.q("DELETE FROM queue WHERE id = ? AND gen = ?").run(job.id, job.gen);
    if (r.changes === 0) this.q("UPDATE queue SET running = 0 WHERE id = ?").run(job.id);
  }

  /** Puts a job back without counting a failure (processor asked to wait, server backoff). */
  requeue(job: Job, readyAt: number, message?: string, countRequeue = true): void {
    this.q(
      `UPDATE queue SET running = 0, ready_at = CASE WHEN gen = ? THEN ? ELSE ready_at END,
         requeues = requeues + ?, last_error = COALESCE(?, last_error) WHERE id = ?`,
    ).run(job.gen, readyAt, countRequeue ? 1 : 0, message ?? null, job.id);
  }

  /**
   * Records a failed attempt. A newer event supersedes the failure. The job
   * becomes `failed` at `failAfter` attempts or at once when `kind` is fatal;
   * failed jobs still retry at `readyAt` unless it is {@linkcode NEVER}.
   */
  fail(job: Job, kind: string, message: string, readyAt: number, failAfter: number): void {
    this.q(
      `UPDATE queue SET running = 0,
         attempts = CASE WHEN gen = ? THEN attempts + 1 ELSE attempts END,
         state = CASE WHEN gen = ? AND (attempts + 1 >= ? OR ? = 'fatal') THEN 'failed' ELSE state END,
         ready_at = CASE WHEN gen = ? THEN ? ELSE ready_at END,
         last_error = ?, error_kind = ? WHERE id = ?`,
    ).run(job.gen, job.gen, failAfter, kind, job.gen, readyAt, message, kind, job.id);
  }

  /** Re-queues a job for when its server's pause ends; `kind` is the error's class. */
  deferForServer(job: Job, readyAt: number, message: string, kind = "server"): void {
    this.tx(() => {
      this.requeue(job, readyAt, message, false);
      this.q("UPDATE queue SET last_error = ?, error_kind = ? WHERE id = ?").run(
        message,
        kind,
        job.id,
      );
    });
  }

  hasPendingUpload(inputFile: string): boolean {
    return this.q(
      `SELECT 1 FROM queue WHERE input_file = ? AND event != ${DELETED} LIMIT 1`,
    ).get(inputFile) !== undefined;
  }

  /**
   * Re-queues, now, the jobs that failed or wait for a retry after an error
   * (all, or those of one server): after a fix (a start, a reload, a server
   * that works again). Work delayed on purpose (held deletes) keeps its time.
   * Returns how many.
   */
  retryAfterFix(now: number, server?: string): number {
    const sql = `UPDATE queue SET state = 'queued', attempts = 0, requeues = 0, ready_at = ?
       WHERE (state = 'failed' OR (last_error IS NOT NULL AND running = 0 AND ready_at > ?))${
      server ? " AND server = ?" : ""
    }`;
    const args: SQLInputValue[] = [now, now];
    if (server) args.push(server);
    return Number(this.q(sql).run(...args).changes);
  }

  /** Re-queues failed jobs now (all, or those of one server); returns how many. */
  retryFailed(now: number, server?: string): number {
    const sql = `UPDATE queue SET state = 'queued', attempts = 0, requeues = 0, ready_at = ?
       WHERE (state = 'failed' OR ready_at > ?)${server ? " AND server = ?" : ""}`;
    const args: SQLInputValue[] = [now, now];
    if (server) args.push(server);
    return Number(this.q(sql).run(...args).changes);
  }

  /** Re-queues one failed (or waiting) job now, unless it is running; false when none was. */
  retryJob(id: number, now: number): boolean {
    return Number(
      this.q(
        `UPDATE queue SET state = 'queued', attempts = 0, requeues = 0, ready_at = ?
         WHERE id = ? AND running = 0 AND (state = 'failed' OR ready_at > ?)`,
      ).run(now, id, now).changes,
    ) > 0;
  }

  /** Earliest time a queued job becomes ready, or undefined when none is queued. */
  nextReadyAt(servers?: readonly string[]): number | undefined {
    const r = this.q("SELECT MIN(ready_at) AS t FROM queue WHERE state = 'queued' AND running = 0")
      .get() as {
        t: number | null;
      };
    void servers;
    return r.t ?? undefined;
  }

  /** Queue counts for status. */
  queueCounts(): { queued: number; running: number; failed: number; waiting: number } {
    const now = Date.now();
    const r = this.q(
      `SELECT
         SUM(state = 'queued' AND running = 0) AS queued,
         SUM(running = 1) AS running,
         SUM(state = 'failed') AS failed,
         SUM(state = 'queued' AND running = 0 AND ready_at > ?) AS waiting
       FROM queue`,
    ).get(now) as Record<string, number | null>;
    return {
      queued: r.queued ?? 0,
      running: r.running ?? 0,
      failed: r.failed ?? 0,
      waiting: r.waiting ?? 0,
    };
  }

  /** Whether any job is queued (not failed), running or not. */
  hasActive(): boolean {
    return this.q("SELECT 1 FROM queue WHERE state = 'queued' LIMIT 1").get() !== undefined;
  }

  /** Number of queued (not failed) jobs, running or not. */
  activeCount(): number {
    return (this.q("SELECT COUNT(*) AS n FROM queue WHERE state = 'queued'").get() as { n: number })
      .n;
  }

  failedJobs(limit = 1000): Job[] {
    return this.q("SELECT * FROM queue WHERE state = 'failed' ORDER BY id LIMIT ?").all(
      limit,
    ) as unknown as Job[];
  }

  /** Jobs with an error that are still being retried. */
  retryingJobs(limit = 1000): Job[] {
    return this.q(
      "SELECT * FROM queue WHERE state = 'queued' AND last_error IS NOT NULL ORDER BY id LIMIT ?",
    ).all(limit) as unknown as Job[];
  }

  /**
   * A synced file on the same destination with inode `ino` and size `size`
   * that no running job touches: the old name of a renamed file when its
   * source path is gone (the caller checks), whether or not its delete has
   * been queued yet.
   */
  findMoveSource(server: string, dest: string, ino: number, size: number): SyncedRow | undefined {
    return this.q(
      `SELECT s.* FROM synced_files s LEFT JOIN queue q
         ON q.input_file = s.input_file AND q.server = s.server AND q.dest = s.dest
       WHERE s.server = ? AND s.dest = ? AND s.ino = ? AND s.size = ? AND COALESCE(q.running, 0) = 0
       LIMIT 1`,
    ).get(server, dest, ino, size) as SyncedRow | undefined;
  }

  /** Removes the queued delete of `inputFile` at a destination (after a server-side move). */
  dropQueued(inputFile: string, server: string, dest: string): void {
    this.q("DELETE FROM queue WHERE input_file = ? AND server = ? AND dest = ? AND running = 0")
      .run(
        inputFile,
        server,
        dest,
      );
  }

  // ---- synced files ----

  getSynced(inputFile: string, server: string, dest: string): SyncedRow | undefined {
    return this.q("SELECT * FROM synced_files WHERE input_file = ? AND server = ? AND dest = ?")
      .get(
        inputFile,
        server,
        dest,
      ) as SyncedRow | undefined;
  }

  syncedFor(inputFile: string): SyncedRow[] {
    return this.q("SELECT * FROM synced_files WHERE input_file = ? ORDER BY server, dest").all(
      inputFile,
    ) as unknown as SyncedRow[];
  }

  /** URL of a synced file on `server` (first destination), or on any server. */
  urlFor(inputFile: string, server?: string): string | undefined {
    const r = server
      ? this.q(
        "SELECT url FROM synced_files WHERE input_file = ? AND server = ? ORDER BY dest LIMIT 1",
      ).get(
        inputFile,
        server,
      )
      : this.q("SELECT url FROM synced_files WHERE input_file = ? ORDER BY server, dest LIMIT 1")
        .get(inputFile);
    return (r as { url: string } | undefined)?.url;
  }

  putSynced(row: SyncedRow): void {
    this.syncedChanged.add(row.input_file);
    this.q(
      `INSERT INTO synced_files(input_file, transported_file_basename, url, server, dest, remote_path, size,
         mtime_ms, ctime_ms, ino, md5, etag, chain, extras, synced_at, source_md5)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(input_file, server, dest) DO UPDATE SET
         transported_file_basename = excluded.transported_file_basename, url = excluded.url,
         remote_path = excluded.remote_path, size = excluded.size, mtime_ms = excluded.mtime_ms,
         ctime_ms = excluded.ctime_ms, ino = excluded.ino, md5 = excluded.md5, etag = excluded.etag,
         chain = excluded.chain, extras = excluded.extras, synced_at = excluded.synced_at,
         source_md5 = excluded.source_md5`,
    ).run(
      row.input_file,
      row.transported_file_basename,
      row.url,
      row.server,
      row.dest,
      row.remote_path,
      row.size,
      row.mtime_ms,
      row.ctime_ms,
      row.ino,
      row.md5,
      row.etag,
      row.chain,
      row.extras,
      row.synced_at,
      row.source_md5 ?? null,
    );
  }

  recordMove(from: SyncedRow, row: SyncedRow): void {
    this.tx(() => {
      this.deleteSynced(from.input_file, from.server, from.dest);
      this.dropQueued(from.input_file, from.server, from.dest);
      this.putSynced(row);
    });
  }

  confirmSynced(
    inputFile: string,
    server: string,
    dest: string,
    at: number,
    sourceMd5: string,
  ): void {
    this.q(
      `UPDATE synced_files SET synced_at = ?, source_md5 = ?
       WHERE input_file = ? AND server = ? AND dest = ?`,
    ).run(at, sourceMd5, inputFile, server, dest);
  }

  retire(server: string, remotePaths: readonly string[], dueAt: number, inputFile: string): void {
    retire(this, server, remotePaths, dueAt, inputFile);
  }

  recordDeleted(inputFile: string, server: string, dest: string): void {
    this.tx(() => {
      this.deleteSynced(inputFile, server, dest);
      this.setDeps(inputFile, server, dest, []);
    });
  }

  syncedAtPaths(server: string, remotePaths: readonly string[]): SyncedRow[] {
    const get = this.q("SELECT * FROM synced_files WHERE server = ? AND remote_path = ?");
    return remotePaths.flatMap((p) => get.all(server, p) as unknown as SyncedRow[]);
  }

  syncedBelow(server: string, remotePath: string): SyncedRow[] {
    return this.q(
      "SELECT * FROM synced_files WHERE server = ? AND remote_path > ? AND remote_path < ?",
    ).all(server, remotePath + "/", remotePath + "0") as unknown as SyncedRow[];
  }

  deleteSynced(inputFile: string, server: string, dest: string): void {
    this.syncedChanged.add(inputFile);
    this.q("DELETE FROM synced_files WHERE input_file = ? AND server = ? AND dest = ?").run(
      inputFile,
      server,
      dest,
    );
  }

  /** Whether any synced row on `server` points at `remotePath`. */
  remotePathInUse(server: string, remotePath: string): boolean {
    return this.q("SELECT 1 FROM synced_files WHERE server = ? AND remote_path = ? LIMIT 1").get(
      server,
      remotePath,
    ) !== undefined;
  }

  syncedCounts(): { server: string; n: number; last: number | null }[] {
    return this.q(
      "SELECT server, COUNT(*) AS n, MAX(synced_at) AS last FROM synced_files GROUP BY server ORDER BY server",
    ).all() as unknown as { server: string; n: number; last: number | null }[];
  }

  // ---- intents ----

  addIntent(server: string, remotePath: string, now: number, inputFile = "", dest = ""): void {
    this.q(
      `INSERT INTO intents(server, remote_path, input_file, dest, created_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT(server, remote_path) DO UPDATE SET input_file = excluded.input_file, dest = excluded.dest`,
    ).run(server, remotePath, inputFile, dest, now);
    // Written again: no longer a retired version waiting for deletion.
    this.q("DELETE FROM retired WHERE server = ? AND remote_path = ?").run(server, remotePath);
  }

  /** Intents of one file at one destination. */
  intentsFor(inputFile: string, server: string, dest: string): string[] {
    return (this.q(
      "SELECT remote_path FROM intents WHERE input_file = ? AND server = ? AND dest = ?",
    ).all(
      inputFile,
      server,
      dest,
    ) as { remote_path: string }[]).map((r) => r.remote_path);
  }

  dropIntent(server: string, remotePath: string): void {
    this.q("DELETE FROM intents WHERE server = ? AND remote_path = ?").run(server, remotePath);
  }

  /** Every intent of `server`: remote paths whose upload or deletion may not have finished. */
  intents(server: string): string[] {
    return (this.q("SELECT remote_path FROM intents WHERE server = ?").all(server) as {
      remote_path: string;
    }[]).map(
      (r) => r.remote_path,
    );
  }

  // ---- dependencies (stylesheets embedding other files' URLs) ----

  setDeps(dependent: string, server: string, dest: string, refs: readonly string[]): void {
    this.q("DELETE FROM deps WHERE dependent = ? AND server = ? AND dest = ?").run(
      dependent,
      server,
      dest,
    );
    const ins = this.q(
      "INSERT OR IGNORE INTO deps(dependent, server, dest, ref) VALUES (?, ?, ?, ?)",
    );
    for (const r of refs) ins.run(dependent, server, dest, r);
  }

  dependents(ref: string, server: string): { dependent: string; dest: string }[] {
    return this.q("SELECT dependent, dest FROM deps WHERE ref = ? AND server = ?").all(
      ref,
      server,
    ) as unknown as {
      dependent: string;
      dest: string;
    }[];
  }

  // ---- source deletions after sync ----

  scheduleSourceDeletion(path: string, at: number): void {
    this.q("INSERT OR REPLACE INTO source_deletions(path, delete_at) VALUES (?, ?)").run(path, at);
  }

  unscheduleSourceDeletion(path: string): void {
    this.q("DELETE FROM source_deletions WHERE path = ?").run(path);
  }

  dueSourceDeletions(now: number, limit = 100): string[] {
    return (this.q("SELECT path FROM source_deletions WHERE delete_at <= ? LIMIT ?").all(
      now,
      limit,
    ) as {
      path: string;
    }[]).map((r) => r.path);
  }

  // ---- delete guard ----

  guardFor(
    source: string,
  ): { pending: number; known: number; since: number; approved: number } | undefined {
    return this.q("SELECT pending, known, since, approved FROM guard WHERE source = ?").get(
      source,
    ) as
      | { pending: number; known: number; since: number; approved: number }
      | undefined;
  }

  holdDeletes(source: string, pending: number, known: number, now: number): void {
    this.q(
      `INSERT INTO guard(source, pending, known, since) VALUES (?, ?, ?, ?)
       ON CONFLICT(source) DO UPDATE SET pending = excluded.pending, known = excluded.known`,
    ).run(source, pending, known, now);
  }

  approveDeletes(source?: string): number {
    return Number(
      (source
        ? this.q("UPDATE guard SET approved = 1 WHERE source = ?").run(source)
        : this.q("UPDATE guard SET approved = 1").run()).changes,
    );
  }

  clearGuard(source: string): void {
    this.q("DELETE FROM guard WHERE source = ?").run(source);
  }

  guards(): { source: string; pending: number; known: number; since: number; approved: number }[] {
    return this.q("SELECT * FROM guard ORDER BY source").all() as unknown as {
      source: string;
      pending: number;
      known: number;
      since: number;
      approved: number;
    }[];
  }

  // ---- servers, transfers, runtime ----

  serverOk(server: string, bytes: number, now: number): void {
    this.q(
      `INSERT INTO servers(server, last_ok, synced_bytes, synced_count) VALUES (?, ?, ?, 1)
       ON CONFLICT(server) DO UPDATE SET last_ok = excluded.last_ok, failing_since = NULL, blocked_until = NULL,
         synced_bytes = synced_bytes + excluded.synced_bytes, synced_count = synced_count + 1`,
    ).run(server, now, bytes);
  }

  serverFailed(server: string, message: string, blockedUntil: number | null, now: number): void {
    this.q(
      `INSERT INTO servers(server, failing_since, last_error, blocked_until, retries) VALUES (?, ?, ?, ?, 1)
       ON CONFLICT(server) DO UPDATE SET failing_since = COALESCE(failing_since, excluded.failing_since),
         last_error = excluded.last_error, blocked_until = excluded.blocked_until, retries = retries + 1`,
    ).run(server, now, message, blockedUntil);
  }

  serverRows(): ServerRow[] {
    return this.q("SELECT * FROM servers ORDER BY server").all() as unknown as ServerRow[];
  }

  addTransfer(
    t: {
      server: string;
      input_file: string;
      remote_path: string;
      event: number;
      bytes: number;
      ms: number;
      lag_ms: number;
    },
    now: number,
  ): void {
    this.q(
      "INSERT INTO transfers(at, server, input_file, remote_path, event, bytes, ms, lag_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    ).run(now, t.server, t.input_file, t.remote_path, t.event, t.bytes, t.ms, t.lag_ms);
  }

  /** Keeps the transfer log bounded (last hour, at most `max` rows). */
  pruneTransfers(now: number, max = 20_000): void {
    this.q("DELETE FROM transfers WHERE at < ?").run(now - 3_600_000);
    this.q("DELETE FROM transfers WHERE id <= (SELECT MAX(id) FROM transfers) - ?").run(max);
  }

  recentTransfers(limit = 50): {
    at: number;
    server: string;
    input_file: string;
    remote_path: string;
    event: number;
    bytes: number;
    ms: number;
    lag_ms: number;
  }[] {
    return this.q("SELECT * FROM transfers ORDER BY id DESC LIMIT ?").all(limit) as unknown as {
      at: number;
      server: string;
      input_file: string;
      remote_path: string;
      event: number;
      bytes: number;
      ms: number;
      lag_ms: number;
    }[];
  }

  setRuntime(key: string, value: unknown): void {
    this.q("INSERT OR REPLACE INTO runtime(key, value) VALUES (?, ?)").run(
      key,
      JSON.stringify(value),
    );
  }

  getRuntime<T>(key: string): T | undefined {
    const r = this.q("SELECT value FROM runtime WHERE key = ?").get(key) as
      | { value: string }
      | undefined;
    return r ? JSON.parse(r.value) as T : undefined;
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

  /** Replaces every problem of a source (after a full scan), keeping `since` of the ones still there. */
  setProblems(source: string, found: ReadonlyMap<string, string>, now: number): void {
    this.tx(() => {
      for (const p of this.problems(source)) {
        if (!found.has(p.path)) this.q("DELETE FROM problems WHERE path = ?").run(p.path);
      }
      for (const [p, reason] of found) this.recordProblem(source, p, reason, now);
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

/** A source path that cannot be synced, and why. */
export interface ProblemRow {
  path: string;
  source: string;
  reason: string;
  since: number;
}
