/**
 * What a scan could not sync, and why: kept in the store's problems table
 * (for `status` and the exit code of `sync --once`) and logged once per
 * path and reason. Skipped special files are logged once and are not
 * problems (they are never synced, by design).
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { Store } from "../store/store.ts";
import { NON_UTF8 } from "./_stat.ts";

/** Records problems found by scans, logging each once. */
export class ProblemLog {
  readonly #store: Store;
  readonly #log: Logger;
  readonly #warned = new Set<string>();

  constructor(store: Store, log: Logger) {
    this.#store = store;
    this.#log = log;
  }

  /**
   * FIFOs, sockets and device nodes are never opened (a FIFO blocks the
   * reader until a writer comes): skipped, reported once at info level.
   */
  special(p: string): void {
    const key = `special:${p}`;
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#log.info(`Skipping "${p}": not a regular file (named pipe, socket or device)`);
  }

  /** Notes a path that cannot be synced into `found` (saved by {@linkcode save}); logged once. */
  note(
    found: Map<string, string>,
    p: string,
    reason: string,
    message = `Cannot sync "${p}": ${reason}`,
  ): void {
    found.set(p, reason);
    this.warnOnce(`problem:${p}\0${reason}`, message);
  }

  /**
   * Saves the problems a walk found below `root` (the whole source when
   * absent): those not found again are resolved.
   */
  save(source: string, found: ReadonlyMap<string, string>, root?: string): void {
    const now = Date.now();
    if (root === undefined) {
      this.#store.setProblems(source, found, now);
      return;
    }
    this.#store.tx(() => {
      this.#store.clearProblems(root);
      for (const [p, reason] of found) this.#store.recordProblem(source, p, reason, now);
    });
  }

  /**
   * Problem paths worth re-checking soon (permissions may come back without
   * an event the watcher sees). Names that are not UTF-8 are left to events
   * and full scans.
   */
  retryPaths(source: string): { path: string; written: boolean }[] {
    return this.#store.problems(source)
      .filter((r) => r.reason !== NON_UTF8)
      .map((r) => ({ path: r.path, written: false }));
  }

  /** Logs a warning once per key. */
  warnOnce(key: string, message: string): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#log.warn(message);
  }
}
