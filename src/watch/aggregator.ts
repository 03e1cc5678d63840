/**
 * Turns a stream of watcher events into batches of paths to reconcile
 * (syncthing's aggregator, simplified): a path is ready shortly after a
 * close-after-write, after `settleDelay` without new events otherwise, and
 * after `maxDelay` at the latest even while it keeps changing. Past
 * `dirLimit` pending paths in one directory the directory is scanned instead;
 * past `totalLimit` the whole source is.
 *
 * @module
 */
import * as path from "node:path";

/** The clock and timers, injectable for tests. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): number;
  clearTimeout(id: number): void;
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms) as unknown as number,
  clearTimeout: (id) => clearTimeout(id),
};

/** What the watcher saw happen to a path. */
export type EventKind = "create" | "modify" | "close" | "remove" | "rename" | "other";

/** A path ready for reconciliation. */
export interface ReadyPath {
  path: string;
  /** A write was seen (content may have changed even when the stat did not). */
  written: boolean;
}

/** Options for {@linkcode Aggregator}. */
export interface AggregatorOptions {
  /** Quiet time before a path without close-after-write is ready, ms. */
  settleDelay: number;
  /** Longest a path waits while it keeps changing, ms. */
  maxDelay: number;
  /** Quiet time after a close-after-write, remove or rename, ms (batches bursts). */
  quickDelay?: number;
  /** Pending paths in one directory before the directory is scanned instead. */
  dirLimit?: number;
  /** Pending paths in total before a full scan. */
  totalLimit?: number;
  clock?: Clock;
  /** Receives ready paths; `fullScan` asks for a scan of the whole source instead. */
  flush(paths: ReadyPath[], fullScan: boolean): void;
}

interface Item {
  first: number;
  last: number;
  quick: boolean;
  written: boolean;
}

/** Aggregates the events of one source. */
export class Aggregator {
  readonly #o: Required<Omit<AggregatorOptions, "flush">> & Pick<AggregatorOptions, "flush">;
  readonly #items = new Map<string, Item>();
  readonly #dirs = new Map<string, Item>();
  readonly #perDir = new Map<string, number>();
  #full: Item | undefined;
  #timer: number | undefined;
  #due = Infinity;
  #closed = false;
  #removals = 0;

