/**
 * A job's reads of the store before it is planned: its synced record, its
 * intents, and the old name of a rename. They are done in the transaction
 * that picks the job (a read there costs a fraction of one in a transaction
 * of its own), or, for a job not read at its pick, in one read transaction
 * when it runs (one lock instead of one per statement).
 *
 * Contract: what a pick read is still true when the job runs: while the job
 * is marked running, only the job itself changes its record and its
 * intents. A rename's old name is the exception: it is looked for by the
 * inode the scan stored; a job that sees another inode, or whose pick found
 * a candidate, looks again when it runs (a candidate may be gone by then;
 * one that appears meanwhile is missed, which uploads instead of moving).
 * The reads of a job are used once ({@linkcode PickReads.take}) or dropped
 * when it will not start ({@linkcode PickReads.forget}).
 *
 * @module
 */
import { DELETED } from "../store/events.ts";
import type { Job, SyncedRow } from "../store/store.ts";
import type { PipelineContext } from "./context.ts";

/** What a job read in its pick's transaction. */
interface AtPick {
  synced: SyncedRow | undefined;
  intents: string[];
  /** The inode and size (the scan's) for which no rename's old name was found. */
  noMoveFor: { ino: number; size: number } | undefined;
}

/** What a job reads of the store before it is planned. */
export interface JobReads {
  /** Its record at its destination. */
  synced: SyncedRow | undefined;
  /** A record at the same destination with the file's inode and size: maybe a rename's old name. */
  row: SyncedRow | undefined;
  /** The remote paths of its intents at its destination. */
  intents: string[];
}

/** The reads of picked jobs, from their pick until they run. */
export class PickReads {
  readonly #ctx: PipelineContext;
  readonly #read = new WeakMap<Job, AtPick>();

  constructor(ctx: PipelineContext) {
    this.#ctx = ctx;
  }

  /** Called in the transaction that picks `job` for `server` (after its intent was claimed). */
  atPick(server: string, job: Job): void {
    const store = this.#ctx.store;
    const synced = store.getSynced(job.input_file, server, job.dest);
    const file = synced || job.event === DELETED ? undefined : store.getFile(job.input_file);
    this.#read.set(job, {
      synced,
      intents: store.intentsFor(job.input_file, server, job.dest),
      noMoveFor: file && !store.findMoveSource(server, job.dest, file.ino, file.size)
        ? { ino: file.ino, size: file.size }
        : undefined,
    });
  }

  /** Drops what the pick of `job` read: it will not start. */
  forget(job: Job): void {
    this.#read.delete(job);
  }

  /**
   * The reads of `job` as it runs for `server`: those of its pick, or done
   * now. `move`: the file's inode and size when a rename's old name could be
   * moved (no processors, the transport moves); without it none is looked for.
   */
  take(server: string, job: Job, move: { ino: number; size: number } | undefined): JobReads {
    const store = this.#ctx.store;
    const pre = this.#read.get(job);
    this.#read.delete(job);
    return pre
      ? {
        ...pre,
        row: move && !pre.synced &&
            (pre.noMoveFor?.ino !== move.ino || pre.noMoveFor?.size !== move.size)
          ? store.read(() => store.findMoveSource(server, job.dest, move.ino, move.size))
          : undefined,
      }
      : store.read(() => {
        const synced = store.getSynced(job.input_file, server, job.dest);
        const row = move && !synced
          ? store.findMoveSource(server, job.dest, move.ino, move.size)
          : undefined;
        return { synced, row, intents: store.intentsFor(job.input_file, server, job.dest) };
      });
  }
}
