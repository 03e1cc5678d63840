/**
 * Opens native watches for a source tree around the directories that cannot
 * be watched. `Deno.watchFs(root, { recursive: true })` fails as a whole
 * when any directory below the root is unreadable; one such directory must
 * not cost the whole source its native watching. The tree is then watched
 * as: its readable subtrees recursively, the directories on the way to an
 * unreadable one ("spine") each on their own, and the unreadable ones not
 * at all (their parent's watch still reports a change of their mode, and
 * the scanner records them as problems).
 *
 * @module
 */
import * as path from "node:path";

/** Native watches covering a tree. */
export interface WatchPlan {
  watchers: Deno.FsWatcher[];
  /** Directories watched on their own: a new directory in one needs a new plan to be watched. */
  spine: Set<string>;
  /** Directories not watched (unreadable). */
  skipped: string[];
}

/** The path Deno names in a watch error: `… about ["/a/b"]`. */
function pathOf(message: string): string | undefined {
  const m = /about (\[.*\])\s*$/.exec(message);
  if (!m) return undefined;
  try {
    const paths = JSON.parse(m[1]!) as unknown;
    return Array.isArray(paths) && typeof paths[0] === "string" ? paths[0] : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Watches `root`, recursively where possible. Throws what `Deno.watchFs`
 * throws for anything but an unreadable directory inside the tree (the
 * watch limit, a missing root).
 */
export function openWatches(root: string, maxSplits = 200): WatchPlan {
  const recursive = [root];
  const spine: string[] = [];
  const skipped: string[] = [];
  for (let i = 0; i <= maxSplits; i++) {
    const watchers: Deno.FsWatcher[] = [];
    try {
      if (recursive.length > 0) watchers.push(Deno.watchFs(recursive, { recursive: true }));
      if (spine.length > 0) watchers.push(Deno.watchFs(spine, { recursive: false }));
      return { watchers, spine: new Set(spine), skipped };
    } catch (e) {
      for (const w of watchers) w.close();
      const bad = e instanceof Deno.errors.PermissionDenied ? pathOf(e.message) : undefined;
      const top = bad && recursive.find((p) => bad === p || bad.startsWith(p + path.sep));
      if (!bad || !top || bad === root) throw e;
      recursive.splice(recursive.indexOf(top), 1);
      if (top === bad) {
        skipped.push(bad);
        continue;
      }
      // Watch `top` on its own and each of its subdirectories recursively (further splits follow).
      spine.push(top);
      for (const entry of Deno.readDirSync(top)) {
        if (entry.isDirectory) recursive.push(path.join(top, entry.name));
      }
    }
  }
  throw new Error(`Too many unreadable directories below "${root}" to watch around them`);
}
