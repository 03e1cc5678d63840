/**
 * Rule filters with the original's semantics, minus its bugs: a `paths`
 * entry matches a whole run of directory names anywhere in the file's
 * directory relative to scanPath (`themes` matches `themes/…` and
 * `sites/x/themes/…`, as the original's substring test did in a Drupal
 * multisite, but never `mythemes/…` or `themes2/…`), ignoredDirs apply at
 * any depth and never to the file's own name, and extensions compare
 * case-insensitively.
 *
 * @module
 */
import type { Filter, Rule, Source } from "../config/types.ts";
import { IgnoreMatcher } from "./ignore.ts";

/** What a filter looks at. */
export interface Candidate {
  /** Absolute path. */
  path: string;
  /** Path relative to the source's scanPath, `/`-separated. */
  rel: string;
  /** Size in bytes; undefined for deletions (which always pass the size test). */
  size?: number;
}

/** Whether `c` passes every condition of `filter` (no filter matches everything). */
export function matchesFilter(filter: Filter | undefined, c: Candidate): boolean {
  if (!filter) return true;
  const slash = c.rel.lastIndexOf("/");
  const dir = slash >= 0 ? c.rel.slice(0, slash) : "";
  const base = slash >= 0 ? c.rel.slice(slash + 1) : c.rel;
  if (filter.paths) {
    const within = "/" + dir + "/";
    if (!filter.paths.some((p) => p === "" || within.includes("/" + p + "/"))) return false;
  }
  if (filter.extensions) {
    const dot = base.lastIndexOf(".");
    const ext = dot > 0 ? base.slice(dot + 1).toLowerCase() : "";
    if (!filter.extensions.includes(ext)) return false;
  }
  if (filter.ignoredDirs && dirMatcher(filter.ignoredDirs).hasIgnoredDir(c.rel)) return false;
  if (filter.pattern && !filter.pattern.test(c.path)) return false;
  if (filter.size && c.size !== undefined) {
    const { conditionType, bytes } = filter.size;
    if (conditionType === "minimum" && !(c.size > bytes)) return false;
    if (conditionType === "maximum" && !(c.size < bytes)) return false;
  }
  return true;
}

/** The rules of `source` whose filters accept `c`. */
export function matchingRules(rules: readonly Rule[], source: Source, c: Candidate): Rule[] {
  return rules.filter((r) => r.source === source.name && matchesFilter(r.filter, c));
}

const matchers = new WeakMap<readonly string[], IgnoreMatcher>();

/** The matcher of a filter's ignoredDirs, built once per configuration. */
function dirMatcher(dirs: readonly string[]): IgnoreMatcher {
  let m = matchers.get(dirs);
  if (!m) matchers.set(dirs, m = new IgnoreMatcher({ dirs }));
  return m;
}
