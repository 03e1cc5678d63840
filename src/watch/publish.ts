/**
 * Publication of what a scan found: the batches handed to the sink (one
 * transaction each), the pauses that let other work run during a long
 * walk, and the deletions a scan records (a stored entry gone, replaced by
 * one of the other type, or publishing nothing any more).
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { DELETED } from "../store/events.ts";
import type { FileRow, Store } from "../store/store.ts";
import { BATCH, type ChangeSink, relPath, type Walk } from "./changes.ts";

/** Entries a walk examines between two pauses (each pause commits the batch). */
const YIELD_EVERY = 2000;

/** Hands a walk's findings to the sink and records its deletions. */
export class Publisher {
  readonly #store: Store;
  readonly #sink: ChangeSink;
  /** Records a stored row as replaced (bound once: called per file in a walk). */
  readonly replaced = (w: Walk, row: FileRow): void => this.#replaced(w, row);

  constructor(store: Store, sink: ChangeSink) {
    this.#store = store;
    this.#sink = sink;
  }

  /** Hands the batch to the sink once it is full (or now, with `force`). */
  flush(w: Walk, force = false): void {
    const b = w.batch;
    const size = b.puts.length + b.removes.length + b.changes.length;
    if (size === 0 || (!force && size < BATCH)) return;
    this.#sink(b);
    w.changes += b.changes.length;
    w.batch = { puts: [], removes: [], changes: [] };
  }

  /** Every 2,000 entries: commits and lets other work run. Call as `if (due(w)) await …`. */
  yieldDue(w: Walk): boolean {
    return ++w.sinceYield >= YIELD_EVERY;
  }

  /** Commits the batch and lets other work run; throws when the walk's signal is aborted. */
  async yield(w: Walk): Promise<void> {
    w.sinceYield = 0;
    this.flush(w, true);
    await new Promise((r) => setImmediate(r));
    w.signal?.throwIfAborted();
  }

  /**
   * An entry replaced by one of the other type at the same path: its files
   * are deleted (judged with the other deletions), but its rows go at once,
   * in the batch that records the new entry. A deferred removal would take
   * the new rows at and below the path with it.
   */
  #replaced(w: Walk, row: FileRow) {
    const target = w.deferred ?? w.batch;
    const files = row.is_dir ? this.#store.filesUnder(row.path) : [row];
    for (const f of files) {
      target.changes.push({
        source: w.source,
        path: f.path,
        rel: relPath(w.source, f.path),
        event: DELETED,
      });
    }
    w.batch.removes.push(row.path);
  }

  /**
   * A stored file whose path now holds something that publishes nothing (a
   * broken symlink, a link out of the source, a FIFO): deleted at once. Not
   * gathered for the delete guard, which keeps what still exists.
   */
  unpublished(w: Walk, row: FileRow): void {
    w.batch.changes.push({
      source: w.source,
      path: row.path,
      rel: relPath(w.source, row.path),
      event: DELETED,
    });
    w.batch.removes.push(row.path);
  }

  /** A stored entry that is gone: it and everything below it are deleted (deferred when the walk defers). */
  deleted(w: Walk, row: FileRow): void {
    const target = w.deferred ?? w.batch;
    const files = row.is_dir ? this.#store.filesUnder(row.path) : [row];
    for (const f of files) {
      target.changes.push({
        source: w.source,
        path: f.path,
        rel: relPath(w.source, f.path),
        event: DELETED,
      });
    }
    target.removes.push(row.path);
  }
}
