/**
 * Shares this node's view of its servers' health with the fleet, so that
 * `status` on any node shows which node sees which server failing.
 *
 * Contract: {@linkcode FleetHealth.push} compares the local servers table
 * with what it last sent and writes a row to the shared store when a
 * server turns failing or ok, or its error text changes (at the next call:
 * the caller runs it with the heartbeat, every few seconds); a healthy
 * server whose only change is a newer last success is sent at most once
 * per {@linkcode REFRESH_MS}. A write that fails is tried again at the next
 * call. Error texts pass through secret redaction before they leave the node.
 *
 * @module
 */
import { redact } from "../log.ts";
import type { SharedServerHealth, SharedStore } from "../store/shared/types.ts";
import type { ServerRow } from "../store/types.ts";

/** Longest a changed last-success time waits before it is shared. */
export const REFRESH_MS = 30_000;

/** Sends server health changes of one node. */
export class FleetHealth {
  readonly #node: string;
  readonly #rows: () => ServerRow[];
  readonly #call: <T>(fn: (s: SharedStore) => Promise<T>) => Promise<T>;
  /** What the shared store holds of this node, by server. */
  readonly #sent = new Map<string, SharedServerHealth>();

  constructor(
    node: string,
    rows: () => ServerRow[],
    call: <T>(fn: (s: SharedStore) => Promise<T>) => Promise<T>,
  ) {
    this.#node = node;
    this.#rows = rows;
    this.#call = call;
  }

  /** Writes the rows that changed (see the module contract); returns how many. */
  async push(now: number): Promise<number> {
    const due: SharedServerHealth[] = [];
    for (const r of this.#rows()) {
      const row: SharedServerHealth = {
        server: r.server,
        node: this.#node,
        failing_since: r.failing_since,
        last_error: r.last_error === null ? null : redact(r.last_error),
        last_ok: r.last_ok,
        updated_at: now,
      };
      const was = this.#sent.get(r.server);
      const changed = !was || was.failing_since !== row.failing_since ||
        was.last_error !== row.last_error ||
        (was.last_ok !== row.last_ok && now - was.updated_at >= REFRESH_MS);
      if (changed) due.push(row);
    }
    if (due.length === 0) return 0;
    await this.#call(async (s) => {
      for (const row of due) await s.putServerHealth(row);
    });
    for (const row of due) this.#sent.set(row.server, row);
    return due.length;
  }
}
