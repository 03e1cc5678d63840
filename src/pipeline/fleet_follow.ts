/**
 * Follows the shared record's change feed into this node's mirror (see
 * `store/fleet_local.ts`), from which its web database takes every node's
 * rows: the Drupal module on any node finds every file's URL. The cursor is
 * stored with the rows it covers, so a restart resumes where it stopped.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { FleetLocal } from "../store/fleet_local.ts";
import type { SharedStore } from "../store/shared/types.ts";

/** Changes per round trip. */
const BATCH = 2000;

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
      cursor = changes[changes.length - 1]!.seq;
      this.#local.applyChanges(changes, cursor);
      this.#log.debug(`Applied ${changes.length} change(s) of the shared record`);
      if (changes.length < BATCH) return;
    }
  }
}
