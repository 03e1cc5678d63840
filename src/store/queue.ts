/**
 * The persistent work queue: enqueueing with the event combination table,
 * picking, completing, failing and retrying jobs.
 *
 * @module
 */
import type { SQLInputValue } from "node:sqlite";
import { DELETED, type FileEvent, mergeEvents } from "./events.ts";
import { SyncedRecords } from "./records.ts";
import type { Change, Job, SyncedRow } from "./types.ts";

/** The queue part of {@linkcode Store}. */
export class Queue extends SyncedRecords {
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

  /**
   * Ready jobs of `server` after job id `afterId`, by id, without marking
   * them: a look ahead, e.g. to claim their files in a fleet before they run.
   */
  peek(server: string, limit: number, now: number, afterId = 0): Job[] {
    // By rowid from the cursor: the `+` keep SQLite off the pick and ready indexes, which would
    // read and sort every ready job (it picks them when the tables were never analyzed).
    return this.q(
      `SELECT * FROM queue WHERE id > ? AND +server = ? AND +state = 'queued' AND running = 0
         AND +ready_at <= ? ORDER BY id LIMIT ?`,
    ).all(afterId, server, now, limit) as unknown as Job[];
  }

  /** The highest job id (0: the queue is empty). */
  lastJobId(): number {
    return Number((this.q("SELECT MAX(id) AS n FROM queue").get() as { n: number | null }).n ?? 0);
  }

  /** Takes the given jobs that are ready and not running, and marks them running. */
  pickIds(ids: readonly number[], now: number): Job[] {
    if (ids.length === 0) return [];
    const jobs = this.q(
      // By rowid (`+`: not by an index on the other columns, which would scan every ready job).
      `UPDATE queue SET running = 1 WHERE id IN (SELECT value FROM json_each(?))
         AND +state = 'queued' AND +running = 0 AND +ready_at <= ?
       RETURNING *`,
    ).all(JSON.stringify(ids), now) as unknown as Job[];
    const order = new Map(ids.map((id, i) => [id, i]));
    return jobs.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
  }

  /**
   * Puts off a queued job that is not running until `readyAt` (not counted
   * as an attempt or a requeue: it never ran); false when it runs, changed
   * (newer event) or is gone.
   */
  defer(job: Job, readyAt: number): boolean {
    return Number(
      this.q(
        `UPDATE queue SET ready_at = ?
         WHERE id = ? AND gen = ? AND running = 0 AND state = 'queued'`,
      ).run(readyAt, job.id, job.gen).changes,
    ) > 0;
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

  /**
   * Whether an upload of `inputFile` to `server` (any server when not given)
   * is on its way to a URL: queued or running and not put back since it was
   * queued, or (on a given server) put back only to wait for files that are
   * all on their way themselves (a stylesheet importing another that waits
   * for its images). A job retrying after an error does not count, nor does
   * a wait that comes back to a file of `seen` (the asker: files waiting for
   * each other in a cycle), so waits on them stay bounded by the waiter's
   * deadline.
   */
  uploadUnderway(inputFile: string, server?: string, seen: Set<string> = new Set()): boolean {
    // `+state` (here and in waitsFurther): the rows of one file are found by its unique index;
    // without the `+` SQLite picks the state index and passes over every queued row, thousands
    // per call during an initial sync (a stylesheet asks this once per reference).
    const row = this.q(
      `SELECT last_error FROM queue WHERE input_file = ? AND (? IS NULL OR server = ?)
         AND event != ${DELETED} AND +state = 'queued' ORDER BY last_error IS NOT NULL LIMIT 1`,
    ).get(inputFile, server ?? null, server ?? null) as { last_error: string | null } | undefined;
    if (!row) return false;
    if (row.last_error === null) return true;
    if (server === undefined || seen.has(inputFile)) return false;
    seen.add(inputFile);
    const waits = this.q(
      `SELECT DISTINCT d.ref FROM deps d WHERE d.dependent = ? AND d.server = ?
         AND NOT EXISTS (SELECT 1 FROM synced_files s WHERE s.input_file = d.ref AND s.server = d.server)`,
    ).all(inputFile, server) as { ref: string }[];
    return waits.length > 0 && waits.every((w) => this.uploadUnderway(w.ref, server, seen));
  }

  /**
   * Whether waking `dependent` (on `server`, `dest`) because one of its
   * references got its first URL would be early: another of its references
   * still has no URL there and is on its way ({@linkcode uploadUnderway}),
   * and that one's record wakes it.
   */
  waitsFurther(dependent: string, server: string, dest: string): boolean {
    return this.q(
      `SELECT 1 FROM deps d WHERE d.dependent = ? AND d.server = ? AND d.dest = ?
         AND NOT EXISTS (SELECT 1 FROM synced_files s WHERE s.input_file = d.ref AND s.server = d.server)
         AND EXISTS (SELECT 1 FROM queue q WHERE q.input_file = d.ref AND q.server = d.server
           AND q.event != ${DELETED} AND +q.state = 'queued' AND q.last_error IS NULL)
       LIMIT 1`,
    ).get(dependent, server, dest) !== undefined;
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

  /**
   * Earliest time a queued job becomes ready (only times after `after`, when
   * given), or undefined when none is queued.
   */
  nextReadyAt(after?: number): number | undefined {
    const r =
      (after === undefined
        ? this.q("SELECT MIN(ready_at) AS t FROM queue WHERE state = 'queued' AND running = 0")
          .get()
        : this.q(
          "SELECT MIN(ready_at) AS t FROM queue WHERE state = 'queued' AND running = 0 AND ready_at > ?",
        ).get(after)) as { t: number | null };
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
}
