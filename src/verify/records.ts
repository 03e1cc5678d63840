/**
 * Verify, step 1: every record against its source file and the remote file.
 *
 * A record is **stale** when its source changed or was deleted since it was
 * synced, **missing** when the remote file (or a precompressed variant) is
 * gone, a **mismatch** when the remote checksum or size differs. Each
 * problem is confirmed against fresh rows before it is reported: the daemon
 * may have moved on since the snapshot.
 *
 * A file the daemon has work for is pending, not a problem; `--repair`
 * still makes that work converge when the destination lost the file: a job
 * that finds its source unchanged skips whatever the destination holds,
 * and a running job may have put the file before the destination lost it.
 *
 * @module
 */
import type { Source } from "../config/types.ts";
import { errorMessage } from "../errors.ts";
import { matchingRules } from "../filter/filter.ts";
import { DELETED } from "../store/events.ts";
import type { Job, SyncedRow } from "../store/store.ts";
import { isStater, type RemoteStat } from "../transports/transport.ts";
import { mapLimit } from "../util/pool.ts";
import { type FileStat, relPath } from "../watch/source_files.ts";
import {
  key,
  parseExtras,
  pendingJob,
  queueRepair,
  type ServerContext,
  sourceOf,
} from "./_context.ts";
import type { Problem } from "./report.ts";

/** A source file's fingerprint as the pipeline records it. */
function sameFingerprint(row: SyncedRow, st: FileStat): boolean {
  return row.size === st.size && row.mtime_ms === st.mtimeMs && row.ctime_ms === st.ctimeMs &&
    row.ino === st.ino;
}

