/**
 * The sweep of a watching daemon: every `dirSweepInterval` seconds a source
 * that a native watcher follows is walked again with the scan of a restart
 * (a stat of every entry compared with its stored row; no file is read), so
 * that a change whose watcher event was lost reaches the destinations
 * within one interval instead of at the hourly rescan. The OS watcher loses
 * events by design: its queue overflows under floods, Deno passes on no
 * event for a path that resolves out of the watched root or loops, and a
 * write to the target of a symlink is reported under the target's name
 * only.
 *
 * This module holds the decision alone: when a source is due. The walk is
 * the {@linkcode Scanner}'s, run by the discovery stage.
 *
 * @module
 */
import type { WatchMode } from "./watcher.ts";

/**
 * A sweep takes at most one part in this many of the time: on a tree so big
 * (or a machine so loaded) that a sweep takes longer than a twentieth of
 * the interval, sweeps are spaced further apart.
 */
export const SWEEP_SHARE = 20;

/**
 * Milliseconds a sweep that found deletions waits before asking whether the
 * source lost entries meanwhile: the watcher's events for what the walk saw
 * gone were queued before the walk ended, and are delivered within this.
 */
export const SWEEP_SETTLE_MS = 250;

/**
 * A sweep that dropped its deletions (a deletion was under way) is due again
 * this many ms after it started, once the source is quiet, instead of a whole
 * interval later: deletions whose events were lost are not left for long.
 */
export const SWEEP_RETRY_MS = 3000;

/** What the decision looks at, for one source at one moment. */
export interface SweepState {
  /** Milliseconds between sweeps; 0 (or less) disables them. */
  interval: number;
  /** Now, ms since the epoch. */
  now: number;
  /** When the last walk of the whole source started (a sweep or a full scan); 0: none yet. */
  last: number;
  /** Milliseconds the last sweep of the source took (wall clock); 0: none yet. */
  lastMs: number;
  /** The source's watch mode: polling walks the source itself, other modes end in a full scan. */
  mode: WatchMode;
  /** The first full scan of the daemon is done. */
  ready: boolean;
  /** The database cannot be written now (disk full): nothing that may write runs. */
  storeTrouble: boolean;
  /**
   * The delete guard holds deletions of the source: every walk would judge
   * (and record) them again; the approval rescans the source.
   */
  held: boolean;
  /** A full scan of the source waits or runs (it is the sweep), or a sweep is queued already. */
  queued: boolean;
  /**
   * Work on the source is in progress: watcher events wait in the
   * aggregator, a partial scan runs, deletions are being gathered, or the
   * scan queue is not empty.
   */
  busy: boolean;
}

/**
 * Whether the source is to be swept now. It is due `interval` ms after the
 * last walk, or {@linkcode SWEEP_SHARE} times the last sweep's duration
 * when that is longer; while it is busy the sweep waits (the events being
 * handled are what it would find, and a burst is when a walk costs most),
 * but not beyond twice that: a source that is never quiet is still swept.
 *
 * @example
 * ```ts
 * import { sweepDue } from "./sweep.ts";
 * const due = sweepDue({
 *   interval: 15_000, now: 20_000, last: 4_000, lastMs: 300, mode: "native", ready: true,
 *   storeTrouble: false, held: false, queued: false, busy: false,
 * });
 * console.assert(due);
 * ```
 */
export function sweepDue(s: SweepState): boolean {
  if (!(s.interval > 0) || s.mode !== "native" || !s.ready) return false;
  if (s.storeTrouble || s.held || s.queued) return false;
  const every = Math.max(s.interval, SWEEP_SHARE * s.lastMs);
  const since = s.now - s.last;
  if (since < every) return false;
  return !s.busy || since >= 2 * every;
}

/** Milliseconds between two looks at whether a sweep is due: often enough for short intervals. */
export function sweepTick(interval: number): number {
  return Math.max(50, Math.min(1000, interval / 2));
}
