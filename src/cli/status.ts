/**
 * What `status` shows: read from the database, so it works while the daemon
 * runs (WAL readers never block the writer).
 *
 * @module
 */
import * as fs from "node:fs";
import type { Config } from "../config/types.ts";
import type { Store } from "../store/store.ts";
import { eventName } from "../store/events.ts";

/** The status report. */
export interface StatusReport {
  daemon: {
    running: boolean;
    pid: number | null;
    heartbeat: number | null;
    watchers: Record<string, string>;
  };
  queue: { queued: number; inFlight: number; failed: number; waiting: number };
  servers: {
    name: string;
    transporter: string;
    synced: number;
    queued: number;
    failed: number;
    lastSync: number | null;
    failingSince: number | null;
    lastError: string | null;
    syncedBytes: number;
    /** Change-to-synced lag of the transfers of the last hour. */
    lag: LagStats;
  }[];
  failures: {
    file: string;
    server: string;
    event: string;
    attempts: number;
    error: string | null;
    state: string;
  }[];
  guards: { source: string; pending: number; known: number; since: number; approved: boolean }[];
  lastSync: number | null;
  /** This state database: when it was created; whether it replaced a lost or damaged one. */
  state: { createdAt: number | null; rebuiltAt: number | null; previous: string | null };
}

/** Lag figures of recent transfers, milliseconds. */
export interface LagStats {
  transfers: number;
  p50Ms: number | null;
  maxMs: number | null;
}

/** Median and maximum lag of a server's transfers since `since` (the table keeps one hour). */
export function lagStats(store: Store, server: string, since: number): LagStats {
  const r = store.q(
    "SELECT COUNT(*) AS n, MAX(lag_ms) AS max FROM transfers WHERE server = ? AND at >= ?",
  ).get(server, since) as { n: number; max: number | null };
  if (r.n === 0) return { transfers: 0, p50Ms: null, maxMs: null };
  const mid = store.q(
    "SELECT lag_ms FROM transfers WHERE server = ? AND at >= ? ORDER BY lag_ms LIMIT 1 OFFSET ?",
  ).get(server, since, Math.floor((r.n - 1) / 2)) as { lag_ms: number };
  return { transfers: r.n, p50Ms: mid.lag_ms, maxMs: r.max };
}

function alive(pid: number): boolean {
  try {
    return fs.existsSync(`/proc/${pid}`) || Deno.build.os !== "linux";
  } catch {
    return false;
  }
}

/** Builds the status report of a data directory. */
export function statusReport(config: Config, store: Store): StatusReport {
  const d = store.getRuntime<
    { pid: number | null; heartbeat?: number; watchers?: Record<string, string>; inFlight?: number }
  >("daemon");
  const running = !!d?.pid && !!d.heartbeat && Date.now() - d.heartbeat < 15_000 && alive(d.pid);
  const counts = store.queueCounts();
  const synced = new Map(store.syncedCounts().map((r) => [r.server, r]));
  const health = new Map(store.serverRows().map((r) => [r.server, r]));
  const perServer = new Map(
    (store.q(
      "SELECT server, SUM(state = 'queued') AS queued, SUM(state = 'failed') AS failed FROM queue GROUP BY server",
    ).all() as { server: string; queued: number; failed: number }[]).map((r) => [r.server, r]),
  );
  const failures = [...store.failedJobs(200), ...store.retryingJobs(200)].map((j) => ({
    file: j.input_file,
    server: j.server,
    event: eventName(j.event),
    attempts: j.attempts,
    error: j.last_error,
    state: j.state === "failed" ? "failed" : "retrying",
  }));
  let lastSync: number | null = null;
  for (const r of synced.values()) {
    if (r.last && (!lastSync || r.last > lastSync)) lastSync = r.last;
  }
  return {
    daemon: {
      running,
      pid: running ? d!.pid : null,
      heartbeat: d?.heartbeat ?? null,
      watchers: running ? d?.watchers ?? {} : {},
    },
    queue: {
      queued: counts.queued,
      inFlight: running ? counts.running : 0,
      failed: counts.failed,
      waiting: counts.waiting,
    },
    servers: config.servers.map((s) => ({
      name: s.name,
      transporter: s.transporter,
      synced: synced.get(s.name)?.n ?? 0,
      queued: perServer.get(s.name)?.queued ?? 0,
      failed: perServer.get(s.name)?.failed ?? 0,
      lastSync: synced.get(s.name)?.last ?? null,
      failingSince: health.get(s.name)?.failing_since ?? null,
      lastError: health.get(s.name)?.failing_since ? health.get(s.name)?.last_error ?? null : null,
      syncedBytes: health.get(s.name)?.synced_bytes ?? 0,
      lag: lagStats(store, s.name, Date.now() - 3_600_000),
    })),
    failures,
    guards: store.guards().map((g) => ({ ...g, approved: g.approved === 1 })),
    lastSync,
    state: store.stateInfo(),
  };
}

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
  if (r.guards.length > 0) {
    lines.push("");
    for (const g of r.guards) {
      lines.push(
        `Delete guard: source "${g.source}" holds ${g.pending} of ${g.known} deletions${
          g.approved ? " (approved, applying)" : '; run "fileconveyor approve-deletes" if intended'
        }`,
      );
    }
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
