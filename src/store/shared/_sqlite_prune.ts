/**
 * Pruning of the SQLite shared store's change feed: the changes every live
 * node has read go, up to but not including the newest, and `fc_feed`
 * remembers how far, so a follower behind that point sees a gap.
 * `sqlite.ts` runs it in one write transaction.
 *
 * @module
 */
import type { Prepare } from "./_sqlite_feed.ts";

/** Deletes the changes read by every node heard from since `now - retentionMs`; how many. */
export function pruneFeed(q: Prepare, now: number, retentionMs: number): number {
  const r = q(
    `SELECT (SELECT MIN(feed_cursor) FROM fc_nodes WHERE heartbeat_at >= ?) AS low,
       (SELECT MAX(seq) FROM fc_changes) AS top`,
  ).get(now - retentionMs) as { low: number | null; top: number | null };
  if (r.low === null || r.top === null) return 0;
  // The newest change stays: a follower behind the pruned range then sees a gap.
  const horizon = Math.min(Number(r.low), Number(r.top) - 1);
  if (horizon <= 0) return 0;
  const n = q("DELETE FROM fc_changes WHERE seq <= ?").run(horizon).changes;
  q("UPDATE fc_feed SET pruned = MAX(pruned, ?) WHERE id = 1").run(horizon);
  return Number(n);
}
