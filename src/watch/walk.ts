/**
 * The walk of a source tree: lists each directory, stats its entries
 * (following a symlink only inside the source), compares them with the
 * directory's stored rows and descends. What it finds goes to the
 * {@linkcode Publisher}; paths it cannot examine go to the problem log,
 * and what is stored below them is kept.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Source } from "../config/types.ts";
import type { IgnoreMatcher } from "../filter/ignore.ts";
import type { Store } from "../store/store.ts";
import { compareFile, fileRow, relPath, type Walk } from "./changes.ts";
import type { ProblemLog } from "./problems.ts";
import type { Publisher } from "./publish.ts";
import { exists, NON_UTF8, type StatLike } from "./_stat.ts";
import { type OpenDir, openDir } from "./_dir_reader.ts";

/** What a {@linkcode Walker} works with. */
export interface WalkerOptions {
  store: Store;
  ignore: IgnoreMatcher;
  report: ProblemLog;
  publish: Publisher;
  /**
   * Compares the other names of a vanished file (symlinks elsewhere that
   * published its content); called in partial walks only.
   */
  otherNames(w: Walk, p: string, inodes: ReadonlySet<number>): void;
}

/** Walks directories of a source against the store. */
export class Walker {
  readonly #o: WalkerOptions;

  constructor(options: WalkerOptions) {
    this.#o = options;
  }

  /** Stats an entry, following a symlink only when its target stays inside the source. */
  stat(source: Source, p: string): fs.Stats | undefined {
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
      this.#o.report.warnOnce(`dangling:${p}`, `Skipping "${p}": broken symlink or symlink loop`);
      return undefined;
    }
    if (real !== source.scanPath && !real.startsWith(source.scanPath + path.sep)) {
      this.#o.report.warnOnce(
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

  /** Compares one directory's listing with the store and descends. */
  async walk(w: Walk, root: string): Promise<void> {
    const { report, publish } = this.#o;
    const stack = [root];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      w.dirs++;
      let listing: OpenDir;
      const t0 = performance.now();
      try {
        listing = openDir(dir);
        w.listMs = (w.listMs ?? 0) + performance.now() - t0;
      } catch (e) {
        // Removed or replaced by a file meanwhile: the event of that change rescans it.
        if (vanished(e)) continue;
        // Unreadable: keep what we know below it rather than delete it remotely.
        const msg = (e as Error).message;
        report.note(
          w.found,
          dir,
          `cannot read the directory: ${msg}`,
          `Cannot read directory "${dir}": ${msg}; its files are kept as they were`,
        );
        continue;
      }
      try {
        await this.#compare(w, dir, listing, stack);
      } finally {
        listing.close();
      }
      publish.flush(w);
      if (publish.yieldDue(w)) await publish.yield(w);
    }
  }

  /** Compares one listed directory with its stored rows; pushes the subdirectories to walk. */
  async #compare(w: Walk, dir: string, listing: OpenDir, stack: string[]): Promise<void> {
    const { ignore, report, publish } = this.#o;
    const prefix = dir.endsWith(path.sep) ? dir : dir + path.sep;
    // Per directory, not per entry: the relative prefix, exclusions, ignored directories above.
    const relDir = dir === w.source.scanPath ? "" : relPath(w.source, dir);
    const relPrefix = relDir === "" ? "" : relDir + "/";
    const mayExclude = ignore.mayExcludeIn(dir);
    const filesIgnored = relDir !== "" && ignore.hasIgnoredDir(relPrefix);
    const leaf = !listing.entries.some((e) => e.isDirectory);
    const t0 = performance.now();
    const stored = this.#o.store.childrenByName(dir, { leaf });
    w.storedMs = (w.storedMs ?? 0) + performance.now() - t0;
    // Entries listed but not examinable (a directory without search permission):
    // what is stored below it is kept, not deleted.
    let blocked = false;
    for (const e of listing.entries) {
      const name = e.name;
      const old = stored.get(name);
      if (old) stored.delete(name);
      if (ignore.isIgnoredEntry(name, e.isDirectory)) continue;
      const p = prefix + name;
      if (mayExclude && ignore.isExcluded(p)) continue;
      if (name.includes("\uFFFD") && !exists(p)) {
        // Deno decodes names lossily: the listed name names nothing on disk.
        report.note(w.found, p, NON_UTF8);
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
            report.note(w.found, dir, `cannot examine its entries: ${(err as Error).message}`);
            break;
          }
          if (!st) continue;
          if (old) publish.replaced(w, old);
          w.batch.puts.push(fileRow(w.source, p, st, true));
        }
        stack.push(p);
        continue;
      }
      if (filesIgnored) continue;
      let st: StatLike | undefined;
      try {
        if (e.isFile) st = listing.lstat(name);
        else if (e.isSymlink) st = this.stat(w.source, p);
        else report.special(p);
      } catch (err) {
        blocked = true;
        if (vanished(err)) break; // Replaced while listed, as above.
        report.note(w.found, dir, `cannot examine its entries: ${(err as Error).message}`);
        break;
      }
      if (!st || !st.isFile()) {
        if (old?.is_dir) publish.deleted(w, old);
        else if (old) publish.unpublished(w, old);
        continue;
      }
      w.files++;
      compareFile(w, p, relPrefix + name, st, old, false, publish.replaced);
      publish.flush(w);
      if (publish.yieldDue(w)) await publish.yield(w);
    }
    if (!blocked) {
      for (const gone of stored.values()) {
        publish.deleted(w, gone);
        // Symlinks elsewhere that published its content are checked too.
        if (w.partial && !gone.is_dir) this.#o.otherNames(w, gone.path, new Set([gone.ino]));
      }
    }
  }
}

/** An error saying the path is gone or a directory on it is now a file (changed meanwhile). */
export function vanished(e: unknown): boolean {
  if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return true;
  const code = (e as { code?: string }).code;
  return code === "ENOENT" || code === "ENOTDIR";
}
