/**
 * The schema of the SQLite shared store (`sqlite.ts`).
 *
 * @module
 */

/** Schema migrations; index + 1 is the schema version after it runs. */
export const MIGRATIONS: string[] = [
  `
  CREATE TABLE IF NOT EXISTS synced_files(
    input_file TEXT NOT NULL,
    transported_file_basename TEXT NOT NULL,
    url TEXT NOT NULL,
    server TEXT NOT NULL,
    dest TEXT NOT NULL DEFAULT '',
    remote_path TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    node TEXT NOT NULL,
    synced_at INTEGER NOT NULL,
    PRIMARY KEY(input_file, server, dest)
  );
  CREATE TABLE fc_leases(
    input_file TEXT NOT NULL,
    server TEXT NOT NULL,
    dest TEXT NOT NULL,
    node TEXT NOT NULL,
    until INTEGER NOT NULL,
    PRIMARY KEY(input_file, server, dest)
  ) WITHOUT ROWID;
  CREATE INDEX fc_leases_node ON fc_leases(node);
  CREATE TABLE fc_nodes(
    node TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    queued INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    version TEXT NOT NULL
  );
  CREATE TABLE fc_changes(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    input_file TEXT NOT NULL,
    server TEXT NOT NULL,
    dest TEXT NOT NULL,
    removed INTEGER NOT NULL
  );
  CREATE TABLE fc_server_health(
    server TEXT NOT NULL,
    node TEXT NOT NULL,
    failing_since INTEGER,
    last_error TEXT,
    last_ok INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY(server, node)
  );
  `,
  `
  ALTER TABLE fc_nodes ADD COLUMN feed_cursor INTEGER NOT NULL DEFAULT 0;
  CREATE TABLE fc_feed(id INTEGER PRIMARY KEY, pruned INTEGER NOT NULL);
  INSERT INTO fc_feed(id, pruned) VALUES (1, 0);
  `,
  `ALTER TABLE synced_files ADD COLUMN source_stat TEXT NOT NULL DEFAULT '';`,
];
