/**
 * `fileconveyor verify`: formats the verify engine's report (`src/verify/`)
 * for people.
 *
 * @module
 */
import { redact } from "../log.ts";
import { PROBLEM_KINDS, type VerifyReport } from "../verify/report.ts";

/** Formats a report for people. */
export function formatVerify(r: VerifyReport, maxPerServer = 50): string {
  const lines: string[] = [];
  for (const s of r.servers) {
    const counts = PROBLEM_KINDS.filter((k) => s.counts[k] > 0).map((k) => `${s.counts[k]} ${k}`);
    const caps = [s.capabilities.stat ? "" : "no stat", s.capabilities.list ? "" : "no listing"]
      .filter(Boolean);
    lines.push(
      `Server "${s.name}" (${s.transporter}): ${s.problems.length === 0 ? "OK" : "PROBLEMS"} — ` +
        `${s.records} records, ${s.ok} ok, ${s.pending} pending` +
        (s.capabilities.list ? `, ${s.remoteFiles} remote files listed` : "") +
        (s.urls ? `, ${s.urls} URLs checked` : "") +
        (counts.length ? `; ${counts.join(", ")}` : "") +
        (caps.length ? ` (transport has ${caps.join(", ")}: those checks were skipped)` : ""),
    );
    for (const p of s.problems.slice(0, maxPerServer)) {
      const what = p.file ?? p.remotePath ?? "";
      lines.push(
        `  ${p.kind.toUpperCase().padEnd(11)} ${what}${
          p.remotePath && p.file ? ` → ${p.remotePath}` : ""
        }: ${p.reason}${p.repaired ? ` [${p.repaired}]` : ""}`,
      );
    }
    if (s.problems.length > maxPerServer) {
      lines.push(`  … ${s.problems.length - maxPerServer} more (use --json for all)`);
    }
  }
  for (const w of r.warnings) lines.push(`Warning: ${w}`);
  if (r.repair) {
    lines.push(
      `Repair: ${r.repaired.queued} queued, ${r.repaired.deleted} orphans deleted` +
        (r.repaired.held ? `, ${r.repaired.held} deletions held by the delete guard` : "") +
        (r.repaired.queued > 0
          ? r.daemonRunning
            ? " (the running daemon picks up the queued work)"
            : ' (run "fileconveyor sync" to apply the queued work)'
          : ""),
    );
  }
  lines.push(
    r.ok
      ? `Verified in ${r.ms} ms: every destination matches.`
      : `Verified in ${r.ms} ms: differences found.`,
  );
  return redact(lines.join("\n"));
}
