/**
 * The intent a pick writes for each upload: the path an upload without
 * processors writes (the file's own name at its destination), written in
 * the transaction that picks the job, so that upload needs no commit of its
 * own before it starts.
 *
 * Contract: only a new intent counts ({@linkcode PickIntents.claimed}):
 * nothing of an earlier attempt is behind it, so when the job writes
 * elsewhere (processors rename the file) or nothing at all, its runner drops
 * the intent with the job's completion, without touching the server; a job
 * that will not start drops it in the transaction that puts the job back
 * ({@linkcode PickIntents.drop}). Deletes claim nothing, nor does a name that
 * is not safe (the job fails on its own).
 *
 * @module
 */
import * as path from "node:path";
import type { Source } from "../config/types.ts";
import { DELETED } from "../store/events.ts";
import type { Job } from "../store/store.ts";
import type { PipelineContext } from "./context.ts";
import { relPath, remotePathFor } from "./routing.ts";

/** The intents picked jobs claimed at their pick. */
export class PickIntents {
  readonly #ctx: PipelineContext;
  /** The intent each picked job wrote in its pick's commit. */
  readonly #claims = new WeakMap<Job, string>();

  constructor(ctx: PipelineContext) {
    this.#ctx = ctx;
  }

  /** Called in the transaction that picks `job` of `source` for `server`, at time `now`. */
  claim(server: string, source: Source, job: Job, now: number): void {
    if (job.event === DELETED) return;
    let remotePath: string | undefined;
    try {
      const rel = relPath(source, job.input_file);
      const relDir = rel.includes("/") ? rel.slice(0, rel.lastIndexOf("/")) : "";
      remotePath = remotePathFor(job.dest, relDir, path.basename(job.input_file));
    } catch {
      // An unsafe name: the job fails on its own.
    }
    if (
      remotePath !== undefined &&
      this.#ctx.store.claimIntent(server, remotePath, now, job.input_file, job.dest)
    ) {
      this.#claims.set(job, remotePath);
    }
  }

  /** The remote path whose intent the pick of `job` wrote, if it wrote one. */
  claimed(job: Job): string | undefined {
    return this.#claims.get(job);
  }

  /** Called in a transaction for `job`, picked for `server`, that will not start now. */
  drop(server: string, job: Job): void {
    const claimed = this.#claims.get(job);
    if (claimed === undefined) return;
    this.#ctx.store.dropIntent(server, claimed);
    this.#claims.delete(job);
  }
}
