/**
 * What `verify` finds: the report types shared by the engine and the CLI.
 *
 * @module
 */

/** Kinds of problems `verify` reports. */
export type ProblemKind =
  /** A source file the rules send here has no record, or the remote file is gone. */
  | "missing"
  /** The source file changed (or was deleted) since it was synced. */
  | "stale"
  /** The remote file differs from the record (size or checksum). */
  | "mismatch"
  /** A remote file below a destination path that no record accounts for. */
  | "orphaned"
  /** The public URL does not answer 2xx to HEAD. */
  | "unreachable"
  /** The check itself failed (server down, permission denied…). */
  | "error";

/** Every {@linkcode ProblemKind}, in report order. */
export const PROBLEM_KINDS: readonly ProblemKind[] = [
  "missing",
  "stale",
  "mismatch",
  "orphaned",
  "unreachable",
  "error",
];

/** One difference found. */
export interface Problem {
  kind: ProblemKind;
  /** Source file (absolute), when the problem concerns one. */
  file?: string;
  /** Destination path (`dest`) of the record or rule. */
  dest?: string;
  /** Remote path, when known. */
  remotePath?: string;
  /** Public URL (for `unreachable`). */
  url?: string;
  /** What exactly is wrong. */
  reason: string;
  /** What `--repair` did about it, if anything. */
  repaired?: string;
}

/** The report of one server. */
export interface ServerVerify {
  name: string;
  transporter: string;
  /** Which checks the transport supports. */
  capabilities: { stat: boolean; list: boolean };
  /** Synced records checked. */
  records: number;
  /** Source files whose rules send them to this server. */
  sourceFiles: number;
  /** Remote files listed below the destination paths (when the transport can list). */
  remoteFiles: number;
  /** URLs checked with HEAD. */
  urls: number;
  ok: number;
  /** Files with queued work the daemon has not finished. */
  pending: number;
  counts: Record<ProblemKind, number>;
  problems: Problem[];
}

/** The whole report. */
export interface VerifyReport {
  ok: boolean;
  daemonRunning: boolean;
  repair: boolean;
  sources: { name: string; scanPath: string; present: boolean }[];
  servers: ServerVerify[];
  /** Things that could not be checked and do not count as problems. */
  warnings: string[];
  repaired: { queued: number; deleted: number; held: number };
  ms: number;
}

/** Options for `verify()`. */
export interface VerifyOptions {
  /** Overrides the data directory. */
  dataDir?: string;
  /** Queue or delete what is needed to converge. */
  repair?: boolean;
  /** Also HEAD every public URL. */
  httpHead?: boolean;
  /** Only this server. */
  server?: string;
  /** Concurrent remote calls per server (default: the server's connection limit, at most 16). */
  concurrency?: number;
  /** Timeout of one HTTP HEAD request, milliseconds (default 10 000). */
  headTimeoutMs?: number;
  /** Concurrent HEAD requests (default 8). */
  headConcurrency?: number;
  /** Aborts the run. */
  signal?: AbortSignal;
}