  constructor(options: AggregatorOptions) {
    this.#o = {
      quickDelay: 5,
      dirLimit: 128,
      totalLimit: 512,
      clock: systemClock,
      ...options,
    };
  }

  /** Number of pending paths (collapsed directories count once). */
  get pending(): number {
    return this.#items.size + this.#dirs.size + (this.#full ? 1 : 0);
  }

  /**
   * How many events that may remove a path (remove, rename, other) and
   * requests for a full scan came since the aggregator was made: a count
   * that moved while a walk ran says the tree lost entries under it.
   */
  get removals(): number {
    return this.#removals;
  }

  /** Records one event for `p`. */
  add(p: string, kind: EventKind): void {
    if (this.#closed) return;
    if (kind === "remove" || kind === "rename" || kind === "other") this.#removals++;
    const now = this.#o.clock.now();
    const quick = kind === "close" || kind === "remove" || kind === "rename";
    const written = kind === "close" || kind === "modify";
    if (this.#full) {
      touch(this.#full, now, quick, written);
      return this.#schedule();
    }
    const dir = path.dirname(p);
    for (let d = dir;; d = path.dirname(d)) {
      const collapsed = this.#dirs.get(d);
      if (collapsed) {
        touch(collapsed, now, quick, written);
        return this.#schedule();
      }
      if (path.dirname(d) === d) break;
    }
    const item = this.#items.get(p);
    if (item) touch(item, now, quick, written);
    else {
      this.#items.set(p, { first: now, last: now, quick, written });
      const n = (this.#perDir.get(dir) ?? 0) + 1;
      this.#perDir.set(dir, n);
      if (n > this.#o.dirLimit) this.#collapseDir(dir, now);
      if (this.#items.size + this.#dirs.size > this.#o.totalLimit) this.#collapseAll(now);
    }
    this.#schedule();
  }

  /** Asks for a full scan (e.g. the watcher's rescan flag). */
  rescan(): void {
    this.#removals++;
    const now = this.#o.clock.now();
    this.#collapseAll(now);
    this.#full!.quick = true;
    this.#schedule();
  }

  #collapseDir(dir: string, now: number) {
    let first = now;
    for (const [p, it] of this.#items) {
      if (p.startsWith(dir + path.sep)) {
        first = Math.min(first, it.first);
        this.#items.delete(p);
      }
    }
    for (const d of [...this.#dirs.keys()]) if (d.startsWith(dir + path.sep)) this.#dirs.delete(d);
    this.#perDir.delete(dir);
    this.#dirs.set(dir, { first, last: now, quick: false, written: true });
  }

  #collapseAll(now: number) {
    let first = now;
    for (const it of this.#items.values()) first = Math.min(first, it.first);
    for (const it of this.#dirs.values()) first = Math.min(first, it.first);
    this.#items.clear();
    this.#dirs.clear();
    this.#perDir.clear();
    this.#full ??= { first, last: now, quick: false, written: true };
  }

  #deadline(it: Item): number {
    const settle = it.last + (it.quick ? this.#o.quickDelay : this.#o.settleDelay);
    return Math.min(settle, it.first + this.#o.maxDelay);
  }

  #schedule() {
    let due = Infinity;
    for (const it of this.#items.values()) due = Math.min(due, this.#deadline(it));
    for (const it of this.#dirs.values()) due = Math.min(due, this.#deadline(it));
    if (this.#full) due = Math.min(due, this.#deadline(this.#full));
    if (due === Infinity || due >= this.#due && this.#timer !== undefined) return;
    if (this.#timer !== undefined) this.#o.clock.clearTimeout(this.#timer);
    this.#due = due;
    this.#timer = this.#o.clock.setTimeout(() => {
      this.#timer = undefined;
      this.#due = Infinity;
      this.#fire();
    }, Math.max(0, due - this.#o.clock.now()));
  }

  #fire() {
    const now = this.#o.clock.now();
    if (this.#full && this.#deadline(this.#full) <= now) {
      this.#full = undefined;
      this.#items.clear();
      this.#dirs.clear();
      this.#perDir.clear();
      this.#o.flush([], true);
      return this.#schedule();
    }
    const ready: ReadyPath[] = [];
    for (const [p, it] of this.#dirs) {
      if (this.#deadline(it) <= now) {
        this.#dirs.delete(p);
        ready.push({ path: p, written: true });
      }
    }
    for (const [p, it] of this.#items) {
      if (this.#deadline(it) <= now) {
        this.#items.delete(p);
        const dir = path.dirname(p);
        const n = (this.#perDir.get(dir) ?? 1) - 1;
        if (n <= 0) this.#perDir.delete(dir);
        else this.#perDir.set(dir, n);
        ready.push({ path: p, written: it.written });
      }
    }
    if (ready.length > 0) this.#o.flush(ready, false);
    this.#schedule();
  }

  /** Flushes everything pending now (shutdown) and stops. */
  close(): void {
    if (this.#timer !== undefined) this.#o.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const full = this.#full !== undefined;
    const ready: ReadyPath[] = [
      ...[...this.#dirs.keys()].map((p) => ({ path: p, written: true })),
      ...[...this.#items].map(([p, it]) => ({ path: p, written: it.written })),
    ];
    this.#items.clear();
    this.#dirs.clear();
    this.#full = undefined;
    this.#closed = true;
    if (full || ready.length > 0) this.#o.flush(full ? [] : ready, full);
  }
}

function touch(it: Item, now: number, quick: boolean, written: boolean) {
  it.last = now;
  it.quick = quick;
  it.written ||= written;
}
