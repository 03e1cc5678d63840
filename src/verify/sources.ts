/**
 * Verify, step 2: every source file the rules send to the server has a
 * record; otherwise it is **missing** (or pending, when the daemon has it
 * queued or has just seen it).
 *
 * @module
 */
import { matchingRules } from "../filter/filter.ts";
import { DELETED } from "../store/events.ts";
import { remotePathFor } from "../transports/paths.ts";
import { key, pendingJob, queueRepair, type ServerContext } from "./_context.ts";
import type { Problem } from "./report.ts";

/** A file changed this recently may not have reached the running daemon yet. */
const RECENT_MS = 10_000;

/**
 * Checks every source file the rules send to the server; with `--repair`,
 * queues the missing ones. Returns the remote paths that uploads of missing
 * files will write (not orphans to delete).
 */
export function checkSources(c: ServerContext): Set<string> {
  const { config, sv, server } = c;
  const repair = !!c.opts.repair;
  const recorded = new Set(c.rows.map((r) => key(r.input_file, r.server, r.dest)));
  const nowMs = Date.now();
  const seen = new Set<string>();
  const expected = new Set<string>();
  for (const f of c.files) {
    const candidate = { path: f.path, rel: f.rel, size: f.st.size };
    for (const rule of matchingRules(config.rules, f.source, candidate)) {
      for (const d of rule.destinations) {
        if (d.server !== server.name) continue;
        const k = key(f.path, server.name, d.path);
        if (seen.has(k)) continue;
        seen.add(k);
        sv.sourceFiles++;
        if (recorded.has(k)) continue;
        const job = pendingJob(c, f.path, d.path);
        if (job) {
          sv.pending++;
          // Running: its upload may have landed before the destination lost it; a queued one
          // uploads (nothing is recorded), and so does work queued after the snapshot.
          if (repair && job.running && job.event !== DELETED) {
            queueRepair(c, { input_file: f.path, dest: d.path }, f.source);
          }
          continue;
        }
        // The record and the job, read together (an upload is recorded and its job completed in
        // one commit).
        const { synced, job: fresh } = c.read.fileState(f.path, server.name, d.path);
        if (synced) {
          // Recorded after the snapshot: its upload may have landed before the destination lost
          // it, and this run's listing cannot tell. The queued job decides when it runs.
          if (repair) queueRepair(c, { input_file: f.path, dest: d.path }, f.source);
          sv.ok++;
          continue;
        }
        if (
          fresh?.state === "queued" || (c.report.daemonRunning && nowMs - f.st.ctimeMs < RECENT_MS)
        ) {
          // Queued meanwhile, or so recent that the daemon has not picked it up yet.
          sv.pending++;
          continue;
        }
        // Its remote copy (if any) is replaced by the upload, not an orphan to delete.
        if (rule.processors.length === 0) {
          try {
            expected.add(remotePathFor(d.path, f.rel));
          } catch {
            // An unsafe name is never uploaded; a remote file of that name is an orphan.
          }
        }
        const problem: Problem = {
          kind: "missing",
          file: f.path,
          dest: d.path,
          reason: fresh?.state === "failed"
            ? `its sync failed: ${fresh.last_error ?? "unknown error"}`
            : "the source file is not synced to this server",
        };
        if (repair) {
          queueRepair(c, { input_file: f.path, dest: d.path }, f.source);
          problem.repaired = "queued for upload";
        }
        sv.problems.push(problem);
      }
    }
  }
  return expected;
}
