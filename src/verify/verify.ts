/**
 * The verify engine: compares the synced-files record with what each
 * destination really holds and with the source trees, and optionally
 * repairs the difference.
 *
 * What is checked, per server:
 * - every record: the remote file exists (via the transport's `Stater`),
 *   with the recorded checksum (MD5 or ETag) when the server reports one and
 *   the size when no processor changed the file; the source file still has
 *   the recorded size, mtime, ctime and inode (otherwise the record is
 *   **stale**); optionally the public URL answers an HTTP HEAD;
 * - every source file the rules send to the server has a record (otherwise
 *   it is **missing**);
 * - every remote file below the destination paths the rules use has a
 *   record (via the transport's `Lister`; otherwise it is **orphaned**).
 *
 * Work that is queued (the daemon has not finished it yet) is reported as
 * pending, not as a problem; a job that failed is a problem. Works while the
 * daemon runs: it reads a consistent snapshot of the database (WAL readers
 * never block the writer) and confirms every problem against fresh rows
 * before reporting it.
 *
 * `--repair` converges, also while the daemon runs: it hands the files to
 * the daemon's queue as MODIFIED jobs that always run (force 2), and the
 * daemon decides from the source as it is when each job runs — upload when
 * present, delete the remote copy when gone. That covers missing, stale and
 * mismatched files, records of deleted sources (within the delete guard),
 * and files the daemon has work for whose remote copy is missing or whose
 * job was running (its upload may have landed before the destination lost
 * it). Orphans are deleted remotely — only below the destination paths the
 * rules use, never a temp name, never a path an upload has announced; an
 * upload announced during the deletion is queued again.
 *
 * @module
 */
import * as fs from "node:fs";
import type { Config } from "../config/types.ts";
import { errorMessage } from "../errors.ts";
import { IgnoreMatcher } from "../filter/ignore.ts";
import { dataDirFor, workDirFor } from "../pipeline/paths.ts";
import { ReadModel } from "../store/read_model.ts";
import { Store } from "../store/store.ts";
import { isDir, walkSourceFiles } from "../watch/source_files.ts";
import { key, type RunContext, type SourceFile } from "./_context.ts";
import { PROBLEM_KINDS, type VerifyOptions, type VerifyReport } from "./report.ts";
import { verifyServer } from "./server.ts";

/** A daemon heartbeat older than this means no daemon runs. */
const HEARTBEAT_MS = 15_000;

/**
 * Verifies every server (or one) of `config` against the data directory's
 * record. Never throws for a server problem: each is reported.
 *
 * @example
 * ```ts ignore
 * import { verify } from "./verify.ts";
 * const report = await verify(config, { repair: true });
 * if (!report.ok) console.log(report.servers.flatMap((s) => s.problems));
 * ```
 */
export async function verify(config: Config, options: VerifyOptions = {}): Promise<VerifyReport> {
  const t0 = performance.now();
  const dataDir = dataDirFor(config, options.dataDir);
  const store = new Store(dataDir, { readOnly: !options.repair });
  try {
    return await run(config, store, dataDir, options, t0);
  } finally {
    store.close();
  }
}

function daemonRunning(store: Store): boolean {
  const d = store.getRuntime<{ pid: number | null; heartbeat?: number }>("daemon");
  if (!d?.pid || !d.heartbeat || Date.now() - d.heartbeat > HEARTBEAT_MS) return false;
  return Deno.build.os !== "linux" || fs.existsSync(`/proc/${d.pid}`);
}

async function run(
  config: Config,
  store: Store,
  dataDir: string,
  o: VerifyOptions,
  t0: number,
): Promise<VerifyReport> {
  const report: VerifyReport = {
    ok: true,
    daemonRunning: daemonRunning(store),
    repair: !!o.repair,
    sources: [],
    servers: [],
    warnings: [],
    repaired: { queued: 0, deleted: 0, held: 0 },
    ms: 0,
  };
  const ignore = new IgnoreMatcher({
    dirs: config.ignoredDirs,
    exclude: [dataDir, workDirFor(config, dataDir), ...(config.excludedDirs ?? [])],
  });

  // One consistent snapshot of the record and the queue, taken before the walk: every record
  // is then older than what the walk sees, and what changed since is confirmed against fresh rows.
  const read = new ReadModel(store);
  const snap = read.recordSnapshot();

  // The source trees, walked once.
  const files: SourceFile[] = [];
  const present = new Set<string>();
  for (const s of config.sources) {
    const here = isDir(s.scanPath);
    report.sources.push({ name: s.name, scanPath: s.scanPath, present: here });
    if (!here) {
      report.warnings.push(
        `Source "${s.name}" ("${s.scanPath}") is missing: its files are not compared and nothing is deleted`,
      );
      continue;
    }
    present.add(s.name);
    const walk = walkSourceFiles(s.scanPath, {
      ignore,
      onUnreadable: (dir, e) =>
        report.warnings.push(`Cannot read directory "${dir}": ${errorMessage(e)}`),
    });
    for (const f of walk) files.push({ ...f, source: s });
  }

  const known = new Set(config.servers.map((s) => s.name));
  const strays = [...new Set(snap.synced.map((r) => r.server).filter((n) => !known.has(n)))];
  if (strays.length > 0) {
    report.warnings.push(
      `Records for servers no longer in the configuration were not checked: ${strays.join(", ")}`,
    );
  }

  const ctx: RunContext = {
    config,
    store,
    read,
    dataDir,
    files,
    byPath: new Map(files.map((f) => [f.path, f])),
    present,
    queued: new Map(snap.queue.map((j) => [key(j.input_file, j.server, j.dest), j])),
    opts: o,
    signal: o.signal ?? new AbortController().signal,
    changes: [],
    report,
  };
  const now = Date.now();
  for (const server of config.servers) {
    if (o.server && server.name !== o.server) continue;
    report.servers.push(
      await verifyServer(ctx, server, {
        rows: snap.synced.filter((r) => r.server === server.name),
        intents: new Set(
          snap.intents.filter((i) => i.server === server.name).map((i) => i.remote_path),
        ),
      }),
    );
  }
  if (o.server && report.servers.length === 0) {
    report.warnings.push(`No server named "${o.server}" in the configuration`);
    report.ok = false;
  }
  if (o.repair && ctx.changes.length > 0) {
    store.tx(() => store.enqueue(ctx.changes, now, 0, config.settings.deleteDelay));
    report.repaired.queued = ctx.changes.length;
  }
  for (const s of report.servers) {
    for (const k of PROBLEM_KINDS) s.counts[k] = s.problems.filter((p) => p.kind === k).length;
    if (s.problems.length > 0) report.ok = false;
  }
  report.ms = Math.round(performance.now() - t0);
  return report;
}
