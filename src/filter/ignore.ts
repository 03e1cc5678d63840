/**
 * Which paths of a source tree are never synced: the one matcher the
 * watcher, the scanner, verify and rule filters ask.
 *
 * - A temp name (`.fctmp-…`, written by an upload or a processor before its
 *   rename) is never a source file.
 * - An ignored directory name (`<sources ignoredDirs>`, or a filter's
 *   `ignoredDirs`) hides everything below a directory of that name at any
 *   depth, but never a file that merely has that name.
 * - An excluded path (the data and working directories when they sit inside
 *   a source) hides itself and everything below it.
 *
 * @module
 */
import * as path from "node:path";
import { isTempName } from "../util/temp_name.ts";

/** Options for {@linkcode IgnoreMatcher}. */
export interface IgnoreOptions {
  /** Directory names ignored at any depth. */
  dirs?: readonly string[];
  /** Absolute paths ignored with everything below them. */
  exclude?: readonly string[];
}

/**
 * Answers whether a path of a source tree is ignored.
 *
 * @example
 * ```ts
 * import { IgnoreMatcher } from "./ignore.ts";
 * const ignore = new IgnoreMatcher({ dirs: [".git"], exclude: ["/site/data"] });
 * ignore.isIgnoredRel(".git/config"); // true
 * ignore.isIgnoredRel("css/.git"); // false: a file named like an ignored directory is kept
 * ignore.isExcluded("/site/data/db"); // true
 * ```
 */
export class IgnoreMatcher {
  readonly #dirs: ReadonlySet<string>;
  readonly #exclude: readonly string[];

  /** @param options What to ignore besides temp names. */
  constructor(options: IgnoreOptions = {}) {
    this.#dirs = new Set(options.dirs ?? []);
    this.#exclude = options.exclude ?? [];
  }

  /** Whether an absolute path is an excluded path or lies below one. */
  isExcluded(absPath: string): boolean {
    return this.#exclude.some((e) => absPath === e || absPath.startsWith(e + path.sep));
  }

  /**
   * Whether an entry of directory `dir` may be excluded: `dir` is excluded or
   * an excluded path lies below it. When not, a walk of `dir` need not ask
   * {@linkcode IgnoreMatcher.isExcluded} per entry.
   */
  mayExcludeIn(dir: string): boolean {
    const below = dir.endsWith(path.sep) ? dir : dir + path.sep;
    return this.#exclude.some((e) => e.startsWith(below) || this.isExcluded(dir));
  }

  /** Whether a directory entry named `name` is skipped while walking a tree. */
  isIgnoredEntry(name: string, isDir: boolean): boolean {
    return isTempName(name) || (isDir && this.#dirs.has(name));
  }

  /** Whether a directory called `name` is one not to descend into. */
  isIgnoredDirName(name: string): boolean {
    return this.#dirs.has(name);
  }

  /** Whether any directory of a `/`-separated relative path (not its last part) is ignored. */
  hasIgnoredDir(rel: string): boolean {
    if (this.#dirs.size === 0) return false;
    const parts = rel.split("/");
    for (let i = 0; i < parts.length - 1; i++) {
      if (this.#dirs.has(parts[i]!)) return true;
    }
    return false;
  }

  /**
   * Whether a `/`-separated path relative to a source root is ignored: its
   * own name is a temp name, or a directory above it is ignored.
   */
  isIgnoredRel(rel: string): boolean {
    return isTempName(rel.slice(rel.lastIndexOf("/") + 1)) || this.hasIgnoredDir(rel);
  }

  /**
   * Whether an absolute path below `root` is ignored: excluded, or its
   * relative path is ignored. A path outside `root` is not judged here.
   */
  isIgnoredPath(root: string, absPath: string): boolean {
    if (this.isExcluded(absPath)) return true;
    if (!absPath.startsWith(root + path.sep)) return isTempName(path.basename(absPath));
    return this.isIgnoredRel(absPath.slice(root.length + 1).split(path.sep).join("/"));
  }
}
