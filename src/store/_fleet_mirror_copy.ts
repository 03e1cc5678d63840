/**
 * The copy of the whole shared record that replaces a node's mirror of it
 * when the change feed was pruned past the node's position (see
 * `fleet_local.ts`): staged page by page in a temporary table of the
 * connection, then swapped in with one transaction.
 *
 * @module
 */
import { recordValues } from "./shared/_keys.ts";
import type { SharedRecord } from "./shared/types.ts";
import type { Store } from "./store.ts";

/** The mirror's columns (`fleet_records`), in the order of `recordValues`. */
export const MIRROR_COLUMNS =
  "input_file, server, dest, transported_file_basename, url, remote_path, fingerprint, node, synced_at, " +
  "source_stat";

/** Starts a staging copy: the temporary table, empty. */
export function beginStaging(store: Store): void {
  store.db.exec(
    `CREATE TEMP TABLE IF NOT EXISTS fleet_rebuild(
       input_file TEXT NOT NULL, server TEXT NOT NULL, dest TEXT NOT NULL,
       transported_file_basename TEXT NOT NULL, url TEXT NOT NULL, remote_path TEXT NOT NULL,
       fingerprint TEXT NOT NULL, node TEXT NOT NULL, synced_at INTEGER NOT NULL,
       source_stat TEXT NOT NULL DEFAULT '',
       PRIMARY KEY(input_file, server, dest)) WITHOUT ROWID;
     DELETE FROM temp.fleet_rebuild;`,
  );
}

/** Adds a page of the shared record to the staging copy. */
export function stagePage(store: Store, records: readonly SharedRecord[]): void {
  const put = store.q(
    `INSERT OR REPLACE INTO temp.fleet_rebuild(${MIRROR_COLUMNS})
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  store.tx(() => {
    for (const r of records) put.run(...recordValues(r));
  });
}

/**
 * Replaces the mirror by the staging copy, without `node`'s own records
 * over its rows of `synced_files`, and sets the feed cursor, in one
 * transaction; marks for the web database the files whose rows differ and
 * returns how many records differed. The staging table goes.
 */
export function replaceMirror(store: Store, node: string, cursor: number): number {
  const changed = store.tx(() => {
    store.q(
      `DELETE FROM temp.fleet_rebuild WHERE node = ? AND EXISTS (SELECT 1 FROM synced_files s
         WHERE s.input_file = fleet_rebuild.input_file AND s.server = fleet_rebuild.server
           AND s.dest = fleet_rebuild.dest)`,
    ).run(node);
    const rows = store.q(
      `SELECT input_file FROM (SELECT ${MIRROR_COLUMNS} FROM fleet_records
         EXCEPT SELECT ${MIRROR_COLUMNS} FROM temp.fleet_rebuild)
       UNION
       SELECT input_file FROM (SELECT ${MIRROR_COLUMNS} FROM temp.fleet_rebuild
         EXCEPT SELECT ${MIRROR_COLUMNS} FROM fleet_records)`,
    ).all() as { input_file: string }[];
    store.q("DELETE FROM fleet_records").run();
    store.q(
      `INSERT INTO fleet_records(${MIRROR_COLUMNS}) SELECT ${MIRROR_COLUMNS}
       FROM temp.fleet_rebuild`,
    ).run();
    for (const r of rows) store.syncedChanged.add(r.input_file);
    store.setRuntime("fleetCursor", cursor);
    return rows.length;
  });
  store.db.exec("DROP TABLE IF EXISTS temp.fleet_rebuild");
  return changed;
}
