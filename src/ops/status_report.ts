/**
 * The status report of a data directory: read from the database, so it works
 * while the daemon runs (WAL readers never block the writer). Shared by the
 * `status` command and the status page.
 *
 * @module
 */
import * as fs from "node:fs";
import type { Config } from "../config/types.ts";
import { eventName } from "../store/events.ts";
import { type LagStats, ReadModel } from "../store/read_model.ts";
import { allRetired } from "../store/retired.ts";
import { Store } from "../store/store.ts";
import type { FleetStatus } from "./fleet_status.ts";

export type { LagStats };

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
  guards: {
    source: string;
    pending: number;
    known: number;
    since: number;
    approved: boolean;
    /** The command that applies the held deletions. */
    approve: string;
  }[];
  /** Source paths that cannot be synced (unreadable, names that are not UTF-8). */
  problems: { source: string; path: string; reason: string; since: number }[];
  /** Replaced versions kept on the servers for their grace period (`keepReplaced`). */
  replaced: { kept: number; nextDeletionAt: number | null };
  lastSync: number | null;
  /** This state database: when it was created; whether it replaced a lost or damaged one. */
  state: { createdAt: number | null; rebuiltAt: number | null; previous: string | null };
  /** On a node of a fleet: every node and the link to the shared store (see `fleet_status.ts`). */
  fleet?: FleetStatus;
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
  const read = new ReadModel(store);
  const counts = store.queueCounts();
  const synced = new Map(store.syncedCounts().map((r) => [r.server, r]));
  const health = new Map(store.serverRows().map((r) => [r.server, r]));
  const perServer = new Map(read.queueByServer(Date.now()).map((r) => [r.server, r]));
  // Earliest due first.
  const retired = allRetired(store).sort((a, b) => a.due_at - b.due_at);
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
      queued: perServer.get(s.name)?.active ?? 0,
      failed: perServer.get(s.name)?.failed ?? 0,
      lastSync: synced.get(s.name)?.last ?? null,
      failingSince: health.get(s.name)?.failing_since ?? null,
      lastError: health.get(s.name)?.failing_since ? health.get(s.name)?.last_error ?? null : null,
      syncedBytes: health.get(s.name)?.synced_bytes ?? 0,
      lag: read.lagStats(s.name, Date.now() - 3_600_000),
    })),
    failures,
    guards: store.guards().map((g) => ({
      ...g,
      approved: g.approved === 1,
      approve: `fileconveyor approve-deletes --config ${config.file} --source ${g.source}`,
    })),
    problems: problemsOf(store),
    replaced: { kept: retired.length, nextDeletionAt: retired[0]?.due_at ?? null },
    lastSync,
    state: store.stateInfo(),
  };
}

/** The recorded problems; none for a database the daemon has not migrated yet (read-only here). */
function problemsOf(store: Store): StatusReport["problems"] {
  try {
    return store.problems();
  } catch {
    return [];
  }
}

/**
 * What is left unsynced in a data directory, as `status` lists it: failed or
 * retrying jobs, and source paths that cannot be synced. `sync --once` exits
 * 1 when either is non-zero, so its exit code never contradicts `status`.
 */
export function unsynced(dataDir: string): { failures: number; problems: number } {
  const store = new Store(dataDir, { readOnly: true });
  try {
    const failures = store.failedJobs(1).length + store.retryingJobs(1).length;
    return { failures, problems: problemsOf(store).length };
  } finally {
    store.close();
  }
}
