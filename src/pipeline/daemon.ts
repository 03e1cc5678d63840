/**
 * The daemon: discover → filter → process → transport → record, with one
 * AbortSignal through everything. Work lives in SQLite between stages, so a
 * crash at any moment loses nothing: the next start resumes the queue and
 * rescans the sources.
 *
 * @module
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { setImmediate } from "node:timers";
import * as path from "node:path";
import type { Config, Destination, Rule, Server, Source } from "../config/types.ts";
import { ClassifiedError, classify, errorMessage, RequeueError } from "../errors.ts";
import { matchingRules } from "../filter/filter.ts";
import { addSecret, type Logger, logger } from "../log.ts";
import { chainIsPerServer, runChain, setupProcessors } from "../processors/chain.ts";
import { CREATED, DELETED, eventName, type FileEvent, MODIFIED } from "../store/events.ts";
import { type Change, type Job, NEVER, Store, type SyncedRow } from "../store/store.ts";
import { damagedState, lostState, StateError, storeTrouble } from "../store/integrity.ts";
import { safeRemotePath, tempName } from "../transports/paths.ts";
import { getTransportDef, isFlusher, isMover, type Transport } from "../transports/transport.ts";
import { Aggregator } from "../watch/aggregator.ts";
import { type Batch, type FsChange, Scanner } from "../watch/scanner.ts";
import { SourceWatcher, type WatchMode } from "../watch/watcher.ts";
import { startFifoReleaser } from "../watch/fifo_release.ts";
import { md5File, signature } from "../util/hash.ts";
import { dataDirFor, workDirFor } from "./paths.ts";
import { Semaphore } from "../util/semaphore.ts";

/** Options for {@linkcode Daemon}. */
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
  /** {@linkcode Daemon.reload} applied a new configuration. */
  | { type: "reloaded"; config: Config };

/** Summary of a run. */
export interface RunSummary {
  synced: number;
  deleted: number;
  failed: number;
  skipped: number;
}

interface Target {
  server: Server;
  dest: Destination;
}

/** What syncing one job did. */
interface SyncResult {
  kind: "synced" | "deleted" | "skipped";
  bytes: number;
  remotePath: string;
  /** Records the upload: the caller runs it in the transaction that completes the job. */
  record?: () => void;
  /** Remote paths whose intents `record` drops. */
  dropped?: string[];
  /** Runs once recorded (the log line). */
  done?: () => void;
}

/** A write waiting for the tick's record transaction. */
interface BatchItem {
  fn: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** Jobs picked in a record transaction, to start once it is committed. */
interface Picked {
  jobs: [ServerState, Job][];
  /** Servers that had fewer ready jobs than free slots. */
  drained: Set<ServerState>;
}

/** A live server: its transport and limits. */
interface ServerState {
  server: Server;
  transport?: Promise<Transport>;
  slots: Semaphore;
  blockedUntil: number;
  backoff: number;
  running: number;
  log: Logger;
  /** Garbage collection of leftovers: done before the queue of the server runs. */
  gc: "todo" | "running" | "done";
}

/** Is another instance using this data directory? Holds the lock for the process lifetime. */
async function lockDataDir(dataDir: string): Promise<Deno.FsFile> {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = await Deno.open(path.join(dataDir, "lock"), {
    create: true,
    write: true,
    mode: 0o600,
  });
  if (!(await file.tryLock(true))) {
    file.close();
    let pid = "";
    try {
      pid = fs.readFileSync(path.join(dataDir, "daemon.pid"), "utf8").trim();
    } catch {
      // No pid recorded.
    }
    throw new ClassifiedError(
      `Another fileconveyor${
        pid ? ` (pid ${pid})` : ""
      } is already running with data directory "${dataDir}"`,
      "fatal",
    );
  }
  return file;
}

/** The running daemon. */
export class Daemon {
  #config: Config;
  readonly dataDir: string;
  readonly workDir: string;
  readonly store: Store;
  readonly #o: DaemonOptions;
  readonly #log = logger("daemon");
  readonly #servers = new Map<string, ServerState>();
  readonly #globalSlots: Semaphore;
  readonly #chainSlots: Semaphore;
  readonly #abort = new AbortController();
  readonly #running = new Set<Promise<void>>();
  readonly #watchers = new Map<string, SourceWatcher>();
  readonly #aggregators = new Map<string, Aggregator>();
  #scanner: Scanner;
  readonly #listeners = new Set<(event: DaemonEvent) => void>();
  readonly #summary: RunSummary = { synced: 0, deleted: 0, failed: 0, skipped: 0 };
  readonly #watchModes = new Map<string, WatchMode>();
  readonly #lock: Deno.FsFile;
  #wake: number | undefined;
  #wakeAt = Infinity;
  #pumping = false;
  #pumpAgain = false;
  #stopping = false;
  #idle: { resolve: () => void; promise: Promise<void> } | undefined;
  #timers: number[] = [];
  #scanQueue: Promise<void> = Promise.resolve();
  #initialScanDone = false;

  private constructor(config: Config, options: DaemonOptions, lock: Deno.FsFile, dataDir: string) {
    this.#config = config;
    this.#o = options;
    this.#lock = lock;
    this.dataDir = dataDir;
    this.workDir = workDirFor(config, dataDir);
    this.store = new Store(this.dataDir, { rebuild: !!options.rebuildState });
    const s = config.settings;
    this.#globalSlots = new Semaphore(
      Math.min(s.maxSimultaneousTransporters, s.maxFilesInPipeline),
    );
    this.#chainSlots = new Semaphore(s.maxSimultaneousProcessorChains);
    for (const secret of config.secrets) addSecret(secret);
    for (const server of config.servers) this.#servers.set(server.name, this.#serverState(server));
    this.#scanner = this.#makeScanner();
  }

