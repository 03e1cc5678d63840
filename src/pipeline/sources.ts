/**
 * Discovery: a watcher and an aggregator per source, the scan queue (one
 * scan at a time), and the commit of scan results into the store with the
 * work they imply. Also the check that a source root is still there, on
 * the file system it was on.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Source } from "../config/types.ts";
import { errorMessage } from "../errors.ts";
import { logger } from "../log.ts";
import { DELETED } from "../store/events.ts";
import type { Change, Store } from "../store/store.ts";
import { startFifoReleaser } from "../watch/fifo_release.ts";
import { Aggregator } from "../watch/aggregator.ts";
import { type Batch, type FsChange, Scanner } from "../watch/scanner.ts";
import { SWEEP_RETRY_MS, SWEEP_SETTLE_MS, sweepDue, sweepTick } from "../watch/sweep.ts";
import { SourceWatcher, type WatchMode } from "../watch/watcher.ts";
import type { PipelineContext } from "./context.ts";
import type { Router } from "./routing.ts";

/** What {@linkcode Sources} calls back into. */
export interface SourcesHooks {
  /** New work may be ready. */
  pump(): void;
  /** The database cannot be written. */
  storeTrouble(e: unknown): void;
  /** A watch mode changed (the status should show it at once). */
  modeChanged(): void;
  /**
   * Whether a scan batch of `changes` changes of `source` may be written
   * now (default: always). When not, nothing of the batch is written — the
   * stored state still differs from the disk — and a later scan finds it.
   */
  admit?(source: string, changes: number): boolean;
  /** Whether the database cannot be written now (sweeps wait until it can). */
  storeTroubled(): boolean;
}

/** Whether an error is SQLite's (the database, not the file, failed). */
export function isStoreError(e: unknown): boolean {
  return (e as { code?: string })?.code === "ERR_SQLITE_ERROR";
}

/** The sources of the configuration in effect: watchers, scans, root checks. */
export class Sources {
  readonly #ctx: PipelineContext;
  readonly #store: Store;
  readonly #router: Router;
  readonly #hooks: SourcesHooks;
  readonly #watchers = new Map<string, SourceWatcher>();
  readonly #aggregators = new Map<string, Aggregator>();
  readonly #watchModes = new Map<string, WatchMode>();
  readonly #scanPending = new Map<string, Promise<void>>();
  /** Device of each source root when last seen present: another one means its mount went away. */
  readonly #rootDevs = new Map<string, number>();
  #scanQueue: Promise<void> = Promise.resolve();
  /** Scans waiting or running in the scan queue. */
  #queued = 0;
  /** When the last walk of each whole source started (a full scan or a sweep). */
  readonly #lastWalk = new Map<string, number>();
  /** Milliseconds the last sweep of each source took. */
  readonly #sweepMs = new Map<string, number>();
  /** Sources whose sweep waits in the scan queue. */
  readonly #sweepQueued = new Set<string>();
  #sweepTimer: number | undefined;
  /** The sweep walking now: a stop ends it, and waits for it, before the store closes. */
  #sweepRunning: Promise<unknown> | undefined;
  #scanner: Scanner;
  /** Changes seen in a dry run, reported at the end. */
  readonly dryChanges: FsChange[] = [];
  initialScanDone = false;

  constructor(ctx: PipelineContext, store: Store, router: Router, hooks: SourcesHooks) {
    this.#ctx = ctx;
    this.#store = store;
    this.#router = router;
    this.#hooks = hooks;
    this.#scanner = this.#makeScanner();
  }

