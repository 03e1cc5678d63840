/**
 * `/metrics`: Prometheus metrics of a running daemon. Counts and gauges are
 * read from the database at scrape time (so they survive restarts where the
 * database keeps them); latency histograms are observed in-process when jobs
 * finish. No configuration value is exported, so no secret can leak.
 *
 * @module
 */
import type { Daemon } from "../pipeline/daemon.ts";
import { ReadModel } from "../store/read_model.ts";
import type { WatchMode } from "../watch/watcher.ts";
import { VERSION } from "../version.ts";
import { Exposition, Histogram } from "./prometheus.ts";

/** Lag buckets, seconds: from a few milliseconds (local) to an hour (a server down). */
const LAG_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const MODES: WatchMode[] = ["native", "polling", "starting", "restarting", "missing", "stopped"];

/**
 * Collects a daemon's metrics.
 *
 * @example
 * ```ts ignore
 * const metrics = new Metrics(daemon);
 * const text = metrics.render();
 * ```
 */
export class Metrics {
  readonly #daemon: Daemon;
  readonly #lag = new Histogram(LAG_BUCKETS);
  readonly #duration = new Histogram(DURATION_BUCKETS);
  readonly #jobs = new Map<string, number>();
  readonly #failures = new Map<string, number>();
  readonly #reloads = { success: 0, failure: 0 };
  readonly #started = Date.now();
  #off: () => void;

