/**
 * `fileconveyor status`: formats the status report for people.
 *
 * @module
 */
import type { StatusReport } from "../ops/status_report.ts";

function ms(v: number | null): string {
  if (v === null) return "-";
  if (v < 1000) return `${Math.round(v)}ms`;
  if (v < 60_000) return `${(v / 1000).toFixed(1)}s`;
  return `${Math.round(v / 60_000)}m`;
}

function ago(t: number | null): string {
  if (!t) return "never";
  const s = Math.round((Date.now() - t) / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return new Date(t).toISOString();
}

/** The fleet section: the link to the shared store and every node. */
function formatFleet(f: NonNullable<StatusReport["fleet"]>): string[] {
  const lines: string[] = [];
  const d = f.daemon;
  let link = `Fleet: node "${f.node}", shared store ${f.store}`;
  if (d && d.unreachableSince !== null) {
    link += `; shared store unreachable since ${new Date(d.unreachableSince).toISOString()}${
      d.lastError ? ` (${d.lastError})` : ""
    }`;
  }
  if (d && d.outbox > 0) link += `; ${d.outbox} record(s) waiting to be published`;
  lines.push(link);
  const b = d?.buffer;
  if (b && b.fullSince !== null) {
    lines.push(
      `LOCAL BUFFER FULL since ${new Date(b.fullSince).toISOString()} (${b.entries} queued ` +
        `change(s) and unpublished record(s), storeBufferLimit ${b.limit}): new changes of ${
          b.held.map((x) => `"${x}"`).join(", ")
        } are not queued; they are found by a rescan once the shared store answers`,
    );
  }
  if (!f.nodes) {
    lines.push(`Nodes: unknown (${f.error ?? "no answer"})`);
    return lines;
  }
  const rows = [["NODE", "STATE", "LAST HEARTBEAT", "QUEUED", "FAILED", "VERSION"]];
  for (const n of f.nodes) {
    rows.push([
      n.node + (n.node === f.node ? " (this)" : ""),
      n.alive ? "alive" : "gone",
      ago(n.heartbeatAt),
      String(n.queued),
      String(n.failed),
      n.version,
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows) lines.push(row.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd());
  // This node's own view is in the servers table above; the other nodes' views follow.
  const others = (f.servers ?? []).filter((h) => h.node !== f.node);
  if (others.length > 0) {
    lines.push("Servers as other nodes see them:");
    for (const h of others) {
      lines.push(
        `  ${h.server} on ${h.node}: ${
          h.failingSince !== null
            ? `failing since ${ago(h.failingSince)}${h.lastError ? `: ${h.lastError}` : ""}`
            : `ok (last sync ${ago(h.lastOk)})`
        }; reported ${ago(h.updatedAt)}`,
      );
    }
  }
  return lines;
}

/** Formats the report as a readable table. */
export function formatStatus(r: StatusReport): string {
  const lines: string[] = [];
  lines.push(
    r.daemon.running
      ? `Daemon: running (pid ${r.daemon.pid})${
        Object.keys(r.daemon.watchers).length
          ? "; watch: " + Object.entries(r.daemon.watchers).map(([s, m]) => `${s}=${m}`).join(", ")
          : ""
      }`
      : "Daemon: not running",
  );
  lines.push(
    `Queue: ${r.queue.queued} queued (${r.queue.waiting} waiting to retry), ${r.queue.inFlight} in flight, ${r.queue.failed} failed`,
  );
  lines.push(`Last sync: ${ago(r.lastSync)}`);
  if (r.replaced.kept > 0) {
    const due = Math.max(0, Math.round(((r.replaced.nextDeletionAt ?? 0) - Date.now()) / 1000));
    lines.push(`Replaced versions kept: ${r.replaced.kept} (next deletion in ${due}s)`);
  }
  // A new state knows nothing of earlier runs: say so, rather than look like a first start.
  const st = r.state;
  if (st.rebuiltAt !== null) {
    lines.push(
      `State: rebuilt ${ago(st.rebuiltAt)}${
        st.previous
          ? ` (the old database is kept at "${st.previous}")`
          : " (the old database was lost)"
      }; history before that is not known`,
    );
  } else if (st.createdAt !== null) lines.push(`State: created ${ago(st.createdAt)}`);
  lines.push("");
  const rows = [[
    "SERVER",
    "TRANSPORT",
    "SYNCED",
    "QUEUED",
    "FAILED",
    "LAG p50/max",
    "LAST SYNC",
    "LAST ERROR",
  ]];
  for (const s of r.servers) {
    rows.push([
      s.name,
      s.transporter,
      String(s.synced),
      String(s.queued),
      String(s.failed),
      s.lag.transfers ? `${ms(s.lag.p50Ms)}/${ms(s.lag.maxMs)}` : "-",
      ago(s.lastSync),
      s.lastError ? `failing since ${ago(s.failingSince)}: ${s.lastError}` : "",
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows) {
    lines.push(
      row.map((c, i) => i === row.length - 1 ? c : c.padEnd(widths[i]!)).join("  ").trimEnd(),
    );
  }
  if (r.fleet) lines.push("", ...formatFleet(r.fleet));
  if (r.guards.length > 0) {
    lines.push("");
    for (const g of r.guards) {
      lines.push(
        g.approved
          ? `Delete guard: source "${g.source}": ${g.pending} held deletions approved, applying`
          : `Delete guard: source "${g.source}" holds ${g.pending} deletions (of ${g.known} files): ` +
            `nothing of them was deleted. If intended, run: ${g.approve}`,
      );
    }
  }
  if (r.problems.length > 0) {
    lines.push("");
    lines.push(`Cannot sync (${r.problems.length}):`);
    for (const p of r.problems) lines.push(`  ${p.path} (source "${p.source}"): ${p.reason}`);
  }
  if (r.failures.length > 0) {
    lines.push("");
    lines.push("Failures:");
    for (const f of r.failures) {
      lines.push(
        `  [${f.state}] ${f.file} → ${f.server} (${f.event}, ${f.attempts} attempts): ${
          f.error ?? ""
        }`,
      );
    }
  }
  return lines.join("\n");
}
