/**
 * Settling "done" answers claimed ahead without running their jobs: when a
 * batch of claims made ahead comes back (`fleet_claimer.ts`), the files
 * another node already uploaded with the same content are recorded here and
 * their queued jobs completed, in one local transaction for the batch. A
 * node sharing a folder with others adopts about as many files as it
 * uploads; as jobs (pick, plan, claim, record in the group commit,
 * completion) they cost it about what a small local copy costs.
 *
 * Contract: a job is settled so only when running it would do nothing but
 * adopt the record, writing the same local row (`adoptedRow`):
 * - {@linkcode adoptable} (pure): the answer is "done"; it was not handed
 *   to the scheduler; the event is a create or a modify (a delete runs);
 *   the record's fingerprint is the file's size, mtime and MD5 as hashed for
 *   the claim or vouched for by the record (a file claimed with its stat: the
 *   MD5 known from the answer; unknown, the job runs); the file is a file now with the stat its MD5 was taken with
 *   (size, mtime, ctime, inode; a change since runs the job, which hashes
 *   anew); a rule sends it to the job's destination, without processors
 *   (processed files are left to their jobs);
 * - in the transaction (`FleetLocal.settleAdopted`): the job is still the
 *   one claimed for (same id and generation: an event merged into it since
 *   bumps the generation, and the job stays), queued, ready and not running
 *   (not picked: the scheduler does not hold it); no local record of the
 *   file at that destination (the plan would compare it: unchanged,
 *   changed, another chain), no intent of it there (leftovers of an earlier
 *   attempt are cleaned up through the job), and no record at that
 *   destination with the file's inode and size (a rename's old name: the
 *   job may move it);
 * - a settled job counts as an adopted job does: skipped in the run's
 *   summary and a "job-done" event; the caller then pumps the scheduler
 *   (its idle check ends a `--once` run). Nothing is published: the record
 *   is the other node's.
 *
 * @module
 */
import type { Source } from "../config/types.ts";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import { DELETED, type FileEvent } from "../store/events.ts";
import type { FleetLocal } from "../store/fleet_local.ts";
import type { Claim, SharedRecord } from "../store/shared/types.ts";
import type { Job, SyncedRow } from "../store/store.ts";
import type { PipelineContext } from "./context.ts";
import type { AheadEntry } from "./fleet_ahead.ts";
import { fingerprint } from "./fleet_keys.ts";
import { type AdoptedFile, adoptedRow } from "./fleet_rows.ts";
import { observe } from "./observe.ts";
import { type Fingerprint, type Observed, type Route, sameStat } from "./plan.ts";

/** What {@linkcode adoptable} decides on: an answer claimed ahead and the file now. */
export interface SettleInput {
  /** The queued job's event. */
  event: FileEvent;
  /** The answer claimed ahead (undefined: still in flight). */
  claim: Claim | undefined;
  /** Whether the answer was handed to the scheduler (its job is picked or running). */
  handed: boolean;
  /** The MD5 of the source the claim was made with (read, or vouched for); undefined: unknown. */
  md5: string | undefined;
  /** The stat the MD5 was taken with. */
  hashed: Fingerprint;
  /** The source entry now. */
  observed: Observed;
  /** The route of the file to the job's destination now; undefined: no rule sends it there. */
  route: Route | undefined;
}

/** The record to adopt and this node's side of the row, or why the job must run. */
export type Settle =
  | { settle: true; record: SharedRecord; local: AdoptedFile }
  | { settle: false; why: string };

/** Whether a job answered "done" ahead can be settled without running (see the module doc). */
export function adoptable(i: SettleInput): Settle {
  const c = i.claim;
  if (c?.kind !== "done") return { settle: false, why: "not done elsewhere" };
  if (i.handed) return { settle: false, why: "handed to the scheduler" };
  if (i.md5 === undefined) return { settle: false, why: "content not known" };
  // The record is of the content hashed (the answer is for the fingerprint asked).
  const fp = fingerprint(i.hashed.size, i.hashed.mtimeMs, i.md5);
  if (c.record.fingerprint !== fp) return { settle: false, why: "other content" };
  if (i.event === DELETED) return { settle: false, why: "a delete" };
  const stat = i.observed.type === "file" ? i.observed.stat : undefined;
  if (!stat || !sameStat(stat, i.hashed)) return { settle: false, why: "changed since hashed" };
  if (!i.route) return { settle: false, why: "no rule sends it there" };
  if (i.route.processors) return { settle: false, why: "processed" };
  return {
    settle: true,
    record: c.record,
    local: { ...stat, md5: i.md5, chain: i.route.chain, processed: false },
  };
}

/** What {@linkcode settleDone} needs of the node. */
export interface SettleDeps {
  ctx: PipelineContext;
  log: Logger;
  /** The fleet's local tables: the jobs are settled there. */
  local: FleetLocal;
  /**
   * The route of a job's file (of `size` bytes) to its destination, as the
   * worker computes it; undefined when no rule sends it there (or the route
   * is not known yet: then no job is settled).
   */
  route(job: Job, source: Source, size: number): Route | undefined;
}

/**
 * Records the files of answers claimed ahead that another node uploaded
 * with the same content, and completes their jobs, in one transaction,
 * where running them would only adopt that record (see the module doc); they
 * count as adopted jobs do. Returns the entries settled (their answers are
 * used); the others' jobs run.
 */
export function settleDone(
  entries: readonly AheadEntry[],
  d: SettleDeps,
  now: number,
): AheadEntry[] {
  const { ctx, log } = d;
  if (ctx.options.dryRun || ctx.signal.aborted) return [];
  const items: { job: Job; row: SyncedRow; entry: AheadEntry }[] = [];
  for (const e of entries) {
    if (e.claim?.kind !== "done") continue;
    const source = ctx.config.sources.find((x) => x.name === e.job.source);
    if (!source) continue;
    let observed: Observed;
    try {
      observed = observe(e.job.input_file, source);
    } catch {
      continue;
    }
    const size = observed.type === "file" ? observed.stat?.size : undefined;
    const a = adoptable({
      event: e.job.event,
      claim: e.claim,
      handed: e.handed === true,
      md5: e.md5,
      hashed: e.stat,
      observed,
      route: size === undefined ? undefined : d.route(e.job, source, size),
    });
    if (a.settle) items.push({ job: e.job, row: adoptedRow(a.record, a.local), entry: e });
  }
  if (items.length === 0) return [];
  let settled: Set<Job>;
  try {
    settled = new Set(d.local.settleAdopted(items, now));
  } catch (e) {
    // They run and adopt then.
    log.debug(`Cannot record files other nodes uploaded: ${errorMessage(e)}`);
    return [];
  }
  const out: AheadEntry[] = [];
  const at = Date.now();
  for (const i of items) {
    if (!settled.has(i.job)) continue;
    out.push(i.entry);
    ctx.summary.skipped++;
    ctx.bus.emit({
      type: "job-done",
      server: i.job.server,
      file: i.job.input_file,
      result: "skipped",
      bytes: 0,
      ms: 0,
      lagMs: at - i.job.discovered_at,
    });
  }
  if (out.length > 0 && log.debugEnabled) {
    log.debug(`Recorded ${out.length} file(s) other nodes uploaded, without running them`);
  }
  return out;
}
