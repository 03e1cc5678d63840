/**
 * The change feed of the PostgreSQL shared store: the feed row's lock, the
 * rows an unpublishing transaction appends to `fc_changes`, the changes
 * after a cursor, and the feed's bounds. Publishing appends its changes in
 * `PUBLISH_SQL` (`_postgres_sql.ts`); `postgres.ts` explains why every
 * writer numbers its changes from the locked `fc_feed` row.
 *
 * @module
 */
import type pg from "pg";
import { type RecordRow, toRecord } from "./_keys.ts";
import type { FeedBounds, RecordChange, SharedKey } from "./types.ts";

type Client = pg.PoolClient;

/** Locks the feed's row until the transaction ends: every feed writer takes it first. */
export async function lockFeed(c: Client): Promise<void> {
  await c.query("SELECT seq FROM fc_feed WHERE id = 1 FOR UPDATE");
}

/** Appends changes to the feed, in a transaction that locked the feed's row first. */
export async function appendChanges(
  c: Client,
  keys: { hash: string; key: SharedKey }[],
  removed: boolean,
): Promise<void> {
  if (keys.length === 0) return;
  const r = await c.query<{ seq: string }>(
    "UPDATE fc_feed SET seq = seq + $1 WHERE id = 1 RETURNING seq",
    [keys.length],
  );
  const first = Number(r.rows[0]!.seq) - keys.length;
  await c.query(
    `INSERT INTO fc_changes(seq, key_hash, input_file, server, dest, removed)
     SELECT $1::bigint + o, h, i, s, d, $6
     FROM unnest($2::bpchar[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS t(h, i, s, d, o)`,
    [
      first,
      keys.map((k) => k.hash),
      keys.map((k) => k.key.input_file),
      keys.map((k) => k.key.server),
      keys.map((k) => k.key.dest),
      removed,
    ],
  );
}

/**
 * The changes after `cursor`, oldest first, each with its key's record unless removed. The
 * changes are taken by position first, then each one's record by its key (`LATERAL … LIMIT 1`
 * keeps PostgreSQL from turning that into a join over both tables), so a follow never reads
 * the whole record, whatever the planner knows of the tables' sizes.
 */
export async function readChanges(
  c: Client,
  cursor: number,
  limit: number,
): Promise<RecordChange[]> {
  const r = await c.query(
    `SELECT c.seq, c.input_file AS k_input_file, c.server AS k_server, c.dest AS k_dest,
       s.input_file, s.server, s.dest, s.transported_file_basename, s.url, s.remote_path,
       s.fingerprint, s.node, s.synced_at, s.source_stat
     FROM (SELECT seq, key_hash, input_file, server, dest FROM fc_changes
       WHERE seq > $1 ORDER BY seq LIMIT $2) c
     LEFT JOIN LATERAL (SELECT * FROM synced_files WHERE key_hash = c.key_hash LIMIT 1) s ON true
     ORDER BY c.seq`,
    [cursor, limit],
  );
  return r.rows.map((row) => {
    const change: RecordChange = {
      seq: Number(row.seq),
      key: { input_file: row.k_input_file, server: row.k_server, dest: row.k_dest },
    };
    if (row.input_file != null) change.record = toRecord(row as RecordRow);
    return change;
  });
}

/** The last pruned and the newest `seq` of the feed. */
export async function readFeedBounds(c: Client): Promise<FeedBounds> {
  const r = await c.query("SELECT seq, pruned FROM fc_feed WHERE id = 1");
  return { pruned: Number(r.rows[0]?.pruned ?? 0), head: Number(r.rows[0]?.seq ?? 0) };
}
