/**
 * The read side of the store: the questions status, metrics, the status
 * page, progress and verify ask, each answered by one method with typed
 * rows. Nothing outside `src/store/` writes SQL; readers ask here.
 *
 * Every method only reads, so it works on a read-only store and while the
 * daemon writes (WAL readers never block the writer).
 *
 * @module
 */
import { allRetired } from "./retired.ts";
import type { FileEvent } from "./events.ts";
import type { Job, Store, SyncedRow } from "./store.ts";

/** Queue figures of one server. */
export interface ServerQueueRow {
  server: string;
  /** Jobs not failed, running or not. */
  active: number;
  /** Jobs not failed and not running (waiting ones included). */
  queued: number;
  /** Queued jobs not yet ready (waiting for a retry or a delay). */
  waiting: number;
  /** Jobs running now. */
  running: number;
  /** Jobs marked as failed. */
  failed: number;
}

/** Work left for one server, with the bytes of the source files it concerns. */
export interface PendingWorkRow {
  server: string;
  /** Jobs not failed, running or not. */
  n: number;
  /** Sum of the stored sizes of their source files. */
  bytes: number;
  running: number;
  waiting: number;
}

/** Lag figures of recent transfers, milliseconds. */
export interface LagStats {
  transfers: number;
  p50Ms: number | null;
  maxMs: number | null;
}

/** A job that failed or is being retried after an error. */
export interface ProblemJobRow {
  id: number;
  input_file: string;
  server: string;
  dest: string;
  event: FileEvent;
  attempts: number;
  error_kind: string | null;
  last_error: string | null;
  state: "queued" | "failed";
  ready_at: number;
}

/** Transfers of one server in one time bucket. */
export interface TransferBucketRow {
  server: string;
  /** Start of the bucket (Unix ms). */
  t: number;
  files: number;
  bytes: number;
  lagAvg: number;
  lagMax: number;
}

/** The state of one queued job, as verify confirms it. */
export interface JobStateRow {
  state: "queued" | "failed";
  last_error: string | null;
}

/** A consistent view of the record, the queue and the announced uploads. */
export interface RecordSnapshot {
  /** Every synced row, ordered by server and file. */
  synced: SyncedRow[];
  /** Every job. */
  queue: Job[];
  /** Remote paths whose upload or deletion may be under way. */
  intents: { server: string; remote_path: string }[];
}

/**
 * Read-only questions about a {@linkcode Store}.
 *
 * @example
 * ```ts
 * import { Store } from "./store.ts";
 * import { ReadModel } from "./read_model.ts";
 * const store = new Store(await Deno.makeTempDir());
 * const read = new ReadModel(store);
 * read.queueByServer(Date.now()); // []
 * store.close();
 * ```
 */
export class ReadModel {
  readonly #store: Store;

  /** @param store The database to read. */
  constructor(store: Store) {
    this.#store = store;
  }