  #makeScanner(): Scanner {
    const s = this.#ctx.config.settings;
    return new Scanner({
      store: this.#store,
      ignoredDirs: this.#ctx.config.ignoredDirs,
      exclude: [this.#ctx.dataDir, this.#ctx.workDir, ...(this.#ctx.config.excludedDirs ?? [])],
      log: logger("scan"),
      guardShare: s.deleteGuardShare,
      guardMinFiles: s.deleteGuardMinFiles,
      configFile: this.#ctx.config.file,
      watchBusy: (name) => (this.#aggregators.get(name)?.pending ?? 0) > 0,
      sink: (batch) => this.#commit(batch),
    });
  }

  /** Watch modes per source. */
  get watchModes(): ReadonlyMap<string, WatchMode> {
    return this.#watchModes;
  }

  /** Starts a watcher for every source that has none. */
  startWatchers(): void {
    for (const source of this.#ctx.config.sources) {
      if (!this.#watchers.has(source.name)) this.#startWatcher(source);
    }
  }

  #startWatcher(source: Source) {
    const settings = this.#ctx.config.settings;
    const agg = new Aggregator({
      settleDelay: settings.settleDelay,
      maxDelay: settings.maxDelay,
      flush: (paths, full) => {
        if (full) void this.enqueueScan(source);
        else void this.#scanPaths(source, paths);
      },
    });
    this.#aggregators.set(source.name, agg);
    const mode = settings.watchMode === "poll" || source.watch === "poll" ? "poll" : "auto";
    const w: SourceWatcher = new SourceWatcher({
      source,
      aggregator: agg,
      log: logger(`watch:${source.name}`),
      mode,
      pollInterval: settings.pollInterval,
      exclude: [this.#ctx.dataDir, this.#ctx.workDir, ...(this.#ctx.config.excludedDirs ?? [])],
      probeDir: path.join(this.#ctx.dataDir, "watch-probe"),
      fullScan: () => this.enqueueScan(source),
      onMode: (m, reason) => {
        // A watcher replaced by a reload reports nothing any more.
        if (this.#watchers.get(source.name) !== w) return;
        this.#watchModes.set(source.name, m);
        this.#ctx.log.info(
          `Source "${source.name}" watch mode: ${m}${reason ? ` (${reason})` : ""}`,
        );
        this.#hooks.modeChanged();
      },
    });
    this.#watchers.set(source.name, w);
    w.start();
    this.#watchModes.set(source.name, w.mode);
  }

  /**
   * After a reload: a new scanner for the new settings; watchers of changed
   * or removed sources stop (all when `all`), then new ones start.
   */
  async reconfigure(fresh: readonly Source[], all: boolean, watch: boolean): Promise<void> {
    this.#scanner.close();
    this.#scanner = this.#makeScanner();
    if (!watch) return;
    const sources = this.#ctx.config.sources;
    for (const [name, w] of [...this.#watchers]) {
      const source = sources.find((x) => x.name === name);
      if (source && !all && !fresh.includes(source)) continue;
      this.#watchers.delete(name);
      this.#aggregators.get(name)?.close();
      this.#aggregators.delete(name);
      this.#watchModes.delete(name);
      await w.stop();
    }
    this.startWatchers();
  }

  /** Checks every watched root (a deleted or remounted root restarts its watcher). */
  checkRoots(): void {
    for (const w of this.#watchers.values()) w.checkRoot();
  }

  /** Re-checks what could not be read: permissions may come back without an event the watcher sees. */
  recheckProblems(): void {
    for (const source of this.#ctx.config.sources) {
      const again = this.#scanner.retryPaths(source);
      if (again.length > 0) void this.#scanPaths(source, again);
    }
  }

  /**
   * Starts the sweeps of a watching daemon (see `src/watch/sweep.ts`); the
   * interval is read at every tick, so a reload changes it.
   */
  startSweeps(): void {
    const tick = () => {
      this.#sweepTimer = undefined;
      if (this.#ctx.stopping) return;
      const interval = this.#ctx.config.settings.dirSweepInterval * 1000;
      try {
        if (interval > 0) this.#sweepDue();
      } catch (e) {
        // Reading the guard failed: the database is in trouble, said where it is handled.
        this.#hooks.storeTrouble(e);
      }
      this.#sweepTimer = setTimeout(tick, sweepTick(interval || 1000)) as unknown as number;
    };
    if (this.#sweepTimer === undefined) tick();
  }

  /** Queues a sweep of every source that is due (see {@linkcode sweepDue}). */
  #sweepDue() {
    const now = Date.now();
    const interval = this.#ctx.config.settings.dirSweepInterval * 1000;
    const storeTrouble = this.#hooks.storeTroubled();
    for (const source of this.#ctx.config.sources) {
      const state = {
        interval,
        now,
        last: this.#lastWalk.get(source.name) ?? 0,
        lastMs: this.#sweepMs.get(source.name) ?? 0,
        mode: this.#watchModes.get(source.name) ?? "stopped",
        ready: this.initialScanDone,
        storeTrouble,
        held: this.#store.guardFor(source.name) !== undefined,
        queued: this.#scanPending.has(source.name) || this.#sweepQueued.has(source.name),
        busy: this.#queued > 0 || (this.#aggregators.get(source.name)?.pending ?? 0) > 0 ||
          this.#scanner.busy(source),
      };
      if (sweepDue(state)) void this.#sweep(source);
    }
  }

  /**
   * Walks a whole source with the scan of a restart, quietly: it writes to
   * the store only what differs, and says at info level only what it found.
   */
  #sweep(source: Source): Promise<void> {
    this.#sweepQueued.add(source.name);
    return this.#serial(async () => {
      this.#sweepQueued.delete(source.name);
      // A full scan waiting covers it; one that ran meanwhile made it early.
      if (this.#ctx.stopping || this.#scanPending.has(source.name)) return;
      const started = Date.now();
      this.#lastWalk.set(source.name, started);
      const signal = this.#ctx.signal;
      const agg = this.#aggregators.get(source.name);
      const removals = agg?.removals ?? 0;
      // Deletions the walk found count only when the source lost nothing else meanwhile: a walk
      // that meets an rm -rf half done sees part of it, which alone may pass the delete guard.
      const mayDelete = async () => {
        // Events of what the walk saw gone are delivered by now.
        await new Promise((r) => setTimeout(r, SWEEP_SETTLE_MS));
        return (agg?.removals ?? 0) === removals && !this.#scanner.busy(source) &&
          !this.#scanPending.has(source.name);
      };
      const walk = this.#scanner.scanSource(source, { sweep: true, signal, mayDelete });
      this.#sweepRunning = walk.catch(() => {});
      let r;
      try {
        r = await walk;
      } catch (e) {
        if (signal.aborted) return; // Stopping: the next start scans anyway.
        throw e;
      } finally {
        this.#sweepRunning = undefined;
      }
      this.#sweepMs.set(source.name, r.ms);
      if (r.deferred) {
        // Found again by the next sweep if the watcher's events do not bring them: soon, once
        // the source is quiet.
        const interval = this.#ctx.config.settings.dirSweepInterval * 1000;
        this.#lastWalk.set(source.name, started - interval + Math.min(interval, SWEEP_RETRY_MS));
        this.#ctx.log.debug(
          `Sweep of source "${source.name}" met a deletion under way: its ${r.deferred} ` +
            `deletions are left to the watcher's events and the next walk`,
        );
      }
      const said = `Swept source "${source.name}": ${r.files} files in ${r.dirs} directories, ${
        Math.round(r.ms)
      } ms`;
      if (r.changes > 0) {
        this.#ctx.log.info(`${said}; ${r.changes} changes the watcher did not report`);
        this.#hooks.pump();
      } else this.#ctx.log.debug(said);
    });
  }

  /** Stops every watcher; `bound` limits the wait for them (a close may hang). */
  async stop(bound: <T>(p: Promise<T>) => Promise<unknown> = (p) => p): Promise<void> {
    clearTimeout(this.#sweepTimer);
    this.#sweepTimer = undefined;
    if (this.#watchers.size > 0) {
      // A watcher thread stuck opening a named pipe would block closing a watch, and the
      // process: a thread of our own releases such readers while the watchers close.
      const releaser = await startFifoReleaser(this.#ctx.config.sources.map((x) => x.scanPath));
      try {
        await bound(Promise.all([...this.#watchers.values()].map((w) => w.stop())));
      } finally {
        releaser.stop();
      }
    }
    for (const a of this.#aggregators.values()) a.close();
    // Ended at its next pause by the stop signal.
    if (this.#sweepRunning) await bound(this.#sweepRunning);
    this.#scanner.close();
  }

  /** Scans run one at a time (they share the store's transaction). */
  #serial(fn: () => Promise<void>): Promise<void> {
    this.#queued++;
    const run = () => fn().finally(() => this.#queued--);
    const next = this.#scanQueue.then(run, run);
    this.#scanQueue = next.catch((e) => {
      // A database that cannot be written (disk full) is reported once, not per scan.
      if (isStoreError(e)) this.#hooks.storeTrouble(e);
      else this.#ctx.log.error(`Scan failed: ${errorMessage(e)}`);
    });
    return this.#scanQueue;
  }

  /** Queues a full scan of `source`; a scan waiting to start covers any asked for meanwhile. */
  enqueueScan(source: Source): Promise<void> {
    const waiting = this.#scanPending.get(source.name);
    if (waiting) return waiting;
    const { options, bus, log } = this.#ctx;
    const p = this.#serial(async () => {
      this.#scanPending.delete(source.name);
      if (this.#ctx.stopping && !options.once && !options.dryRun) return;
      bus.emit({ type: "scan-start", source: source.name, initial: !this.initialScanDone });
      this.#lastWalk.set(source.name, Date.now());
      const r = await this.#scanner.scanSource(source);
      bus.emit({
        type: "scan-done",
        source: source.name,
        files: r.files,
        changes: r.changes,
        ms: r.ms,
      });
      // The parts say where a scan's time goes (listing, stored rows; the rest is the stats,
      // the comparison and recording what changed).
      const parts = r.parts
        ? `: listing ${Math.round(r.parts.listMs)} ms, stored rows ${
          Math.round(r.parts.storedMs)
        } ms, stats and the rest ${Math.round(r.ms - r.parts.listMs - r.parts.storedMs)} ms`
        : "";
      log.info(
        `Scanned source "${source.name}": ${r.files} files in ${r.dirs} directories, ${r.changes} changes (${
          Math.round(r.ms)
        } ms${parts})`,
      );
      this.#hooks.pump();
    });
    this.#scanPending.set(source.name, p);
    return p;
  }

  /** Scans every source (queued one after the other). */
  scanAll(): void {
    for (const source of this.#ctx.config.sources) void this.enqueueScan(source);
  }

  #scanPaths(source: Source, paths: { path: string; written: boolean }[]): Promise<void> {
    return this.#serial(async () => {
      if (this.#ctx.stopping) return;
      try {
        await this.#scanner.scanPaths(source, paths);
      } catch (e) {
        if (isStoreError(e)) throw e;
        // One path that cannot be reconciled (it changed type meanwhile, it cannot be read)
        // must not drop the other paths of the batch: the full scan covers them all.
        this.#ctx.log.warn(
          `Cannot reconcile changed paths of source "${source.name}" (${
            errorMessage(e)
          }); rescanning the source`,
        );
        void this.enqueueScan(source);
      }
      this.#hooks.pump();
    });
  }

  /** Stores scan results and queues the work they imply, atomically. */
  #commit(batch: Batch) {
    if (this.#ctx.options.dryRun) {
      this.dryChanges.push(...batch.changes);
      return;
    }
    const store = this.#store;
    const now = Date.now();
    const changes: Change[] = [];
    for (const c of batch.changes) changes.push(...this.#router.changesFor(c));
    const of = batch.changes[0]?.source.name;
    if (of !== undefined && this.#hooks.admit && !this.#hooks.admit(of, changes.length)) return;
    store.tx(() => {
      for (const r of batch.removes) store.deleteUnder(r);
      for (const p of batch.puts) store.putFile(p);
      for (const c of batch.changes) {
        if (c.event === DELETED) store.unscheduleSourceDeletion(c.path);
      }
      store.enqueue(changes, now, 0, this.#ctx.config.settings.deleteDelay);
    });
    if (this.#ctx.bus.listening && batch.changes.length > 0) {
      let files = 0;
      let bytes = 0;
      for (const c of batch.changes) {
        if (c.event === DELETED) continue;
        files++;
        bytes += c.size ?? 0;
      }
      const source = batch.changes[0]!.source.name;
      if (files > 0) this.#ctx.bus.emit({ type: "scan-found", source, files, bytes });
    }
  }

  /** Whether a source's root is there, on the file system it was on at start. */
  rootPresent(source: Source): boolean {
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
}
