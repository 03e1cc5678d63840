/**
 * The end of a run: stops the watchers, gives running transfers the grace
 * period, closes the transports and the fleet link, records the stop,
 * publishes the web databases, closes the store and releases the data
 * directory. Every wait is bounded (grace + 5 s), so the process ends
 * whatever a watcher (blocked on a special file), a server (gone silent) or
 * the disk does; the final writes are best effort.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";
import type { Store } from "../store/store.ts";
import type { PipelineContext } from "./context.ts";
import type { Fleet } from "./fleet.ts";
import { emptyDir } from "./janitor.ts";
import { removePidFiles } from "./lock.ts";
import type { Scheduler } from "./scheduler.ts";
import type { Servers } from "./servers.ts";
import type { Sources } from "./sources.ts";
import type { WebAccess } from "./web_access.ts";

/** What a run closes at its end. */
export interface ShutdownParts {
  ctx: PipelineContext;
  store: Store;
  scheduler: Scheduler;
  sources: Sources;
  servers: Servers;
  web: WebAccess;
  /** The link to the fleet's shared store, if any. */
  fleet: Fleet | undefined;
  /** The data directory lock, released last. */
  lock: Deno.FsFile;
  /**
   * Whether the run ends on a fatal error (asked when needed: it can arrive
   * while transfers drain). Then the store is not marked closed cleanly, and
   * failed final writes are not reported again.
   */
  fatal(): boolean;
}

/**
 * Shuts a run down (see the module). The caller has stopped its own timers
 * and marked the context as stopping.
 */
export async function shutdown(parts: ShutdownParts): Promise<void> {
  const { ctx, store, scheduler, sources, servers } = parts;
  scheduler.stopTimers();
  const grace = ctx.options.shutdownGrace ?? 10_000;
  // The process ends within the grace plus this clean-up budget, whatever a watcher
  // (blocked on a special file), a server (gone silent) or the disk does.
  const deadline = Date.now() + grace + 5000;
  const bounded = <T>(p: Promise<T>) => {
    let t = 0;
    const late = new Promise((r) => {
      t = setTimeout(r, Math.max(0, deadline - Date.now())) as unknown as number;
      Deno.unrefTimer(t);
    });
    return Promise.race([p, late]).finally(() => clearTimeout(t));
  };
  await sources.stop(bounded);
  const running = scheduler.running;
  if (running.size > 0) {
    ctx.log.info(`Waiting up to ${grace} ms for ${running.size} running transfers`);
    await Promise.race([
      Promise.allSettled([...running]),
      new Promise((r) => setTimeout(r, grace)),
    ]);
  }
  await bounded(servers.flush().catch(() => {}));
  await bounded(servers.close());
  await bounded(parts.fleet?.close() ?? Promise.resolve());
  // The final writes are best effort: the queue is on disk and running jobs are reset at the
  // next start.
  const finalWriteFailed = (e: unknown) => {
    if (parts.fatal()) return;
    ctx.log.error(
      `Cannot record the stop in the database in "${ctx.dataDir}": ${errorMessage(e)}`,
    );
  };
  try {
    scheduler.flush();
    store.resetRunning();
  } catch (e) {
    finalWriteFailed(e);
  }
  parts.web.close();
  try {
    store.setRuntime("daemon", { pid: null, stoppedAt: Date.now() });
  } catch (e) {
    finalWriteFailed(e);
  }
  store.checkpoint();
  // A run ended by a damaged or lost state must not vouch for the file at the next start.
  store.close({ clean: !parts.fatal() });
  removePidFiles(ctx.dataDir, ctx.config.settings.pidFile);
  try {
    emptyDir(ctx.workDir);
  } catch {
    // Best effort.
  }
  parts.lock.close();
}
