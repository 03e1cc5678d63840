/**
 * Compares source trees with the stored state and reports what changed.
 * Events from the watcher are only hints: every one of them ends here, so a
 * lost event is found by the next scan of its directory.
 *
 * Change detection uses size, mtime, ctime (millisecond precision, the best
 * Deno exposes) and inode; files whose stat looks unchanged after a watcher
 * event are compared by content hash later in the pipeline.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Source } from "../config/types.ts";
import { IgnoreMatcher } from "../filter/ignore.ts";
import type { Logger } from "../log.ts";
import { DELETED } from "../store/events.ts";
import type { FileRow, Store } from "../store/store.ts";
import { DeleteGuard } from "./delete_guard.ts";
import { ProblemLog } from "./problems.ts";
import { Publisher } from "./publish.ts";
import { vanished, Walker } from "./walk.ts";
import { isDir, isUndecodable, lstatInfo, NON_UTF8, type StatLike, statLike } from "./_stat.ts";
import { type ChangeSink, compareFile, fileRow, relPath, type Walk } from "./changes.ts";

export { isRacy, NON_UTF8, RACY_MS } from "./_stat.ts";
export type { Batch, ChangeSink, FsChange } from "./changes.ts";

/** Options for {@linkcode Scanner}. */
export interface ScannerOptions {
  store: Store;
  /** Directory names skipped everywhere. */
  ignoredDirs: readonly string[];
  /** Absolute paths never scanned (the data directory, the working directory). */
  exclude: readonly string[];
  log: Logger;
  /** Delete guard: most share of a source's files one scan may delete. */
  guardShare: number;
  /** Delete guard: applies from this many deletions. */
  guardMinFiles: number;
  /** The configuration file, named in the delete guard's approval command. */
  configFile?: string;
  /** Quiet milliseconds that end a deletion gathered from watcher events (delete guard). */
  deleteWindow?: number;
  /**
   * Whether a source's watcher still has events to deliver: the delete guard
   * waits for them before judging the deletions it gathered.
   */
  watchBusy?(source: string): boolean;
  sink: ChangeSink;
}

/** Result of a full source scan. */
export interface ScanResult {
  files: number;
  dirs: number;
  changes: number;
  /** Deletes held back by the delete guard. */
  held: number;
  /** The source's root is missing: nothing was deleted. */
  vanished: boolean;
  /** Paths that cannot be synced (recorded in the store's problems). */
  problems: number;
  /** Deletions a sweep found and dropped unjudged (see `mayDelete`). */
  deferred?: number;
  ms: number;
  /** Of {@linkcode ms}: listing directories, and reading their stored rows. */
  parts?: { listMs: number; storedMs: number };
}

/** Scans sources (whole or in part) against the store. */
export class Scanner {
  readonly #o: ScannerOptions;
  readonly #ignore: IgnoreMatcher;
  readonly #report: ProblemLog;
  readonly #guard: DeleteGuard;
  readonly #publish: Publisher;
  readonly #walker: Walker;
  /** Partial scans running per source: the delete guard waits for them. */
  readonly #scanning = new Map<string, number>();

