/**
 * Pruning of the PostgreSQL shared store's change feed: the changes every
 * live node has read go, up to but not including the newest, and `fc_feed`
 * remembers how far, so a follower behind that point sees a gap.
 * `postgres.ts` runs it in one transaction.
 *
 * @module
 */
import type pg from "pg";

/** Deletes the changes read by every node heard from since `now - retentionMs`; how many. */
export async function pruneFeed(
  c: pg.PoolClient,
  now: number,
  retentionMs: number,
): Promise<number> {
  const r = await c.query(
    `SELECT (SELECT min(feed_cursor) FROM fc_nodes WHERE heartbeat_at >= $1) AS low,
       (SELECT max(seq) FROM fc_changes) AS top`,
    [now - retentionMs],
  );
  const { low, top } = r.rows[0] ?? {};
  if (low == null || top == null) return 0;
  // The newest change stays: a follower behind the pruned range then sees a gap.
  const horizon = Math.min(Number(low), Number(top) - 1);
  if (horizon <= 0) return 0;
  const d = await c.query("DELETE FROM fc_changes WHERE seq <= $1", [horizon]);
  // Last: the feed's row is what publishers queue on, so it is held only until the commit.
  await c.query("UPDATE fc_feed SET pruned = GREATEST(pruned, $1) WHERE id = 1", [horizon]);
  return d.rowCount ?? 0;
}