  /** Queue figures per server (servers without jobs are absent). */
  queueByServer(now: number): ServerQueueRow[] {
    return this.#store.q(
      `SELECT server, SUM(state = 'queued') AS active,
         SUM(state = 'queued' AND running = 0) AS queued,
         SUM(state = 'queued' AND running = 0 AND ready_at > ?) AS waiting,
         SUM(running = 1) AS running, SUM(state = 'failed') AS failed
       FROM queue GROUP BY server`,
    ).all(now) as unknown as ServerQueueRow[];
  }

  /**
   * Work left per server with its bytes (a join over the queue: about 0.1 s
   * for 100,000 jobs, so callers poll it sparingly).
   */
  pendingWork(now: number): PendingWorkRow[] {
    return this.#store.q(
      `SELECT q.server AS server, COUNT(*) AS n, COALESCE(SUM(f.size), 0) AS bytes,
         SUM(q.running) AS running, SUM(q.running = 0 AND q.ready_at > ?) AS waiting
       FROM queue q LEFT JOIN files f ON f.path = q.input_file
       WHERE q.state = 'queued' GROUP BY q.server`,
    ).all(now) as unknown as PendingWorkRow[];
  }

  /** Failed jobs per server (servers without any are absent). */
  failedByServer(): { server: string; n: number }[] {
    return this.#store.q(
      "SELECT server, COUNT(*) AS n FROM queue WHERE state = 'failed' GROUP BY server",
    ).all() as unknown as { server: string; n: number }[];
  }

  /** Median and maximum lag of a server's transfers since `since` (the log keeps one hour). */
  lagStats(server: string, since: number): LagStats {
    const r = this.#store.q(
      "SELECT COUNT(*) AS n, MAX(lag_ms) AS max FROM transfers WHERE server = ? AND at >= ?",
    ).get(server, since) as { n: number; max: number | null };
    if (r.n === 0) return { transfers: 0, p50Ms: null, maxMs: null };
    const mid = this.#store.q(
      "SELECT lag_ms FROM transfers WHERE server = ? AND at >= ? ORDER BY lag_ms LIMIT 1 OFFSET ?",
    ).get(server, since, Math.floor((r.n - 1) / 2)) as { lag_ms: number };
    return { transfers: r.n, p50Ms: mid.lag_ms, maxMs: r.max };
  }

  /** Failed jobs and jobs retrying after an error (failed first), at most `limit`. */
  problemJobs(limit = 200): ProblemJobRow[] {
    return this.#store.q(
      `SELECT id, input_file, server, dest, event, attempts, error_kind, last_error, state, ready_at
       FROM queue WHERE state = 'failed' OR (last_error IS NOT NULL AND running = 0)
       ORDER BY state = 'failed' DESC, id LIMIT ?`,
    ).all(limit) as unknown as ProblemJobRow[];
  }

  /** Transfers since `from` per server in buckets of `bucketMs`, oldest first. */
  transferBuckets(from: number, bucketMs: number): TransferBucketRow[] {
    return this.#store.q(
      `SELECT server, (at / CAST(?1 AS INTEGER)) * CAST(?1 AS INTEGER) AS t, COUNT(*) AS files, SUM(bytes) AS bytes,
         AVG(lag_ms) AS lagAvg, MAX(lag_ms) AS lagMax
       FROM transfers WHERE at >= ?2 GROUP BY server, t ORDER BY t`,
    ).all(bucketMs, from) as unknown as TransferBucketRow[];
  }

  /** The record, the queue and the intents, read in one transaction. */
  recordSnapshot(): RecordSnapshot {
    const db = this.#store.db;
    db.exec("BEGIN");
    try {
      return {
        synced: this.#store.q("SELECT * FROM synced_files ORDER BY server, input_file")
          .all() as unknown as SyncedRow[],
        queue: this.#store.q("SELECT * FROM queue").all() as unknown as Job[],
        // Replaced versions kept for their grace period are expected on the server too.
        intents: [
          ...this.#store.q("SELECT server, remote_path FROM intents").all() as unknown as {
            server: string;
            remote_path: string;
          }[],
          ...allRetired(this.#store),
        ],
      };
    } finally {
      db.exec("COMMIT");
    }
  }

  /** The current state of the job of one file at one destination, if any. */
  jobState(inputFile: string, server: string, dest: string): JobStateRow | undefined {
    return this.#store.q(
      "SELECT state, last_error FROM queue WHERE input_file = ? AND server = ? AND dest = ?",
    ).get(inputFile, server, dest) as JobStateRow | undefined;
  }

  /**
   * The record of one file at one destination and the state of its job, read in one
   * transaction: the daemon records an upload and completes its job in one commit, so two
   * separate reads can fall on either side of it (an old record, and no job any more).
   */
  fileState(
    inputFile: string,
    server: string,
    dest: string,
  ): { synced: SyncedRow | undefined; job: JobStateRow | undefined } {
    const db = this.#store.db;
    db.exec("BEGIN");
    try {
      return {
        synced: this.#store.q(
          "SELECT * FROM synced_files WHERE input_file = ? AND server = ? AND dest = ?",
        ).get(inputFile, server, dest) as SyncedRow | undefined,
        job: this.jobState(inputFile, server, dest),
      };
    } finally {
      db.exec("COMMIT");
    }
  }

  /**
   * Whether `remotePath` on `server` is recorded or announced (an intent), read in one
   * statement: an upload's record is written and its intent dropped in one commit, so two
   * separate reads can fall on either side of it and find neither. (`Store.remotePathInUse`
   * asks of records only.)
   */
  remotePathRecordedOrAnnounced(server: string, remotePath: string): boolean {
    return (this.#store.q(
      `SELECT EXISTS(SELECT 1 FROM synced_files WHERE server = ?1 AND remote_path = ?2)
         OR EXISTS(SELECT 1 FROM intents WHERE server = ?1 AND remote_path = ?2) AS used`,
    ).get(server, remotePath) as { used: number }).used === 1;
  }

  /**
   * The file and destination recorded at `remotePath` on `server`, or else the one whose upload
   * announced it, read in one statement (see {@linkcode remotePathRecordedOrAnnounced}).
   */
  remotePathOwner(
    server: string,
    remotePath: string,
  ): { input_file: string; dest: string } | undefined {
    return this.#store.q(
      `SELECT input_file, dest FROM (
         SELECT input_file, dest, 0 AS o FROM synced_files WHERE server = ?1 AND remote_path = ?2
         UNION ALL
         SELECT input_file, dest, 1 FROM intents
           WHERE server = ?1 AND remote_path = ?2 AND input_file != '')
       ORDER BY o LIMIT 1`,
    ).get(server, remotePath) as { input_file: string; dest: string } | undefined;
  }
}
