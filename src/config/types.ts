/**
 * The configuration model: what `config.xml` becomes after parsing,
 * defaults, normalization and validation.
 *
 * @module
 */
import type { OptionValues } from "../options.ts";
import type { ProcessorDef } from "../processors/processor.ts";

/** A watched source tree. */
export interface Source {
  name: string;
  /** Real (symlink-resolved) absolute path of the tree. */
  scanPath: string;
  /** The path as written in the config. */
  configuredPath: string;
  /** Web document root (for `link_updater`). */
  documentRoot?: string;
  /** URL base path of the site inside the document root, starting and ending with `/`. */
  basePath?: string;
  /** How changes are found: native watcher with polling fallback, or polling only. */
  watch: "auto" | "poll";
  line: number;
}

/** A destination server. */
export interface Server {
  name: string;
  /** Canonical transporter name. */
  transporter: string;
  /** Settings with defaults applied (secrets already substituted). */
  settings: OptionValues;
  /** Most parallel connections; 0 in the file means "default". */
  maxConnections: number;
  line: number;
}

/** Filter conditions of a rule; every set condition must pass. */
export interface Filter {
  /** Relative directory prefixes (no leading or trailing `/`); any may match. */
  paths?: string[];
  /** Extensions without the dot, lower case; any may match. */
  extensions?: string[];
  /** Directory names; the file is rejected when any directory of its path is one. */
  ignoredDirs?: string[];
  /** Tested against the absolute path, anchored at the start (Python `re.match`). */
  pattern?: RegExp;
  /** The original's strict comparisons: minimum means size > bytes, maximum size < bytes. */
  size?: { conditionType: "minimum" | "maximum"; bytes: number };
}

/** A processor in a rule's chain. */
export interface ProcessorRef {
  name: string;
  def: ProcessorDef;
  options: OptionValues;
}

/** Where a rule sends its files. */
export interface Destination {
  server: string;
  /** Parent path on the server, `/`-separated, no leading or trailing `/`, no `..`. */
  path: string;
}

/** One rule: which files of a source go where, through which processors. */
export interface Rule {
  /** Position in the file, from 0. */
  index: number;
  /** The source name (`for` attribute). */
  source: string;
  label: string;
  /** Seconds after a full sync to delete the source file; undefined never deletes. */
  deletionDelay?: number;
  filter?: Filter;
  processors: ProcessorRef[];
  destinations: Destination[];
  line: number;
}

/** Daemon-wide settings (`<settings>`), defaults applied. */
export interface Settings {
  /** Data directory; undefined means the default next to the config file. */
  dataDir?: string;
  workingDir?: string;
  pidFile?: string;
  logFile?: string;
  logMaxBytes: number;
  logBackups: number;
  logLevel: "debug" | "info" | "warn" | "error";
  logFormat: "text" | "json";
  /** Most files between discovery and record at once. */
  maxFilesInPipeline: number;
  maxSimultaneousProcessorChains: number;
  maxSimultaneousTransporters: number;
  /** Engine worker threads at most (minifiers, PNG optimiser). */
  engineWorkers: number;
  /** Seconds an idle engine worker is kept before it ends. */
  engineIdleTimeout: number;
  /** MiB the engine workers may use together (estimated). */
  engineMemory: number;
  /** Connections per server when `maxConnections` is 0 or absent. */
  defaultMaxConnections: number;
  /** First retry delay, seconds. */
  retryInitialDelay: number;
  /** Longest retry delay, seconds. */
  retryMaxDelay: number;
  /** Attempts after which a file is shown as failed (retries go on at the longest delay). */
  retryFailAfter: number;
  /** Seconds between full reconciliation scans; 0 disables them. */
  rescanInterval: number;
  /** Seconds between sweeps (a stat walk of each natively watched source); 0 disables them. */
  dirSweepInterval: number;
  /** `auto`: native watcher, polling as fallback; `poll`: polling only. */
  watchMode: "auto" | "poll";
  /** Seconds between polls in polling mode. */
  pollInterval: number;
  /** Milliseconds without a new event before a changed file is synced when no close-write was seen. */
  settleDelay: number;
  /** Milliseconds after which a file that keeps changing is synced anyway. */
  maxDelay: number;
  /** Milliseconds to hold deletions (they are sent after uploads). */
  deleteDelay: number;
  /** Share (0–1) of a source's files one scan may delete before the guard holds. */
  deleteGuardShare: number;
  /** The guard applies only when a scan would delete at least this many files. */
  deleteGuardMinFiles: number;
  /** Timeout of one network call, seconds. */
  timeout: number;
  /** `HOST:PORT` of the metrics and status listener; undefined disables it. */
  http?: string;
  /** Seconds a server may fail before `/healthz` reports unhealthy. */
  healthFailAfter: number;
  /** The web applications' synced files database; undefined means `<dataDir>/synced_files.db`. */
  syncedFilesDb?: string;
  /** The web applications' queue counts; undefined means `persistent_data.db` next to `syncedFilesDb`. */
  persistentDataDb?: string;
  /** Group given read access to the two web application databases; undefined: owner only. */
  syncedFilesDbGroup?: string;
  /** Seconds replaced or deleted unique-named files stay on the server before deletion. */
  keepReplaced: number;
  /** `sqlite` (this machine only) or the URL of the shared store of a fleet of nodes. */
  store: string;
  /** This daemon's node name; undefined means the host name. */
  node?: string;
  /** Seconds without a heartbeat after which a node is gone and its leases are released. */
  nodeTimeout: number;
  /**
   * Queued jobs plus unpublished records a fleet node buffers while the
   * shared store is unreachable; beyond it new changes wait for a rescan.
   */
  storeBufferLimit: number;
}

/** A loaded, valid configuration. */
export interface Config {
  /** Absolute path of the configuration file. */
  file: string;
  sources: Source[];
  servers: Server[];
  rules: Rule[];
  settings: Settings;
  /** Directory names ignored everywhere (`<sources ignoredDirs>`). */
  ignoredDirs: string[];
  /** Every secret value in the file, so outputs can mask them. */
  secrets: string[];
  /** Local destination folders inside a source's tree: never scanned nor watched (their content is output). */
  excludedDirs?: string[];
  /** Things the configuration does on purpose that the user should know (printed by every command). */
  notes?: string[];
}
