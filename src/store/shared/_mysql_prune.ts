/**
 * Pruning of the MariaDB/MySQL shared store's change feed: the changes
 * every live node has read go, up to but not including the newest, and
 * `fc_feed` remembers how far, so a follower behind that point sees a gap.
 * `mysql.ts` runs it in one transaction.
 *
 * @module
 */
import { type Conn, queryRows, queryRun } from "./_mysql_query.ts";

/** Deletes the changes read by every node heard from since `now - retentionMs`; how many. */
export async function pruneFeed(c: Conn, now: number, retentionMs: number): Promise<number> {
  const [row] = await queryRows(
    c,
    `SELECT (SELECT min(feed_cursor) FROM fc_nodes WHERE heartbeat_at >= ?) AS low,
       (SELECT max(seq) FROM fc_changes) AS top`,
    [now - retentionMs],
  );
  if (row?.low == null || row?.top == null) return 0;
  // The newest change stays: a follower behind the pruned range then sees a gap.
  const horizon = Math.min(Number(row.low), Number(row.top) - 1);
  if (horizon <= 0) return 0;
  const d = await queryRun(c, "DELETE FROM fc_changes WHERE seq <= ?", [horizon]);
  // Last: the feed's row is what publishers queue on, so it is held only until the commit.
  await queryRun(c, "UPDATE fc_feed SET pruned = GREATEST(pruned, ?) WHERE id = 1", [
    horizon,
  ]);
  return d.affectedRows;
}
