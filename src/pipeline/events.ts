/**
 * What the daemon reports to observers (progress display, metrics), and the
 * bus that delivers it.
 *
 * @module
 */
import type { Config } from "../config/types.ts";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";

/**
 * What the daemon reports to observers (progress display, metrics). Listeners
 * run synchronously and must be cheap; an exception in one is logged and
 * ignored.
 */
export type DaemonEvent =
  /** A full scan of a source starts; `initial` for the scans at start-up. */
  | { type: "scan-start"; source: string; initial: boolean }
  /** A scan found created or modified files (one batch). */
  | { type: "scan-found"; source: string; files: number; bytes: number }
  | { type: "scan-done"; source: string; files: number; changes: number; ms: number }
  /** Every source was scanned once; `queued` jobs wait. */
  | { type: "initial-scan-done"; queued: number; ms: number }
  /** A job finished: `lagMs` runs from the change's discovery to now. */
  | {
    type: "job-done";
    server: string;
    file: string;
    result: "synced" | "deleted" | "skipped";
    bytes: number;
    ms: number;
    lagMs: number;
  }
  /** An attempt failed; `failed` when the file is now shown as failed. */
  | {
    type: "job-failed";
    server: string;
    file: string;
    kind: string;
    message: string;
    failed: boolean;
  }
  /** The daemon applied a new configuration. */
  | { type: "reloaded"; config: Config };

/** Summary of a run. */
export interface RunSummary {
  synced: number;
  deleted: number;
  failed: number;
  skipped: number;
}

/**
 * Delivers {@linkcode DaemonEvent}s to listeners, synchronously, isolating
 * a failing listener.
 *
 * @example
 * ```ts
 * import { EventBus } from "./events.ts";
 * import { logger } from "../log.ts";
 * const bus = new EventBus(logger("test"));
 * const seen: string[] = [];
 * const off = bus.on((e) => seen.push(e.type));
 * bus.emit({ type: "scan-start", source: "site", initial: true });
 * off();
 * if (seen.length !== 1) throw new Error("not delivered");
 * ```
 */
export class EventBus {
  readonly #listeners = new Set<(event: DaemonEvent) => void>();
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Subscribes; returns an unsubscribe function. */
  on(listener: (event: DaemonEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Whether anyone listens (to skip building events nobody reads). */
  get listening(): boolean {
    return this.#listeners.size > 0;
  }

  emit(event: DaemonEvent): void {
    for (const l of this.#listeners) {
      try {
        l(event);
      } catch (e) {
        this.#log.warn(`A ${event.type} listener failed: ${errorMessage(e)}`);
      }
    }
  }
}
