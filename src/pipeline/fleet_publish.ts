/**
 * Sends the local outbox (see `store/fleet_local.ts`) to the shared store:
 * records uploaded by this node, and removals. Batches of up to 500 entries
 * per round trip; an entry leaves the outbox only once the shared store took
 * it, so an outage or a crash publishes it later (publishing is idempotent).
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { FleetLocal } from "../store/fleet_local.ts";
import type { SharedStore } from "../store/shared/types.ts";

/** Entries per round trip. */
const BATCH = 500;

/** Publishes the outbox. */
export class FleetPublisher {
  readonly #local: FleetLocal;
  readonly #call: <T>(fn: (s: SharedStore) => Promise<T>) => Promise<T>;
  readonly #log: Logger;
  #running: Promise<void> | undefined;
  #again = false;
  #soon: number | undefined;

  constructor(
    local: FleetLocal,
    call: <T>(fn: (s: SharedStore) => Promise<T>) => Promise<T>,
    log: Logger,
  ) {
    this.#local = local;
    this.#call = call;
    this.#log = log;
  }

  /** Publishes shortly (entries written in one tick share a round trip). */
  soon(): void {
    if (this.#soon !== undefined) return;
    this.#soon = setTimeout(() => {
      this.#soon = undefined;
      this.flush().catch(() => {});
    }, 20) as unknown as number;
  }

  /** Publishes everything in the outbox; rejects when the shared store fails (the rest waits). */
  flush(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = this.#flush().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #flush(): Promise<void> {
    do {
      this.#again = false;
      for (;;) {
        const entries = this.#local.outbox(BATCH);
        if (entries.length === 0) break;
        const records = entries.flatMap((e) => e.record ? [e.record] : []);
        const removed = entries.flatMap((e) => e.record ? [] : [e.key]);
        await this.#call(async (s) => {
          if (records.length > 0) await s.publish(records);
          if (removed.length > 0) await s.unpublish(removed);
        });
        this.#local.published(entries);
        this.#log.debug(`Published ${records.length} record(s), ${removed.length} removal(s)`);
        if (entries.length < BATCH) break;
      }
    } while (this.#again);
  }

  /** Stops the pending timer. */
  stop(): void {
    if (this.#soon !== undefined) clearTimeout(this.#soon);
    this.#soon = undefined;
  }
}