  #serverState(server: Server): ServerState {
    const s = this.config.settings;
    const max = server.maxConnections > 0 ? server.maxConnections : s.defaultMaxConnections;
    return {
      server,
      slots: new Semaphore(max),
      blockedUntil: 0,
      backoff: 0,
      running: 0,
      log: logger(`${server.transporter}:${server.name}`),
      gc: "todo",
    };
  }

  #makeScanner(): Scanner {
    const s = this.config.settings;
    return new Scanner({
      store: this.store,
      ignoredDirs: this.config.ignoredDirs,
      exclude: [this.dataDir, this.workDir, ...(this.config.excludedDirs ?? [])],
      log: logger("scan"),
      guardShare: s.deleteGuardShare,
      guardMinFiles: s.deleteGuardMinFiles,
      sink: (batch) => this.#commit(batch),
    });
  }

  /** The configuration in effect (replaced by {@linkcode Daemon.reload}). */
  get config(): Config {
    return this.#config;
  }

  /** Whether every source was scanned once since the start. */
  get initialScanDone(): boolean {
    return this.#initialScanDone;
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
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(event: DaemonEvent) {
    for (const l of this.#listeners) {
      try {
        l(event);
      } catch (e) {
        this.#log.warn(`A ${event.type} listener failed: ${errorMessage(e)}`);
      }
    }
  }

  /**
   * Applies a new configuration while running (SIGHUP). New or changed
   * servers and sources take effect, files whose targets changed are queued
   * (files no longer matched are left alone where they were synced), and
   * new sources are scanned. On an error the old configuration stays.
   *
   * @throws {ClassifiedError} when the new configuration cannot be applied
   * live (another data directory, a processor that cannot run).
   */
  reload(next: Config): Promise<void> {
    const p = this.#reloads.then(() => this.#reload(next));
    this.#reloads = p.catch(() => {});
    return p;
  }

  #reloads: Promise<void> = Promise.resolve();

  async #reload(next: Config): Promise<void> {
    const old = this.config;
    if (
      dataDirFor(next, this.#o.dataDir) !== this.dataDir ||
      workDirFor(next, this.dataDir) !== this.workDir
    ) {
      throw new ClassifiedError(
        "dataDir and workingDir cannot change while running; restart instead",
        "fatal",
      );
    }
    const problems = await setupProcessors(next.rules.flatMap((r) => r.processors));
    if (problems.length > 0) throw new ClassifiedError(problems.join("; "), "fatal");
    if (this.#stopping) return;
    for (const secret of next.secrets) addSecret(secret);
    const restartNeeded = ([
      "maxFilesInPipeline",
      "maxSimultaneousProcessorChains",
      "maxSimultaneousTransporters",
      "rescanInterval",
    ] as const)
      .filter((k) => old.settings[k] !== next.settings[k]);
    if (restartNeeded.length > 0) {
      this.#log.warn(`Changed settings take effect after a restart: ${restartNeeded.join(", ")}`);
    }
    this.#config = next;
    // Line numbers move with every edit of the file; they change nothing.
    const json = (v: unknown) => JSON.stringify(v, (k, x) => k === "line" ? undefined : x);
    const same = (a: unknown, b: unknown) => json(a) === json(b);
    const sourcesChanged = !same(
      old.sources.map((x) => [x.name, x.scanPath]),
      next.sources.map((x) => [x.name, x.scanPath]),
    );
    // Servers: new ones start, changed ones get a new state (running jobs finish on the old one).
    const retired: ServerState[] = [];
    for (const [name, st] of this.#servers) {
      const server = next.servers.find((x) => x.name === name);
      if (
        server && same(server, st.server) && !sourcesChanged &&
        old.settings.defaultMaxConnections === next.settings.defaultMaxConnections
      ) continue;
      this.#servers.delete(name);
      retired.push(st);
    }
    for (const server of next.servers) {
      if (!this.#servers.has(server.name)) {
        this.#servers.set(server.name, this.#serverState(server));
      }
    }
    if (retired.length > 0) {
      void Promise.allSettled([...this.#running]).then(async () => {
        for (const st of retired) {
          if (st.transport) {
            await (await st.transport.catch(() => undefined))?.close().catch(() => {});
          }
        }
      });
    }
    this.#scanner = this.#makeScanner();
    // Sources: watchers for new or changed sources, none for removed ones.
    const watchChanged = (["watchMode", "pollInterval", "settleDelay", "maxDelay"] as const).some((
      k,
    ) => old.settings[k] !== next.settings[k]);
    const fresh: Source[] = [];
    for (const source of next.sources) {
      const before = old.sources.find((x) => x.name === source.name);
      if (!before || !same(before, source)) fresh.push(source);
    }
    if (!this.#o.once && !this.#o.dryRun) {
      for (const [name, w] of [...this.#watchers]) {
        const source = next.sources.find((x) => x.name === name);
        if (source && !watchChanged && !fresh.includes(source)) continue;
        this.#watchers.delete(name);
        this.#aggregators.get(name)?.close();
        this.#aggregators.delete(name);
        this.#watchModes.delete(name);
        await w.stop();
      }
      for (const source of next.sources) {
        if (!this.#watchers.has(source.name)) this.#startWatcher(source);
      }
    }
    if (next.settings.pidFile !== old.settings.pidFile) {
      if (old.settings.pidFile) fs.rmSync(old.settings.pidFile, { force: true });
      if (next.settings.pidFile) {
        fs.mkdirSync(path.dirname(next.settings.pidFile), { recursive: true, mode: 0o755 });
        fs.writeFileSync(next.settings.pidFile, String(Deno.pid) + "\n", { mode: 0o600 });
      }
    }
    this.#reevaluate();
    for (const source of fresh) void this.#enqueueScan(source);
    this.#log.info(
      `Configuration reloaded from "${next.file}": ${next.sources.length} source(s), ${next.servers.length} server(s), ${next.rules.length} rule(s)`,
    );
    this.#emit({ type: "reloaded", config: next });
    this.#pump();
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

  /** Aborted when the daemon stops. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Watch modes per source. */
  get watchModes(): ReadonlyMap<string, WatchMode> {
    return this.#watchModes;
  }

  /** Files in flight right now. */
  get inFlight(): number {
    return this.#running.size;
  }

  /** Counts of this run. */
  get summary(): Readonly<RunSummary> {
    return this.#summary;
  }

  /**
   * Runs: starts the watchers, scans every source, and syncs. With `once`,
   * resolves when the queue is empty; otherwise when {@linkcode stop} is called.
   */
  async run(): Promise<RunSummary> {
    const problems = await setupProcessors(this.config.rules.flatMap((r) => r.processors));
    if (problems.length > 0) {
      throw new ClassifiedError(problems.join("\n"), "fatal");
    }
    fs.writeFileSync(path.join(this.dataDir, "daemon.pid"), String(Deno.pid), { mode: 0o600 });
    if (this.config.settings.pidFile) {
      // Never world-writable (whatever the umask): a replaced pid file makes scripts kill the wrong process.
      fs.mkdirSync(path.dirname(this.config.settings.pidFile), { recursive: true, mode: 0o755 });
      fs.writeFileSync(this.config.settings.pidFile, String(Deno.pid) + "\n", { mode: 0o600 });
    }
    emptyDir(this.workDir);
    fs.mkdirSync(this.workDir, { recursive: true, mode: 0o700 });
    this.store.resetRunning();
    for (const source of this.config.sources) this.#rootPresent(source);
    if (this.#o.approveDeletes) this.store.approveDeletes();
    this.#heartbeat();
    this.#timers.push(setInterval(() => this.#heartbeat(), 2000) as unknown as number);

    if (!this.#o.once && !this.#o.dryRun) this.#startWatchers();
    const t0 = performance.now();
    if (!this.#o.dryRun) this.#reevaluate();
    for (const source of this.config.sources) {
      await this.#enqueueScan(source);
    }
    this.#initialScanDone = true;
    const queued = this.store.activeCount();
    this.#log.info(`Initial scan done in ${Math.round(performance.now() - t0)} ms`, { queued });
    this.#emit({ type: "initial-scan-done", queued, ms: performance.now() - t0 });
    if (this.#o.dryRun) {
      this.#reportDryRun();
      await this.#shutdown();
      if (this.#fatal) throw this.#fatal;
      return this.#summary;
    }
    if (!this.#o.once) {
      const rescan = this.config.settings.rescanInterval;
      if (rescan > 0) {
        const jitter = () => rescan * 1000 * (0.75 + Math.random() * 0.5);
        const tick = () => {
          if (this.#stopping) return;
          try {
            this.store.checkFile(); // The reconciliation also checks the state it relies on.
          } catch (e) {
            return this.#storeTrouble(e);
          }
          for (const s of this.config.sources) void this.#enqueueScan(s);
          this.#timers.push(setTimeout(tick, jitter()) as unknown as number);
        };
        this.#timers.push(setTimeout(tick, jitter()) as unknown as number);
      }
      this.#timers.push(setInterval(() => {
        this.#sourceDeletions().catch((e) => this.#storeTrouble(e));
        // Other processes (retry, approve-deletes) change the queue and the guard.
        this.#pump();
        for (const g of this.store.guards()) {
          const source = this.config.sources.find((x) => x.name === g.source);
          if (g.approved && source) void this.#enqueueScan(source);
        }
      }, 1000) as unknown as number);
      this.#timers.push(setInterval(() => {
        for (const w of this.#watchers.values()) w.checkRoot();
        try {
          this.store.pruneTransfers(Date.now());
        } catch (e) {
          this.#storeTrouble(e);
        }
      }, 10_000) as unknown as number);
    }
    this.#pump();
    if (this.#o.once) {
      // stop() (SIGINT, SIGTERM) ends a --once run too, with work left in the queue.
      const aborted = new Promise<void>((resolve) => {
        if (this.#abort.signal.aborted) resolve();
        this.#abort.signal.addEventListener("abort", () => resolve());
      });
      await Promise.race([this.#untilIdle(), aborted]);
      if (!this.#abort.signal.aborted) {
        await this.#flushTransports();
        // Only what is due: later deletions stay scheduled for the next run.
        await this.#sourceDeletions();
      }
      await this.#shutdown();
    } else {
      await new Promise<void>((resolve) =>
        this.#abort.signal.addEventListener("abort", () => resolve())
      );
      await this.#shutdown();
    }
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
    if (this.#storeRetry !== undefined) clearTimeout(this.#storeRetry);
    if (this.#wake !== undefined) clearTimeout(this.#wake);
    const grace = this.#o.shutdownGrace ?? 10_000;
    // The process ends within the grace plus this clean-up budget, whatever a watcher
    // (blocked on a special file), a server (gone silent) or the disk does.
    const deadline = Date.now() + grace + 5000;
    const bounded = (p: Promise<unknown>) => {
      let t = 0;
      const late = new Promise((r) => {
        t = setTimeout(r, Math.max(0, deadline - Date.now())) as unknown as number;
        Deno.unrefTimer(t);
      });
      return Promise.race([p, late]).finally(() => clearTimeout(t));
    };
    // A watcher thread stuck opening a named pipe would block closing it, and the process:
    // a thread of our own releases such readers while the watchers close.
    if (this.#watchers.size > 0) {
      const releaser = await startFifoReleaser(this.config.sources.map((x) => x.scanPath));
      await bounded(Promise.all([...this.#watchers.values()].map((w) => w.stop())));
      releaser.stop();
    }
    for (const a of this.#aggregators.values()) a.close();
    if (this.#running.size > 0) {
      this.#log.info(`Waiting up to ${grace} ms for ${this.#running.size} running transfers`);
      await Promise.race([
        Promise.allSettled([...this.#running]),
        new Promise((r) => setTimeout(r, grace)),
      ]);
    }
    await bounded(this.#flushTransports().catch(() => {}));
    await bounded(Promise.all(
      [...this.#servers.values()].map(async (s) => {
        if (s.transport) await (await s.transport.catch(() => undefined))?.close().catch(() => {});
      }),
    ));
    try {
      this.#flushBatch();
      this.store.resetRunning();
      this.store.setRuntime("daemon", { pid: null, stoppedAt: Date.now() });
    } catch (e) {
      // Nothing is lost: the queue is on disk and running jobs are reset at the next start.
      if (!this.#fatal) {
        this.#log.error(
          `Cannot record the stop in the database in "${this.dataDir}": ${errorMessage(e)}`,
        );
      }
    }
    this.store.checkpoint();
    this.store.close();
    try {
      fs.rmSync(path.join(this.dataDir, "daemon.pid"), { force: true });
      if (this.config.settings.pidFile) fs.rmSync(this.config.settings.pidFile, { force: true });
      emptyDir(this.workDir);
    } catch {
      // Best effort.
    }
    this.#lock.close();
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
        inFlight: this.#running.size,
        initialScanDone: this.#initialScanDone,
        watchers: Object.fromEntries(this.#watchModes),
        servers: Object.fromEntries(
          [...this.#servers].map((
            [n, s],
          ) => [n, { running: s.running, blockedUntil: s.blockedUntil || null }]),
        ),
      });
    } catch (e) {
      if ((e as { code?: string })?.code === "ERR_SQLITE_ERROR") this.#storeTrouble(e);
      else this.#log.warn(`Cannot write status: ${errorMessage(e)}`);
    }
  }

  // ---- discovery ----

  #startWatchers() {
    for (const source of this.config.sources) this.#startWatcher(source);
  }

  #startWatcher(source: Source) {
    const agg = new Aggregator({
      settleDelay: this.config.settings.settleDelay,
      maxDelay: this.config.settings.maxDelay,
      flush: (paths, full) => {
        if (full) void this.#enqueueScan(source);
        else void this.#scanPaths(source, paths);
      },
    });
    this.#aggregators.set(source.name, agg);
    const mode = this.config.settings.watchMode === "poll" || source.watch === "poll"
      ? "poll"
      : "auto";
    const w: SourceWatcher = new SourceWatcher({
      source,
      aggregator: agg,
      log: logger(`watch:${source.name}`),
      mode,
      pollInterval: this.config.settings.pollInterval,
      exclude: [this.dataDir, this.workDir, ...(this.config.excludedDirs ?? [])],
      fullScan: () => this.#enqueueScan(source),
      onMode: (m, reason) => {
        // A watcher replaced by reload() reports nothing any more.
        if (this.#watchers.get(source.name) !== w) return;
        this.#watchModes.set(source.name, m);
        this.#log.info(`Source "${source.name}" watch mode: ${m}${reason ? ` (${reason})` : ""}`);
        this.#heartbeat(); // `status` shows the new mode at once.
      },
    });
    this.#watchers.set(source.name, w);
    w.start();
    this.#watchModes.set(source.name, w.mode);
  }

  /** Scans run one at a time (they share the store's transaction). */
  #serial(fn: () => Promise<void>): Promise<void> {
    const next = this.#scanQueue.then(fn, fn);
    this.#scanQueue = next.catch((e) => {
      // A database that cannot be written (disk full) is reported once, not per scan.
      if ((e as { code?: string })?.code === "ERR_SQLITE_ERROR") this.#storeTrouble(e);
      else this.#log.error(`Scan failed: ${errorMessage(e)}`);
    });
    return this.#scanQueue;
  }

  readonly #scanPending = new Map<string, Promise<void>>();

  #enqueueScan(source: Source): Promise<void> {
    // A scan waiting to start covers any scan asked for meanwhile.
    const waiting = this.#scanPending.get(source.name);
    if (waiting) return waiting;
    const p = this.#serial(async () => {
      this.#scanPending.delete(source.name);
      if (this.#stopping && !this.#o.once && !this.#o.dryRun) return;
      this.#emit({ type: "scan-start", source: source.name, initial: !this.#initialScanDone });
      const r = await this.#scanner.scanSource(source);
      this.#emit({
        type: "scan-done",
        source: source.name,
        files: r.files,
        changes: r.changes,
        ms: r.ms,
      });
      this.#log.info(
        `Scanned source "${source.name}": ${r.files} files in ${r.dirs} directories, ${r.changes} changes (${
          Math.round(r.ms)
        } ms)`,
      );
      this.#pump();
    });
    this.#scanPending.set(source.name, p);
    return p;
  }

  #scanPaths(source: Source, paths: { path: string; written: boolean }[]): Promise<void> {
    return this.#serial(async () => {
      if (this.#stopping) return;
      await this.#scanner.scanPaths(source, paths);
      this.#pump();
    });
  }

  /** Targets (server + destination) of the rules matching a file. */
  #targets(
    source: Source,
    c: { path: string; rel: string; size?: number },
  ): { rule: Rule; target: Target }[] {
    const out: { rule: Rule; target: Target }[] = [];
    const seen = new Set<string>();
    for (const rule of matchingRules(this.config.rules, source, c)) {
      for (const dest of rule.destinations) {
        const key = dest.server + "\0" + dest.path;
        if (seen.has(key)) continue;
        seen.add(key);
        const server = this.#servers.get(dest.server)?.server;
        if (server) out.push({ rule, target: { server, dest } });
      }
    }
    return out;
  }

  /** Stores scan results and queues the work they imply, atomically. */
  #commit(batch: Batch) {
    if (this.#o.dryRun) {
      this.#dryChanges.push(...batch.changes);
      return;
    }
    const now = Date.now();
    const changes: Change[] = [];
    for (const c of batch.changes) changes.push(...this.#changesFor(c));
    this.store.tx(() => {
      for (const r of batch.removes) this.store.deleteUnder(r);
      for (const p of batch.puts) this.store.putFile(p);
      for (const c of batch.changes) {
        if (c.event === DELETED) this.store.unscheduleSourceDeletion(c.path);
      }
      this.store.enqueue(changes, now, 0, this.config.settings.deleteDelay);
    });
    if (this.#listeners.size > 0 && batch.changes.length > 0) {
      let files = 0;
      let bytes = 0;
      for (const c of batch.changes) {
        if (c.event === DELETED) continue;
        files++;
        bytes += c.size ?? 0;
      }
      const source = batch.changes[0]!.source.name;
      if (files > 0) this.#emit({ type: "scan-found", source, files, bytes });
    }
  }

  #changesFor(c: FsChange): Change[] {
    const out: Change[] = [];
    const targets = this.#targets(c.source, c);
    const keys = new Set<string>();
    for (const { target } of targets) {
      keys.add(target.server.name + "\0" + target.dest.path);
      out.push({
        input_file: c.path,
        source: c.source.name,
        server: target.server.name,
        dest: target.dest.path,
        event: c.event,
        force: c.verify ? 1 : 0,
      });
    }
    if (c.event === DELETED) {
      // Delete wherever it was synced, even if the rules changed since.
      for (const row of this.store.syncedFor(c.path)) {
        if (keys.has(row.server + "\0" + row.dest) || !this.#servers.has(row.server)) continue;
        out.push({
          input_file: c.path,
          source: c.source.name,
          server: row.server,
          dest: row.dest,
          event: DELETED,
        });
      }
    }
    return out;
  }

  readonly #dryChanges: FsChange[] = [];

  #reportDryRun() {
    const log = logger("dry-run");
    let n = 0;
    for (const c of this.#dryChanges) {
      for (const ch of this.#changesFor(c)) {
        n++;
        log.info(
          `would ${ch.event === DELETED ? "delete" : "upload"} "${c.rel}" ${
            ch.event === DELETED ? "from" : "to"
          } server "${ch.server}"${ch.dest ? ` under "${ch.dest}"` : ""} (${eventName(ch.event)})`,
        );
      }
    }
    const queued = this.store.activeCount();
    log.info(`${n} changes found; ${queued} queued from earlier runs; nothing was changed`);
    this.#summary.skipped = n;
  }

  // ---- scheduling ----

  /**
   * Starts every job that may run now; arms a timer for the next one.
   * `picked`: jobs already picked (and their slots taken) by {@linkcode #pickInto}
   * in the record transaction; servers that had no more ready jobs are not asked again.
   */
  #pump(picked?: Picked) {
    if (this.#o.dryRun || this.#abort.signal.aborted) {
      if (picked) this.#unpick(picked);
      return;
    }
    if (this.#pumping) {
      if (picked) this.#unpick(picked);
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    try {
      for (const [s, job] of picked?.jobs ?? []) this.#startJob(s, job);
      // Jobs whose outcome could not be recorded (disk full) go back to the queue first.
      while (this.#unsettled.length > 0) {
        this.store.requeue(this.#unsettled[0]!, Date.now() + 2000, undefined, false);
        this.#unsettled.shift();
      }
      let skip = picked?.drained;
      do {
        this.#pumpAgain = false;
        const now = Date.now();
        for (const s of this.#servers.values()) {
          if (s.blockedUntil > now || skip?.has(s)) continue;
          if (s.gc !== "done") {
            this.#startGc(s);
            continue;
          }
          const free = Math.min(s.slots.free, this.#globalSlots.free);
          if (free <= 0) continue;
          const jobs = this.store.pick(s.server.name, free, now);
          for (const job of jobs) {
            this.#takeSlots(s);
            this.#startJob(s, job);
          }
        }
        skip = undefined;
      } while (this.#pumpAgain);
      this.#armWake();
      this.#checkIdle();
      if (this.#storeTroubleAt > 0) {
        // Reading works on a full disk: only a write that lands proves the trouble is over.
        this.store.setRuntime("writable", Date.now());
        // Said once per reported trouble (errors are reported at most every 30 s), not per retry.
        const said = this.#storeTroubleLogged >= this.#storeTroubleAt;
        this.#storeTroubleAt = 0;
        this.#log[said ? "info" : "debug"](
          `The database in "${this.dataDir}" can be written again; rescanning`,
        );
        // Scans that failed meanwhile lost their watcher events.
        for (const source of this.config.sources) void this.#enqueueScan(source);
      }
    } catch (e) {
      this.#storeTrouble(e);
    } finally {
      this.#pumping = false;
    }
  }

  /** Jobs that ended while the database could not record it. */
  readonly #unsettled: Job[] = [];
  #storeTroubleAt = 0;
  #storeTroubleLogged = 0;
  #storeRetry: number | undefined;

  /**
   * The database cannot be written (disk full, I/O error): says so, naming
   * the data directory (at most every 30 s), and retries; the daemon stays up.
   */
  #storeTrouble(e: unknown) {
    const trouble = storeTrouble(e);
    if (e instanceof StateError || trouble === "damaged") {
      this.#fail(e instanceof StateError ? e : damagedState(this.store.file, errorMessage(e), e));
      return;
    }
    const now = Date.now();
    this.#storeTroubleAt ||= now;
    // A full disk: what the WAL holds beyond the live pages is freed by a checkpoint.
    if (trouble === "full") this.store.checkpoint();
    if (now - this.#storeTroubleLogged > 30_000) {
      this.#storeTroubleLogged = now;
      this.#log.error(
        `Cannot write the database in "${this.dataDir}": ${errorMessage(e)}; ${
          trouble === "full"
            ? "waiting until it can be written again (free some space there)"
            : "retrying"
        }`,
      );
    }
    if (this.#storeRetry === undefined && !this.#stopping) {
      this.#storeRetry = setTimeout(() => {
        this.#storeRetry = undefined;
        this.#pump();
      }, 2000) as unknown as number;
    }
  }

  /**
   * After a job: remote paths this file was written to that are not its
   * recorded copy any more (an upload overtaken by a delete, a rename by a
   * processor) are deleted, with any temp file.
   */
  async #dropStaleIntents(s: ServerState, t: Transport, job: Job) {
    const intents = this.store.intentsFor(job.input_file, s.server.name, job.dest);
    if (intents.length === 0) return;
    const signal = this.#abort.signal;
    for (const p of intents) {
      if (!this.store.remotePathInUse(s.server.name, p)) await t.delete(p, { signal });
      await t.delete(tempName(p), { signal });
      this.store.dropIntent(s.server.name, p);
    }
  }

  #startGc(s: ServerState) {
    if (s.gc !== "todo") return;
    s.gc = "running";
    const p = this.#collectGarbage(s).then(
      () => {
        s.gc = "done";
      },
      (e) => {
        // Leftovers are retried at the next start; they never block syncing.
        s.log.warn(`Cannot remove leftovers yet: ${errorMessage(e)}`);
        s.gc = "done";
      },
    ).finally(() => {
      this.#running.delete(p);
      this.#pump();
    });
    this.#running.add(p);
  }

  #takeSlots(s: ServerState) {
    s.slots.tryAcquire();
    this.#globalSlots.tryAcquire();
    s.running++;
  }

  #startJob(s: ServerState, job: Job) {
    const p = this.#runJob(s, job).finally(() => {
      s.running--;
      s.slots.release();
      this.#globalSlots.release();
      this.#running.delete(p);
      this.#schedulePump();
    });
    this.#running.add(p);
  }

  /**
   * Picks ready jobs for every server with free slots and takes their slots,
   * without starting them: called inside the record transaction, so the pick
   * shares its commit; the jobs start once it is committed.
   */
  #pickInto(picked: Picked) {
    const now = Date.now();
    for (const s of this.#servers.values()) {
      if (s.blockedUntil > now || s.gc !== "done") continue;
      const free = Math.min(s.slots.free, this.#globalSlots.free);
      if (free <= 0) continue;
      const jobs = this.store.pick(s.server.name, free, now);
      for (const job of jobs) {
        this.#takeSlots(s);
        picked.jobs.push([s, job]);
      }
      if (jobs.length < free) picked.drained.add(s);
    }
  }

  /** Gives back the slots of picked jobs that will not start (their pick was rolled back). */
  #unpick(picked: Picked) {
    for (const [s] of picked.jobs) {
      s.running--;
      s.slots.release();
      this.#globalSlots.release();
    }
    picked.jobs = [];
    picked.drained.clear();
  }

  #pumpScheduled = false;

  /**
   * Coalesces the pumps of many finishing jobs into one (one pick per tick,
   * not per job), run with the tick's record transaction.
   */
  #schedulePump() {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    this.#scheduleFlush();
  }

  #armWake() {
    const now = Date.now();
    let next = this.store.nextReadyAt() ?? Infinity;
    for (const s of this.#servers.values()) {
      if (s.blockedUntil > now) next = Math.max(next, Math.min(next, s.blockedUntil));
    }
    if (next === Infinity || next >= NEVER) return;
    const at = Math.max(next, now + 5);
    if (this.#wake !== undefined && this.#wakeAt <= at) return;
    if (this.#wake !== undefined) clearTimeout(this.#wake);
    this.#wakeAt = at;
    this.#wake = setTimeout(() => {
      this.#wake = undefined;
      this.#wakeAt = Infinity;
      this.#pump();
    }, at - now) as unknown as number;
  }

  #checkIdle() {
    if (!this.#idle || this.#running.size > 0) return;
    if (this.store.hasActive()) return;
    this.#idle.resolve();
  }

  #untilIdle(): Promise<void> {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.#idle = { resolve, promise };
    this.#pump();
    this.#checkIdle();
    return promise;
  }

  /** Resolves when the queue is empty and nothing runs (for tests and `--once`). */
  waitIdle(): Promise<void> {
    return this.#untilIdle();
  }

  async #flushTransports() {
    for (const s of this.#servers.values()) {
      if (!s.transport) continue;
      const t = await s.transport.catch(() => undefined);
      if (t && isFlusher(t)) {
        try {
          await t.flush({ signal: AbortSignal.timeout(this.config.settings.timeout * 1000) });
        } catch (e) {
          s.log.error(`Cannot flush pending work: ${errorMessage(e)}`);
        }
      }
    }
  }

  #transport(s: ServerState): Promise<Transport> {
    if (!s.transport) {
      const def = getTransportDef(s.server.transporter)!;
      s.transport = def.create(s.server.settings, {
        serverName: s.server.name,
        log: s.log,
        maxConnections: s.slots.free + s.running,
        timeoutMs: this.config.settings.timeout * 1000,
        sourceRoots: this.config.sources.map((x) => x.scanPath),
        stateDir: path.join(this.dataDir, "servers", s.server.name.replace(/[^\w.-]/g, "_")),
      });
      s.transport.catch(() => {
        s.transport = undefined;
      });
    }
    return s.transport;
  }

  // ---- record stage: many small writes share one transaction ----

  readonly #pendingBatch: BatchItem[] = [];
  #batchScheduled = false;

  /**
   * Runs `fn` in a transaction shared with the other writes of this tick
   * (each in its own savepoint, so one failure stays alone). Resolves once
   * committed. A crash before the commit loses only the record of work that
   * is then redone, never the work queue.
   */
  #batch<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pendingBatch.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      this.#scheduleFlush();
    });
  }

  #scheduleFlush() {
    if (!this.#batchScheduled) {
      this.#batchScheduled = true;
      setImmediate(() => this.#flushBatch());
    }
  }

  #flushBatch() {
    this.#batchScheduled = false;
    const pump = this.#pumpScheduled;
    this.#pumpScheduled = false;
    const items = this.#pendingBatch.splice(0);
    if (items.length === 0) {
      if (pump) this.#pump();
      return;
    }
    // The pump's pick joins this transaction (one commit, not two) unless a pump is running.
    const picked: Picked | undefined = pump && !this.#pumping && !this.#o.dryRun &&
        !this.#abort.signal.aborted
      ? { jobs: [], drained: new Set() }
      : undefined;
    try {
      this.#flushItems(items, picked);
    } finally {
      if (pump) this.#pump(picked);
    }
  }

  #flushItems(items: BatchItem[], picked: Picked | undefined) {
    let outcomes: { ok: boolean; value: unknown }[] = [];
    // Fast path: no savepoint per item (two statements each). When an item throws, the whole
    // transaction is rolled back and redone with one savepoint per item, so the failure stays
    // alone; the items only write to the database, so running them again is harmless.
    let itemFailed = false;
    try {
      this.store.tx(() => {
        for (const it of items) {
          itemFailed = true;
          outcomes.push({ ok: true, value: it.fn() });
          itemFailed = false;
        }
        if (picked) {
          try {
            // A savepoint: a failing pick undoes every pick, never the records.
            this.store.tx(() => this.#pickInto(picked));
          } catch {
            // The pump picks on its own (and reports a database problem).
            this.#unpick(picked);
          }
        }
      });
    } catch (e) {
      if (picked) this.#unpick(picked);
      if (!itemFailed) {
        for (const it of items) it.reject(e);
        return;
      }
      outcomes = [];
      try {
        this.store.tx(() => {
          for (const it of items) {
            try {
              outcomes.push({ ok: true, value: this.store.tx(it.fn) });
            } catch (e) {
              outcomes.push({ ok: false, value: e });
            }
          }
        });
      } catch (e) {
        for (const it of items) it.reject(e);
        return;
      }
    }
    items.forEach((it, i) => {
      const o = outcomes[i]!;
      if (o.ok) it.resolve(o.value);
      else it.reject(o.value);
    });
  }

  // ---- jobs ----

  async #runJob(s: ServerState, job: Job): Promise<void> {
    const started = Date.now();
    const source = this.config.sources.find((x) => x.name === job.source);
    try {
      if (!source) {
        // The source left the config: leave its files alone.
        this.store.complete(job);
        return;
      }
      const transport = await this.#transport(s);
      const result = await this.#sync(s, transport, source, job);
      const finish = () => {
        this.store.complete(job);
        if (result.bytes >= 0) {
          this.store.serverOk(s.server.name, result.bytes, Date.now());
          this.store.addTransfer({
            server: s.server.name,
            input_file: job.input_file,
            remote_path: result.remotePath,
            event: job.event,
            bytes: result.bytes,
            ms: Date.now() - started,
            lag_ms: Date.now() - job.discovered_at,
          }, Date.now());
        }
      };
      const record = result.record;
      const ours = new Set(result.dropped);
      if (
        record &&
        this.store.intentsFor(job.input_file, s.server.name, job.dest).every((p) => ours.has(p))
      ) {
        // One transaction records the upload and completes the job.
        await this.#batch(() => {
          record();
          finish();
        });
      } else {
        // Leftovers of earlier attempts go first: recorded, cleaned up, then completed.
        if (record) await this.#batch(record);
        await this.#dropStaleIntents(s, transport, job);
        await this.#batch(finish);
      }
      result.done?.();
      if (s.backoff > 0) {
        s.backoff = 0;
        s.log.info("Server is reachable again");
      }
      if (result.kind === "deleted") this.#summary.deleted++;
      else if (result.kind === "synced") this.#summary.synced++;
      else this.#summary.skipped++;
      this.#emit({
        type: "job-done",
        server: s.server.name,
        file: job.input_file,
        result: result.kind,
        bytes: Math.max(result.bytes, 0),
        ms: Date.now() - started,
        lagMs: Date.now() - job.discovered_at,
      });
      if (result.kind === "synced") this.#afterSync(job, source);
    } catch (err) {
      try {
        // The database itself failed: not the file's fault; the job goes back once it can.
        if ((err as { code?: string })?.code === "ERR_SQLITE_ERROR") throw err;
        this.#handleFailure(s, job, err);
      } catch (e) {
        // The outcome cannot be recorded (disk full): the job goes back once it can.
        this.#unsettled.push(job);
        this.#storeTrouble(e);
      }
    }
  }

  #handleFailure(s: ServerState, job: Job, err: unknown) {
    const now = Date.now();
    const st = this.config.settings;
    if (err instanceof RequeueError) {
      const tooMany = job.requeues >= 50;
      if (tooMany) {
        this.store.fail(
          job,
          "retry",
          `Gave up waiting: ${err.message}`,
          now + st.retryMaxDelay * 1000,
          1,
        );
        this.#summary.failed++;
        this.#emit({
          type: "job-failed",
          server: s.server.name,
          file: job.input_file,
          kind: "retry",
          message: err.message,
          failed: true,
        });
      } else {
        this.store.requeue(
          job,
          now + (this.#o.once ? Math.min(err.delayMs, 500) : err.delayMs),
          err.message,
        );
        s.log.debug(`"${job.input_file}" waits: ${err.message}`);
      }
      return;
    }
    if (this.#abort.signal.aborted) {
      this.store.requeue(job, now, undefined, false);
      return;
    }
    const kind = classify(err);
    const message = errorMessage(err);
    if (kind === "server" && !this.#o.once) {
      // Transfers running in parallel fail together: back off once for all of them.
      if (s.blockedUntil <= now) {
        s.backoff = s.backoff === 0
          ? st.retryInitialDelay * 1000
          : Math.min(s.backoff * 2, st.retryMaxDelay * 1000);
        const delay = jittered(s.backoff);
        s.blockedUntil = now + delay;
        s.log.error(`${message}; pausing server for ${Math.round(delay / 1000)} s`);
        this.store.serverFailed(s.server.name, message, s.blockedUntil, now);
      }
      this.#emit({
        type: "job-failed",
        server: s.server.name,
        file: job.input_file,
        kind,
        message,
        failed: false,
      });
      this.store.tx(() => {
        this.store.requeue(job, s.blockedUntil, message, false);
        this.store.q("UPDATE queue SET last_error = ?, error_kind = 'server' WHERE id = ?").run(
          message,
          job.id,
        );
      });
      return;
    }
    const attempts = job.attempts + 1;
    const delay = kind === "fatal" ? NEVER - now : jittered(Math.min(
      st.retryInitialDelay * 1000 * 2 ** (attempts - 1),
      st.retryMaxDelay * 1000,
    ));
    this.store.fail(job, kind, message, now + delay, st.retryFailAfter);
    if (kind === "server") this.store.serverFailed(s.server.name, message, null, now);
    const failedNow = kind === "fatal" || attempts >= st.retryFailAfter;
    if (failedNow) this.#summary.failed++;
    this.#emit({
      type: "job-failed",
      server: s.server.name,
      file: job.input_file,
      kind,
      message,
      failed: failedNow,
    });
    s.log[failedNow ? "error" : "warn"](
      `${message}${
        failedNow ? " (marked as failed)" : `; retry ${attempts} in ${Math.round(delay / 1000)} s`
      }`,
    );
  }

  /** Device of each source root when last seen present: another one means its mount went away. */
  readonly #rootDevs = new Map<string, number>();

  /** Whether a source's root is there, on the file system it was on at start. */
  #rootPresent(source: Source): boolean {
    let dev: number;
    try {
      const st = fs.statSync(source.scanPath);
      if (!st.isDirectory()) return false;
      dev = st.dev;
    } catch {
      return false;
    }
    const first = this.#rootDevs.get(source.scanPath);
    if (first === undefined || first === dev) {
      this.#rootDevs.set(source.scanPath, dev);
      return true;
    }
    // Another file system: fine when one was mounted there since (a mount point now),
    // not when the mount went away (back to the parent's file system).
    let parentDev: number | undefined;
    try {
      parentDev = fs.statSync(path.dirname(source.scanPath)).dev;
    } catch {
      // Unknown: treat as gone.
    }
    if (parentDev === undefined || parentDev === dev) return false;
    this.#rootDevs.set(source.scanPath, dev);
    return true;
  }

  /** Processes and transfers one job; returns what happened. */
  async #sync(
    s: ServerState,
    transport: Transport,
    source: Source,
    job: Job,
  ): Promise<SyncResult> {
    const signal = this.#abort.signal;
    const server = s.server;
    const rel = path.relative(source.scanPath, job.input_file).split(path.sep).join("/");
    const synced = this.store.getSynced(job.input_file, server.name, job.dest);
    let st: FileStat | undefined;
    if (job.event !== DELETED) st = statFile(job.input_file, source);
    if (!st) {
      // A deleted or unmounted source root looks like every file deleted: hold, never delete.
      if (!this.#rootPresent(source)) {
        throw new RequeueError(
          `Source "${source.name}" is missing ("${source.scanPath}"): nothing is deleted until it is back`,
          5000,
        );
      }
      return await this.#delete(transport, server, job, synced);
    }
    const relDir = rel.includes("/") ? rel.slice(0, rel.lastIndexOf("/")) : "";
    const rule = this.#targets(source, { path: job.input_file, rel, size: st.size })
      .find((t) => t.target.server.name === server.name && t.target.dest.path === job.dest)?.rule;
    if (!rule) {
      // No rule sends this file here any more; leave what was synced alone.
      return { kind: "skipped", bytes: -1, remotePath: "" };
    }
    const perServer = chainIsPerServer(rule.processors, path.basename(job.input_file));
    const chainSig = this.#chainSignature(rule, server, job.dest);
    const fp = { size: st.size, mtime_ms: st.mtimeMs, ctime_ms: st.ctimeMs, ino: st.ino };
    if (
      synced && job.force < 2 && synced.chain === chainSig && synced.size === fp.size &&
      synced.mtime_ms === fp.mtime_ms && synced.ctime_ms === fp.ctime_ms && synced.ino === fp.ino
    ) {
      // A watcher saw a write but the stat is unchanged: compare content when we can.
      if (job.force === 0) return { kind: "skipped", bytes: -1, remotePath: synced.remote_path };
      if (
        rule.processors.length === 0 && synced.md5 &&
        (await md5File(job.input_file, signal)) === synced.md5
      ) {
        return { kind: "skipped", bytes: -1, remotePath: synced.remote_path };
      }
    }

    // A pending delete of a file with this inode on this destination: a rename. Move it server-side.
    if (!synced && rule.processors.length === 0 && isMover(transport)) {
      const from = this.store.findMoveSource(server.name, job.dest, fp.ino, fp.size);
      if (from && from.mtime_ms === fp.mtime_ms && !fs.existsSync(from.input_file)) {
        const remotePath = safeRemotePath([job.dest, rel].filter(Boolean).join("/"));
        try {
          await transport.move(from.remote_path, remotePath, { signal });
          const url = transport.url(remotePath);
          this.store.tx(() => {
            this.store.deleteSynced(from.input_file, server.name, from.dest);
            this.store.dropQueued(from.input_file, server.name, from.dest);
            this.store.putSynced({
              ...from,
              input_file: job.input_file,
              transported_file_basename: path.posix.basename(remotePath),
              url,
              remote_path: remotePath,
              ...fp,
              synced_at: Date.now(),
            });
          });
          s.log.info(`moved "${from.remote_path}" to "${remotePath}"`);
          return { kind: "synced", bytes: 0, remotePath };
        } catch (e) {
          s.log.debug(`Server-side move failed, uploading instead: ${errorMessage(e)}`);
        }
      }
    }

    const jobDir = path.join(this.workDir, `${job.id}-${crypto.randomUUID().slice(0, 8)}`);
    try {
      let out = {
        path: job.input_file,
        name: path.basename(job.input_file),
        unprocessed: true,
      } as {
        path: string;
        name: string;
        unprocessed: boolean;
        contentEncoding?: string;
        extras: { name: string; path: string; contentEncoding?: string; contentType?: string }[];
        references?: string[];
      };
      out.extras = [];
      if (rule.processors.length > 0) {
        await this.#chainSlots.acquire();
        try {
          fs.mkdirSync(jobDir, { recursive: true, mode: 0o700 });
          out = await runChain({
            originalPath: job.input_file,
            relDir,
            name: path.basename(job.input_file),
            source: {
              name: source.name,
              scanPath: source.scanPath,
              ...(source.documentRoot ? { documentRoot: source.documentRoot } : {}),
              ...(source.basePath ? { basePath: source.basePath } : {}),
            },
            ...(perServer ? { server: server.name } : {}),
            processors: rule.processors,
            workDir: jobDir,
            signal,
            lookupUrl: (input) => this.store.urlFor(input, perServer ? server.name : undefined),
          });
        } catch (e) {
          if (e instanceof RequeueError) throw e;
          // A full working directory is not the file's fault: retry, do not mark it fatal.
          const free = freeBytes(this.workDir);
          if (
            free !== undefined &&
            (free < Math.max(st.size, 1024 * 1024) || /No space left|ENOSPC/.test(errorMessage(e)))
          ) {
            throw new ClassifiedError(
              `Cannot process "${rel}": the working directory "${this.workDir}" is full (${
                formatBytes(free)
              } free): ${errorMessage(e)}`,
              "retry",
              { cause: e },
            );
          }
          if (e instanceof ClassifiedError) throw e;
          throw new ClassifiedError(
            `Cannot process "${rel}" for server "${server.name}": ${errorMessage(e)}`,
            "fatal",
            { cause: e },
          );
        } finally {
          this.#chainSlots.release();
        }
      }
      const remotePath = safeRemotePath([job.dest, relDir, out.name].filter(Boolean).join("/"));
      // An unprocessed file is the source file, stat'ed above.
      const upload = out.unprocessed && out.path === job.input_file
        ? st
        : statFile(out.path, source) ?? fs.statSync(out.path);
      const now = Date.now();
      // Committed (with the other writes of this tick) before the upload starts, so a crash
      // during the upload always leaves a trace that lets the leftover be found and deleted.
      await this.#batch(() =>
        this.store.addIntent(server.name, remotePath, now, job.input_file, job.dest)
      );
      // No MD5 up front: transports that hash what they send (S3, Cloud Files, a local copy)
      // return it; for the others the file is hashed after the upload, before the check below
      // that it did not change meanwhile.
      const result = await transport.put(out.path, remotePath, {
        signal,
        size: upload.size,
        unprocessed: out.unprocessed,
        ...(out.contentEncoding ? { contentEncoding: out.contentEncoding } : {}),
      });
      const md5 = result.md5 ?? await md5Of(out.path, signal, upload.size);
      const extras: string[] = [];
      for (const x of out.extras) {
        const xp = safeRemotePath([job.dest, relDir, x.name].filter(Boolean).join("/"));
        await this.#batch(() =>
          this.store.addIntent(server.name, xp, Date.now(), job.input_file, job.dest)
        );
        const xs = fs.statSync(x.path);
        await transport.put(x.path, xp, {
          signal,
          size: xs.size,
          unprocessed: false,
          ...(x.contentEncoding ? { contentEncoding: x.contentEncoding } : {}),
          ...(x.contentType ? { contentType: x.contentType } : {}),
        });
        extras.push(xp);
      }
      // The file changed while it was read: sync again rather than record stale content.
      const after = statFile(job.input_file, source);
      if (!after || after.size !== fp.size || after.mtimeMs !== fp.mtime_ms) {
        throw new RequeueError(`"${rel}" changed during the transfer`, 50);
      }
      const url = transport.url(remotePath);
      const row: SyncedRow = {
        input_file: job.input_file,
        transported_file_basename: out.name,
        url,
        server: server.name,
        dest: job.dest,
        remote_path: remotePath,
        ...fp,
        md5,
        etag: result.etag ?? null,
        chain: chainSig,
        extras: extras.length > 0 ? JSON.stringify(extras) : null,
        synced_at: Date.now(),
      };
      const stale = [
        ...(synced && synced.remote_path !== remotePath ? [synced.remote_path] : []),
        ...parseExtras(synced?.extras).filter((x) => !extras.includes(x) && x !== remotePath),
      ];
      let dependents: { dependent: string; dest: string }[] = [];
      const record = () => {
        this.store.putSynced(row);
        this.store.dropIntent(server.name, remotePath);
        for (const x of extras) this.store.dropIntent(server.name, x);
        for (const old of stale) {
          this.store.addIntent(server.name, old, 0, job.input_file, job.dest);
        }
        if (out.references) {
          this.store.setDeps(job.input_file, server.name, job.dest, out.references);
        }
        if (!synced || synced.url !== url) {
          dependents = this.store.dependents(job.input_file, server.name);
        }
        if (dependents.length > 0) {
          this.store.enqueue(
            dependents.map((d) => ({
              input_file: d.dependent,
              source: this.#sourceOf(d.dependent)?.name ?? job.source,
              server: server.name,
              dest: d.dest,
              event: MODIFIED,
              force: 2,
            })),
            Date.now(),
          );
        }
      };
      const done = () =>
        s.log.info(
          `${job.event === CREATED ? "uploaded" : "updated"} ${remotePath} (${
            formatBytes(upload.size)
          }, ${Date.now() - now} ms)`,
        );
      if (stale.length === 0) {
        // The common case: the caller records this with the job's completion, in one commit.
        return {
          kind: "synced",
          bytes: upload.size,
          remotePath,
          record,
          dropped: [remotePath, ...extras],
          done,
        };
      }
      await this.#batch(record);
      // Replaced versions (a new unique name): delete them after the new one is recorded.
      for (const old of stale) {
        if (this.store.remotePathInUse(server.name, old)) {
          this.store.dropIntent(server.name, old);
          continue;
        }
        try {
          await transport.delete(old, { signal });
          this.store.dropIntent(server.name, old);
        } catch (e) {
          s.log.warn(`Cannot delete replaced "${old}" yet (will retry): ${errorMessage(e)}`);
        }
      }
      done();
      return { kind: "synced", bytes: upload.size, remotePath };
    } finally {
      if (rule.processors.length > 0) fs.rmSync(jobDir, { recursive: true, force: true });
    }
  }

  async #delete(
    transport: Transport,
    server: Server,
    job: Job,
    synced: SyncedRow | undefined,
  ): Promise<{ kind: "deleted" | "skipped"; bytes: number; remotePath: string }> {
    const log = this.#servers.get(server.name)!.log;
    if (!synced) return { kind: "skipped", bytes: -1, remotePath: "" };
    const paths = [synced.remote_path, ...parseExtras(synced.extras)];
    for (const p of paths) {
      if (this.store.remotePathInUse(server.name, p) && p !== synced.remote_path) continue;
      await transport.delete(p, { signal: this.#abort.signal });
    }
    this.store.tx(() => {
      this.store.deleteSynced(job.input_file, server.name, job.dest);
      this.store.setDeps(job.input_file, server.name, job.dest, []);
    });
    log.info(`deleted ${synced.remote_path}`);
    return { kind: "deleted", bytes: 0, remotePath: synced.remote_path };
  }

  /** What decides a file's remote form: processors, destination and the server's (non-secret) settings. */
  #chainSignature(rule: Rule, server: Server, dest: string): string {
    // Computed per job: cached per configuration object (a reload brings new objects).
    let byServer = this.#sigCache.get(rule);
    if (!byServer) this.#sigCache.set(rule, byServer = new WeakMap());
    let byDest = byServer.get(server);
    if (!byDest) byServer.set(server, byDest = new Map());
    let sig = byDest.get(dest);
    if (sig === undefined) byDest.set(dest, sig = this.#computeChainSignature(rule, server, dest));
    return sig;
  }

  readonly #sigCache = new WeakMap<Rule, WeakMap<Server, Map<string, string>>>();

  #computeChainSignature(rule: Rule, server: Server, dest: string): string {
    const def = getTransportDef(server.transporter);
    const secret = new Set(def?.options.filter((o) => o.secret).map((o) => o.name));
    const settings = Object.entries(server.settings).filter(([k]) => !secret.has(k)).sort();
    return signature([
      rule.processors.map((p) => [p.def.name, p.options]),
      dest,
      server.transporter,
      settings,
    ]);
  }

  /**
   * After a configuration change: queues every known file whose targets
   * changed (new rules or destinations, other processors or settings).
   */
  #reevaluate() {
    const sig = signature([
      this.config.rules.map((
        r,
      ) => [
        r.source,
        r.filter?.pattern?.source,
        { ...r.filter, pattern: undefined },
        r.processors.map((p) => [p.name, p.options]),
        r.destinations,
      ]),
      this.config.servers.map((
        s,
      ) => [s.name, s.transporter, this.#chainSignature(this.config.rules[0]!, s, "")]),
      this.config.ignoredDirs,
    ]);
    const old = this.store.getRuntime<string>("configSignature");
    if (old === sig) return;
    if (old !== undefined) {
      this.#log.info("The configuration changed; re-evaluating every known file");
    }
    const now = Date.now();
    for (const source of this.config.sources) {
      const rows = this.store.q("SELECT path, size FROM files WHERE source = ? AND is_dir = 0").all(
        source.name,
      ) as {
        path: string;
        size: number;
      }[];
      const changes: Change[] = [];
      for (const f of rows) {
        const rel = path.relative(source.scanPath, f.path).split(path.sep).join("/");
        for (const { rule, target } of this.#targets(source, { path: f.path, rel, size: f.size })) {
          const synced = this.store.getSynced(f.path, target.server.name, target.dest.path);
          if (
            synced && synced.chain === this.#chainSignature(rule, target.server, target.dest.path)
          ) continue;
          changes.push({
            input_file: f.path,
            source: source.name,
            server: target.server.name,
            dest: target.dest.path,
            event: synced ? MODIFIED : CREATED,
          });
        }
      }
      for (let i = 0; i < changes.length; i += 1000) {
        this.store.tx(() => this.store.enqueue(changes.slice(i, i + 1000), now));
      }
    }
    this.store.setRuntime("configSignature", sig);
  }

  #sourceOf(p: string): Source | undefined {
    return this.config.sources.find((s) => p.startsWith(s.scanPath + path.sep));
  }

  /** Schedules the source file's deletion when its rule asks for it and every destination has it. */
  #afterSync(job: Job, source: Source) {
    if (!this.config.rules.some((r) => r.deletionDelay !== undefined)) return;
    const rel = path.relative(source.scanPath, job.input_file).split(path.sep).join("/");
    const rules = matchingRules(this.config.rules, source, { path: job.input_file, rel }).filter((
      r,
    ) =>
      r.deletionDelay !== undefined &&
      r.destinations.some((d) => d.server === job.server && d.path === job.dest)
    );
    if (rules.length === 0) return;
    const pending = this.store.q(
      "SELECT COUNT(*) AS n FROM queue WHERE input_file = ? AND event != 4",
    ).get(job.input_file) as { n: number };
    if (pending.n > 0) return;
    const delay = Math.min(...rules.map((r) => r.deletionDelay!));
    this.store.scheduleSourceDeletion(job.input_file, Date.now() + delay * 1000);
    if (delay === 0) this.#sourceDeletions().catch((e) => this.#storeTrouble(e));
  }

  async #sourceDeletions() {
    for (const p of this.store.dueSourceDeletions(Date.now())) {
      // Forget the file first: a crash before the unlink re-syncs it, never deletes it remotely.
      this.store.tx(() => {
        this.store.deleteFile(p);
        this.store.unscheduleSourceDeletion(p);
      });
      try {
        await Deno.remove(p);
        this.#log.info(`Deleted source file "${p}" after sync (fileDeletionDelayAfterSync)`);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) {
          this.#log.warn(`Cannot delete source file "${p}": ${errorMessage(e)}`);
        }
      }
    }
  }

  /**
   * Deletes remote leftovers of interrupted uploads (temp files) and of
   * replaced versions, before the server's queue runs.
   */
  async #collectGarbage(s: ServerState): Promise<void> {
    const intents = this.store.intents(s.server.name);
    if (intents.length === 0) return;
    const t = await this.#transport(s);
    const signal = this.#abort.signal;
    for (const p of intents) {
      if (!this.store.remotePathInUse(s.server.name, p)) {
        await t.delete(p, { signal });
        s.log.info(`removed leftover "${p}"`);
      }
      const dir = p.includes("/") ? p.slice(0, p.lastIndexOf("/") + 1) : "";
      const tmp = tempName(p);
      if (tmp.startsWith(dir)) await t.delete(tmp, { signal });
      this.store.dropIntent(s.server.name, p);
    }
  }
}

