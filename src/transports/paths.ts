/**
 * Helpers every transport uses for remote paths and URLs.
 *
 * @module
 */
import { ClassifiedError } from "../errors.ts";

/**
 * Normalizes a relative remote path and refuses anything that could leave
 * the destination root (`..`, absolute paths, NUL bytes).
 *
 * A backslash is an ordinary character of a POSIX file name (`a\b.txt` is
 * not `a/b.txt`, which may be another file), so it is kept; but it separates
 * paths on Windows servers, so `..` between backslashes is refused too.
 *
 * @throws {ClassifiedError} (fatal) for an unsafe path.
 */
export function safeRemotePath(p: string): string {
  if (p.includes("\0")) {
    throw new ClassifiedError(`Unsafe remote path ${JSON.stringify(p)}`, "fatal");
  }
  const parts = p.split("/").filter((s) => s !== "" && s !== ".");
  if (parts.length === 0 || parts.some((s) => s === ".." || s.split("\\").includes(".."))) {
    throw new ClassifiedError(`Unsafe remote path ${JSON.stringify(p)}`, "fatal");
  }
  return parts.join("/");
}

/** Joins path parts with `/`, dropping empty parts and duplicate slashes. */
export function joinRemote(...parts: string[]): string {
  return parts.flatMap((p) => p.split("/")).filter((s) => s !== "").join("/");
}

/**
 * A server's remote root directory (its `path` setting) in the one form the
 * path helpers below expect: `""` (the login directory), `"/"`, or a path
 * without empty or `.` segments and without a trailing `/`; absolute when
 * the setting is.
 *
 * @example
 * ```ts
 * import { normalizeRoot } from "./paths.ts";
 * normalizeRoot(" /srv//www/./ "); // "/srv/www"
 * normalizeRoot("./"); // ""
 * ```
 */
export function normalizeRoot(text: string): string {
  const t = text.trim();
  const parts = t.split("/").filter((p) => p !== "" && p !== ".");
  return (t.startsWith("/") ? "/" : "") + parts.join("/");
}

/** The full remote path of `rel` (a {@linkcode safeRemotePath}) below a normalized `root`. */
export function underRoot(root: string, rel: string): string {
  if (root === "") return rel;
  if (root === "/") return "/" + rel;
  return root + "/" + rel;
}

/** The path of `full` relative to a normalized `root`: the inverse of {@linkcode underRoot}. */
export function relativeToRoot(root: string, full: string): string {
  if (root === "") return full;
  if (root === "/") return full.slice(1);
  return full.slice(root.length + 1);
}

/** A path of RFC 3986 unreserved characters and `/` only: encoding leaves it as it is. */
const UNRESERVED_PATH = /^[A-Za-z0-9\-._~/]*$/;

/** Percent-encodes each segment of a `/`-separated path. */
export function encodePath(p: string): string {
  if (UNRESERVED_PATH.test(p)) return p;
  return p.split("/").map((s) =>
    encodeURIComponent(s).replace(
      /[!'()*]/g,
      (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase(),
    )
  ).join("/");
}

/**
 * Joins a base URL and a remote path: the base gets a trailing `/` when it
 * has none, and every path segment is percent-encoded.
 *
 * @example
 * ```ts
 * import { joinUrl } from "./paths.ts";
 * joinUrl("https://cdn.example.com/static", "css/a b.css"); // "https://cdn.example.com/static/css/a%20b.css"
 * ```
 */
export function joinUrl(base: string, remotePath: string): string {
  const b = base.endsWith("/") ? base : base + "/";
  return b + encodePath(remotePath);
}

/** Temp names of uploads: one helper for every stage (see `util/temp_name.ts`). */
export { isTempName, tempName } from "../util/temp_name.ts";

/**
 * The remote path of a file: the destination path, then the file's path
 * relative to its source (or its directory and processed name), joined with
 * `/` and checked by {@linkcode safeRemotePath}. Every stage that names a
 * remote file (the pipeline, verify) uses this one rule.
 *
 * @throws {ClassifiedError} (fatal) for an unsafe path.
 *
 * @example
 * ```ts
 * import { remotePathFor } from "./paths.ts";
 * remotePathFor("static", "css/a.css"); // "static/css/a.css"
 * remotePathFor("", "css", "a.1234.css"); // "css/a.1234.css"
 * ```
 */
export function remotePathFor(dest: string, ...parts: string[]): string {
  return safeRemotePath([dest, ...parts].filter(Boolean).join("/"));
}
