/**
 * Follows the shared record's change feed into this node's mirror (see
 * `store/fleet_local.ts`), from which its web database takes every node's
 * rows: the Drupal module on any node finds every file's URL. The cursor is
 * stored with the rows it covers, so a restart resumes where it stopped; it
 * never passes a gap in the feed that a transaction still running may fill.
 *
 * The feed is pruned once every node has read it (`SharedStore.pruneChanges`;
 * a node silent for longer than the retention holds nothing back). A node
 * whose cursor fell behind the pruned range (it was gone that long, or it is
 * new) sees a gap before the first change it reads; when the feed says that
 * range was pruned, the node copies the whole shared record into its mirror
 * instead, and follows the feed from the head it read before the copy.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { FleetLocal } from "../store/fleet_local.ts";
import type { RecordChange, SharedStore } from "../store/shared/types.ts";

/** Changes per round trip. */
const BATCH = 2000;

/** Records per round trip when the mirror is copied anew. */
const REBUILD_PAGE = 5000;

/** How long a gap in the change feed is waited for before it counts as empty for good. */
const GAP_WAIT_MS = 10_000;

/** Applies the change feed. */
export class FleetFollower {
  readonly #local: FleetLocal;
  readonly #call: <T>(fn: (s: SharedStore) => Promise<T>) => Promise<T>;
  readonly #log: Logger;
  #running: Promise<void> | undefined;

  constructor(
    local: FleetLocal,
    call: <T>(fn: (s: SharedStore) => Promise<T>) => Promise<T>,
    log: Logger,
  ) {
    this.#local = local;
    this.#call = call;
    this.#log = log;
  }

  /** Applies every change after the stored cursor; rejects when the shared store fails. */
  follow(): Promise<void> {
    this.#running ??= this.#follow().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #follow(): Promise<void> {
    let cursor = this.#local.cursor();
    for (;;) {
      const from = cursor;
      const changes = await this.#call((s) => s.changesSince(from, BATCH));
      if (changes.length === 0) return;
      if (changes[0]!.seq > from + 1 && await this.#prunedPast(from)) {
        cursor = await this.#rebuild();
        continue;
      }
      // Applying again is harmless (each change carries the record as it is now), so all of
      // them go in; the cursor stops before a gap that may still be filled.
      cursor = this.#safeCursor(from, changes, Date.now());
      this.#local.applyChanges(changes, cursor);
      this.#log.debug(`Applied ${changes.length} change(s) of the shared record`);
      if (changes.length < BATCH || cursor === from) return;
    }
  }

  /** Whether changes after `cursor` were pruned (this node missed them). */
  async #prunedPast(cursor: number): Promise<boolean> {
    const bounds = await this.#call((s) => s.feed());
    return bounds.pruned > cursor;
  }

  /**
   * Copies the whole shared record into the mirror and returns the new
   * cursor: the feed's head read before the copy, so every change after it
   * is applied again (applying a change twice is harmless).
   */
  async #rebuild(): Promise<number> {
    const { head } = await this.#call((s) => s.feed());
    this.#local.beginRebuild();
    let after = "";
    let total = 0;
    for (;;) {
      const from = after;
      const page = await this.#call((s) => s.records(from, REBUILD_PAGE));
      this.#local.rebuildPage(page.records);
      total += page.records.length;
      after = page.next;
      if (page.records.length < REBUILD_PAGE) break;
    }
    const changed = this.#local.finishRebuild(head);
    this.#gaps.clear();
    this.#log.warn(
      `The shared record's change feed was pruned past this node's position: copied the ` +
        `whole record instead (${total} record(s), ${changed} changed here)`,
    );
    return head;
  }

  /** When each gap in the feed was first seen (by the position it follows). */
  readonly #gaps = new Map<number, number>();

  /**
   * The position up to which the feed is complete. On a database server,
   * positions are taken when a transaction writes and become visible when it
   * commits, so a later position can be read before an earlier one: a gap is
   * a change still to come, unless it stays a gap for {@linkcode GAP_WAIT_MS}
   * (a rolled-back transaction leaves one for good).
   */
  #safeCursor(from: number, changes: readonly RecordChange[], now: number): number {
    let prev = from;
    for (const c of changes) {
      if (c.seq > prev + 1) {
        const seen = this.#gaps.get(prev) ?? now;
        this.#gaps.set(prev, seen);
        if (now - seen < GAP_WAIT_MS) return prev;
      }
      this.#gaps.delete(prev);
      prev = c.seq;
    }
    return prev;
  }
}
