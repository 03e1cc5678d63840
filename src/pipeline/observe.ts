/**
 * What the source holds at a path now, as the planner needs it: the entry's
 * type and, for a file, its fingerprint. Symlinks are followed only within
 * their source; special files are never opened.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Source } from "../config/types.ts";
import { ClassifiedError, errorMessage } from "../errors.ts";
import type { Fingerprint, Observed } from "./plan.ts";

function fingerprint(i: Deno.FileInfo): Fingerprint {
  return {
    size: i.size,
    mtimeMs: i.mtime?.getTime() ?? 0,
    ctimeMs: i.ctime?.getTime() ?? 0,
    ino: i.ino ?? 0,
  };
}

/**
 * Observes a source path (Deno's own stat: several times cheaper than
 * node:fs's Stats objects, same values).
 *
 * @throws {ClassifiedError} (retry) when the path cannot be examined
 * (permission denied): an unreadable file is never taken for a deleted one.
 */
export function observe(p: string, source: Source): Observed {
  let l: Deno.FileInfo;
  try {
    l = Deno.lstatSync(p);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || (e as { code?: string }).code === "ENOTDIR") {
      return { type: "missing" };
    }
    if (e instanceof Deno.errors.NotADirectory) return { type: "missing" };
    throw new ClassifiedError(`Cannot examine "${p}": ${errorMessage(e)}`, "retry", { cause: e });
  }
  if (l.isFile) return { type: "file", stat: fingerprint(l) };
  if (l.isDirectory) return { type: "dir" };
  if (!l.isSymlink) return { type: "special" };
  try {
    const real = fs.realpathSync(p);
    if (!real.startsWith(source.scanPath + path.sep)) return { type: "symlink" };
    const t = Deno.statSync(p);
    return t.isFile ? { type: "file", stat: fingerprint(t) } : { type: "symlink" };
  } catch {
    return { type: "symlink" };
  }
}

/** A source file's fingerprint, or undefined when it is not a (publishable) file now. */
export function statFile(p: string, source: Source): Fingerprint | undefined {
  try {
    const o = observe(p, source);
    return o.type === "file" ? o.stat : undefined;
  } catch {
    return undefined;
  }
}
