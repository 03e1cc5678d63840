/**
 * Running one job: gather what the planner needs (the record, the source
 * entry, the route, a move candidate), ask {@linkcode plan}, carry the
 * decision out (skip, delete, move, upload), record the outcome with the
 * job's completion, and turn failures into retries by the retry policy
 * (`failures.ts`). At a job's pick, its intent is claimed (`pick_intents.ts`)
 * and its store reads are done (`pick_reads.ts`).
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Rule, Server, Source } from "../config/types.ts";
import { ClassifiedError, errorMessage, RequeueError } from "../errors.ts";
import { DELETED } from "../store/events.ts";
import type { Job, SyncedRow } from "../store/store.ts";
import { isMover, type Transport } from "../transports/transport.ts";
import type { PipelineContext } from "./context.ts";
import { Failures } from "./failures.ts";
import type { Fleet } from "./fleet.ts";
import { type ClaimInput, claimUpload } from "./fleet_claim.ts";
import type { Janitor } from "./janitor.ts";
import { observe } from "./observe.ts";
import { PickIntents } from "./pick_intents.ts";
import { PickReads } from "./pick_reads.ts";
import { type MoveCandidate, plan, type PlanInput } from "./plan.ts";
import { relPath, remotePathFor, type Router } from "./routing.ts";
import type { Servers, ServerState } from "./servers.ts";
import { isStoreError, type Sources } from "./sources.ts";
import { md5Of, parseExtras, type SyncResult, Uploader } from "./upload.ts";

/** A record younger than this after the file's mtime may hide a same-tick rewrite. */
export const RACY_MS = 2000;

/** What the worker uses of the other stages. */
export interface WorkerDeps {
  servers: Servers;
  router: Router;
  sources: Sources;
  janitor: Janitor;
  /** Runs a write in the tick's record transaction. */
  batch<T>(fn: () => T): Promise<T>;
  /** Jobs whose outcome could not be recorded. */
  unsettled(job: Job): void;
  storeTrouble(e: unknown): void;
  /** The link to the fleet's shared store; undefined on a machine on its own. */
  fleet?: Fleet;
}

/** Runs jobs. */
export class Worker {
  readonly #ctx: PipelineContext;
  readonly #d: WorkerDeps;
  readonly #uploader: Uploader;
  readonly #failures: Failures;
  readonly #intents: PickIntents;
  readonly #reads: PickReads;
  /** Jobs whose upload started (it may have written to the remote path). */
  readonly #uploading = new WeakSet<Job>();

  constructor(ctx: PipelineContext, deps: WorkerDeps) {
    this.#ctx = ctx;
    this.#d = deps;
    this.#uploader = new Uploader(ctx, deps.router, deps.batch);
    this.#failures = new Failures(ctx);
    this.#intents = new PickIntents(ctx);
    this.#reads = new PickReads(ctx);
  }

  /**
   * Called in the transaction that picks `jobs`: claims the intent of each
   * upload's plain name ({@linkcode PickIntents}), then does each job's store
   * reads ({@linkcode PickReads}). A fleet job claims its intent and does its
   * reads only under the lease of its file, claimed ahead for it (an intent
   * never comes before the lease; a job without one reads when it runs); its
   * intent goes again when the job fails before its upload started (see
   * {@linkcode Worker.runJob}), since another node may then write that path.
   * What another node published is recorded here only by the job itself,
   * after its reads (`fleet_claim.ts`), so they stay true until it runs.
   */
  claim(s: ServerState, jobs: readonly Job[]): void {
    const fleet = this.#d.fleet;
    const now = Date.now();
    const server = s.server.name;
    for (const job of jobs) {
      if (fleet && !fleet.holds(job, server)) continue;
      const source = this.#ctx.config.sources.find((x) => x.name === job.source);
      if (!source) continue;
      this.#intents.claim(server, source, job, now);
      this.#reads.atPick(server, job);
    }
  }

  /**
   * Called in a transaction for jobs picked that will not start now: drops
   * the intents their pick claimed (nothing was written there by them) and
   * what it read.
   */
  unclaim(s: ServerState, jobs: readonly Job[]): void {
    for (const job of jobs) {
      this.#reads.forget(job);
      this.#intents.drop(s.server.name, job);
    }
  }

