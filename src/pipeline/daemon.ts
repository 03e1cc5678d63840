/**
 * The daemon: discover → filter → process → transport → record, with one
 * AbortSignal through everything. Work lives in the store between stages,
 * so a crash at any moment loses nothing: the next start resumes the queue
 * and rescans the sources.
 *
 * This module wires the stages together and runs the lifecycle (open, run,
 * reload, stop); each stage lives in its own module (see
 * docs/ARCHITECTURE.md).
 *
 * @module
 */
import { RetiredJanitor } from "./retired_janitor.ts";
import { dataDirMode, WebAccess } from "./web_access.ts";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Config } from "../config/types.ts";
import { ClassifiedError, errorMessage } from "../errors.ts";
import { addSecret, logger } from "../log.ts";
import { setupProcessors } from "../processors/chain.ts";
import { MODIFIED } from "../store/events.ts";
import { lostState } from "../store/integrity.ts";
import { Store } from "../store/store.ts";
import type { WatchMode } from "../watch/watcher.ts";
import type { DaemonOptions, PipelineContext } from "./context.ts";
import { type DaemonEvent, EventBus, type RunSummary } from "./events.ts";
import { Janitor } from "./janitor.ts";
import { emptyDir } from "./janitor.ts";
import { lockDataDir, writeDataDirPid, writePidFile } from "./lock.ts";
import { dataDirFor, workDirFor } from "./paths.ts";
import { Reloader } from "./reloader.ts";
import { shutdown } from "./shutdown.ts";
import { Router } from "./routing.ts";
import { Scheduler } from "./scheduler.ts";
import { Servers } from "./servers.ts";
import { isStoreError, Sources } from "./sources.ts";
import { Worker } from "./worker.ts";
import { reportDryRun } from "./dry_run.ts";
import { Fleet } from "./fleet.ts";
import { parseStoreUrl } from "../config/store_url.ts";

export type { DaemonEvent, DaemonOptions, RunSummary };
export { formatBytes } from "./upload.ts";
export type { FileEvent } from "../store/events.ts";

/** The running daemon. */
export class Daemon {
  #config: Config;
  readonly dataDir: string;
  readonly workDir: string;
  readonly store: Store;
  readonly #o: DaemonOptions;
  readonly #log = logger("daemon");
  readonly #abort = new AbortController();
  readonly #bus = new EventBus(this.#log);
  readonly #summary: RunSummary = { synced: 0, deleted: 0, failed: 0, skipped: 0 };
  readonly #lock: Deno.FsFile;
  readonly #ctx: PipelineContext;
  readonly #servers: Servers;
  readonly #router: Router;
  readonly #sources: Sources;
  readonly #scheduler: Scheduler;
  readonly #worker: Worker;
  readonly #janitor: Janitor;
  /** The web-application databases (synced_files.db, persistent_data.db). */
  readonly #web: WebAccess;
  /** Deletes replaced versions once their grace period (keepReplaced) is over. */
  readonly #retired: RetiredJanitor;
  /** The link to the fleet's shared store; undefined on a machine on its own. */
  readonly #fleet: Fleet | undefined;
  readonly #reloader: Reloader;
  #stopping = false;
  #timers: number[] = [];

  /** The link to the fleet's shared store; undefined on a machine on its own. */
  get fleet(): Fleet | undefined {
    return this.#fleet;
  }

