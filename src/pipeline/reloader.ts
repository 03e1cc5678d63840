/**
 * Applies a new configuration to a running daemon (SIGHUP): reloads run one
 * at a time in the order asked. What changed is decided by the pure
 * {@linkcode diffConfig} (`reload.ts`); this module acts on it.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Config } from "../config/types.ts";
import { ClassifiedError } from "../errors.ts";
import { addSecret } from "../log.ts";
import { setupProcessors } from "../processors/chain.ts";
import type { PipelineContext } from "./context.ts";
import { writePidFile } from "./lock.ts";
import { dataDirFor, workDirFor } from "./paths.ts";
import { diffConfig } from "./reload.ts";
import type { Router } from "./routing.ts";
import type { Scheduler } from "./scheduler.ts";
import type { Servers } from "./servers.ts";
import type { Sources } from "./sources.ts";

/** The parts of a daemon a reload changes. */
export interface ReloadTargets {
  ctx: PipelineContext;
  servers: Servers;
  router: Router;
  sources: Sources;
  scheduler: Scheduler;
  /** Makes `next` the configuration in effect (`ctx.config` reads it afterwards). */
  setConfig(next: Config): void;
  /** Queues again the files that failed: the change may be their fix. */
  retryFailed(why: string): void;
}

/** Applies configurations to a running daemon, one at a time. */
export class Reloader {
  readonly #t: ReloadTargets;
  #reloads: Promise<void> = Promise.resolve();

  constructor(targets: ReloadTargets) {
    this.#t = targets;
  }

  /**
   * Applies `next` after the reloads asked before it. New or changed servers
   * and sources take effect, files whose targets changed are queued, new
   * sources are scanned, and files that failed are retried. On an error the
   * old configuration stays; a reload that finds the daemon stopping does
   * nothing.
   *
   * @throws {ClassifiedError} (fatal) when `next` cannot be applied live
   * (another data or working directory, a processor that cannot run).
   */
  reload(next: Config): Promise<void> {
    const p = this.#reloads.then(() => this.#apply(next));
    this.#reloads = p.catch(() => {});
    return p;
  }

  async #apply(next: Config): Promise<void> {
    const { ctx, servers, router, sources, scheduler } = this.#t;
    const old = ctx.config;
    if (
      dataDirFor(next, ctx.options.dataDir) !== ctx.dataDir ||
      workDirFor(next, ctx.dataDir) !== ctx.workDir
    ) {
      throw new ClassifiedError(
        "dataDir and workingDir cannot change while running; restart instead",
        "fatal",
      );
    }
    const problems = await setupProcessors(next.rules.flatMap((r) => r.processors), {
      settings: next.settings,
      cacheDir: path.join(ctx.dataDir, "processor-cache"),
    });
    if (problems.length > 0) throw new ClassifiedError(problems.join("; "), "fatal");
    if (ctx.stopping) return;
    for (const secret of next.secrets) addSecret(secret);
    const diff = diffConfig(old, next, servers.definitions());
    if (diff.restartNeeded.length > 0) {
      ctx.log.warn(
        `Changed settings take effect after a restart: ${diff.restartNeeded.join(", ")}`,
      );
    }
    this.#t.setConfig(next);
    const drained = Promise.allSettled([...scheduler.running]);
    for (const name of diff.retiredServers) servers.retire(name, drained);
    for (const server of next.servers) servers.add(server);
    await sources.reconfigure(
      diff.freshSources,
      diff.watchChanged,
      !ctx.options.once && !ctx.options.dryRun,
    );
    if (diff.pidFileChanged) {
      if (old.settings.pidFile) fs.rmSync(old.settings.pidFile, { force: true });
      if (next.settings.pidFile) writePidFile(next.settings.pidFile);
    }
    router.reevaluate();
    this.#t.retryFailed("the configuration was reloaded");
    for (const source of diff.freshSources) void sources.enqueueScan(source);
    ctx.log.info(
      `Configuration reloaded from "${next.file}": ${next.sources.length} source(s), ${next.servers.length} server(s), ${next.rules.length} rule(s)`,
    );
    ctx.bus.emit({ type: "reloaded", config: next });
    scheduler.pump();
  }
}