  /**
   * Runs one job to its recorded outcome (success, retry or failure).
   * `release` gives the job's slots back once it uses the transport no more
   * and only waits for its record to be committed.
   */
  async runJob(s: ServerState, job: Job, release: () => void = () => {}): Promise<void> {
    const { store, bus, summary } = this.#ctx;
    const started = Date.now();
    const source = this.#ctx.config.sources.find((x) => x.name === job.source);
    const fleet = this.#d.fleet;
    let settled = false;
    try {
      if (!source) {
        // The source left the config: leave its files alone.
        store.complete(job);
        return;
      }
      const transport = await this.#d.servers.transport(s);
      const claimed = this.#intents.claimed(job);
      const leftovers = { value: true };
      const result = await this.#execute(s, transport, job, claimed, leftovers);
      // The claimed path was not written when the job wrote elsewhere or nothing (a skip, a
      // delete, a move records it): its intent goes with the completion.
      const ours = new Set(result.dropped);
      const unwritten = claimed !== undefined && !ours.has(claimed) ? claimed : undefined;
      if (unwritten) ours.add(unwritten);
      // A fleet node bounds the uploads it has recorded and not yet published; a job that
      // waits for that gives its slots to the next one, unless leftovers still need them.
      if (fleet && result.record && !result.adopted) {
        await fleet.admitRecord(job, leftovers.value ? undefined : release);
      }
      const finish = () => {
        fleet?.recorded(job, s.server.name, result.kind, result.row);
        if (unwritten) store.dropIntent(s.server.name, unwritten);
        store.complete(job);
        if (result.bytes >= 0) {
          store.serverOk(s.server.name, result.bytes, Date.now());
          store.addTransfer({
            server: s.server.name,
            input_file: job.input_file,
            remote_path: result.remotePath,
            event: job.event,
            bytes: result.bytes,
            ms: Date.now() - started,
            lag_ms: Date.now() - job.discovered_at,
          }, Date.now());
        }
      };
      const record = result.record;
      // With no intents of earlier attempts (checked again in the commit: the check at the
      // start spared a read of its own), one transaction records the upload and completes the
      // job. The transfer is over: the slot goes to the next job now, picked in the commit that
      // records this one.
      if (!leftovers.value) release();
      const recorded = !leftovers.value && await this.#d.batch(() => {
        if (!store.intentsFor(job.input_file, s.server.name, job.dest).every((p) => ours.has(p))) {
          return false;
        }
        record?.();
        finish();
        return true;
      });
      if (!recorded) {
        // Leftovers of earlier attempts go first: recorded, cleaned up, then completed.
        if (record || unwritten) {
          await this.#d.batch(() => {
            record?.();
            if (unwritten) store.dropIntent(s.server.name, unwritten);
          });
        }
        await this.#d.janitor.dropStaleIntents(s, transport, job);
        await this.#d.batch(finish);
      }
      settled = true;
      result.done?.();
      if (s.pacer.succeed()) this.#serverBack(s);
      else if (s.refused) {
        s.refused = undefined;
        this.#serverBack(s);
      }
      if (result.kind === "deleted") summary.deleted++;
      else if (result.kind === "synced") summary.synced++;
      else summary.skipped++;
      bus.emit({
        type: "job-done",
        server: s.server.name,
        file: job.input_file,
        result: result.kind,
        bytes: Math.max(result.bytes, 0),
        ms: Date.now() - started,
        lagMs: Date.now() - job.discovered_at,
      });
      if (result.kind === "synced") this.#d.janitor.afterSync(job, source);
    } catch (err) {
      try {
        // The database itself failed: not the file's fault; the job goes back once it can.
        if (isStoreError(err)) throw err;
        const claimed = this.#intents.claimed(job);
        if (fleet && claimed !== undefined && !this.#uploading.has(job)) {
          // Nothing was written to the path this job claimed at its pick, and another node may
          // write it before this job runs again: the intent must not make that copy a leftover.
          store.dropIntent(s.server.name, claimed);
        }
        this.#failures.record(s, job, err);
      } catch (e) {
        // The outcome cannot be recorded (disk full): the job goes back once it can.
        this.#d.unsettled(job);
        s.log.debug(
          `"${job.input_file}" goes back: its outcome was not recorded: ${errorMessage(e)}`,
        );
        this.#d.storeTrouble(e);
      }
    } finally {
      fleet?.finished(job, settled);
    }
  }

  /**
   * Tries one file that a server refused again, when its time has come:
   * nothing else tells that the server was fixed (a folder made writable
   * again) while no other file goes there. The pause doubles up to 5 min.
   */
  probeRefused(now: number): void {
    for (const s of this.#d.servers.values()) {
      const r = s.refused;
      if (!r || now < r.probeAt) continue;
      r.probeAt = now + r.delayMs;
      r.delayMs = Math.min(r.delayMs * 2, 5 * 60_000);
      if (this.#ctx.store.retryJob(r.job, now)) s.log.debug("Trying a refused file again");
    }
  }

  /** A server that was failing works again: what failed because of it is retried now. */
  #serverBack(s: ServerState) {
    const n = this.#ctx.store.retryAfterFix(Date.now(), s.server.name);
    s.log.info(
      `Server is reachable again${n > 0 ? `; retrying ${n} file(s) that failed meanwhile` : ""}`,
    );
  }

  /**
   * The rule that sends a job's file (of `size` bytes) to the job's
   * destination on `server`, and its chain signature; undefined when no
   * rule sends it there now.
   */
  route(
    server: Server,
    source: Source,
    job: Job,
    size: number,
  ): { rule: Rule; chain: string } | undefined {
    const rel = relPath(source, job.input_file);
    const rule = this.#d.router.ruleFor(
      source,
      { path: job.input_file, rel, size },
      server.name,
      job.dest,
    );
    return rule && { rule, chain: this.#d.router.chainSignature(rule, server, job.dest) };
  }

  /** Plans one job and carries the plan out. */
  async #execute(
    s: ServerState,
    transport: Transport,
    job: Job,
    claimed: string | undefined,
    leftovers: { value: boolean },
  ): Promise<SyncResult> {
    const { store, signal } = this.#ctx;
    const source = this.#ctx.config.sources.find((x) => x.name === job.source)!;
    const server = s.server;
    const observed = job.event === DELETED
      ? { type: "missing" as const }
      : observe(job.input_file, source);
    const stat = observed.type === "file" ? observed.stat : undefined;
    const rel = relPath(source, job.input_file);
    const route = stat ? this.route(server, source, job, stat.size) : undefined;
    const rule = route?.rule;
    const chain = route?.chain;
    const canMove = isMover(transport);
    const moves = !!stat && !!rule && rule.processors.length === 0 && canMove;
    // Read at the pick, or now (see {@linkcode PickReads}).
    const { synced, row, intents } = this.#reads.take(server.name, job, moves ? stat : undefined);
    // Intents of earlier attempts (not the one the pick claimed): recorded, cleaned up, then
    // completed. Only this job writes intents of this file at this destination while it runs.
    leftovers.value = intents.some((p) => p !== claimed);
    let moveFrom: (MoveCandidate & { row: SyncedRow }) | undefined;
    if (row) {
      moveFrom = {
        row,
        inputFile: row.input_file,
        remotePath: row.remote_path,
        size: row.size ?? -1,
        mtimeMs: row.mtime_ms ?? -1,
        md5: row.source_md5 ?? row.md5,
        sourceExists: fs.existsSync(row.input_file),
      };
    }
    const input: PlanInput = {
      event: job.event,
      force: job.force,
      observed,
      rootPresent: stat ? true : this.#d.sources.rootPresent(source),
      held: false,
      stored: synced && {
        size: synced.size ?? -1,
        mtimeMs: synced.mtime_ms ?? -1,
        ctimeMs: synced.ctime_ms ?? -1,
        ino: synced.ino ?? -1,
        md5: synced.md5,
        sourceMd5: synced.source_md5 ?? null,
        chain: synced.chain,
      },
      route: chain !== undefined ? { chain, processors: rule!.processors.length > 0 } : undefined,
      racy: !!synced && (synced.mtime_ms ?? 0) >= synced.synced_at - RACY_MS,
      canMove,
      moveFrom,
    };
    let p = plan(input);
    // A fleet's claim of the upload, once asked (see #claim).
    let fleetClaim: { adopted?: SyncResult; takenOverFrom?: string } | undefined;
    if (p.action === "hash-check") {
      input.contentMd5 = await md5Of(job.input_file, signal, stat!.size);
      p = plan(input);
    }
    if (s.log.debugEnabled) s.log.debug(`"${rel}": ${p.action} (${p.reason})`);
    switch (p.action) {
      case "wait":
        throw new RequeueError(
          p.cause === "root-missing"
            ? `Source "${source.name}" is missing ("${source.scanPath}"): nothing is deleted until it is back`
            : p.reason,
          p.delayMs,
        );
      case "skip":
        if (synced && input.contentMd5 !== undefined) {
          // Compared and unchanged: the record is confirmed now, so it is no longer racy.
          store.confirmSynced(job.input_file, server.name, job.dest, Date.now(), input.contentMd5);
        }
        return { kind: "skipped", bytes: -1, remotePath: synced?.remote_path ?? "" };
      case "delete":
        return await this.#delete(s, transport, job, synced!);
      case "move": {
        // In a fleet the new name is claimed first, as an upload would be: of the nodes that
        // share the folder and see the rename, one moves the file (or uploads it when the move
        // fails); the others find its record.
        const claimed = await this.#claim(server.name, job, rel, stat!, chain!, rule!, input);
        if (claimed?.adopted) return claimed.adopted;
        const moved = await this.#move(s, transport, job, rel, moveFrom!.row, stat!);
        if (moved) return moved;
        fleetClaim = claimed;
        break;
      }
      case "hash-check":
        throw new ClassifiedError(`Cannot decide about "${rel}": ${p.reason}`, "retry");
    }
    fleetClaim ??= await this.#claim(server.name, job, rel, stat!, chain!, rule!, input);
    if (fleetClaim?.adopted) return fleetClaim.adopted;
    const takenOverFrom = fleetClaim?.takenOverFrom;
    this.#uploading.add(job);
    const uploaded = await this.#uploader.upload(s, transport, {
      source,
      job,
      rule: rule!,
      stat: stat!,
      synced,
      chain: chain!,
      contentMd5: input.contentMd5,
      claimed,
      takenOverFrom,
    });
    // Another node may have taken the file over meanwhile: then this node records nothing.
    await this.#d.fleet?.confirm(job);
    return uploaded;
  }

  async #delete(
    s: ServerState,
    transport: Transport,
    job: Job,
    synced: SyncedRow,
  ): Promise<SyncResult> {
    const store = this.#ctx.store;
    const paths = [synced.remote_path, ...parseExtras(synced.extras)];
    // A unique name (not the source's) may still be referenced by cached pages: keep it a while.
    const keep = synced.transported_file_basename !== path.basename(job.input_file)
      ? this.#ctx.config.settings.keepReplaced * 1000
      : 0;
    for (const p of keep > 0 ? [] : paths) {
      if (store.remotePathInUse(s.server.name, p) && p !== synced.remote_path) continue;
      await transport.delete(p, { signal: this.#ctx.signal });
    }
    s.deletes++;
    store.tx(() => {
      if (keep > 0) store.retire(s.server.name, paths, Date.now() + keep, job.input_file);
      store.recordDeleted(job.input_file, s.server.name, job.dest);
    });
    s.log.info(`deleted ${synced.remote_path}`);
    return { kind: "deleted", bytes: 0, remotePath: synced.remote_path };
  }

  /**
   * In a fleet, claims the upload of a job's file (`claimUpload`): `adopted`
   * when another node uploaded this content (nothing to do here); otherwise
   * this node holds the lease, and `takenOverFrom` names the node whose
   * lease it took over. Undefined without a fleet.
   */
  async #claim(
    server: string,
    job: Job,
    rel: string,
    stat: { size: number; mtimeMs: number; ctimeMs: number; ino: number },
    chain: string,
    rule: Rule,
    input: PlanInput,
  ): Promise<{ adopted?: SyncResult; takenOverFrom?: string } | undefined> {
    if (!this.#d.fleet) return undefined;
    const claim: ClaimInput = {
      job,
      server,
      rel,
      stat,
      chain,
      processed: rule.processors.length > 0,
      input,
      signal: this.#ctx.signal,
    };
    const adopted = await claimUpload(this.#d.fleet, claim);
    return adopted ? { adopted } : { takenOverFrom: claim.takenOverFrom };
  }

  /** A rename: moves the old name's copy server-side; undefined when the move failed (upload instead). */
  async #move(
    s: ServerState,
    transport: Transport,
    job: Job,
    rel: string,
    from: SyncedRow,
    stat: { size: number; mtimeMs: number; ctimeMs: number; ino: number },
  ): Promise<SyncResult | undefined> {
    if (!isMover(transport)) return undefined;
    const remotePath = remotePathFor(job.dest, "", rel);
    // Announced before the remote path is written, as uploads are: verify never takes the
    // moved file for an orphan, and a crash before the record leaves a trace.
    await this.#d.batch(() =>
      this.#ctx.store.addIntent(s.server.name, remotePath, Date.now(), job.input_file, job.dest)
    );
    try {
      await transport.move(from.remote_path, remotePath, { signal: this.#ctx.signal });
      this.#ctx.store.recordMove(from, {
        ...from,
        input_file: job.input_file,
        transported_file_basename: path.posix.basename(remotePath),
        url: transport.url(remotePath),
        remote_path: remotePath,
        size: stat.size,
        mtime_ms: stat.mtimeMs,
        ctime_ms: stat.ctimeMs,
        ino: stat.ino,
        synced_at: Date.now(),
      });
      s.log.info(`moved "${from.remote_path}" to "${remotePath}"`);
      return { kind: "synced", bytes: 0, remotePath };
    } catch (e) {
      s.log.debug(`Server-side move failed, uploading instead: ${errorMessage(e)}`);
      return undefined;
    }
  }
}
