/**
 * The names under which files are written before being renamed into place.
 * Every stage that walks a tree (scanner, watcher, verify, listing of a
 * destination) skips them with {@linkcode isTempName}.
 *
 * @module
 */
import { createHash } from "node:crypto";

const PREFIX = ".fctmp-";
const encoder = new TextEncoder();

/**
 * The temp name used while `path` (a `/`-separated path) is written, in the
 * same directory. It is derived from the path, so a retried write reuses
 * (and replaces) the leftover of an interrupted one, and cleanup can find it.
 *
 * @example
 * ```ts
 * import { isTempName, tempName } from "./temp_name.ts";
 * const t = tempName("css/site.css"); // "css/.fctmp-<hash>-site.css"
 * isTempName(t.slice(t.lastIndexOf("/") + 1)); // true
 * ```
 */
export function tempName(path: string): string {
  const slash = path.lastIndexOf("/");
  const dir = slash >= 0 ? path.slice(0, slash + 1) : "";
  const base = slash >= 0 ? path.slice(slash + 1) : path;
  // Hash of the name only: the same within a directory whether or not a
  // transport's root is prefixed, so cleanup finds what an upload left.
  const hash = createHash("sha1").update(base).digest("hex").slice(0, 10);
  // Keep temp names short enough for 255-byte file name limits (UTF-8 takes at most 3 bytes
  // per UTF-16 unit: most names need no encoding to know).
  const stem = base.length > 66 && encoder.encode(base).length > 200 ? "long" : base;
  return `${dir}${PREFIX}${hash}-${stem}`;
}

/** Whether a basename is one of our temp names. */
export function isTempName(name: string): boolean {
  return name.startsWith(PREFIX);
}
