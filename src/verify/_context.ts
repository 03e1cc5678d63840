/**
 * State shared by the steps of one verify run, and small helpers they use.
 *
 * @module
 */
import * as path from "node:path";
import type { Config, Server, Source } from "../config/types.ts";
import { MODIFIED } from "../store/events.ts";
import type { ReadModel } from "../store/read_model.ts";
import type { Change, Job, Store, SyncedRow } from "../store/store.ts";
import type { Transport } from "../transports/transport.ts";
import type { WalkedFile } from "../watch/source_files.ts";
import type { ServerVerify, VerifyOptions, VerifyReport } from "./report.ts";

/** A file of a source tree, walked once per run. */
export interface SourceFile extends WalkedFile {
  source: Source;
}

/** What every server's check reads and where it writes its findings. */
export interface RunContext {
  config: Config;
  store: Store;
  read: ReadModel;
  dataDir: string;
  /** Every source file of every present source. */
  files: SourceFile[];
  byPath: Map<string, SourceFile>;
  /** Names of the sources whose root exists. */
  present: Set<string>;
  /** Jobs of the snapshot by {@linkcode key}. */
  queued: Map<string, Job>;
  opts: VerifyOptions;
  signal: AbortSignal;
  /** Work `--repair` queues at the end of the run. */
  changes: Change[];
  report: VerifyReport;
}

/** One server's check: the run, its records and its open transport. */
export interface ServerContext extends RunContext {
  server: Server;
  transport: Transport;
  sv: ServerVerify;
  /** The snapshot's records of this server. */
  rows: SyncedRow[];
  /** The snapshot's announced remote paths of this server. */
  intents: Set<string>;
  /** Concurrent remote calls. */
  limit: number;
}

/** Identity of a file at one destination. */
export function key(file: string, server: string, dest: string): string {
  return `${file}\0${server}\0${dest}`;
}

/** The source a path belongs to. */
export function sourceOf(config: Config, p: string): Source | undefined {
  return config.sources.find((s) => p.startsWith(s.scanPath + path.sep));
}

export { parseExtras } from "../store/types.ts";

/** The snapshot's job of a file at a destination when it is queued or running (not failed). */
export function pendingJob(c: ServerContext, file: string, dest: string): Job | undefined {
  const j = c.queued.get(key(file, c.server.name, dest));
  return j && j.state === "queued" ? j : undefined;
}

/**
 * Queues a file for `--repair` as a job that always runs (MODIFIED, force
 * 2). The daemon decides from the source as it is when the job runs, not
 * from this run's view: it uploads the file when present and deletes the
 * remote copy when gone. Merged into a job already queued (which then
 * cannot skip), or into a running one (which then runs again: its upload
 * may have landed before the destination lost it).
 */
export function queueRepair(
  c: ServerContext,
  row: { input_file: string; dest: string },
  source: Source,
): void {
  c.changes.push({
    input_file: row.input_file,
    source: source.name,
    server: c.server.name,
    dest: row.dest,
    event: MODIFIED,
    force: 2,
  });
}
