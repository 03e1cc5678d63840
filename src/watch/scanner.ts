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
import { setImmediate } from "node:timers";
import type { Source } from "../config/types.ts";
import { IgnoreMatcher } from "../filter/ignore.ts";
import type { Logger } from "../log.ts";
import { DELETED } from "../store/events.ts";
import type { FileRow, Store } from "../store/store.ts";
import { DeleteGuard } from "./delete_guard.ts";
import { ProblemLog } from "./problems.ts";
import {
  exists,
  isDir,
  isUndecodable,
  lstatFast,
  lstatInfo,
  NON_UTF8,
  type StatLike,
  statLike,
} from "./_stat.ts";

import { BATCH, type ChangeSink, compareFile, fileRow, relPath, type Walk } from "./changes.ts";

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
  ms: number;
}

/** Scans sources (whole or in part) against the store. */
export class Scanner {
  readonly #o: ScannerOptions;
  readonly #ignore: IgnoreMatcher;
  readonly #report: ProblemLog;
  readonly #guard: DeleteGuard;
  /** Records a stored row as replaced (bound once: called per file in a walk). */
  readonly #onReplaced = (w: Walk, row: FileRow): void => this.#replaced(w, row);

  constructor(options: ScannerOptions) {
    this.#o = options;
    this.#ignore = new IgnoreMatcher({ dirs: options.ignoredDirs, exclude: options.exclude });
    this.#report = new ProblemLog(options.store, options.log);
    this.#guard = new DeleteGuard({
      store: options.store,
      log: options.log,
      sink: options.sink,
      share: options.guardShare,
      minFiles: options.guardMinFiles,
      ...(options.configFile ? { configFile: options.configFile } : {}),
      ...(options.deleteWindow !== undefined ? { window: options.deleteWindow } : {}),
    });
  }

  /** Judges now the deletions gathered from watcher events (tests, shutdown). */
  flushDeletes(source: Source): number {
    return this.#guard.flush(source.name).applied;
  }

  /** Stops the delete guard's timers (gathered deletions are found again by the next scan). */
  close(): void {
    this.#guard.close();
  }

  #ignoredRel(rel: string): boolean {
    return this.#ignore.isIgnoredRel(rel);
  }

  #excluded(p: string): boolean {
    return this.#ignore.isExcluded(p);
  }

  #flush(w: Walk, force = false) {
    const b = w.batch;
    const size = b.puts.length + b.removes.length + b.changes.length;
    if (size === 0 || (!force && size < BATCH)) return;
    this.#o.sink(b);
    w.changes += b.changes.length;
    w.batch = { puts: [], removes: [], changes: [] };
  }

  /** Every 2,000 entries: commits and lets other work run. Call as `if (due(w)) await …`. */
  #yieldDue(w: Walk): boolean {
    return ++w.sinceYield >= 2000;
  }

  async #yield(w: Walk) {
    w.sinceYield = 0;
    this.#flush(w, true);
    await new Promise((r) => setImmediate(r));
  }

  /**
   * Problem paths worth re-checking soon (permissions may be fixed without
   * any event the watcher sees): pass them to {@linkcode Scanner.scanPaths}.
   */
  retryPaths(source: Source): { path: string; written: boolean }[] {
    return this.#report.retryPaths(source.name);
  }

  /** Stats an entry, following a symlink only when its target stays inside the source. */
  #stat(source: Source, p: string): fs.Stats | undefined {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return undefined;
    }
    if (!st.isSymbolicLink()) return st;
    let real: string;
    try {
      real = fs.realpathSync(p);
    } catch {
      this.#report.warnOnce(`dangling:${p}`, `Skipping "${p}": broken symlink or symlink loop`);
      return undefined;
    }
    if (real !== source.scanPath && !real.startsWith(source.scanPath + path.sep)) {
      this.#report.warnOnce(
        `outside:${p}`,
        `Skipping symlink "${p}": it points outside source "${source.name}" (to "${real}")`,
      );
      return undefined;
    }
    try {
      const target = fs.statSync(p);
      // Linked directories are not descended (no loops, no double syncs).
      return target.isFile() ? target : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * An entry replaced by one of the other type at the same path: its files
   * are deleted (judged with the other deletions), but its rows go at once,
   * in the batch that records the new entry. A deferred removal would take
   * the new rows at and below the path with it.
   */
  #replaced(w: Walk, row: FileRow) {
    const target = w.deferred ?? w.batch;
    const files = row.is_dir ? this.#o.store.filesUnder(row.path) : [row];
    for (const f of files) {
      target.changes.push({
        source: w.source,
        path: f.path,
        rel: relPath(w.source, f.path),
        event: DELETED,
      });
    }
    w.batch.removes.push(row.path);
  }

  /**
   * A stored file whose path now holds something that publishes nothing (a
   * broken symlink, a link out of the source, a FIFO): deleted at once. Not
   * gathered for the delete guard, which keeps what still exists.
   */
  #unpublished(w: Walk, row: FileRow) {
    w.batch.changes.push({
      source: w.source,
      path: row.path,
      rel: relPath(w.source, row.path),
      event: DELETED,
    });
    w.batch.removes.push(row.path);
  }

  #deleted(w: Walk, row: FileRow) {
    const target = w.deferred ?? w.batch;
    const files = row.is_dir ? this.#o.store.filesUnder(row.path) : [row];
    for (const f of files) {
      target.changes.push({
        source: w.source,
        path: f.path,
        rel: relPath(w.source, f.path),
        event: DELETED,
      });
    }
    target.removes.push(row.path);
  }

  /** Compares one directory's listing with the store and descends. */
  async #walk(w: Walk, root: string) {
    const stack = [root];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      w.dirs++;
      let entries: Deno.DirEntry[];
      try {
        // Deno's own listing: no node:fs Dirent objects, no sorting.
        entries = [...Deno.readDirSync(dir)];
      } catch (e) {
        // Removed or replaced by a file meanwhile: the event of that change rescans it.
        if (vanished(e)) continue;
        // Unreadable: keep what we know below it rather than delete it remotely.
        const msg = (e as Error).message;
        this.#report.note(
          w.found,
          dir,
          `cannot read the directory: ${msg}`,
          `Cannot read directory "${dir}": ${msg}; its files are kept as they were`,
        );
        continue;
      }
      const prefix = dir.endsWith(path.sep) ? dir : dir + path.sep;
      const stored = new Map(
        this.#o.store.children(dir).map((r) => [
          r.path.startsWith(prefix) ? r.path.slice(prefix.length) : path.basename(r.path),
          r,
        ]),
      );
      // Entries listed but not examinable (a directory without search permission):
      // what is stored below it is kept, not deleted.
      let blocked = false;
      for (const e of entries) {
        const p = prefix + e.name;
        const old = stored.get(e.name);
        stored.delete(e.name);
        const rel = relPath(w.source, p);
        if (this.#excluded(p) || this.#ignore.isIgnoredEntry(e.name, e.isDirectory)) continue;
        if (e.name.includes("\uFFFD") && !exists(p)) {
          // Deno decodes names lossily: the listed name names nothing on disk.
          this.#report.note(w.found, p, NON_UTF8);
          continue;
        }
        if (e.isDirectory) {
          if (!old || !old.is_dir) {
            let st: fs.Stats | undefined;
            try {
              st = fs.lstatSync(p, { throwIfNoEntry: false });
            } catch (err) {
              // The directory was replaced while listed: not a problem of the path, and the
              // event of that change rescans it; what is stored below it is kept until then.
              blocked = true;
              if (vanished(err)) break;
              this.#report.note(
                w.found,
                dir,
                `cannot examine its entries: ${(err as Error).message}`,
              );
              break;
            }
            if (!st) continue;
            if (old) this.#replaced(w, old);
            w.batch.puts.push(fileRow(w.source, p, st, true));
          }
          stack.push(p);
          continue;
        }
        if (this.#ignoredRel(rel)) continue;
        let st: StatLike | undefined;
        try {
          if (e.isFile) st = lstatFast(p);
          else if (e.isSymlink) st = this.#stat(w.source, p);
          else this.#report.special(p);
        } catch (err) {
          blocked = true;
          if (vanished(err)) break; // Replaced while listed, as above.
          this.#report.note(w.found, dir, `cannot examine its entries: ${(err as Error).message}`);
          break;
        }
        if (!st || !st.isFile()) {
          if (old?.is_dir) this.#deleted(w, old);
          else if (old) this.#unpublished(w, old);
          continue;
        }
        w.files++;
        compareFile(w, p, rel, st, old, false, this.#onReplaced);
        this.#flush(w);
        if (this.#yieldDue(w)) await this.#yield(w);
      }
      if (!blocked) {
        for (const gone of stored.values()) {
          this.#deleted(w, gone);
          // Symlinks elsewhere that published its content are checked too.
          if (w.partial && !gone.is_dir) this.#otherNames(w, gone.path, new Set([gone.ino]));
        }
      }
      this.#flush(w);
      if (this.#yieldDue(w)) await this.#yield(w);
    }
  }

  /**
   * Scans a whole source. Deletions wait until the end: when they exceed the
   * delete guard, none is applied and the source is marked as held.
   */
  async scanSource(source: Source, opts: { approved?: boolean } = {}): Promise<ScanResult> {
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
    // Deletions gathered from watcher events are found again by this walk, and judged with the rest.
    this.#guard.drop(source.name);
    const w: Walk = {
      source,
      batch: { puts: [], removes: [], changes: [] },
      deferred: { removes: [], changes: [] },
      files: 0,
      dirs: 0,
      changes: 0,
      sinceYield: 0,
      found: new Map(),
    };
    await this.#walk(w, source.scanPath);
    this.#flush(w, true);
    if (isDir(source.scanPath)) this.#report.save(w.source.name, w.found);
    result.problems = w.found.size;
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
          this.#flush(w);
          continue;
        }
      }
      // What the batch knows may change below: commit it, forget the directories seen.
      this.#flush(w, true);
      w.knownDirs?.clear();
      changes += await this.scanPath(source, p, written);
    }
    this.#flush(w, true);
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
    compareFile(w, p, relPath(w.source, p), st, old, written, this.#onReplaced);
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
        st = l?.isFile ? statLike(l) : link ? this.#stat(w.source, other.path) : undefined;
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
          this.#onReplaced,
        );
      } else if (link && !st) {
        // A symlink whose target is gone publishes nothing any more.
        this.#unpublished(w, other);
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
        this.#deleted(w, old);
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
        if (old) this.#replaced(w, old);
        w.batch.puts.push(fileRow(source, p, lst, true));
      }
      await this.#walk(w, p);
    } else {
      if (!lst.isFile() && !lst.isSymbolicLink()) this.#report.special(p);
      const st = lst.isFile() ? lst : lst.isSymbolicLink() ? this.#stat(source, p) : undefined;
      if (!st) {
        if (old?.is_dir) this.#deleted(w, old);
        else if (old) this.#unpublished(w, old);
      } else this.#fileChange(w, p, st, old, written);
    }
    this.#flush(w, true);
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

/** An error saying the path is gone or a directory on it is now a file (changed meanwhile). */
function vanished(e: unknown): boolean {
  if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return true;
  const code = (e as { code?: string }).code;
  return code === "ENOENT" || code === "ENOTDIR";
}
