/**
 * The worker's question to the fleet before an upload: has another node
 * uploaded this content already, is one uploading it now, or is it ours?
 *
 * Contract:
 * - when the file's MD5 is known (computed by the plan, claimed ahead, or
 *   vouched for by this node's mirror of the shared record), the claim asks
 *   with the fingerprint `size:mtime:md5`;
 * - otherwise the file is not read first: the claim asks with its stat
 *   (`statAsk`, for a job found by a scan), which the shared store answers
 *   "done" when a record vouches for it as `vouchedMd5` would. A "mine"
 *   answer without a record of the key, or with one of another size or
 *   mtime, uploads as a single node does (the MD5 comes from the transfer);
 *   a record of the same size and mtime (an identical copy on another
 *   machine: another stat) makes the file read now, and if its fingerprint
 *   is the record's, the record is adopted and the lease given back, as a
 *   "done" answer would; so identical copies on several nodes are uploaded
 *   once;
 * - "busy" puts the job off; "done" records the other node's record here;
 * - a "mine" answer that took another node's lease over names that node
 *   (`takenOverFrom`), and the upload looks at the destination first.
 *
 * @module
 */
import { RequeueError } from "../errors.ts";
import type { Claim, SharedRecord } from "../store/shared/types.ts";
import type { Job } from "../store/store.ts";
import type { Fleet } from "./fleet.ts";
import { fingerprint, mayBeCopy, statAsk, unreadFingerprint, vouchedMd5 } from "./fleet_keys.ts";
import { busyWait } from "./fleet_ahead.ts";
import type { Fingerprint, PlanInput } from "./plan.ts";
import { md5Of, type SyncResult } from "./upload.ts";

/** What {@linkcode claimUpload} needs of the job being run. */
export interface ClaimInput {
  job: Job;
  server: string;
  rel: string;
  stat: { size: number; mtimeMs: number; ctimeMs: number; ino: number };
  chain: string;
  processed: boolean;
  /** The planner's input: the content MD5, when known or read here, is kept there for the upload. */
  input: PlanInput;
  signal: AbortSignal;
  /**
   * Set by {@linkcode claimUpload} when this node uploads under a lease it
   * took over from another node (`Claim`'s `from`): that node may have
   * stored the content already, so the upload looks at the destination first.
   */
  takenOverFrom?: string;
}

/** What {@linkcode claimUpload} needs of the fleet. */
export type ClaimFleet = Pick<Fleet, "claim" | "giveBack" | "md5For" | "vouched" | "adopt">;

/** What a "mine" answer asks of a job whose content was not read: upload, or read and compare. */
export function mineNext(
  claim: Extract<Claim, { kind: "mine" }>,
  stat: Fingerprint,
  known: boolean,
): "upload" | "compare" {
  // A fingerprint names size and mtime: another size or mtime is other content.
  return !known && claim.record && mayBeCopy(claim.record, stat) ? "compare" : "upload";
}

/**
 * Claims the upload. Returns a result when nothing is to be uploaded (its
 * `record` records here what another node published); undefined when this
 * node uploads. Throws a {@linkcode RequeueError} while another node holds
 * the file, and `FleetUnavailable` when the shared store cannot be reached.
 */
export async function claimUpload(
  fleet: ClaimFleet,
  c: ClaimInput,
): Promise<SyncResult | undefined> {
  const { job, stat } = c;
  const known = c.input.contentMd5 ?? fleet.md5For(job, c.server, stat) ??
    fleet.vouched(job, c.server, stat);
  if (known !== undefined) c.input.contentMd5 = known;
  const claim = known !== undefined
    ? await fleet.claim(job, c.server, fingerprint(stat.size, stat.mtimeMs, known))
    : await fleet.claim(job, c.server, unreadFingerprint(stat), statAsk(stat, job.force));
  switch (claim.kind) {
    case "mine": {
      if (claim.from !== undefined) c.takenOverFrom = claim.from;
      if (mineNext(claim, stat, known !== undefined) === "upload") return undefined;
      const md5 = c.input.contentMd5 = await md5Of(job.input_file, c.signal, stat.size);
      const record = claim.record!;
      if (record.fingerprint !== fingerprint(stat.size, stat.mtimeMs, md5)) return undefined;
      // Another node uploaded this content: nothing to upload, other nodes need not wait.
      fleet.giveBack(job);
      return adopted(fleet, c, record, md5);
    }
    case "busy":
      throw new RequeueError(
        `"${c.rel}" is being uploaded by node "${claim.node}"`,
        busyWait(claim.until, Date.now(), c.job.requeues),
      );
    case "done": {
      const md5 = known ?? vouchedMd5(claim.record, stat, job.force);
      if (md5 === undefined) {
        // Done by the stat, with a record whose fingerprint names no MD5: read the file and
        // ask with its content (no stat: the answer is decided by the fingerprint).
        c.input.contentMd5 = await md5Of(job.input_file, c.signal, stat.size);
        return claimUpload(fleet, c);
      }
      return adopted(fleet, c, claim.record, md5);
    }
  }
}

/** The result of a job that takes another node's record of its file's content `md5`. */
function adopted(fleet: ClaimFleet, c: ClaimInput, record: SharedRecord, md5: string): SyncResult {
  // Written in the transaction that completes the job (one commit for many jobs), not in
  // a commit of its own: a node sharing a folder adopts about as many files as it uploads.
  const local = { ...c.stat, md5, chain: c.chain, processed: c.processed };
  return {
    kind: "skipped",
    bytes: -1,
    remotePath: record.remote_path,
    adopted: true,
    record: () => fleet.adopt(record, local),
  };
}
