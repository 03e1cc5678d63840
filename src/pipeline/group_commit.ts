/**
 * The record stage's group commit: the many small writes of one tick (the
 * outcomes of jobs that ended) share one transaction, and one failing write
 * fails alone.
 *
 * Contract of {@linkcode commitTogether}: every item is settled exactly once,
 * after the transaction ended: resolved with what its write returned once
 * committed, or rejected with its own error (its write undone, the others
 * committed) or with the commit's error (nothing committed). The items only
 * write to the database, so running one again after a rollback is harmless.
 *
 * @module
 */
import type { PipelineStore } from "../store/store.ts";

/** A write waiting for the tick's record transaction. */
export interface BatchItem {
  fn: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** A write that joins the items' commit without risking it (the scheduler's next pick). */
export interface JoinedWrite {
  /** Runs in a savepoint after the items. */
  run(): void;
  /** Called when what `run` wrote was not committed (it failed, or the whole commit did). */
  undo(): void;
}

/**
 * Commits `items` in one transaction, with `joined` after them. Fast path:
 * no savepoint per item (two statements each). When an item throws, the
 * whole transaction is rolled back and redone with one savepoint per item,
 * so the failure stays alone (`joined` is not redone).
 */
export function commitTogether(
  store: PipelineStore,
  items: readonly BatchItem[],
  joined?: JoinedWrite,
): void {
  let outcomes: { ok: boolean; value: unknown }[] = [];
  let itemFailed = false;
  try {
    store.tx(() => {
      for (const it of items) {
        itemFailed = true;
        outcomes.push({ ok: true, value: it.fn() });
        itemFailed = false;
      }
      if (joined) {
        try {
          // A savepoint: a failing joined write undoes itself, never the records.
          store.tx(() => joined.run());
        } catch {
          joined.undo();
        }
      }
    });
  } catch (e) {
    joined?.undo();
    if (!itemFailed) {
      for (const it of items) it.reject(e);
      return;
    }
    outcomes = [];
    try {
      store.tx(() => {
        for (const it of items) {
          try {
            outcomes.push({ ok: true, value: store.tx(it.fn) });
          } catch (e) {
            outcomes.push({ ok: false, value: e });
          }
        }
      });
    } catch (e) {
      for (const it of items) it.reject(e);
      return;
    }
  }
  items.forEach((it, i) => {
    const o = outcomes[i]!;
    if (o.ok) it.resolve(o.value);
    else it.reject(o.value);
  });
}
