/**
 * The change feed of the SQLite shared store: the rows a publishing
 * transaction appends to `fc_changes`, the changes after a cursor, and the
 * feed's bounds. `sqlite.ts` runs these inside its transactions and reads
 * and classifies their errors; `seq` is an AUTOINCREMENT key, so changes
 * commit in `seq` order (see its module doc).
 *
 * @module
 */
import type { StatementSync } from "node:sqlite";
import { type RecordRow, toRecord } from "./_keys.ts";
import type { FeedBounds, RecordChange } from "./types.ts";

/** Prepares (or finds prepared) a statement on the store's connection. */
export type Prepare = (sql: string) => StatementSync;

/** Appends a published key to the feed (input file, server, dest). */
export const PUBLISHED_CHANGE_SQL =
  "INSERT INTO fc_changes(input_file, server, dest, removed) VALUES (?, ?, ?, 0)";

/** Appends an unpublished key to the feed (input file, server, dest). */
export const REMOVED_CHANGE_SQL =
  "INSERT INTO fc_changes(input_file, server, dest, removed) VALUES (?, ?, ?, 1)";

/** The changes after `cursor`, oldest first, each with its key's record unless removed. */
export function readChanges(q: Prepare, cursor: number, limit: number): RecordChange[] {
  const rows = q(
    `SELECT c.seq AS seq, c.input_file AS k_input_file, c.server AS k_server,
       c.dest AS k_dest, c.removed AS removed, s.input_file AS input_file, s.server AS server,
       s.dest AS dest, s.transported_file_basename AS transported_file_basename,
       s.url AS url, s.remote_path AS remote_path, s.fingerprint AS fingerprint,
       s.node AS node, s.synced_at AS synced_at, s.source_stat AS source_stat
     FROM fc_changes c LEFT JOIN synced_files s
       ON s.input_file = c.input_file AND s.server = c.server AND s.dest = c.dest
     WHERE c.seq > ? ORDER BY c.seq LIMIT ?`,
  ).all(cursor, limit) as unknown as (RecordRow & {
    seq: number;
    k_input_file: string;
    k_server: string;
    k_dest: string;
    removed: number;
  })[];
  return (rows.map((r) => {
    const change: RecordChange = {
      seq: Number(r.seq),
      key: { input_file: r.k_input_file, server: r.k_server, dest: r.k_dest },
    };
    if (r.input_file !== null && r.input_file !== undefined) change.record = toRecord(r);
    return change;
  }));
}

/** The last pruned and the newest `seq` of the feed. */
export function readFeedBounds(q: Prepare): FeedBounds {
  const r = q(
    `SELECT (SELECT pruned FROM fc_feed WHERE id = 1) AS pruned,
       (SELECT seq FROM sqlite_sequence WHERE name = 'fc_changes') AS head`,
  ).get() as { pruned: number | null; head: number | null };
  return { pruned: Number(r.pruned ?? 0), head: Number(r.head ?? 0) };
}