  constructor(daemon: Daemon) {
    this.#daemon = daemon;
    this.#off = daemon.on((e) => {
      if (e.type === "job-done") {
        const key = JSON.stringify([e.server, e.result]);
        this.#jobs.set(key, (this.#jobs.get(key) ?? 0) + 1);
        if (e.result !== "skipped") {
          this.#lag.observe(e.lagMs / 1000, { server: e.server });
          this.#duration.observe(e.ms / 1000, { server: e.server });
        }
      } else if (e.type === "job-failed") {
        const key = JSON.stringify([e.server, e.kind]);
        this.#failures.set(key, (this.#failures.get(key) ?? 0) + 1);
      } else if (e.type === "reloaded") {
        this.#reloads.success++;
      }
    });
  }

  /** Counts a configuration reload that was rejected. */
  reloadFailed(): void {
    this.#reloads.failure++;
  }

  /** Stops listening. */
  close(): void {
    this.#off();
  }

  /** The exposition text. */
  render(): string {
    const d = this.#daemon;
    const store = d.store;
    const config = d.config;
    // In a fleet every node exports the same series: `node` tells them apart.
    const node = d.fleet?.node;
    const e = new Exposition(node === undefined ? {} : { node });
    const now = Date.now();
    const servers = config.servers.map((s) => s.name);
    const per = <T>(rows: T[], key: (r: T) => string) => new Map(rows.map((r) => [key(r), r]));

    e.family("fileconveyor_info", "gauge", "Version of the running fileconveyor");
    e.sample("fileconveyor_info", 1, { version: VERSION });
    e.family("fileconveyor_start_time_seconds", "gauge", "When the daemon started (Unix time)");
    e.sample("fileconveyor_start_time_seconds", this.#started / 1000);
    e.family("fileconveyor_initial_scan_done", "gauge", "1 once every source was scanned");
    e.sample("fileconveyor_initial_scan_done", d.initialScanDone ? 1 : 0);

    const q = per(new ReadModel(store).queueByServer(now), (r) => r.server);
    e.family(
      "fileconveyor_queue_depth",
      "gauge",
      "Files queued and not running (waiting ones included)",
    );
    for (const s of servers) {
      e.sample("fileconveyor_queue_depth", q.get(s)?.queued ?? 0, { server: s });
    }
    e.family("fileconveyor_queue_waiting", "gauge", "Queued files waiting for a retry");
    for (const s of servers) {
      e.sample("fileconveyor_queue_waiting", q.get(s)?.waiting ?? 0, { server: s });
    }
    e.family("fileconveyor_in_flight", "gauge", "Files being processed or transferred");
    for (const s of servers) {
      e.sample("fileconveyor_in_flight", q.get(s)?.running ?? 0, { server: s });
    }
    e.family("fileconveyor_failed_files", "gauge", "Files marked as failed");
    for (const s of servers) {
      e.sample("fileconveyor_failed_files", q.get(s)?.failed ?? 0, { server: s });
    }

    const synced = per(store.syncedCounts(), (r) => r.server);
    e.family("fileconveyor_synced_files", "gauge", "Files recorded as synced");
    for (const s of servers) {
      e.sample("fileconveyor_synced_files", synced.get(s)?.n ?? 0, { server: s });
    }

    const h = per(store.serverRows(), (r) => r.server);
    e.family("fileconveyor_synced_bytes_total", "counter", "Bytes uploaded");
    for (const s of servers) {
      e.sample("fileconveyor_synced_bytes_total", h.get(s)?.synced_bytes ?? 0, { server: s });
    }
    e.family("fileconveyor_transfers_total", "counter", "Files uploaded, updated or deleted");
    for (const s of servers) {
      e.sample("fileconveyor_transfers_total", h.get(s)?.synced_count ?? 0, { server: s });
    }
    e.family(
      "fileconveyor_retries_total",
      "counter",
      "Failed attempts that count against a server",
    );
    for (const s of servers) {
      e.sample("fileconveyor_retries_total", h.get(s)?.retries ?? 0, { server: s });
    }
    e.family(
      "fileconveyor_last_success_timestamp_seconds",
      "gauge",
      "Last successful transfer per server (Unix time; 0: never)",
    );
    for (const s of servers) {
      e.sample("fileconveyor_last_success_timestamp_seconds", (h.get(s)?.last_ok ?? 0) / 1000, {
        server: s,
      });
    }
    e.family("fileconveyor_server_failing", "gauge", "1 while the server's last attempt failed");
    for (const s of servers) {
      e.sample("fileconveyor_server_failing", h.get(s)?.failing_since ? 1 : 0, { server: s });
    }
    e.family(
      "fileconveyor_server_failing_since_timestamp_seconds",
      "gauge",
      "Since when the server fails (Unix time; 0: healthy)",
    );
    for (const s of servers) {
      e.sample(
        "fileconveyor_server_failing_since_timestamp_seconds",
        (h.get(s)?.failing_since ?? 0) / 1000,
        { server: s },
      );
    }

    e.family("fileconveyor_jobs_total", "counter", "Finished jobs since start, by result");
    for (const [key, n] of this.#jobs) {
      const [server, result] = JSON.parse(key) as [string, string];
      e.sample("fileconveyor_jobs_total", n, { server, result });
    }
    e.family("fileconveyor_job_failures_total", "counter", "Failed attempts since start, by kind");
    for (const [key, n] of this.#failures) {
      const [server, kind] = JSON.parse(key) as [string, string];
      e.sample("fileconveyor_job_failures_total", n, { server, kind });
    }

    for (const s of servers) {
      this.#lag.touch({ server: s });
      this.#duration.touch({ server: s });
    }
    this.#lag.write(
      e,
      "fileconveyor_sync_lag_seconds",
      "From the change being detected to the file being synced",
    );
    this.#duration.write(
      e,
      "fileconveyor_job_duration_seconds",
      "Processing and transfer time of one file",
    );

    const modes = d.watchModes;
    e.family("fileconveyor_watcher_up", "gauge", "1 while the source's watcher delivers changes");
    for (const src of config.sources) {
      const mode = modes.get(src.name);
      const up = mode === "native" || mode === "polling" ? 1 : 0;
      e.sample("fileconveyor_watcher_up", up, { source: src.name });
    }
    e.family("fileconveyor_watcher_mode", "gauge", "Watch mode per source (1 for the current one)");
    for (const src of config.sources) {
      const mode = modes.get(src.name);
      for (const m of MODES) {
        e.sample("fileconveyor_watcher_mode", m === mode ? 1 : 0, { source: src.name, mode: m });
      }
    }

    e.family("fileconveyor_source_files", "gauge", "Files known in the source");
    for (const src of config.sources) {
      e.sample("fileconveyor_source_files", store.countFiles(src.name), { source: src.name });
    }
    const guards = per(store.guards(), (g) => g.source);
    e.family("fileconveyor_delete_guard_held_files", "gauge", "Deletions held by the delete guard");
    for (const src of config.sources) {
      e.sample("fileconveyor_delete_guard_held_files", guards.get(src.name)?.pending ?? 0, {
        source: src.name,
      });
    }

    e.family(
      "fileconveyor_config_reloads_total",
      "counter",
      "Configuration reloads (SIGHUP) by result",
    );
    e.sample("fileconveyor_config_reloads_total", this.#reloads.success, { result: "success" });
    e.sample("fileconveyor_config_reloads_total", this.#reloads.failure, { result: "failure" });

    e.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes");
    e.sample("process_resident_memory_bytes", Deno.memoryUsage().rss);
    e.family("process_start_time_seconds", "gauge", "Start time of the process (Unix time)");
    e.sample("process_start_time_seconds", Math.round(this.#started / 1000));
    return e.text();
  }
}
