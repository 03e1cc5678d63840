/**
 * The `<settings>` element: daemon-wide options, each a child element.
 * The original's `settings.py` constant names are accepted as aliases.
 *
 * @module
 */
import type { OptionSpec, OptionValues } from "../options.ts";
import type { Settings } from "./types.ts";

/** Every setting of `<settings>`, with defaults. Drives validation and the README table. */
export const SETTINGS_SPEC: readonly OptionSpec[] = [
  {
    name: "dataDir",
    type: "path",
    help:
      "Directory for the database and working files (default: `fileconveyor-data` next to the config file)",
  },
  {
    name: "workingDir",
    type: "path",
    help: "Directory for processor output (default: `<dataDir>/work`)",
  },
  { name: "pidFile", type: "path", help: "Write the daemon's PID here (the original's PID_FILE)" },
  { name: "logFile", type: "path", help: "Also write the log to this file, rotated" },
  {
    name: "logMaxBytes",
    type: "integer",
    min: 1024,
    default: "5242880",
    help: "Rotate the log file at this size",
  },
  { name: "logBackups", type: "integer", min: 0, default: "5", help: "Rotated log files to keep" },
  {
    name: "logLevel",
    type: "enum",
    values: ["debug", "info", "warn", "error"],
    default: "info",
    help: "Lowest level logged",
  },
  {
    name: "logFormat",
    type: "enum",
    values: ["text", "json"],
    default: "text",
    help: "Log line format",
  },
  {
    name: "maxFilesInPipeline",
    type: "integer",
    min: 1,
    default: "1000",
    help: "Files being processed or transferred at once",
  },
  {
    name: "maxSimultaneousProcessorChains",
    type: "integer",
    min: 1,
    default: "4",
    help: "Processor chains running at once",
  },
  {
    name: "engineWorkers",
    type: "integer",
    min: 1,
    default: "2",
    help:
      "Worker threads for the WebAssembly minifier and PNG optimiser at most (never more than the CPU cores)",
  },
  {
    name: "engineIdleTimeout",
    type: "number",
    min: 0.1,
    default: "30",
    help:
      "Seconds an idle minifier/PNG optimiser worker is kept; then it ends and its memory is freed",
  },
  {
    name: "engineMemory",
    type: "integer",
    min: 32,
    default: "256",
    help:
      "MiB the minifier and PNG optimiser workers may use together (estimated); a larger file runs alone",
  },
  {
    name: "maxSimultaneousTransporters",
    type: "integer",
    min: 1,
    default: "128",
    help: "Transfers running at once, all servers together",
  },
  {
    name: "defaultMaxConnections",
    type: "integer",
    min: 1,
    default: "8",
    help: "Connections per server when the server sets no maxConnections",
  },
  {
    name: "retryInitialDelay",
    type: "number",
    min: 0,
    default: "2",
    help: "Seconds before the first retry of a failed file (doubles each time, with jitter)",
  },
  {
    name: "retryMaxDelay",
    type: "number",
    min: 0,
    default: "300",
    help: "Longest delay between retries, seconds",
  },
  {
    name: "retryFailAfter",
    type: "integer",
    min: 1,
    default: "5",
    help:
      "Attempts after which a file is reported as failed; it is retried when it changes, at a start or reload, when its server recovers, or by `fileconveyor retry`",
  },
  {
    name: "rescanInterval",
    type: "number",
    min: 0,
    default: "3600",
    help: "Seconds between full reconciliation scans (0: never)",
  },
  {
    name: "dirSweepInterval",
    type: "number",
    min: 0,
    default: "15",
    help:
      "Seconds between sweeps in watch mode (0: never): each natively watched source is walked again as at a restart (a stat of every entry compared with the database; no file is read), so a change whose watcher event was lost is synced within this time",
  },
  {
    name: "watchMode",
    type: "enum",
    values: ["auto", "poll"],
    default: "auto",
    help: "auto: inotify/FSEvents with polling fallback; poll: polling only (network file systems)",
  },
  {
    name: "pollInterval",
    type: "number",
    min: 0.1,
    default: "10",
    help: "Seconds between scans in polling mode",
  },
  {
    name: "settleDelay",
    type: "integer",
    min: 0,
    default: "150",
    help:
      "Milliseconds of quiet before a changed file is synced when no close-after-write was seen",
  },
  {
    name: "maxDelay",
    type: "integer",
    min: 0,
    default: "5000",
    help: "Milliseconds after which a file that keeps changing is synced anyway",
  },
  {
    name: "deleteDelay",
    type: "integer",
    min: 0,
    default: "1000",
    help:
      "Milliseconds to hold remote deletions, so a rename becomes a server-side move (deletes always go after pending uploads)",
  },
  {
    name: "deleteGuardShare",
    type: "number",
    min: 0,
    max: 1,
    default: "0.5",
    help:
      "A scan that would delete more than this share of a source's files deletes nothing until confirmed",
  },
  {
    name: "deleteGuardMinFiles",
    type: "integer",
    min: 0,
    default: "10",
    help: "The delete guard applies only when a scan would delete at least this many files",
  },
  {
    name: "timeout",
    type: "number",
    min: 1,
    default: "60",
    help: "Timeout of one network call, seconds",
  },
  {
    name: "http",
    type: "string",
    help: "HOST:PORT for /metrics, /healthz and the status page (off by default)",
  },
  {
    name: "syncedFilesDb",
    type: "path",
    help:
      "SQLite file web applications read URLs from (the Drupal CDN module's synced files database; default: `<dataDir>/synced_files.db`)",
  },
  {
    name: "persistentDataDb",
    type: "path",
    help:
      "SQLite file with the queue counts for web applications (default: `persistent_data.db` next to `syncedFilesDb`)",
  },
  {
    name: "syncedFilesDbGroup",
    type: "string",
    help:
      "Group that may read the two web application databases (files 0640, their directory 0750; default: owner only)",
  },
  {
    name: "keepReplaced",
    type: "number",
    min: 0,
    default: "86400",
    help:
      "Seconds a replaced or deleted file with a unique name stays on the server, for pages and caches that still refer to it (0: delete at once)",
  },
  {
    name: "store",
    type: "string",
    default: "sqlite",
    secret: true,
    help:
      "Shared state for a fleet of nodes: `sqlite` (default: this machine only), `postgres://user:pass@host/db`, `mysql://…` / `mariadb://…`, or `sqlite:/path/shared.db` (several daemons on one machine); `${env:…}`/`${file:…}` for the password; TLS with `?sslmode=require|verify-full|verify-ca` and `&sslrootcert=/path/ca.pem`",
  },
  {
    name: "node",
    type: "string",
    help: "This daemon's name in the fleet (default: the host name)",
  },
  {
    name: "nodeTimeout",
    type: "number",
    min: 1,
    default: "30",
    help:
      "Seconds without a heartbeat after which a node counts as gone and its claimed files are taken over",
  },
  {
    name: "storeBufferLimit",
    type: "number",
    min: 1,
    default: "100000",
    help:
      "Fleet node: queued changes plus unpublished records kept locally while the shared store is unreachable; beyond it new changes are not queued but found by a rescan once it answers (nothing is lost)",
  },
  {
    name: "healthFailAfter",
    type: "number",
    min: 1,
    default: "300",
    help: "Seconds a server may keep failing before /healthz reports unhealthy",
  },
];