  private constructor(config: Config, options: DaemonOptions, lock: Deno.FsFile, dataDir: string) {
    this.#config = config;
    this.#o = options;
    this.#lock = lock;
    this.dataDir = dataDir;
    this.workDir = workDirFor(config, dataDir);
    this.store = new Store(this.dataDir, {
      dirMode: dataDirMode(config, dataDir),
      rebuild: !!options.rebuildState,
    });
    for (const secret of config.secrets) addSecret(secret);
    const shared = parseStoreUrl(config.settings.store);
    const fleet = typeof shared !== "string" && shared.kind !== "local" && !options.dryRun;
    this.#web = new WebAccess(
      () => this.#config,
      dataDir,
      this.store,
      logger("webdb"),
      !options.dryRun,
      fleet ? "web_records" : "synced_files",
    );
    // deno-lint-ignore no-this-alias
    const self = this;
    this.#ctx = {
      get config() {
        return self.#config;
      },
      options,
      store: this.store,
      dataDir,
      workDir: this.workDir,
      signal: this.#abort.signal,
      get stopping() {
        return self.#stopping;
      },
      bus: this.#bus,
      summary: this.#summary,
      log: this.#log,
    };
    const ctx = this.#ctx;
    this.#fleet = fleet ? new Fleet(ctx, this.store, logger("fleet")) : undefined;
    this.#servers = new Servers(ctx);
    this.#router = new Router(ctx, (name) => this.#servers.get(name)?.server);
    const trouble = (e: unknown) => this.#scheduler.storeTrouble(e);
    this.#janitor = new Janitor(
      ctx,
      this.#servers,
      trouble,
      this.#fleet && ((server, intent) => this.#fleet!.recordedElsewhere(server, intent)),
    );
    this.#retired = new RetiredJanitor({
      store: this.store,
      transport: (name) => {
        const s = this.#servers.get(name);
        return s && !s.pacer.blocked(Date.now()) ? this.#servers.transport(s) : undefined;
      },
      log: logger("janitor"),
      signal: this.#abort.signal,
      rewrite: (server, file) => {
        const source = this.#router.sourceOf(file.input_file);
        if (!source) return;
        this.store.tx(() =>
          this.store.enqueue(
            [{ ...file, source: source.name, server, event: MODIFIED, force: 2 }],
            Date.now(),
          )
        );
        this.#scheduler.pump();
      },
    });
    this.#sources = new Sources(ctx, this.store, this.#router, {
      pump: () => this.#scheduler.pump(),
      storeTrouble: trouble,
      modeChanged: () => this.#heartbeat(),
      // A --once run ends when its queue is empty: what it holds back would never be synced.
      ...(this.#fleet && !options.once
        ? { admit: (source: string, n: number) => this.#fleet!.admit(source, n) }
        : {}),
      storeTroubled: () => this.#scheduler.troubled,
    });
    const worker: Worker = this.#worker = new Worker(ctx, {
      servers: this.#servers,
      router: this.#router,
      sources: this.#sources,
      janitor: this.#janitor,
      batch: (fn) => this.#scheduler.batch(fn),
      unsettled: (job) => this.#scheduler.unsettled(job),
      storeTrouble: trouble,
      ...(this.#fleet ? { fleet: this.#fleet } : {}),
    });
    this.#scheduler = new Scheduler(ctx, this.#servers, {
      runJob: (s, job, release) => worker.runJob(s, job, release),
      claim: (s, jobs) => worker.claim(s, jobs),
      unclaim: (s, jobs) => worker.unclaim(s, jobs),
      collectGarbage: (s) => this.#janitor.collectGarbage(s),
      // Scans that failed meanwhile lost their watcher events.
      recovered: () => this.#sources.scanAll(),
      fatal: (e) => this.#fail(e),
      ...(this.#fleet ? { preferred: (server, limit) => this.#fleet!.ready(server, limit) } : {}),
    });
    this.#reloader = new Reloader({
      ctx,
      servers: this.#servers,
      router: this.#router,
      sources: this.#sources,
      scheduler: this.#scheduler,
      setConfig: (next) => {
        this.#config = next;
      },
      retryFailed: (why) => this.#retryFailed(why),
    });
    if (this.#fleet) {
      // Jobs whose claims were answered start with the pick of the next record transaction.
      this.#fleet.onAnswers = () => this.#scheduler.pumpSoon();
      // Jobs answered "done" ahead are settled with the route their run would take.
      this.#fleet.route = (job, source, size) => {
        const s = this.#servers.get(job.server);
        const r = s && worker.route(s.server, source, job, size);
        return r && { chain: r.chain, processors: r.rule.processors.length > 0 };
      };
    }
  }

  /**
   * Opens the data directory (refusing a second instance) and prepares the
   * daemon. Call {@linkcode Daemon.run} next.
   */
  static async open(config: Config, options: DaemonOptions = {}): Promise<Daemon> {
    const dataDir = dataDirFor(config, options.dataDir);
    const lock = await lockDataDir(dataDir);
    try {
      return new Daemon(config, options, lock, dataDir);
    } catch (e) {
      lock.close();
      throw e;
    }
  }

  /** The configuration in effect (replaced by {@linkcode Daemon.reload}). */
  get config(): Config {
    return this.#config;
  }

  /** Whether every source was scanned once since the start. */
  get initialScanDone(): boolean {
    return this.#sources.initialScanDone;
  }

  /** Aborted when the daemon stops. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Watch modes per source. */
  get watchModes(): ReadonlyMap<string, WatchMode> {
    return this.#sources.watchModes;
  }

  /** Files in flight right now. */
  get inFlight(): number {
    return this.#scheduler.running.size;
  }

  /** Counts of this run. */
  get summary(): Readonly<RunSummary> {
    return this.#summary;
  }

  /**
   * Subscribes to {@linkcode DaemonEvent}s; returns an unsubscribe function.
   *
   * @example
   * ```ts ignore
   * const off = daemon.on((e) => {
   *   if (e.type === "job-done") console.log(e.server, e.lagMs);
   * });
   * off();
   * ```
   */
  on(listener: (event: DaemonEvent) => void): () => void {
    return this.#bus.on(listener);
  }

  /** Resolves when the queue is empty and nothing runs (for tests and `--once`). */
  waitIdle(): Promise<void> {
    return this.#scheduler.untilIdle();
  }

  /**
   * Applies a new configuration while running (SIGHUP). New or changed
   * servers and sources take effect, files whose targets changed are queued
   * (files no longer matched are left alone where they were synced), new
   * sources are scanned, and files that failed are retried (the change may
   * be their fix). On an error the old configuration stays.
   *
   * @throws {ClassifiedError} when the new configuration cannot be applied
   * live (another data directory, a processor that cannot run).
   */
  reload(next: Config): Promise<void> {
    return this.#reloader.reload(next);
  }

  /** Files that failed are tried again now: a start or a reload may have fixed their cause. */
  #retryFailed(why: string) {
    const n = this.store.retryAfterFix(Date.now());
    if (n > 0) this.#log.info(`Retrying ${n} file(s) that failed before: ${why}`);
  }

  /**
   * Runs: starts the watchers, scans every source, and syncs. With `once`,
   * resolves when the queue is empty; otherwise when {@linkcode stop} is called.
   */
  async run(): Promise<RunSummary> {
    const o = this.#o;
    const problems = await setupProcessors(this.config.rules.flatMap((r) => r.processors), {
      settings: this.config.settings,
      cacheDir: path.join(this.dataDir, "processor-cache"),
    });
    if (problems.length > 0) throw new ClassifiedError(problems.join("\n"), "fatal");
    writeDataDirPid(this.dataDir);
    if (this.config.settings.pidFile) writePidFile(this.config.settings.pidFile);
    emptyDir(this.workDir);
    fs.mkdirSync(this.workDir, { recursive: true, mode: 0o700 });
    this.store.resetRunning();
    this.#fleet?.start({
      rescan: (names) => {
        for (const source of this.config.sources) {
          if (names.includes(source.name)) void this.#sources.enqueueScan(source);
        }
      },
    });
    // Every run publishes at its end; after a clean stop, the files that stop published still
    // hold (same keys, same state): a restart does not rebuild them before anything changes (at
    // 100,000 files that took as long as the scan). A fleet node's web database follows the
    // shared record instead.
    const resumed = !this.#fleet && this.store.closedCleanly && this.#web.resume();
    if (!resumed) this.#web.refresh(true);
    for (const source of this.config.sources) this.#sources.rootPresent(source);
    if (o.approveDeletes) this.store.approveDeletes();
    this.#heartbeat();
    this.#every(2000, () => this.#heartbeat());

    // Until here: the process's start (Deno, module loading, configuration, store open).
    const startupMs = Math.round(performance.now());
    const tw = performance.now();
    if (!o.once && !o.dryRun) this.#sources.startWatchers();
    const watchSetupMs = Math.round(performance.now() - tw);
    const t0 = performance.now();
    if (!o.dryRun) {
      this.#router.reevaluate();
      this.#retryFailed("a new start");
    }
    for (const source of this.config.sources) await this.#sources.enqueueScan(source);
    this.#sources.initialScanDone = true;
    const queued = this.store.activeCount();
    this.#log.info(`Initial scan done in ${Math.round(performance.now() - t0)} ms`, {
      queued,
      startupMs,
      watchSetupMs,
    });
    this.#bus.emit({ type: "initial-scan-done", queued, ms: performance.now() - t0 });
    if (o.dryRun) {
      this.#summary.skipped = reportDryRun(
        logger("dry-run"),
        this.#sources.dryChanges,
        this.#router,
        this.store.activeCount(),
      );
      await this.#shutdown();
      if (this.#fatal) throw this.#fatal;
      return this.#summary;
    }
    if (!o.once) this.#startTimers();
    this.#scheduler.pump();
    if (o.once) {
      // stop() (SIGINT, SIGTERM) ends a --once run too, with work left in the queue.
      const aborted = this.#aborted();
      await Promise.race([this.#scheduler.untilIdle(), aborted]);
      if (!this.#abort.signal.aborted) {
        await this.#servers.flush();
        // Only what is due: later deletions stay scheduled for the next run.
        await this.#janitor.sourceDeletions();
        await this.#retired.run();
      }
    } else {
      await this.#aborted();
    }
    await this.#shutdown();
    if (this.#fatal) throw this.#fatal;
    return this.#summary;
  }

  /** An error that ends the run (the state database is damaged or gone): stops, then `run()` throws it. */
  #fatal: Error | undefined;

  #fail(e: Error) {
    if (this.#fatal) return;
    this.#fatal = e;
    this.#log.error(e.message);
    this.stop();
  }

  #aborted(): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.#abort.signal.aborted) resolve();
      this.#abort.signal.addEventListener("abort", () => resolve());
    });
  }

  #every(ms: number, fn: () => void) {
    this.#timers.push(setInterval(fn, ms) as unknown as number);
  }

  /** The periodic work of a watching daemon. */
  #startTimers() {
    this.#sources.startSweeps();
    const rescan = this.config.settings.rescanInterval;
    if (rescan > 0) {
      const jitter = () => rescan * 1000 * (0.75 + Math.random() * 0.5);
      const tick = () => {
        if (this.#stopping) return;
        try {
          this.store.checkFile(); // The reconciliation also checks the state it relies on.
        } catch (e) {
          return this.#scheduler.storeTrouble(e);
        }
        this.#sources.scanAll();
        this.#timers.push(setTimeout(tick, jitter()) as unknown as number);
      };
      this.#timers.push(setTimeout(tick, jitter()) as unknown as number);
    }
    this.#every(1000, () => {
      this.#janitor.sourceDeletions().catch((e) => this.#scheduler.storeTrouble(e));
      this.#web.refresh();
      void this.#retired.run();
      this.#worker.probeRefused(Date.now());
      // Other processes (retry, approve-deletes) change the queue and the guard.
      this.#scheduler.pump();
      for (const g of this.store.guards()) {
        const source = this.config.sources.find((x) => x.name === g.source);
        if (g.approved && source) void this.#sources.enqueueScan(source);
      }
    });
    this.#every(10_000, () => {
      this.#sources.checkRoots();
      try {
        this.#sources.recheckProblems();
        this.store.pruneTransfers(Date.now());
      } catch (e) {
        this.#scheduler.storeTrouble(e);
      }
    });
  }

  /** Stops watching, lets running transfers finish (bounded), and closes everything. */
  stop(): void {
    if (this.#stopping) return;
    this.#log.info("Stopping");
    this.#stopping = true;
    this.#abort.abort();
  }

  async #shutdown() {
    this.#stopping = true;
    for (const t of this.#timers) clearTimeout(t);
    await shutdown({
      ctx: this.#ctx,
      store: this.store,
      scheduler: this.#scheduler,
      sources: this.#sources,
      servers: this.#servers,
      web: this.#web,
      fleet: this.#fleet,
      lock: this.#lock,
      fatal: () => this.#fatal !== undefined,
    });
  }

  #heartbeat() {
    const lost = this.store.lost();
    if (lost) {
      this.#fail(lostState(this.store.file, lost));
      return;
    }
    try {
      this.store.setRuntime("daemon", {
        pid: Deno.pid,
        heartbeat: Date.now(),
        inFlight: this.#scheduler.running.size,
        initialScanDone: this.#sources.initialScanDone,
        watchers: Object.fromEntries(this.#sources.watchModes),
        servers: Object.fromEntries(
          [...this.#servers.values()].map((s) => [s.server.name, {
            running: s.running,
            blockedUntil: s.pacer.blockedUntil || null,
          }]),
        ),
      });
    } catch (e) {
      if (isStoreError(e)) this.#scheduler.storeTrouble(e);
      else this.#log.warn(`Cannot write status: ${errorMessage(e)}`);
    }
  }
}
