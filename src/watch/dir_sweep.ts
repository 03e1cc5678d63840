/**
 * The directory sweep of a watching daemon: every few seconds it stats each
 * directory the store knows for a source (directories only, so the cost
 * follows the number of directories, not of files) and names those whose
 * mtime, ctime or inode changed since the last sweep, for a shallow rescan.
 *
 * It catches entries created, removed, renamed or replaced (a file replaced
 * by a symlink changes its directory) whose watcher events were lost: the OS
 * watcher drops events when its queue overflows, and Deno passes on no event
 * for a path that resolves outside the watched root or loops. Edits of a
 * file's content in place do not change its directory and are not its job:
 * those are found by the periodic full rescan.
 *
 * @module
 */

/**
 * Slack for coarse timestamps: Deno reports ctime in whole seconds, and the
 * kernel stamps a directory with a clock of a few milliseconds' resolution,
 * so two changes close together may leave the same mtime. A directory whose
 * mtime is this recent is rescanned again at the next sweep (git's "racily
 * clean" rule).
 */
const SLACK_MS = 2000;
/** Directories stat'ed between two yields to the event loop. */
const CHUNK = 2000;

/** What one sweep of a source did. */
export interface SweepResult {
  /** Directories stat'ed. */
  dirs: number;
  /** Directories that changed since the last sweep (to rescan, shallow). */
  changed: string[];
  /** Milliseconds the sweep took (wall clock, yields included). */
  ms: number;
}

/** Remembers each directory's stat signature per source between sweeps. */
export class DirSweep {
  readonly #seen = new Map<string, Map<string, string>>();
  readonly #since = new Map<string, number>();

  /**
   * Starts (or restarts) tracking a source, when its watcher starts: a
   * directory first seen later counts as changed when it changed after
   * this moment, since its events may already be lost.
   */
  begin(source: string, now = Date.now()): void {
    this.#seen.set(source, new Map());
    this.#since.set(source, now - SLACK_MS);
  }

  /** Stops tracking a source. */
  forget(source: string): void {
    this.#seen.delete(source);
    this.#since.delete(source);
  }

  /**
   * Stats `dirs` of `source` and returns those changed since the last sweep
   * (or, first seen, changed since {@linkcode begin}). A directory that is
   * gone is forgotten: its parent changed with it.
   */
  async sweep(source: string, dirs: readonly string[]): Promise<SweepResult> {
    const t0 = performance.now();
    let seen = this.#seen.get(source);
    if (!seen) {
      this.begin(source);
      seen = this.#seen.get(source)!;
    }
    const since = this.#since.get(source)!;
    const racyAfter = Date.now() - SLACK_MS;
    const changed: string[] = [];
    const next = new Map<string, string>();
    let n = 0;
    for (const dir of dirs) {
      if (++n % CHUNK === 0) await new Promise((r) => setTimeout(r, 0));
      let info: Deno.FileInfo;
      try {
        info = Deno.lstatSync(dir);
      } catch {
        continue; // Gone or not searchable: its parent's change (or a problem recheck) covers it.
      }
      if (!info.isDirectory) continue; // Replaced by a file: its parent changed.
      const mtime = info.mtime?.getTime() ?? 0;
      const ctime = info.ctime?.getTime() ?? 0;
      const sig = `${mtime}:${ctime}:${info.ino ?? 0}`;
      // A racy signature never matches: the directory is looked at again next time.
      next.set(dir, mtime > racyAfter ? `${sig}:racy` : sig);
      const old = seen.get(dir);
      if (old === undefined ? Math.max(mtime, ctime) >= since : old !== sig) changed.push(dir);
    }
    this.#seen.set(source, next);
    return { dirs: n, changed, ms: performance.now() - t0 };
  }
}