/** The original `settings.py` names and what they map to. */
export const ORIGINAL_SETTING_NAMES: Record<string, string> = {
  PID_FILE: "pidFile",
  LOG_FILE: "logFile",
  WORKING_DIR: "workingDir",
  MAX_FILES_IN_PIPELINE: "maxFilesInPipeline",
  MAX_SIMULTANEOUS_PROCESSORCHAINS: "maxSimultaneousProcessorChains",
  MAX_SIMULTANEOUS_TRANSPORTERS: "maxSimultaneousTransporters",
  RETRY_INTERVAL: "retryMaxDelay",
  SYNCED_FILES_DB: "syncedFilesDb",
  PERSISTENT_DATA_DB: "persistentDataDb",
  CONSOLE_LOGGER_LEVEL: "logLevel",
};

/** Builds {@linkcode Settings} from validated option values. */
export function toSettings(v: OptionValues): Settings {
  const n = (k: string) => Number(v[k]);
  const s: Settings = {
    logMaxBytes: n("logMaxBytes"),
    logBackups: n("logBackups"),
    logLevel: v.logLevel as Settings["logLevel"],
    logFormat: v.logFormat as Settings["logFormat"],
    maxFilesInPipeline: n("maxFilesInPipeline"),
    maxSimultaneousProcessorChains: n("maxSimultaneousProcessorChains"),
    maxSimultaneousTransporters: n("maxSimultaneousTransporters"),
    engineWorkers: n("engineWorkers"),
    engineIdleTimeout: n("engineIdleTimeout"),
    engineMemory: n("engineMemory"),
    defaultMaxConnections: n("defaultMaxConnections"),
    retryInitialDelay: n("retryInitialDelay"),
    retryMaxDelay: n("retryMaxDelay"),
    retryFailAfter: n("retryFailAfter"),
    rescanInterval: n("rescanInterval"),
    dirSweepInterval: n("dirSweepInterval"),
    watchMode: v.watchMode as Settings["watchMode"],
    pollInterval: n("pollInterval"),
    settleDelay: n("settleDelay"),
    maxDelay: n("maxDelay"),
    deleteDelay: n("deleteDelay"),
    deleteGuardShare: n("deleteGuardShare"),
    deleteGuardMinFiles: n("deleteGuardMinFiles"),
    timeout: n("timeout"),
    healthFailAfter: n("healthFailAfter"),
    keepReplaced: n("keepReplaced"),
    store: v.store ?? "sqlite",
    nodeTimeout: n("nodeTimeout"),
    storeBufferLimit: n("storeBufferLimit"),
  };
  for (
    const k of [
      "dataDir",
      "workingDir",
      "pidFile",
      "logFile",
      "http",
      "syncedFilesDb",
      "persistentDataDb",
      "syncedFilesDbGroup",
      "node",
    ] as const
  ) {
    if (v[k]) s[k] = v[k];
  }
  return s;
}
