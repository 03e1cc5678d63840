/**
 * `/api/status` (what the status page shows) and `/api/retry`. Built on the
 * `status` command's report, plus what only the running daemon knows: watch
 * modes, per-minute throughput and lag of the last hour, recent transfers,
 * and failed files with the id the retry button sends back. Every error
 * text passes through secret redaction.
 *
 * @module
 */
import { redact } from "../log.ts";
import type { Daemon } from "../pipeline/daemon.ts";
import { eventName, type FileEvent } from "../store/events.ts";
import { ReadModel } from "../store/read_model.ts";
import { VERSION } from "../version.ts";
import { type Health, healthOf } from "./health.ts";
import { type StatusReport, statusReport } from "./status_report.ts";

/** Per-minute figures of one server. */
export interface ChartPoint {
  /** Start of the minute (Unix ms). */
  t: number;
  files: number;
  bytes: number;
  lagAvgMs: number;
  lagMaxMs: number;
}

/** The JSON of `/api/status`. */
export interface LiveStatus {
  version: string;
  now: number;
  startedAt: number;
  initialScanDone: boolean;
  health: Health;
  sources: { name: string; path: string; watch: string; files: number }[];
  queue: StatusReport["queue"];
  servers: (StatusReport["servers"][number] & { inFlight: number; waiting: number })[];
  failures: {
    id: number;
    file: string;
    server: string;
    dest: string;
    event: string;
    attempts: number;
    kind: string | null;
    error: string | null;
    state: "failed" | "retrying";
    nextAttempt: number | null;
  }[];
  guards: StatusReport["guards"];
  /** Source paths that cannot be synced, with the reason. */
  problems: StatusReport["problems"];
  chart: {
    from: number;
    to: number;
    bucketMs: number;
    series: { server: string; points: ChartPoint[] }[];
  };
  transfers: {
    at: number;
    server: string;
    file: string;
    remotePath: string;
    event: string;
    bytes: number;
    ms: number;
    lagMs: number;
  }[];
  /** This node's name (fleet mode only). */
  node?: string;
  /**
   * Every node of the fleet as the last heartbeat read it (fleet mode only;
   * absent until the shared store first answered), newest heartbeat first.
   */
  nodes?: FleetNodeStatus[];
}

/** One node of the fleet in `/api/status`. */
export interface FleetNodeStatus {
  node: string;
  alive: boolean;
  heartbeatAt: number;
  startedAt: number;
  queued: number;
  failed: number;
  version: string;
  /** Servers this node sees failing, with since when and why. */
  failing: { server: string; since: number; error: string | null }[];
}

/** The fleet part of the live status: read from the fleet's last view, never from the database. */
function fleetPart(daemon: Daemon, now: number): Pick<LiveStatus, "node" | "nodes"> {
  const fleet = daemon.fleet;
  if (!fleet) return {};
  const view = fleet.view;
  if (!view) return { node: fleet.node };
  const nodes = view.nodes.map((n) => ({
    node: n.node,
    alive: now - n.heartbeat_at < fleet.nodeTimeoutMs,
    heartbeatAt: n.heartbeat_at,
    startedAt: n.started_at,
    queued: n.queued,
    failed: n.failed,
    version: n.version,
    failing: view.servers
      .filter((h) => h.node === n.node && h.failing_since !== null)
      .map((h) => ({
        server: h.server,
        since: h.failing_since!,
        error: h.last_error === null ? null : redact(h.last_error),
      })),
  }));
  return { node: fleet.node, nodes };
}

const HOUR = 3_600_000;
const MINUTE = 60_000;
const NEVER_AFTER = 8_000_000_000_000_000;

/** Builds the live status of a running daemon. */
export function liveStatus(
  daemon: Daemon,
  options: { watching: boolean; startedAt: number },
): LiveStatus {
  const store = daemon.store;
  const config = daemon.config;
  const now = Date.now();
  const report = statusReport(config, store);
  const read = new ReadModel(store);
  const perServer = new Map(read.queueByServer(now).map((r) => [r.server, r]));
  const failures = read.problemJobs(200).map((j) => ({
    id: j.id,
    file: j.input_file,
    server: j.server,
    dest: j.dest,
    event: eventName(j.event),
    attempts: j.attempts,
    kind: j.error_kind,
    error: j.last_error === null ? null : redact(j.last_error),
    state: j.state === "failed" ? "failed" as const : "retrying" as const,
    nextAttempt: j.ready_at >= NEVER_AFTER ? null : j.ready_at,
  }));

  const from = Math.floor((now - HOUR) / MINUTE) * MINUTE;
  const rows = read.transferBuckets(from, MINUTE);
  const series = config.servers.map((s) => ({
    server: s.name,
    points: rows.filter((r) => r.server === s.name).map((r) => ({
      t: r.t,
      files: r.files,
      bytes: r.bytes,
      lagAvgMs: Math.round(r.lagAvg),
      lagMaxMs: r.lagMax,
    })),
  }));
  const transfers = store.recentTransfers(50).map((t) => ({
    at: t.at,
    server: t.server,
    file: t.input_file,
    remotePath: t.remote_path,
    event: eventName(t.event as FileEvent),
    bytes: t.bytes,
    ms: t.ms,
    lagMs: t.lag_ms,
  }));
  return {
    version: VERSION,
    now,
    startedAt: options.startedAt,
    initialScanDone: daemon.initialScanDone,
    health: healthOf(daemon, options.watching, now),
    sources: config.sources.map((s) => ({
      name: s.name,
      path: s.scanPath,
      watch: daemon.watchModes.get(s.name) ?? (options.watching ? "missing" : "not watching"),
      files: store.countFiles(s.name),
    })),
    queue: { ...report.queue, inFlight: daemon.inFlight },
    servers: report.servers.map((s) => ({
      ...s,
      lastError: s.lastError === null ? null : redact(s.lastError),
      inFlight: perServer.get(s.name)?.running ?? 0,
      waiting: perServer.get(s.name)?.waiting ?? 0,
    })),
    failures,
    guards: report.guards,
    problems: report.problems,
    chart: { from, to: now, bucketMs: MINUTE, series },
    transfers,
    ...fleetPart(daemon, now),
  };
}

/** What `/api/retry` accepts: one queued job by id, or every failed file (of one server). */
export interface RetryRequest {
  id?: number;
  server?: string;
}

/**
 * Re-queues failed (or waiting) files now; returns how many. The daemon
 * picks them up within a second.
 */
export function retry(daemon: Daemon, req: RetryRequest): number {
  const now = Date.now();
  if (req.id !== undefined) {
    return daemon.store.retryJob(req.id, now) ? 1 : 0;
  }
  return daemon.store.retryFailed(now, req.server);
}
