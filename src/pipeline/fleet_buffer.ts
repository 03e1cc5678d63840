/**
 * The bound on what a node buffers locally while the shared store is out of
 * reach: its queued jobs (uploads wait there, since a file is not uploaded
 * without a claim) plus its outbox (records and removals not yet published).
 *
 * Contract:
 * - while the shared store answers, nothing is held: the queue grows as the
 *   sources change, as on a machine on its own;
 * - while it does not, a scan batch of `n` changes is queued only when the
 *   buffer stays within the limit (`storeBufferLimit`). Otherwise the batch
 *   is not written at all — neither the queue nor the known state of the
 *   source tree — and the source is marked: the changes are not lost, the
 *   stored state still differs from the disk, and a rescan finds them. The
 *   watchers keep running. From the first held batch until the store
 *   answers, every batch is held (the buffer is full); the log says so once
 *   per episode, the status all along;
 * - once the store answers, the marked sources are handed back to be
 *   rescanned (a restart rescans every source anyway).
 *
 * @module
 */
import type { Logger } from "../log.ts";

/** What `status` shows of the buffer. */
export interface BufferState {
  limit: number;
  /** Queued jobs plus outbox entries, at the last count. */
  entries: number;
  /** Since when new changes are held (ms since the epoch); null: not full. */
  fullSince: number | null;
  /** Sources with changes held for a rescan. */
  held: string[];
}

/**
 * Whether a batch of `n` changes may be queued: always while the shared
 * store answers; otherwise only when nothing is held yet and the buffer
 * stays within `limit`.
 */
export function admits(
  s: { reachable: boolean; holding: boolean; entries: number; n: number; limit: number },
): boolean {
  if (s.reachable) return true;
  return !s.holding && s.entries + s.n <= s.limit;
}

/** What {@linkcode FleetBuffer} needs. */
export interface FleetBufferOptions {
  limit: () => number;
  log: Logger;
}

/** The local buffer's bound (see the module doc). */
export class FleetBuffer {
  readonly #o: FleetBufferOptions;
  #entries = 0;
  #fullSince: number | null = null;
  readonly #held = new Set<string>();

  constructor(options: FleetBufferOptions) {
    this.#o = options;
  }

  /** Whether a scan batch of `n` changes of `source` may be written now. */
  admit(source: string, n: number, reachable: boolean, now: number): boolean {
    const limit = this.#o.limit();
    const ok = admits({
      reachable,
      holding: this.#fullSince !== null,
      entries: this.#entries,
      n,
      limit,
    });
    if (ok) {
      this.#entries += n;
      return true;
    }
    if (this.#fullSince === null) {
      this.#fullSince = now;
      this.#o.log.error(
        `Local buffer full while the shared store is unreachable: ${this.#entries} queued ` +
          `change(s) and unpublished record(s), storeBufferLimit ${limit}. New changes are ` +
          "not queued; the watchers go on, and the sources are rescanned once the shared " +
          "store answers (nothing is lost)",
      );
    }
    this.#held.add(source);
    return false;
  }

  /**
   * Takes a new count of the buffer (`entries`: queued jobs plus outbox
   * entries). Once the store answers, ends a full episode and returns the
   * sources to rescan (empty otherwise).
   */
  refresh(reachable: boolean, entries: number): string[] {
    this.#entries = entries;
    if (!reachable || this.#fullSince === null) return [];
    const sources = [...this.#held];
    this.#held.clear();
    this.#fullSince = null;
    this.#o.log.info(
      `The shared store answers again: rescanning ${
        sources.map((s) => `"${s}"`).join(", ") || "no source"
      } for the changes not queued while the local buffer was full`,
    );
    return sources;
  }

  get state(): BufferState {
    return {
      limit: this.#o.limit(),
      entries: this.#entries,
      fullSince: this.#fullSince,
      held: [...this.#held].sort(),
    };
  }
}
