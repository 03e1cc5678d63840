/**
 * The delete guard: deletions of a source are judged as a whole, and held
 * (all of them, none applied) when they would remove more than a share of
 * the source's files, until `fileconveyor approve-deletes`.
 *
 * A full scan judges its own deletions at its end. Deletions found by
 * partial scans (watcher events) are gathered per source and judged
 * together once no new one came for `window` ms and the source is not
 * `busy` (its watcher still has events to deliver, or a scan of it runs),
 * at most `windowMax` ms after the first: an `rm -rf` that a loaded watcher
 * delivers in many batches, with pauses, is one deletion, not many small
 * ones that each pass the guard. Deletions applied in the last `recent` ms
 * count toward the judgment of the next gathered ones, so a deletion spread
 * over a longer time is still judged by its total; past the allowance,
 * everything not yet applied is held.
 *
 * @module
 */
import type { Source } from "../config/types.ts";
import type { Logger } from "../log.ts";
import type { Store } from "../store/store.ts";
import type { Batch, FsChange } from "./scanner.ts";
import { exists, isDir } from "./_stat.ts";

/** Options for {@linkcode DeleteGuard}. */
export interface DeleteGuardOptions {
  store: Store;
  log: Logger;
  /** Receives the deletions to apply (stores and queues them atomically per batch). */
  sink(batch: Batch): void;
  /** Most share of a source's files one deletion may remove. */
  share: number;
  /** The guard applies from this many deletions. */
  minFiles: number;
  /** The configuration file, named in the approval command. */
  configFile?: string;
  /** Quiet milliseconds that end a gathered deletion (default 3 s). */
  window?: number;
  /** Longest a gathered deletion waits, ms (default 60 s). */
  windowMax?: number;
  /** Milliseconds during which applied deletions count toward the next judgment (default 60 s). */
  recent?: number;
  /** Whether more deletions of a source may still come (events queued, a scan running). */
  busy?(source: string): boolean;
}

/** What happened to a set of deletions. */
export interface Verdict {
  applied: number;
  held: number;
  /** The source's root is missing: nothing was deleted. */
  vanished: boolean;
}

interface Gathered {
  source: Source;
  removes: Set<string>;
  changes: Map<string, FsChange>;
  first: number;
  timer?: number;
}

const BATCH = 500;
const WINDOW = 3000;
const WINDOW_MAX = 60_000;
const RECENT = 60_000;

/** Judges, holds or applies the deletions of every source. */
export class DeleteGuard {
  readonly #o: DeleteGuardOptions;
  readonly #gathered = new Map<string, Gathered>();
  /** Deletions applied per source: when, and how many. */
  readonly #applied = new Map<string, { at: number; n: number }[]>();

  constructor(options: DeleteGuardOptions) {
    this.#o = options;
  }

  /** The command that approves held deletions of a source. */
  approveCommand(source: string): string {
    const config = this.#o.configFile ? ` --config ${this.#o.configFile}` : "";
    return `fileconveyor approve-deletes${config} --source ${source}`;
  }