function checksumProblem(row: SyncedRow, st: RemoteStat): string | undefined {
  if (row.md5 && st.md5) {
    return row.md5.toLowerCase() === st.md5.toLowerCase()
      ? undefined
      : `remote MD5 ${st.md5} differs from the recorded ${row.md5}`;
  }
  const unq = (e: string) => e.replace(/^W\//, "").replace(/"/g, "");
  if (row.etag && st.etag && unq(row.etag) !== unq(st.etag)) {
    return `remote ETag ${st.etag} differs from the recorded ${row.etag}`;
  }
  return undefined;
}

/**
 * Checks every record of the server; with `--repair`, queues uploads for
 * stale or missing files and deletions for deleted sources (within the
 * delete guard).
 */
export async function checkRecords(c: ServerContext): Promise<void> {
  const { config, sv, server } = c;
  const repair = !!c.opts.repair;
  const sourceGone: { row: SyncedRow; source: Source; problem: Problem }[] = [];
  let serverDown: string | undefined;
  await mapLimit(c.rows, c.limit, async (row) => {
    const source = sourceOf(config, row.input_file);
    const job = pendingJob(c, row.input_file, row.dest);
    if (job) {
      sv.pending++;
      if (repair && source && job.event !== DELETED && await lostRemote(c, row, job)) {
        queueRepair(c, row, source);
      }
      return;
    }
    const checked = await checkRecord(c, row, source, () => !!serverDown).catch((e) => {
      serverDown ??= errorMessage(e);
      return undefined;
    });
    if (!checked) {
      sv.ok++;
      return;
    }
    // Confirm against fresh rows: the daemon may have moved on since the snapshot. The record
    // and its job are read together (an upload is recorded and its job completed in one commit).
    const { synced: fresh, job: now } = c.read.fileState(row.input_file, row.server, row.dest);
    if (!fresh || fresh.synced_at !== row.synced_at) {
      // Deleted or synced again meanwhile (by work queued after the snapshot). A new upload may
      // have landed before the destination lost it: the queued job decides when it runs.
      if (fresh && repair && source) queueRepair(c, row, source);
      sv.ok++;
      return;
    }
    const { problem, gone } = checked;
    if (now?.state === "queued") {
      sv.pending++;
      // Queued meanwhile: it may find the source unchanged and skip what the destination lost.
      if (repair && source && !gone) queueRepair(c, row, source);
      return;
    }
    if (gone && source) sourceGone.push({ row, source, problem });
    else if (repair && source) {
      queueRepair(c, row, source);
      problem.repaired = "queued for upload";
    }
    sv.problems.push(problem);
  });
  if (serverDown) {
    sv.problems.push({
      kind: "error",
      reason: `Cannot check files on server "${server.name}": ${serverDown}`,
    });
  }
  if (repair && sourceGone.length > 0) queueDeletions(c, sourceGone);
}

/**
 * Whether `--repair` must make a pending job upload: it was running at the
 * snapshot (its upload may have landed before the destination lost the
 * file, and be recorded only now), or the remote copy is missing or differs
 * (a job that finds the source unchanged would skip it).
 */
async function lostRemote(c: ServerContext, row: SyncedRow, job: Job): Promise<boolean> {
  if (job.running) return true;
  if (!isStater(c.transport)) return false;
  try {
    const st = await c.transport.stat(row.remote_path, { signal: c.signal });
    return !st || checksumProblem(row, st) !== undefined;
  } catch {
    // The server cannot be asked: the records' own check reports it.
    return false;
  }
}

/**
 * Deletions that never reached the server: queued per source, within the
 * delete guard, as jobs that delete the remote copy if the source is still
 * gone when they run.
 */
function queueDeletions(
  c: ServerContext,
  sourceGone: { row: SyncedRow; source: Source; problem: Problem }[],
): void {
  const bySource = new Map<string, typeof sourceGone>();
  for (const g of sourceGone) {
    const l = bySource.get(g.source.name) ?? [];
    l.push(g);
    bySource.set(g.source.name, l);
  }
  const s = c.config.settings;
  for (const [name, list] of bySource) {
    const known = c.rows.filter((r) => sourceOf(c.config, r.input_file)?.name === name).length;
    if (list.length >= s.deleteGuardMinFiles && list.length > s.deleteGuardShare * known) {
      c.report.repaired.held += list.length;
      c.report.warnings.push(
        `Delete guard: source "${name}" lost ${list.length} of ${known} synced files on server "${c.server.name}"; ` +
          `no deletion was queued (run "fileconveyor sync --approve-deletes" if this is intended)`,
      );
      for (const g of list) g.problem.repaired = "held by the delete guard";
      continue;
    }
    for (const g of list) {
      queueRepair(c, g.row, g.source);
      g.problem.repaired = "queued for deletion";
    }
  }
}

/**
 * Compares one record with its source file and the remote file; returns the
 * problem, if any (`gone`: the source file was deleted). Throws when the
 * server cannot be asked.
 */
async function checkRecord(
  c: ServerContext,
  row: SyncedRow,
  source: Source | undefined,
  skipRemote: () => boolean,
): Promise<{ problem: Problem; gone: boolean } | undefined> {
  const { config, transport: t } = c;
  const base = { file: row.input_file, dest: row.dest, remotePath: row.remote_path };
  const rel = source ? relPath(source.scanPath, row.input_file) : "";
  if (source && c.present.has(source.name)) {
    const sf = c.byPath.get(row.input_file);
    if (!sf) {
      // A rule that deletes sources after sync leaves records without sources on purpose.
      const deletesSources = matchingRules(config.rules, source, { path: row.input_file, rel })
        .some((r) => r.deletionDelay !== undefined);
      if (!deletesSources) {
        return {
          gone: true,
          problem: {
            kind: "stale",
            ...base,
            reason: "the source file was deleted but the remote copy is still recorded",
          },
        };
      }
    } else if (!sameFingerprint(row, sf.st)) {
      const failed = c.queued.get(key(row.input_file, row.server, row.dest));
      return {
        gone: false,
        problem: {
          kind: "stale",
          ...base,
          reason: failed?.state === "failed"
            ? `the source file changed and its sync failed: ${failed.last_error ?? "unknown error"}`
            : "the source file changed since it was synced",
        },
      };
    }
  }
  if (!isStater(t) || skipRemote()) return undefined;
  const st = await t.stat(row.remote_path, { signal: c.signal });
  if (!st) {
    return {
      gone: false,
      problem: { kind: "missing", ...base, reason: "the remote file does not exist" },
    };
  }
  const bad = checksumProblem(row, st);
  if (bad) return { gone: false, problem: { kind: "mismatch", ...base, reason: bad } };
  // The record keeps the source's size; it is the remote size only when no processor ran.
  if (source && row.size !== null && st.size !== row.size) {
    const unprocessed = matchingRules(config.rules, source, { path: row.input_file, rel }).some(
      (r) =>
        r.processors.length === 0 &&
        r.destinations.some((d) => d.server === row.server && d.path === row.dest),
    );
    if (unprocessed) {
      return {
        gone: false,
        problem: {
          kind: "mismatch",
          ...base,
          reason: `the remote file has ${st.size} bytes, the synced file had ${row.size}`,
        },
      };
    }
  }
  for (const x of parseExtras(row.extras)) {
    if (!(await t.stat(x, { signal: c.signal }))) {
      return {
        gone: false,
        problem: {
          kind: "missing",
          ...base,
          remotePath: x,
          reason: "a precompressed variant is missing",
        },
      };
    }
  }
  return undefined;
}
