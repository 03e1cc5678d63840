/**
 * The rows the store keeps and {@linkcode PipelineStore}, the narrow
 * interface the pipeline depends on.
 *
 * @module
 */
import type { FileEvent } from "./events.ts";

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
  /** 1 while a worker runs it (set on every row read from the queue). */
  running?: number;
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

/** The extra remote paths of a record ({@linkcode SyncedRow.extras}); none when unreadable. */
export function parseExtras(json: string | null | undefined): string[] {
  if (!json) return [];
  try {
    return JSON.parse(json) as string[];
  } catch {
    return [];
  }
}

/** An intent: a remote path an upload or deletion of `input_file` may have left. */
export interface IntentRow {
  remote_path: string;
  /** Empty on rows written before the column existed. */
  input_file: string;
  dest: string;
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
  /**
   * Runs `fn`, which only reads, in one read transaction (or the enclosing
   * transaction): one snapshot, and cheaper than a transaction per statement.
   */
  read<T>(fn: () => T): T;
  /** Closes the store; `clean: false` when the run ended on a damaged or lost state. */
  close(options?: { clean?: boolean }): void;
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
  /** The stored state of one source path. */
  getFile(path: string): FileRow | undefined;
  putFile(row: FileRow): void;
  deleteFile(path: string): void;
  deleteUnder(path: string): void;
  /**
   * The stored state of each of `paths` that is a regular file there, by
   * path: one read for many (a look ahead in the queue).
   */
  recordedFiles(paths: readonly string[]): Map<string, FileRow>;
  /** Every regular file known in `source`, with its size. */
  filesOf(source: string): { path: string; size: number }[];
  // queue
  enqueue(changes: readonly Change[], now: number, delayMs?: number, deleteDelayMs?: number): void;
  resetRunning(): void;
  pick(server: string, limit: number, now: number): Job[];
  /** Ready jobs of `server` after job id `afterId`, by id, without marking them. */
  peek(server: string, limit: number, now: number, afterId?: number): Job[];
  /** The highest job id (0: the queue is empty). */
  lastJobId(): number;
  /** Takes the given jobs that are ready and not running, and marks them running. */
  pickIds(ids: readonly number[], now: number): Job[];
  /** Puts off a queued job that is not running; false when it runs, changed or is gone. */
  defer(job: Job, readyAt: number): boolean;
  complete(job: Job): void;
  requeue(job: Job, readyAt: number, message?: string, countRequeue?: boolean): void;
  /** Puts a job back until its server's pause ends, noting the server's error on it. */
  deferForServer(job: Job, readyAt: number, message: string, kind?: string): void;
  fail(job: Job, kind: string, message: string, readyAt: number, failAfter: number): void;
  retryFailed(now: number, server?: string): number;
  retryAfterFix(now: number, server?: string): number;
  /** Re-queues one failed (or waiting) job now, unless it is running; false when none was. */
  retryJob(id: number, now: number): boolean;
  nextReadyAt(after?: number): number | undefined;
  hasActive(): boolean;
  activeCount(): number;
  /** Whether `inputFile` has queued work other than a delete. */
  hasPendingUpload(inputFile: string): boolean;
  uploadUnderway(inputFile: string, server?: string, seen?: Set<string>): boolean;
  waitsFurther(dependent: string, server: string, dest: string): boolean;
  findMoveSource(server: string, dest: string, ino: number, size: number): SyncedRow | undefined;
  // synced files
  getSynced(inputFile: string, server: string, dest: string): SyncedRow | undefined;
  syncedFor(inputFile: string): SyncedRow[];
  urlFor(inputFile: string, server?: string): string | undefined;
  putSynced(row: SyncedRow): void;
  /**
   * Records a server-side move of `from` to `row`, dropping `from`'s record and queued work
   * and the intent the move announced.
   */
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
  claimIntent(
    server: string,
    remotePath: string,
    now: number,
    inputFile: string,
    dest: string,
  ): boolean;
  intentsFor(inputFile: string, server: string, dest: string): string[];
  dropIntent(server: string, remotePath: string): void;
  intents(server: string): IntentRow[];
  // dependencies
  setDeps(dependent: string, server: string, dest: string, refs: readonly string[]): void;
  addDeps(dependent: string, server: string, dest: string, refs: readonly string[]): void;
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

/** A source path that cannot be synced, and why. */
export interface ProblemRow {
  path: string;
  source: string;
  reason: string;
  since: number;
}