  /**
   * Applies the deletions of one scan, or holds all of them. `whole`: they
   * are every deletion of the source (a full scan), judged by their number
   * alone; otherwise they join deletions already held, and are judged
   * together with the deletions applied in the last `recent` ms. `approved`
   * applies them whatever their number (an approved guard too).
   */
  judge(
    source: Source,
    removes: readonly string[],
    changes: readonly FsChange[],
    options: { whole?: boolean; approved?: boolean } = {},
  ): Verdict {
    const store = this.#o.store;
    const deletes = changes.length;
    if (deletes === 0 && removes.length === 0) return { applied: 0, held: 0, vanished: false };
    if (!isDir(source.scanPath)) {
      // A mount that vanished during the walk looks like a mass deletion.
      this.#o.log.error(`Source "${source.name}" vanished during the scan: nothing is deleted`);
      return { applied: 0, held: 0, vanished: true };
    }
    const guard = store.guardFor(source.name);
    const ok = options.approved || guard?.approved === 1;
    // Deletions applied shortly before are part of the same deletion (not for a full scan,
    // whose deletions are all of the source's).
    const earlier = ok || options.whole ? 0 : this.#recentlyApplied(source.name);
    const total = deletes + earlier;
    const known = store.countFiles(source.name) + earlier;
    const tooMany = total >= this.#o.minFiles && total > this.#o.share * known;
    // While deletions are held, later ones of the source are held with them.
    if (!ok && (tooMany || (!options.whole && guard && deletes > 0))) {
      const pending = Math.max(deletes, guard?.pending ?? 0);
      store.holdDeletes(source.name, pending, known, Date.now());
      const seconds = Math.round((this.#o.recent ?? RECENT) / 1000);
      const before = earlier > 0
        ? ` (${earlier} of them in the last ${seconds} s, applied before the rest was seen)`
        : "";
      this.#o.log.error(
        `Delete guard: ${pending} deletions of source "${source.name}" are held, none of them ` +
          `applied: ${total} of its ${known} files were deleted or are no longer there${before}, ` +
          `more than ${Math.round(this.#o.share * 100)} %. If this is intended, run: ${
            this.approveCommand(source.name)
          }`,
      );
      return { applied: 0, held: pending, vanished: false };
    }
    for (let i = 0; i < changes.length || i < removes.length; i += BATCH) {
      this.#o.sink({
        puts: [],
        removes: removes.slice(i, i + BATCH),
        changes: changes.slice(i, i + BATCH),
      });
    }
    if (ok) this.#applied.delete(source.name);
    else if (deletes > 0) {
      const list = this.#applied.get(source.name) ?? [];
      list.push({ at: Date.now(), n: deletes });
      this.#applied.set(source.name, list);
    }
    return { applied: deletes, held: 0, vanished: false };
  }

  /** Deletions applied in the last `recent` ms (older entries are forgotten). */
  #recentlyApplied(name: string): number {
    const list = this.#applied.get(name);
    if (!list) return 0;
    const since = Date.now() - (this.#o.recent ?? RECENT);
    while (list.length > 0 && list[0]!.at < since) list.shift();
    if (list.length === 0) this.#applied.delete(name);
    return list.reduce((sum, e) => sum + e.n, 0);
  }

  /** Gathers deletions found by a partial scan; they are judged together later. */
  gather(source: Source, removes: readonly string[], changes: readonly FsChange[]): void {
    if (removes.length === 0 && changes.length === 0) return;
    let g = this.#gathered.get(source.name);
    if (!g) {
      g = { source, removes: new Set(), changes: new Map(), first: Date.now() };
      this.#gathered.set(source.name, g);
    }
    for (const r of removes) g.removes.add(r);
    for (const c of changes) g.changes.set(c.path, c);
    this.#arm(g);
  }

  /** Judges the gathered deletions after a quiet window, later while the source is busy. */
  #arm(g: Gathered) {
    if (g.timer !== undefined) clearTimeout(g.timer);
    const name = g.source.name;
    const last = g.first + (this.#o.windowMax ?? WINDOW_MAX);
    const wait = Math.max(0, Math.min(this.#o.window ?? WINDOW, last - Date.now()));
    g.timer = setTimeout(() => {
      g.timer = undefined;
      try {
        if (Date.now() < last && this.#o.busy?.(name)) this.#arm(g);
        else this.flush(name);
      } catch (e) {
        this.#o.log.error(
          `Cannot apply the deletions of source "${name}": ${(e as Error).message}`,
        );
      }
    }, wait) as unknown as number;
  }

  /** Judges what was gathered for a source now; returns the verdict. */
  flush(name: string): Verdict {
    const g = this.#take(name);
    if (!g) return { applied: 0, held: 0, vanished: false };
    // Files back meanwhile are not deleted: the scan that saw them compares them. A file
    // replaced by a directory is still deleted (the directory's files are uploads).
    const changes = [...g.changes.values()].filter((c) => !exists(c.path) || isDir(c.path));
    const removes = [...g.removes].filter((r) => !exists(r));
    // Rows of the files that are gone, even below a directory that is back (a path that is
    // a directory now already holds the directory's row).
    for (const c of changes) if (!exists(c.path)) removes.push(c.path);
    return this.judge(g.source, removes, changes);
  }

  /** Whether deletions of a source are gathered and wait for their judgment. */
  gathering(name: string): boolean {
    return this.#gathered.has(name);
  }

  /** Forgets what was gathered for a source (a full scan finds it all again). */
  drop(name: string): void {
    this.#take(name);
  }

  #take(name: string): Gathered | undefined {
    const g = this.#gathered.get(name);
    if (!g) return undefined;
    if (g.timer !== undefined) clearTimeout(g.timer);
    this.#gathered.delete(name);
    return g;
  }

  /** Stops the timers; what was gathered is left to the next scan. */
  close(): void {
    for (const name of [...this.#gathered.keys()]) this.#take(name);
  }
}
