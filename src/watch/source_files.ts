/**
 * Source files as every stage sees them: the one symlink-safe stat and the
 * one tree walk (with the ignore matcher), so the pipeline, the scanner and
 * verify agree on what a source file is.
 *
 * A source file is a regular file, or a symlink whose real path stays inside
 * the source root and whose target is a regular file. Linked directories are
 * not descended (no loops, no double syncs); special files are skipped.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { IgnoreMatcher } from "../filter/ignore.ts";

/** The stat fields the pipeline compares and stores. */
export interface FileStat {
  size: number;
  /** Milliseconds, as Deno reports them (the stored precision). */
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
}

/** Why {@linkcode statSourceFile} skipped a symlink. */
export type LinkSkip =
  /** A broken symlink or a symlink loop. */
  | { why: "dangling" }
  /** The link points outside the source root. */
  | { why: "outside"; target: string };

/** Stat fields of a Deno `FileInfo`. */
export function fileStat(i: Deno.FileInfo): FileStat {
  return {
    size: i.size,
    mtimeMs: i.mtime?.getTime() ?? 0,
    ctimeMs: i.ctime?.getTime() ?? 0,
    ino: i.ino ?? 0,
  };
}

/**
 * Stats a source file below `root`: undefined when it is gone, not a regular
 * file, or a symlink leading out of `root` (`onSkip` says which link and
 * why). Deno's own stat: several times cheaper than node:fs's, same values.
 *
 * @example
 * ```ts
 * import { statSourceFile } from "./source_files.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/a.txt`, "hi");
 * statSourceFile(root, `${root}/a.txt`)?.size; // 2
 * ```
 */
export function statSourceFile(
  root: string,
  p: string,
  onSkip?: (skip: LinkSkip) => void,
): FileStat | undefined {
  let l: Deno.FileInfo;
  try {
    l = Deno.lstatSync(p);
  } catch {
    return undefined;
  }
  if (l.isFile) return fileStat(l);
  if (!l.isSymlink) return undefined;
  let real: string;
  try {
    real = fs.realpathSync(p);
  } catch {
    onSkip?.({ why: "dangling" });
    return undefined;
  }
  if (real !== root && !real.startsWith(root + path.sep)) {
    onSkip?.({ why: "outside", target: real });
    return undefined;
  }
  try {
    const t = Deno.statSync(p);
    return t.isFile ? fileStat(t) : undefined;
  } catch {
    return undefined;
  }
}

/** A file found by {@linkcode walkSourceFiles}. */
export interface WalkedFile {
  /** Absolute path. */
  path: string;
  /** Path relative to the root, `/`-separated. */
  rel: string;
  st: FileStat;
}

/** Options for {@linkcode walkSourceFiles}. */
export interface WalkOptions {
  /** What to skip (temp names, ignored directories, excluded paths). */
  ignore: IgnoreMatcher;
  /** Called for a directory that cannot be listed; the walk goes on. */
  onUnreadable?: (dir: string, err: unknown) => void;
  /** Called for a symlink that is skipped. */
  onSkip?: (path: string, skip: LinkSkip) => void;
}

/**
 * Every source file below `root`, depth first, in no particular order.
 *
 * @example
 * ```ts
 * import { IgnoreMatcher } from "../filter/ignore.ts";
 * import { walkSourceFiles } from "./source_files.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/a.txt`, "hi");
 * [...walkSourceFiles(root, { ignore: new IgnoreMatcher() })].map((f) => f.rel); // ["a.txt"]
 * ```
 */
export function* walkSourceFiles(root: string, options: WalkOptions): Generator<WalkedFile> {
  const { ignore } = options;
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch (e) {
      options.onUnreadable?.(dir, e);
      continue;
    }
    const prefix = dir.endsWith(path.sep) ? dir : dir + path.sep;
    for (const e of entries) {
      const p = prefix + e.name;
      if (ignore.isExcluded(p) || ignore.isIgnoredEntry(e.name, e.isDirectory)) continue;
      if (e.isDirectory) {
        stack.push(p);
        continue;
      }
      if (!e.isFile && !e.isSymlink) continue;
      const st = statSourceFile(root, p, (skip) => options.onSkip?.(p, skip));
      if (!st) continue;
      yield { path: p, rel: relPath(root, p), st };
    }
  }
}

/** The `/`-separated path of `p` relative to `root` (which contains it). */
export function relPath(root: string, p: string): string {
  if (path.sep === "/" && p.startsWith(root) && p[root.length] === "/") {
    return p.slice(root.length + 1);
  }
  return path.relative(root, p).split(path.sep).join("/");
}

// Whether a path is a directory: one helper for the scanner, verify and the processors.
export { isDir } from "./_stat.ts";
