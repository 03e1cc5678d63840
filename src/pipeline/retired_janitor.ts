/**
 * Deletes retired remote files (see `src/store/retired.ts`) once their
 * grace period (`keepReplaced`) is over. The daemon calls
 * {@linkcode RetiredJanitor.run} from its timer; a pass that is still
 * running is not started twice, and a server that fails is left alone for
 * a minute (its rows stay, nothing is forgotten).
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { dropRetired, dueRetired, retiredInUse, retiredOwner } from "../store/retired.ts";
import type { Store } from "../store/store.ts";
import type { Transport } from "../transports/transport.ts";

/** What the janitor needs from the daemon. */
export interface JanitorOptions {
  store: Store;
  /** The server's transport, or undefined while it cannot be used (unknown, backing off). */
  transport(server: string): Promise<Transport> | undefined;
  log: Logger;
  signal: AbortSignal;
  /**
   * Queues `file` to be written again at `server`: an upload to the path a
   * retired version was deleted from started while the delete ran, so its
   * copy may have gone with it.
   */
  rewrite(server: string, file: { input_file: string; dest: string }): void;
}

/** Deletes due retired files, one pass at a time. */
export class RetiredJanitor {
  readonly #o: JanitorOptions;
  #busy = false;
  readonly #pausedUntil = new Map<string, number>();

  constructor(options: JanitorOptions) {
    this.#o = options;
  }

  /** One pass over what is due at `now`; never rejects. */
  async run(now = Date.now()): Promise<void> {
    if (this.#busy || this.#o.signal.aborted) return;
    this.#busy = true;
    try {
      const { store, log, signal } = this.#o;
      for (const r of dueRetired(store, now)) {
        if (signal.aborted) return;
        if ((this.#pausedUntil.get(r.server) ?? 0) > Date.now()) continue;
        const use = retiredInUse(store, r.server, r.remote_path);
        if (use === "recorded") dropRetired(store, r.server, r.remote_path);
        if (use) continue;
        const t = this.#o.transport(r.server);
        if (!t) continue;
        try {
          await (await t).delete(r.remote_path, { signal });
          log.info(
            `deleted replaced "${r.remote_path}" on server "${r.server}" (grace period over)`,
          );
          dropRetired(store, r.server, r.remote_path);
          // Checked again after the delete: an upload to the same path may have started while
          // it ran (a file back to an earlier content has its earlier unique name again).
          const owner = retiredOwner(store, r.server, r.remote_path);
          if (owner) this.#o.rewrite(r.server, owner);
        } catch (e) {
          if (signal.aborted) return;
          this.#pausedUntil.set(r.server, Date.now() + 60_000);
          log.warn(
            `Cannot delete replaced "${r.remote_path}" on server "${r.server}" yet (retrying in a minute): ${
              (e as Error).message
            }`,
          );
        }
      }
    } catch (e) {
      this.#o.log.warn(`Cannot delete replaced files yet: ${(e as Error).message}`);
    } finally {
      this.#busy = false;
    }
  }
}
