/**
 * Cleaning up: remote leftovers of interrupted uploads and replaced
 * versions, stale intents after a job, source files deleted after sync
 * (`fileDeletionDelayAfterSync`), and the working directory.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Source } from "../config/types.ts";
import { errorMessage } from "../errors.ts";
import { matchingRules } from "../filter/filter.ts";
import type { IntentRow, Job } from "../store/store.ts";
import { tempName } from "../transports/paths.ts";
import type { Transport } from "../transports/transport.ts";
import type { PipelineContext } from "./context.ts";
import { relPath } from "./routing.ts";
import type { Servers, ServerState } from "./servers.ts";

/** Removes what the pipeline left behind. */
export class Janitor {
  readonly #ctx: PipelineContext;
  readonly #servers: Servers;
  readonly #storeTrouble: (e: unknown) => void;

  readonly #recordedElsewhere:
    | ((server: string, intent: IntentRow) => Promise<boolean>)
    | undefined;

  /**
   * `recordedElsewhere` (a fleet node): whether another node's record points
   * at a leftover's path (throws when that cannot be told).
   */
  constructor(
    ctx: PipelineContext,
    servers: Servers,
    storeTrouble: (e: unknown) => void,
    recordedElsewhere?: (server: string, intent: IntentRow) => Promise<boolean>,
  ) {
    this.#ctx = ctx;
    this.#servers = servers;
    this.#storeTrouble = storeTrouble;
    this.#recordedElsewhere = recordedElsewhere;
  }

  /**
   * Deletes remote leftovers of interrupted uploads (temp files) and of
   * replaced versions, before the server's queue runs. A leftover's path
   * that a record points at stays: this node's record, or in a fleet another
   * node's (a node down for a while finds the path uploaded by another node
   * meanwhile). When the shared store cannot tell, the leftover and its
   * intent stay for the next start.
   */
  async collectGarbage(s: ServerState): Promise<void> {
    const store = this.#ctx.store;
    const intents = store.intents(s.server.name);
    if (intents.length === 0) return;
    const t = await this.#servers.transport(s);
    const signal = this.#ctx.signal;
    for (const intent of intents) {
      const p = intent.remote_path;
      let inUse = store.remotePathInUse(s.server.name, p);
      if (!inUse && this.#recordedElsewhere) {
        try {
          inUse = await this.#recordedElsewhere(s.server.name, intent);
        } catch (e) {
          s.log.info(`kept leftover "${p}" until the shared store can tell: ${errorMessage(e)}`);
          continue;
        }
      }
      if (!inUse) {
        await t.delete(p, { signal });
        s.log.info(`removed leftover "${p}"`);
      }
      const dir = p.includes("/") ? p.slice(0, p.lastIndexOf("/") + 1) : "";
      const tmp = tempName(p);
      if (tmp.startsWith(dir)) await t.delete(tmp, { signal });
      store.dropIntent(s.server.name, p);
    }
  }

  /**
   * After a job: remote paths this file was written to that are not its
   * recorded copy any more (an upload overtaken by a delete, a rename by a
   * processor) are deleted, with any temp file.
   */
  async dropStaleIntents(s: ServerState, t: Transport, job: Job): Promise<void> {
    const store = this.#ctx.store;
    const intents = store.intentsFor(job.input_file, s.server.name, job.dest);
    if (intents.length === 0) return;
    const signal = this.#ctx.signal;
    for (const p of intents) {
      if (!store.remotePathInUse(s.server.name, p)) await t.delete(p, { signal });
      await t.delete(tempName(p), { signal });
      store.dropIntent(s.server.name, p);
    }
  }

  /** Schedules the source file's deletion when its rule asks for it and every destination has it. */
  afterSync(job: Job, source: Source): void {
    const { config, store } = this.#ctx;
    if (!config.rules.some((r) => r.deletionDelay !== undefined)) return;
    const rel = relPath(source, job.input_file);
    const rules = matchingRules(config.rules, source, { path: job.input_file, rel }).filter((r) =>
      r.deletionDelay !== undefined &&
      r.destinations.some((d) => d.server === job.server && d.path === job.dest)
    );
    if (rules.length === 0) return;
    if (store.hasPendingUpload(job.input_file)) return;
    const delay = Math.min(...rules.map((r) => r.deletionDelay!));
    store.scheduleSourceDeletion(job.input_file, Date.now() + delay * 1000);
    if (delay === 0) this.sourceDeletions().catch((e) => this.#storeTrouble(e));
  }

  /** Deletes the source files whose deletion is due. */
  async sourceDeletions(): Promise<void> {
    const { store, log } = this.#ctx;
    for (const p of store.dueSourceDeletions(Date.now())) {
      // Forget the file first: a crash before the unlink re-syncs it, never deletes it remotely.
      store.tx(() => {
        store.deleteFile(p);
        store.unscheduleSourceDeletion(p);
      });
      try {
        await Deno.remove(p);
        log.info(`Deleted source file "${p}" after sync (fileDeletionDelayAfterSync)`);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) {
          log.warn(`Cannot delete source file "${p}": ${errorMessage(e)}`);
        }
      }
    }
  }
}

/**
 * Empties the working directory, keeping the directory itself: it may be a
 * mount point (a tmpfs for processing), which cannot be removed.
 */
export function emptyDir(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) fs.rmSync(path.join(dir, n), { recursive: true, force: true });
}
