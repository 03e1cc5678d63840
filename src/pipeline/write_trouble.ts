/**
 * When the state database cannot be written: a damaged or lost database
 * ends the run; otherwise (a full disk, busy) the daemon stays up, says so
 * and tries again, and notices when writing works again.
 *
 * Contract: {@linkcode WriteTrouble.report} is called with each failed
 * write; it logs at most every 30 s and arms one retry (the `retry`
 * callback, 2 s later) until stopping. {@linkcode WriteTrouble.check} is
 * called once work that writes went through: while in trouble it writes a
 * probe (reading works on a full disk, so only a write that lands proves
 * the trouble is over; it throws when it does not land) and, when it
 * landed, ends the trouble and calls `recovered`.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import { damagedState, StateError, storeTrouble } from "../store/integrity.ts";
import type { PipelineContext } from "./context.ts";

/** What the trouble calls back into. */
export interface WriteTroubleHooks {
  /** Tries the writes again (the scheduler pumps). */
  retry(): void;
  /** The database became writable again after trouble: scans lost meanwhile must rerun. */
  recovered(): void;
  /** The state database is damaged or gone: the run must end with this error. */
  fatal(e: Error): void;
}

/** Whether the state database can be written, and what to do while it cannot. */
export class WriteTrouble {
  readonly #ctx: PipelineContext;
  readonly #hooks: WriteTroubleHooks;
  /** When the current trouble began; 0 while writes land. */
  #at = 0;
  /** When the trouble was last logged. */
  #logged = 0;
  #retry: number | undefined;

  constructor(ctx: PipelineContext, hooks: WriteTroubleHooks) {
    this.#ctx = ctx;
    this.#hooks = hooks;
  }

  /** Whether the database could not be written and no write has landed since. */
  get troubled(): boolean {
    return this.#at > 0;
  }

  /**
   * The database cannot be written. A damaged or lost database ends the run
   * (the `fatal` hook); otherwise (disk full, busy) says so, naming the data
   * directory (at most every 30 s), and retries; the daemon stays up.
   */
  report(e: unknown): void {
    const trouble = storeTrouble(e);
    const store = this.#ctx.store;
    if (e instanceof StateError || trouble === "damaged") {
      this.#hooks.fatal(
        e instanceof StateError ? e : damagedState(store.file, errorMessage(e), e),
      );
      return;
    }
    const now = Date.now();
    this.#at ||= now;
    // A full disk: what the WAL holds beyond the live pages is freed by a checkpoint.
    if (trouble === "full") store.checkpoint();
    if (now - this.#logged > 30_000) {
      this.#logged = now;
      this.#ctx.log.error(
        `Cannot write the database in "${this.#ctx.dataDir}": ${errorMessage(e)}; ${
          trouble === "full"
            ? "waiting until it can be written again (free some space there)"
            : "retrying"
        }`,
      );
    }
    if (this.#retry === undefined && !this.#ctx.stopping) {
      this.#retry = setTimeout(() => {
        this.#retry = undefined;
        this.#hooks.retry();
      }, 2000) as unknown as number;
    }
  }

  /** Ends the trouble when a probe write lands (see the module's contract); throws when not. */
  check(): void {
    if (this.#at === 0) return;
    const ctx = this.#ctx;
    // Reading works on a full disk: only a write that lands proves the trouble is over.
    ctx.store.setRuntime("writable", Date.now());
    // The WAL grew while checkpoints could not land: fold it into the database now, while
    // the space that came back is free, or the rescan below fills the disk again with it.
    ctx.store.checkpoint();
    // Said once per reported trouble (errors are reported at most every 30 s), not per retry.
    const said = this.#logged >= this.#at;
    this.#at = 0;
    ctx.log[said ? "info" : "debug"](
      `The database in "${ctx.dataDir}" can be written again; rescanning`,
    );
    this.#hooks.recovered();
  }

  /** Stops the retry timer (at shutdown). */
  stopTimer(): void {
    if (this.#retry !== undefined) clearTimeout(this.#retry);
  }
}