/**
 * Empties the working directory, keeping the directory itself: it may be a
 * mount point (a tmpfs for processing), which cannot be removed.
 */
function emptyDir(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) fs.rmSync(path.join(dir, n), { recursive: true, force: true });
}

/** Bytes available to us on the file system of `dir`, when the OS says. */
function freeBytes(dir: string): number | undefined {
  try {
    const s = fs.statfsSync(dir);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return undefined;
  }
}

function parseExtras(json: string | null | undefined): string[] {
  if (!json) return [];
  try {
    return JSON.parse(json) as string[];
  } catch {
    return [];
  }
}

/** The stat fields the pipeline compares: the values node:fs gives and the scanner stores. */
interface FileStat {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
}

function fileStat(i: Deno.FileInfo): FileStat {
  return {
    size: i.size,
    mtimeMs: i.mtime?.getTime() ?? 0,
    ctimeMs: i.ctime?.getTime() ?? 0,
    ino: i.ino ?? 0,
  };
}

/**
 * Stats a source file; symlinks are followed only within the source. Deno's
 * own stat: several times cheaper than node:fs's Stats objects, same values.
 */
function statFile(p: string, source: Source): FileStat | undefined {
  try {
    const l = Deno.lstatSync(p);
    if (l.isFile) return fileStat(l);
    if (!l.isSymlink) return undefined;
    const real = fs.realpathSync(p);
    if (!real.startsWith(source.scanPath + path.sep)) return undefined;
    const t = Deno.statSync(p);
    return t.isFile ? fileStat(t) : undefined;
  } catch {
    return undefined;
  }
}

/** MD5 (hex) of a file: small files read at once, synchronously (a thread hop costs more). */
async function md5Of(p: string, signal: AbortSignal, size: number): Promise<string> {
  if (size <= SMALL_FILE) return createHash("md5").update(fs.readFileSync(p)).digest("hex");
  return await md5File(p, signal, size);
}

/** Files up to this size are read synchronously. */
const SMALL_FILE = 256 * 1024;

function jittered(ms: number): number {
  return Math.round(ms * (0.8 + Math.random() * 0.4));
}

/** Formats a byte count for logs. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export type { FileEvent };
