/**
 * What a failed job leads to, by the retry policy: it waits in the queue
 * (the fleet's shared store does not answer, or the job must wait: given up
 * after 50 waits; a job waiting for other files to be synced waits for
 * their records instead, see below), goes back unchanged (the run stops), waits for the end of
 * its server's pause (a server-wide error while a daemon runs: transfers
 * running in parallel fail together and back off once), or is retried later
 * with a growing delay until it is marked as failed.
 *
 * Contract: {@linkcode Failures.record} writes the job's outcome (requeued,
 * deferred or failed) and says what happened (an event, a log line, the
 * run's failed count); a file the server refused marks the server for a
 * probe (`s.refused`, see `Worker.probeRefused`). A refused login fails the
 * file at once and is logged at most once a minute per server.
 *
 * A job that waits for other files (`RequeueError.waitsFor`) records them as
 * its references, so the record of any of them on this server queues it
 * again at once (see the dependents in `Uploader.upload`); until then it
 * sleeps for the error's delay, not counted as one of the 50 waits. A file
 * recorded between the processor's look and this record is seen here, in
 * the same synchronous step, so no wake-up is lost.
 *
 * @module
 */
import { classify, errorMessage, RequeueError, SourceChanged } from "../errors.ts";
import type { Job } from "../store/store.ts";
import type { PipelineContext } from "./context.ts";
import { FleetUnavailable } from "./fleet.ts";
import { nextAttempt } from "./retry.ts";
import type { ServerState } from "./servers.ts";

/** Turns failed jobs into their recorded outcome. */
export class Failures {
  readonly #ctx: PipelineContext;
  /** When each server last logged an auth failure (a run logs one, not one per file). */
  readonly #authLoggedAt = new WeakMap<ServerState, number>();

  constructor(ctx: PipelineContext) {
    this.#ctx = ctx;
  }

  /**
   * Records the outcome of `job`, which failed on `s` with `err`; throws
   * when the database cannot record it (the caller puts the job back).
   */
  record(s: ServerState, job: Job, err: unknown): void {
    const { store, bus, summary, options } = this.#ctx;
    const now = Date.now();
    const st = this.#ctx.config.settings;
    const failed = (kind: string, message: string, failed: boolean) =>
      bus.emit({
        type: "job-failed",
        server: s.server.name,
        file: job.input_file,
        kind,
        message,
        failed,
      });
    if (err instanceof FleetUnavailable) {
      // Not the file's fault: it waits in the local queue until the shared store answers.
      store.requeue(job, err.retryAt, err.message, false);
      s.log.debug(`"${job.input_file}" waits for the shared store: ${err.message}`);
      return;
    }
    if (err instanceof RequeueError && err.waitsFor.length > 0) {
      const server = s.server.name;
      store.addDeps(job.input_file, server, job.dest, err.waitsFor);
      const arrived = err.waitsFor.some((f) => store.urlFor(f, server) !== undefined);
      store.requeue(job, arrived ? now : now + err.delayMs, err.message, false);
      s.log.debug(`"${job.input_file}" waits: ${err.message}`);
      return;
    }
    // A file that changed while it was read is planned again from a fresh stat: wrapped by a
    // transport or not, it is no failure of the file or the server.
    const changed = SourceChanged.in(err);
    if (err instanceof RequeueError || changed) {
      const delayMs = changed
        ? SourceChanged.delayAfter(job.requeues)
        : (err as RequeueError).delayMs;
      const message = errorMessage(err);
      if (job.requeues >= 50) {
        store.fail(
          job,
          "retry",
          `Gave up waiting: ${message}`,
          now + st.retryMaxDelay * 1000,
          1,
        );
        summary.failed++;
        failed("retry", message, true);
      } else {
        store.requeue(
          job,
          now + Math.min(delayMs, options.once ? 500 : Infinity),
          message,
        );
        s.log.debug(`"${job.input_file}" waits: ${message}`);
      }
      return;
    }
    if (this.#ctx.signal.aborted) {
      store.requeue(job, now, undefined, false);
      return;
    }
    const kind = classify(err);
    const message = errorMessage(err);
    const serverWide = kind === "server" || kind === "auth";
    if (serverWide && !options.once) {
      // Transfers running in parallel fail together: back off once for all of them.
      const delay = s.pacer.fail(now);
      if (delay !== undefined) {
        s.log.error(`${message}; pausing server for ${Math.round(delay / 1000)} s`);
        store.serverFailed(s.server.name, message, s.pacer.blockedUntil, now);
      }
      failed(kind, message, false);
      store.deferForServer(job, s.pacer.blockedUntil, message, kind);
      return;
    }
    const attempts = job.attempts + 1;
    // A refused login (auth) fails the file at once: retrying it would only log in again.
    const failAfter = kind === "auth" ? 1 : st.retryFailAfter;
    const next = nextAttempt(kind, attempts, {
      initialMs: st.retryInitialDelay * 1000,
      maxMs: st.retryMaxDelay * 1000,
      failAfter,
    }, now);
    store.fail(job, kind, message, now + next.delayMs, failAfter);
    if (serverWide) store.serverFailed(s.server.name, message, null, now);
    if (next.failed) summary.failed++;
    // The server refused it (its messages name it): probe for the fix, unless already probing.
    if (next.failed && !options.once && message.includes(`server "${s.server.name}"`)) {
      const delayMs = Math.max(st.retryMaxDelay * 1000, 1000);
      s.refused ??= { job: job.id, probeAt: now + delayMs, delayMs };
    }
    failed(kind, message, next.failed);
    if (kind === "auth") {
      // One refused login explains every file of the server: say it once a minute.
      const quiet = now - (this.#authLoggedAt.get(s) ?? 0) < 60_000;
      if (!quiet) this.#authLoggedAt.set(s, now);
      s.log[quiet ? "debug" : "error"](
        `${message} (auth error: every file for this server fails until the configuration is fixed)`,
      );
      return;
    }
    s.log[next.failed ? "error" : "warn"](
      `${message}${
        next.failed
          ? " (marked as failed)"
          : `; retry ${attempts} in ${Math.round(next.delayMs / 1000)} s`
      }`,
    );
  }
}
