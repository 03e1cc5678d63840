/**
 * Typed access to the database: source state, the persistent work queue,
 * the synced-files record and the daemon's runtime state. Every method is
 * synchronous (node:sqlite); batches run in one transaction.
 *
 * {@linkcode Store} is assembled from one part per job, each building on the
 * one before: the connection (`connection.ts`), source state
 * (`source_state.ts`), the synced record, intents and dependencies
 * (`records.ts`), the queue (`queue.ts`) and runtime state (`runtime.ts`).
 *
 * @module
 */
import { RuntimeState } from "./runtime.ts";
import type { PipelineStore } from "./types.ts";

export {
  type Change,
  type FileRow,
  type IntentRow,
  type Job,
  NEVER,
  type PipelineStore,
  type ProblemRow,
  type ServerRow,
  type SyncedRow,
} from "./types.ts";

/** The database of one data directory. */
export class Store extends RuntimeState implements PipelineStore {}
