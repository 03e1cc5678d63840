/**
 * The worker's question to the fleet before an upload: has another node
 * uploaded this content already, is one uploading it now, or is it ours?
 *
 * @module
 */
import { RequeueError } from "../errors.ts";
import type { Job } from "../store/store.ts";
import type { Fleet } from "./fleet.ts";
import { fingerprint } from "./fleet_keys.ts";
import { busyWait } from "./fleet_ahead.ts";
import type { PlanInput } from "./plan.ts";
import { md5Of, type SyncResult } from "./upload.ts";

/** What {@linkcode claimUpload} needs of the job being run. */
export interface ClaimInput {
  job: Job;
  server: string;
  rel: string;
  stat: { size: number; mtimeMs: number; ctimeMs: number; ino: number };
  chain: string;
  processed: boolean;
  /** The planner's input: the content MD5 is computed once and kept there for the upload. */
  input: PlanInput;
  signal: AbortSignal;
}

/**
 * Claims the upload. Returns a result when nothing is to be uploaded (its
 * `record` records here what another node published); undefined when this
 * node uploads. Throws a {@linkcode RequeueError} while another node holds
 * the file, and `FleetUnavailable` when the shared store cannot be reached.
 */
export async function claimUpload(fleet: Fleet, c: ClaimInput): Promise<SyncResult | undefined> {
  const md5 = c.input.contentMd5 ??= fleet.md5For(c.job, c.server, c.stat) ??
    fleet.vouched(c.job, c.server, c.stat) ?? await md5Of(c.job.input_file, c.signal, c.stat.size);
  const claim = await fleet.claim(c.job, c.server, fingerprint(c.stat.size, c.stat.mtimeMs, md5));
  switch (claim.kind) {
    case "mine":
      return undefined;
    case "busy":
      throw new RequeueError(
        `"${c.rel}" is being uploaded by node "${claim.node}"`,
        busyWait(claim.until, Date.now(), c.job.requeues),
      );
    case "done": {
      // Written in the transaction that completes the job (one commit for many jobs), not in
      // a commit of its own: a node sharing a folder adopts about as many files as it uploads.
      const local = { ...c.stat, md5, chain: c.chain, processed: c.processed };
      return {
        kind: "skipped",
        bytes: -1,
        remotePath: claim.record.remote_path,
        adopted: true,
        record: () => fleet.adopt(claim.record, local),
      };
    }
  }
}
