/**
 * Carrying out an `upload` plan: process (when the rule has processors),
 * transfer, and build the record. A destination that refuses the upload
 * because a recorded entry of the other type is in the way (a file `x`
 * that became a directory, or the reverse) gets that entry removed first,
 * as {@linkcode planTypeConflict} decides.
 *
 * @module
 */
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import type { Rule, Source } from "../config/types.ts";
import { ClassifiedError, errorMessage, RequeueError, SourceChanged } from "../errors.ts";
import { chainIsPerServer, runChain } from "../processors/chain.ts";
import { CREATED, MODIFIED } from "../store/events.ts";
import type { Job, SyncedRow } from "../store/store.ts";
import { parseExtras } from "../store/types.ts";
import {
  getTransportDef,
  isDirRemover,
  isStater,
  type PutOptions,
  type PutResult,
  type Transport,
} from "../transports/transport.ts";
import { formatBytes } from "../util/format.ts";
import { md5File } from "../util/hash.ts";
import { Semaphore } from "../util/semaphore.ts";
import type { PipelineContext } from "./context.ts";
import { type Conflict, type Fingerprint, planTypeConflict, remoteAncestors } from "./plan.ts";
import { relPath, remotePathFor, type Router } from "./routing.ts";
import type { ServerState } from "./servers.ts";
import { observe, statFile } from "./observe.ts";

/** What syncing one job did. */
export interface SyncResult {
  kind: "synced" | "deleted" | "skipped";
  bytes: number;
  remotePath: string;
  /** Records the upload: the caller runs it in the transaction that completes the job. */
  record?: () => void;
  /** The row `record` writes to `synced_files`, as written. */
  row?: SyncedRow;
  /** Remote paths whose intents `record` drops. */
  dropped?: string[];
  /** Runs once recorded (the log line). */
  done?: () => void;
  /**
   * `record` only copies a record the shared store holds already (another
   * node's upload): nothing to publish, so the job does not wait for the
   * bound on unpublished records.
   */
  adopted?: boolean;
}

/** What the worker knows when it decides to upload. */
export interface UploadInput {
  source: Source;
  job: Job;
  rule: Rule;
  stat: Fingerprint;
  synced: SyncedRow | undefined;
  chain: string;
  /** MD5 of the source file when already computed. */
  contentMd5: string | undefined;
  /** A remote path whose intent the pick committed (see `Worker.claim`). */
  claimed?: string | undefined;
  /** The node whose lease the fleet claim took over (see `ClaimInput.takenOverFrom`). */
  takenOverFrom?: string | undefined;
}

/** Processes and uploads files. */
export class Uploader {
  readonly #ctx: PipelineContext;
  readonly #router: Router;
  readonly #batch: <T>(fn: () => T) => Promise<T>;
  readonly #chainSlots: Semaphore;

  constructor(ctx: PipelineContext, router: Router, batch: <T>(fn: () => T) => Promise<T>) {
    this.#ctx = ctx;
    this.#router = router;
    this.#batch = batch;
    this.#chainSlots = new Semaphore(ctx.config.settings.maxSimultaneousProcessorChains);
  }