  constructor(options: ScannerOptions) {
    this.#o = options;
    this.#ignore = new IgnoreMatcher({ dirs: options.ignoredDirs, exclude: options.exclude });
    this.#report = new ProblemLog(options.store, options.log);
    this.#publish = new Publisher(options.store, options.sink);
    this.#walker = new Walker({
      store: options.store,
      ignore: this.#ignore,
      report: this.#report,
      publish: this.#publish,
      otherNames: (w, p, inodes) => this.#otherNames(w, p, inodes),
    });
    this.#guard = new DeleteGuard({
      store: options.store,
      log: options.log,
      sink: options.sink,
      share: options.guardShare,
      minFiles: options.guardMinFiles,
      ...(options.configFile ? { configFile: options.configFile } : {}),
      ...(options.deleteWindow !== undefined ? { window: options.deleteWindow } : {}),
      busy: (name) => (this.#scanning.get(name) ?? 0) > 0 || (options.watchBusy?.(name) ?? false),
    });
  }

  /**
   * Whether work on a source is in progress in the scanner: a partial scan
   * runs, or deletions found by partial scans wait for their judgment.
   */
  busy(source: Source): boolean {
    return (this.#scanning.get(source.name) ?? 0) > 0 || this.#guard.gathering(source.name);
  }

  /** Judges now the deletions gathered from watcher events (tests, shutdown). */
  flushDeletes(source: Source): number {
    return this.#guard.flush(source.name).applied;
  }

  /** Stops the delete guard's timers (gathered deletions are found again by the next scan). */
  close(): void {
    this.#guard.close();
  }

  #excluded(p: string): boolean {
    return this.#ignore.isExcluded(p);
  }

  /**
   * Problem paths worth re-checking soon (permissions may be fixed without
   * any event the watcher sees): pass them to {@linkcode Scanner.scanPaths}.
   */
  retryPaths(source: Source): { path: string; written: boolean }[] {
    return this.#report.retryPaths(source.name);
  }

  /**
   * Scans a whole source. Deletions wait until the end: when they exceed the
   * delete guard, none is applied and the source is marked as held.
   * `sweep`: the periodic walk of a watching daemon (see `sweep.ts`), which
   * leaves racily clean rows to the full scans, and leaves deletions being
   * gathered from watcher events where they are. `signal` ends the walk at
   * its next pause (it throws the signal's reason; deletions are not judged).
   * `mayDelete`, asked after the walk when it found deletions: false drops
   * them unjudged (a sweep that met a deletion under way saw only part of it;
   * the watcher's events, or the next walk, bring the whole of it to the
   * guard).
   */
  async scanSource(
    source: Source,
    opts: {
      approved?: boolean;
      sweep?: boolean;
      signal?: AbortSignal;
      mayDelete?: () => Promise<boolean>;
    } = {},
  ): Promise<ScanResult> {
    const t0 = performance.now();
    const result: ScanResult = {
      files: 0,
      dirs: 0,
      changes: 0,
      held: 0,
      vanished: false,
      problems: 0,
      ms: 0,
    };
    if (!isDir(source.scanPath)) {
      result.vanished = true;
      this.#o.log.error(
        `Source "${source.name}" is missing ("${source.scanPath}"): nothing is deleted until it is back`,
      );
      return result;
    }
    // Deletions gathered from watcher events are found again by this walk, and judged with the
    // rest; a sweep leaves them to their own judgment (it may drop what it finds: `mayDelete`).
    if (!opts.sweep) this.#guard.drop(source.name);
    const w: Walk = {
      source,
      batch: { puts: [], removes: [], changes: [] },
      deferred: { removes: [], changes: [] },
      files: 0,
      dirs: 0,
      changes: 0,
      sinceYield: 0,
      found: new Map(),
      ...(opts.sweep ? { sweep: true } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    };
    await this.#walker.walk(w, source.scanPath);
    this.#publish.flush(w, true);
    if (isDir(source.scanPath)) this.#report.save(w.source.name, w.found);
    result.problems = w.found.size;
    if (w.deferred!.removes.length > 0 && opts.mayDelete && !(await opts.mayDelete())) {
      // Only what is gone is dropped: an entry replaced by one of the other type lost its
      // rows already (see Publisher), so its deletions are judged as always.
      const gone = new Set(w.deferred!.removes);
      const kept = w.deferred!.changes.filter((c) => !underAny(gone, c.path));
      result.deferred = w.deferred!.changes.length - kept.length;
      w.deferred = { removes: [], changes: kept };
    }
    const guard = this.#o.store.guardFor(source.name);
    const verdict = this.#guard.judge(source, w.deferred!.removes, w.deferred!.changes, {
      whole: true,
      ...(opts.approved ? { approved: true } : {}),
    });
    result.vanished = verdict.vanished;
    result.held = verdict.held;
    w.changes += verdict.applied;
    if (guard && !verdict.held && !verdict.vanished) this.#o.store.clearGuard(source.name);
    result.files = w.files;
    result.dirs = w.dirs;
    result.changes = w.changes;
    result.ms = performance.now() - t0;
    result.parts = { listMs: w.listMs ?? 0, storedMs: w.storedMs ?? 0 };
    return result;
  }

  /**
   * Reconciles many paths reported by a watcher, in order, like
   * {@linkcode Scanner.scanPath} for each. Regular files share transactions
   * (one per 500 changes, not one per file: a flood of new files stays
   * cheap); a directory or a vanished path first commits what came before,
   * then is scanned on its own.
   */
  async scanPaths(
    source: Source,
    paths: readonly { path: string; written: boolean }[],
  ): Promise<number> {
    this.#scanning.set(source.name, (this.#scanning.get(source.name) ?? 0) + 1);
    try {
      return await this.#scanPaths(source, paths);
    } finally {
      this.#scanned(source.name);
    }
  }

  /** One partial scan of a source is over. */
  #scanned(name: string) {
    const n = (this.#scanning.get(name) ?? 1) - 1;
    if (n > 0) this.#scanning.set(name, n);
    else this.#scanning.delete(name);
  }

  async #scanPaths(
    source: Source,
    paths: readonly { path: string; written: boolean }[],
  ): Promise<number> {
    const w: Walk = {
      source,
      batch: { puts: [], removes: [], changes: [] },
      files: 0,
      dirs: 0,
      changes: 0,
      sinceYield: 0,
      knownDirs: new Set(),
      found: new Map(),
      deferred: { removes: [], changes: [] },
    };
    let changes = 0;
    let rootOk: boolean | undefined;
    for (const { path: p, written } of paths) {
      if (p !== source.scanPath && this.#inScope(source, p)) {
        rootOk ??= isDir(source.scanPath);
        if (!rootOk) return changes;
        let info: Deno.FileInfo | undefined;
        try {
          info = lstatInfo(p);
        } catch {
          // Not examinable: scanPath records why.
        }
        if (info?.isFile) {
          this.#fileChange(w, p, statLike(info), this.#o.store.getFile(p), written);
          this.#publish.flush(w);
          continue;
        }
      }
      // What the batch knows may change below: commit it, forget the directories seen.
      this.#publish.flush(w, true);
      w.knownDirs?.clear();
      changes += await this.scanPath(source, p, written);
    }
    this.#publish.flush(w, true);
    this.#guard.gather(source, w.deferred!.removes, w.deferred!.changes);
    return changes + w.changes;
  }

  /** Whether a watcher path is one to reconcile (inside, not excluded, ignored or temporary). */
  #inScope(source: Source, p: string): boolean {
    if (!p.startsWith(source.scanPath + path.sep) || this.#excluded(p)) return false;
    return !this.#ignore.isIgnoredRel(relPath(source, p));
  }

  /** Compares one existing regular file (or linked file) with its stored row. */
  #fileChange(w: Walk, p: string, st: StatLike, old: FileRow | undefined, written: boolean) {
    this.#ensureParents(w, p);
    const before = w.batch.changes.length;
    compareFile(w, p, relPath(w.source, p), st, old, written, this.#publish.replaced);
    if (w.batch.changes.length > before) {
      // A new name may be a new hard link written at once: its other names changed too.
      // The old inode too: a file replaced by rename has a new one, its symlinks the old.
      this.#otherNames(w, p, new Set(old && !old.is_dir ? [st.ino, old.ino] : [st.ino]));
    }
  }

  /**
   * A watcher reports a change under the name that was written: the other
   * names of the same file (hard links, and in-tree symlinks, whose rows
   * hold their target's inode) are compared too, as a scan would.
   */
  #otherNames(w: Walk, p: string, inodes: ReadonlySet<number>) {
    const others = [...inodes].filter((i) => i !== 0).flatMap((i) =>
      this.#o.store.filesWithIno(w.source.name, i)
    );
    const seen = new Set([p]);
    for (const other of others) {
      if (seen.has(other.path)) continue;
      seen.add(other.path);
      let st: StatLike | undefined;
      let link = false;
      try {
        const l = lstatInfo(other.path);
        link = l?.isSymlink ?? false;
        st = l?.isFile ? statLike(l) : link ? this.#walker.stat(w.source, other.path) : undefined;
      } catch {
        continue; // Its directory is not searchable: a scan records that.
      }
      if (st?.isFile()) {
        compareFile(
          w,
          other.path,
          relPath(w.source, other.path),
          st,
          other,
          true,
          this.#publish.replaced,
        );
      } else if (link && !st) {
        // A symlink whose target is gone publishes nothing any more.
        this.#publish.unpublished(w, other);
      }
    }
  }

  /**
   * Reconciles one path reported by a watcher: a file, a directory (scanned
   * recursively) or a path that is gone (it and everything below it are
   * deleted). `written` marks a path a watcher saw written to.
   */
  async scanPath(source: Source, p: string, written = false): Promise<number> {
    if (p === source.scanPath) return (await this.scanSource(source)).changes;
    if (!this.#inScope(source, p)) return 0;
    this.#scanning.set(source.name, (this.#scanning.get(source.name) ?? 0) + 1);
    try {
      return await this.#scanPath(source, p, written);
    } finally {
      this.#scanned(source.name);
    }
  }

  async #scanPath(source: Source, p: string, written: boolean): Promise<number> {
    const w: Walk = {
      source,
      batch: { puts: [], removes: [], changes: [] },
      files: 0,
      dirs: 0,
      changes: 0,
      sinceYield: 0,
      found: new Map(),
      partial: true,
      // Deletions are judged together with those of other events: see DeleteGuard.
      deferred: { removes: [], changes: [] },
    };
    if (!isDir(source.scanPath)) return 0;
    let lst: fs.Stats | undefined;
    try {
      lst = fs.lstatSync(p, { throwIfNoEntry: false });
    } catch (e) {
      // A directory above it is now a file: `p` is gone.
      if (vanished(e)) lst = undefined;
      else {
        // Its directory cannot be searched: the problem is the directory's.
        const dir = path.dirname(p);
        this.#report.note(w.found, dir, `cannot examine its entries: ${(e as Error).message}`);
        this.#report.save(w.source.name, w.found, dir);
        return 0;
      }
    }
    const old = this.#o.store.getFile(p);
    if (!lst && !old && isUndecodable(p)) {
      this.#report.note(w.found, p, NON_UTF8);
    } else if (!lst) {
      // Gone; when its parent is gone too, the parent's scan reports it.
      if (old) {
        this.#publish.deleted(w, old);
        // Symlinks to it published its content: they are checked too.
        if (!old.is_dir) this.#otherNames(w, p, new Set([old.ino]));
      } else {
        const under = this.#o.store.filesUnder(p);
        if (under.length > 0) {
          for (const f of under) {
            w.deferred!.changes.push({
              source,
              path: f.path,
              rel: relPath(source, f.path),
              event: DELETED,
            });
          }
          w.deferred!.removes.push(p);
        }
      }
    } else if (lst.isDirectory()) {
      if (this.#ignore.isIgnoredDirName(path.basename(p))) return 0;
      this.#ensureParents(w, p);
      if (!old || !old.is_dir) {
        if (old) this.#publish.replaced(w, old);
        w.batch.puts.push(fileRow(source, p, lst, true));
      }
      await this.#walker.walk(w, p);
    } else {
      if (!lst.isFile() && !lst.isSymbolicLink()) this.#report.special(p);
      const st = lst.isFile()
        ? lst
        : lst.isSymbolicLink()
        ? this.#walker.stat(source, p)
        : undefined;
      if (!st) {
        if (old?.is_dir) this.#publish.deleted(w, old);
        else if (old) this.#publish.unpublished(w, old);
      } else this.#fileChange(w, p, st, old, written);
    }
    this.#publish.flush(w, true);
    this.#guard.gather(source, w.deferred!.removes, w.deferred!.changes);
    this.#report.save(w.source.name, w.found, p);
    return w.changes;
  }

  /** Records missing parent directories so their later removal is noticed. */
  #ensureParents(w: Walk, p: string) {
    const root = w.source.scanPath;
    const missing: string[] = [];
    for (let d = path.dirname(p); d !== root && d.startsWith(root); d = path.dirname(d)) {
      if (w.knownDirs?.has(d)) break;
      if (this.#o.store.getFile(d)) {
        w.knownDirs?.add(d);
        break;
      }
      missing.push(d);
    }
    for (const d of missing) {
      const st = fs.lstatSync(d, { throwIfNoEntry: false });
      if (st?.isDirectory()) {
        w.batch.puts.push(fileRow(w.source, d, st, true));
        w.knownDirs?.add(d);
      }
    }
  }
}

/** Whether `p` or one of its parent folders is in `set`. */
function underAny(set: ReadonlySet<string>, p: string): boolean {
  for (let d = p;; d = path.dirname(d)) {
    if (set.has(d)) return true;
    if (path.dirname(d) === d) return false;
  }
}
