/**
 * The change feed of the MariaDB/MySQL shared store: the rows an
 * unpublishing transaction appends to `fc_changes`, the changes after a
 * cursor, and the feed's bounds. Publishing appends its changes in its own
 * one-round-trip transaction (`mysql.ts`); its module doc explains why
 * every writer numbers its changes from the locked `fc_feed` row.
 *
 * @module
 */
import { type RecordRow, toRecord } from "./_keys.ts";
import { type Conn, queryRows, queryRun } from "./_mysql_query.ts";
import type { FeedBounds, RecordChange, SharedKey } from "./types.ts";

/** Appends changes to the feed; the last statement of a publishing transaction (see `mysql.ts`). */
export async function appendChanges(
  c: Conn,
  keys: { hash: string; key: SharedKey }[],
  removed: boolean,
): Promise<void> {
  if (keys.length === 0) return;
  // LAST_INSERT_ID(expr) hands the new value back in the OK packet: no extra SELECT.
  const r = await queryRun(
    c,
    "UPDATE fc_feed SET seq = LAST_INSERT_ID(seq + ?) WHERE id = 1",
    [keys.length],
  );
  const first = Number(r.insertId) - keys.length;
  await queryRun(
    c,
    "INSERT INTO fc_changes(seq, key_hash, input_file, server, dest, removed) VALUES ?",
    [keys.map((k, i) => [
      first + i + 1,
      k.hash,
      k.key.input_file,
      k.key.server,
      k.key.dest,
      removed ? 1 : 0,
    ])],
  );
}

/** The changes after `cursor`, oldest first, each with its key's record unless removed. */
export async function readChanges(
  c: Conn,
  cursor: number,
  limit: number,
): Promise<RecordChange[]> {
  const rows = await queryRows(
    c,
    `SELECT c.seq, c.input_file AS k_input_file, c.server AS k_server, c.dest AS k_dest,
       s.input_file, s.server, s.dest, s.transported_file_basename, s.url, s.remote_path,
       s.fingerprint, s.node, s.synced_at, s.source_stat
     FROM fc_changes c LEFT JOIN synced_files s ON s.key_hash = c.key_hash
     WHERE c.seq > ? ORDER BY c.seq LIMIT ?`,
    [cursor, limit],
  );
  return rows.map((row) => {
    const change: RecordChange = {
      seq: Number(row.seq),
      key: { input_file: row.k_input_file, server: row.k_server, dest: row.k_dest },
    };
    if (row.input_file != null) change.record = toRecord(row as RecordRow);
    return change;
  });
}

/** The last pruned and the newest `seq` of the feed. */
export async function readFeedBounds(c: Conn): Promise<FeedBounds> {
  const [row] = await queryRows(c, "SELECT seq, pruned FROM fc_feed WHERE id = 1");
  return { pruned: Number(row?.pruned ?? 0), head: Number(row?.seq ?? 0) };
}