  /** Processes and transfers one file; returns what happened. */
  async upload(s: ServerState, transport: Transport, u: UploadInput): Promise<SyncResult> {
    const { job, source, rule, stat: fp, synced } = u;
    const { store, signal, workDir } = this.#ctx;
    const server = s.server;
    const rel = relPath(source, job.input_file);
    const relDir = rel.includes("/") ? rel.slice(0, rel.lastIndexOf("/")) : "";
    const processed = rule.processors.length > 0;
    const jobDir = path.join(workDir, `${job.id}-${crypto.randomUUID().slice(0, 8)}`);
    try {
      const out = processed ? await this.#process(u, rel, relDir, jobDir, server.name) : {
        path: job.input_file,
        name: path.basename(job.input_file),
        unprocessed: true,
        extras: [],
      } as Output;
      const remotePath = remotePathFor(job.dest, relDir, out.name);
      // An unprocessed file is the source file, stat'ed by the worker.
      const upload = out.unprocessed && out.path === job.input_file
        ? fp
        : statFile(out.path, source) ?? fs.statSync(out.path);
      const now = Date.now();
      // Committed (with the other writes of this tick, or with the pick) before the upload
      // starts, so a crash during the upload always leaves a trace that lets the leftover be
      // found and deleted.
      if (u.claimed !== remotePath) {
        await this.#batch(() =>
          store.addIntent(server.name, remotePath, now, job.input_file, job.dest)
        );
      }
      // Under a lease taken over, the node that held it may have stored this already.
      const found = u.takenOverFrom !== undefined && out.extras.length === 0
        ? await this.#storedAlready(
          s,
          transport,
          out.path,
          remotePath,
          upload.size,
          out.unprocessed ? u.contentMd5 : undefined,
        )
        : undefined;
      // No MD5 up front: transports that hash what they send (S3, Cloud Files, a local copy)
      // return it; for the others the file is hashed after the upload, before the check below
      // that it did not change meanwhile.
      const result = found ?? await this.#put(s, transport, job, out.path, remotePath, {
        signal,
        size: upload.size,
        unprocessed: out.unprocessed,
        ...(out.unprocessed && u.contentMd5 ? { md5: u.contentMd5 } : {}),
        ...(out.contentEncoding ? { contentEncoding: out.contentEncoding } : {}),
      });
      const md5 = result.md5 ?? (out.unprocessed ? u.contentMd5 : undefined) ??
        await md5Of(out.path, signal, upload.size);
      const sourceMd5 = out.unprocessed && out.path === job.input_file
        ? md5
        : u.contentMd5 ?? await md5Of(job.input_file, signal, fp.size);
      const extras: string[] = [];
      for (const x of out.extras) {
        const xp = remotePathFor(job.dest, relDir, x.name);
        await this.#batch(() =>
          store.addIntent(server.name, xp, Date.now(), job.input_file, job.dest)
        );
        const xs = fs.statSync(x.path);
        await this.#put(s, transport, job, x.path, xp, {
          signal,
          size: xs.size,
          unprocessed: false,
          ...(x.contentEncoding ? { contentEncoding: x.contentEncoding } : {}),
          ...(x.contentType ? { contentType: x.contentType } : {}),
        });
        extras.push(xp);
      }
      // The file changed while it was read: sync again rather than record stale content. The
      // change time counts too: a rewrite of the same size that restores the old mtime (a
      // "racy" rewrite) moves only the change time, and the record keeps the stat taken before
      // the read, so no later look would find the content it missed.
      const after = statFile(job.input_file, source);
      if (
        !after || after.size !== fp.size || after.mtimeMs !== fp.mtimeMs ||
        after.ctimeMs !== fp.ctimeMs || after.ino !== fp.ino
      ) {
        throw new SourceChanged(`"${rel}" changed during the transfer`);
      }
      const url = transport.url(remotePath);
      const row: SyncedRow = {
        input_file: job.input_file,
        transported_file_basename: out.name,
        url,
        server: server.name,
        dest: job.dest,
        remote_path: remotePath,
        size: fp.size,
        mtime_ms: fp.mtimeMs,
        ctime_ms: fp.ctimeMs,
        ino: fp.ino,
        md5,
        etag: result.etag ?? null,
        chain: u.chain,
        extras: extras.length > 0 ? JSON.stringify(extras) : null,
        synced_at: Date.now(),
        source_md5: sourceMd5,
      };
      const stale = [
        ...(synced && synced.remote_path !== remotePath ? [synced.remote_path] : []),
        ...parseExtras(synced?.extras).filter((x) => !extras.includes(x) && x !== remotePath),
      ];
      const keep = this.#ctx.config.settings.keepReplaced * 1000;
      const record = () => {
        store.putSynced(row);
        store.dropIntent(server.name, remotePath);
        for (const x of extras) store.dropIntent(server.name, x);
        // Replaced versions stay for keepReplaced seconds: cached pages still refer to them.
        store.retire(server.name, stale, Date.now() + keep, job.input_file);
        if (out.references) store.setDeps(job.input_file, server.name, job.dest, out.references);
        // A new URL re-runs every dependent; a first URL only those it was the last wait of
        // (a stylesheet waiting for many images runs once they are all there).
        const dependents = !synced
          ? store.dependents(job.input_file, server.name).filter((d) =>
            !store.waitsFurther(d.dependent, server.name, d.dest)
          )
          : synced.url !== url
          ? store.dependents(job.input_file, server.name)
          : [];
        if (dependents.length > 0) {
          store.enqueue(
            dependents.map((d) => ({
              input_file: d.dependent,
              source: this.#router.sourceOf(d.dependent)?.name ?? job.source,
              server: server.name,
              dest: d.dest,
              event: MODIFIED,
              force: 2,
            })),
            Date.now(),
          );
        }
      };
      const done = () =>
        s.log.enabled("info") && s.log.info(
          found
            ? `found ${remotePath} at the destination as node "${u.takenOverFrom}" stored it (${
              formatBytes(upload.size)
            }): not uploaded again`
            : `${job.event === CREATED ? "uploaded" : "updated"} ${remotePath} (${
              formatBytes(upload.size)
            }, ${Date.now() - now} ms)`,
        );
      // The caller records this with the job's completion, in one commit.
      return {
        kind: "synced",
        bytes: found ? 0 : upload.size,
        remotePath,
        record,
        row,
        dropped: [remotePath, ...extras],
        done,
      };
    } finally {
      // Off the event loop: a synchronous removal here stalled every other file's work.
      if (processed) await fsp.rm(jobDir, { recursive: true, force: true }).catch(() => {});
    }
  }

  async #process(
    u: UploadInput,
    rel: string,
    relDir: string,
    jobDir: string,
    serverName: string,
  ): Promise<Output> {
    const { job, source, rule } = u;
    const { store, signal, workDir } = this.#ctx;
    const perServer = chainIsPerServer(rule.processors, path.basename(job.input_file));
    await this.#chainSlots.acquire();
    try {
      const out = await runChain({
        originalPath: job.input_file,
        relDir,
        name: path.basename(job.input_file),
        source: {
          name: source.name,
          scanPath: source.scanPath,
          ...(source.documentRoot ? { documentRoot: source.documentRoot } : {}),
          ...(source.basePath ? { basePath: source.basePath } : {}),
        },
        ...(perServer ? { server: serverName } : {}),
        processors: rule.processors,
        workDir: jobDir,
        signal,
        lookupUrl: (input) => store.urlFor(input, perServer ? serverName : undefined),
        willSync: (input) =>
          this.#router.willSync(source, input, perServer ? serverName : undefined),
        // The stylesheet itself is `seen`: a wait that comes back to it is a cycle.
        isPending: (input) =>
          store.uploadUnderway(
            input,
            perServer ? serverName : undefined,
            new Set([job.input_file]),
          ),
      });
      return { ...out, extras: out.extras ?? [] } as Output;
    } catch (e) {
      if (e instanceof RequeueError) throw e;
      // A full working directory is not the file's fault: retry, do not mark it fatal.
      const free = freeBytes(workDir);
      if (
        free !== undefined &&
        (free < Math.max(u.stat.size, 1024 * 1024) ||
          /No space left|ENOSPC/.test(errorMessage(e)))
      ) {
        throw new ClassifiedError(
          `Cannot process "${rel}": the working directory "${workDir}" is full (${
            formatBytes(free)
          } free): ${errorMessage(e)}`,
          "retry",
          { cause: e },
        );
      }
      if (e instanceof ClassifiedError) throw e;
      throw new ClassifiedError(
        `Cannot process "${rel}" for server "${serverName}": ${errorMessage(e)}`,
        "fatal",
        { cause: e },
      );
    } finally {
      this.#chainSlots.release();
    }
  }

  /**
   * What the node whose lease this upload took over stored at `remotePath`
   * already, when it is this upload's content: the same size and MD5 as the
   * destination reports them (transports with `storedMd5`). Undefined when
   * the destination holds something else or nothing, or cannot tell: then
   * the file is uploaded.
   */
  async #storedAlready(
    s: ServerState,
    t: Transport,
    local: string,
    remotePath: string,
    size: number,
    knownMd5: string | undefined,
  ): Promise<PutResult | undefined> {
    if (!isStater(t) || !getTransportDef(s.server.transporter)?.storedMd5) return undefined;
    const { signal } = this.#ctx;
    // A failed look only costs the upload it would have saved.
    const st = await t.stat(remotePath, { signal, md5: true }).catch(() => null);
    if (!st || st.size !== size || st.md5 === undefined) return undefined;
    const md5 = knownMd5 ?? await md5Of(local, signal, size);
    if (st.md5.toLowerCase() !== md5) return undefined;
    return { size, md5, ...(st.etag ? { etag: st.etag } : {}) };
  }

  /**
   * Puts a file; when the destination refuses it and a recorded entry of the
   * other type is in the way, removes that entry and tries once more.
   */
  async #put(
    s: ServerState,
    t: Transport,
    job: Job,
    local: string,
    remotePath: string,
    options: PutOptions,
  ): Promise<PutResult> {
    const deletes = s.deletes;
    try {
      return await t.put(local, remotePath, options);
    } catch (e) {
      if (this.#ctx.signal.aborted) throw e;
      // A delete that finished meanwhile may have removed what was in the way (its record is
      // gone, so the conflict check cannot see it): one more attempt settles it.
      const cleared = await this.#clearTypeConflict(s, t, job, remotePath);
      if (!cleared && s.deletes === deletes) throw e;
      return await t.put(local, remotePath, options);
    }
  }

  /** Removes recorded entries of the other type at or above `remotePath`; false when none. */
  async #clearTypeConflict(
    s: ServerState,
    t: Transport,
    job: Job,
    remotePath: string,
  ): Promise<boolean> {
    const { store, signal } = this.#ctx;
    const server = s.server.name;
    const rows: [SyncedRow, Conflict["relation"]][] = [
      ...store.syncedAtPaths(server, remoteAncestors(remotePath)).map((r) =>
        [r, "ancestor"] as [SyncedRow, Conflict["relation"]]
      ),
      ...store.syncedBelow(server, remotePath).map((r) =>
        [r, "descendant"] as [SyncedRow, Conflict["relation"]]
      ),
    ].filter(([r]) => r.input_file !== job.input_file);
    const conflicts = rows.map(([r, relation]): Conflict => {
      const source = this.#router.sourceOf(r.input_file);
      return {
        inputFile: r.input_file,
        remotePath: r.remote_path,
        relation,
        observed: source ? safeObserve(r.input_file, source) : "missing",
      };
    });
    const decision = planTypeConflict(conflicts);
    if (decision.action === "none") return false;
    if (decision.action === "fail") {
      throw new ClassifiedError(
        `Cannot upload "${remotePath}" to server "${server}": ${decision.reason}`,
        "fatal",
      );
    }
    for (const c of decision.remove) {
      const row = rows.find(([r]) =>
        r.input_file === c.inputFile && r.remote_path === c.remotePath
      )![0];
      for (const p of [row.remote_path, ...parseExtras(row.extras)]) await t.delete(p, { signal });
      store.recordDeleted(row.input_file, row.server, row.dest);
      s.deletes++;
      s.log.info(`deleted ${row.remote_path} (replaced by an entry of another type)`);
    }
    // Directories the removed files leave empty, deepest first, where the destination keeps them.
    if (isDirRemover(t)) {
      const dirs = new Set<string>();
      for (const c of decision.remove) {
        if (c.relation !== "descendant") continue;
        for (const d of remoteAncestors(c.remotePath)) {
          if (d === remotePath || d.startsWith(remotePath + "/")) dirs.add(d);
        }
      }
      const deepest = [...dirs].sort((a, b) => b.split("/").length - a.split("/").length);
      for (const d of deepest) {
        await t.removeDir(d, { signal }).catch((e) =>
          s.log.debug(`Cannot remove directory "${d}": ${errorMessage(e)}`)
        );
      }
    }
    return true;
  }
}

/** The type at a path, unreadable counting as still there (never removed on a guess). */
function safeObserve(p: string, source: Source) {
  try {
    return observe(p, source).type;
  } catch {
    return "file" as const;
  }
}

interface Output {
  path: string;
  name: string;
  unprocessed: boolean;
  contentEncoding?: string;
  extras: { name: string; path: string; contentEncoding?: string; contentType?: string }[];
  references?: string[];
}

export { parseExtras };

/** Bytes available to us on the file system of `dir`, when the OS says. */
function freeBytes(dir: string): number | undefined {
  try {
    const s = fs.statfsSync(dir);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return undefined;
  }
}

/** MD5 (hex) of a source file, given the size the job stat'ed: the one file hash (`md5File`). */
export const md5Of: (p: string, signal: AbortSignal, size: number) => Promise<string> = md5File;

export { formatBytes } from "../util/format.ts";
