/**
 * What every stage of the pipeline shares: the configuration in effect, the
 * store, the directories, the stop signal, the event bus and the run's
 * counts. The daemon owns it; stages read it.
 *
 * @module
 */
import type { Config } from "../config/types.ts";
import type { Logger } from "../log.ts";
import type { PipelineStore } from "../store/store.ts";
import type { EventBus, RunSummary } from "./events.ts";

/** Options for the daemon. */
export interface DaemonOptions {
  /** Sync until the queue is empty, then stop. */
  once?: boolean;
  /** Report what would be done; change nothing. */
  dryRun?: boolean;
  /** Overrides the data directory. */
  dataDir?: string;
  /** Approve deletes held by the delete guard at start. */
  approveDeletes?: boolean;
  /** Milliseconds to let running transfers finish at shutdown. */
  shutdownGrace?: number;
  /** Start from a new state database; the old one (if any) is moved aside. */
  rebuildState?: boolean;
}

/** Shared by the stages of one daemon. */
export interface PipelineContext {
  /** The configuration in effect (replaced by a reload). */
  readonly config: Config;
  readonly options: DaemonOptions;
  readonly store: PipelineStore;
  readonly dataDir: string;
  readonly workDir: string;
  /** Aborted when the daemon stops. */
  readonly signal: AbortSignal;
  /** True once stopping began. */
  readonly stopping: boolean;
  readonly bus: EventBus;
  readonly summary: RunSummary;
  readonly log: Logger;
}
