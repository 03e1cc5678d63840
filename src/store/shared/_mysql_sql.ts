/**
 * The schema of the MariaDB/MySQL shared store (`mysql.ts`).
 *
 * @module
 */

/** Options of every table: InnoDB, utf8mb4 compared byte for byte. */
export const TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

/**
 * Schema migrations, one list of statements each (MariaDB cannot roll DDL
 * back, so every statement may run again after a half-applied migration).
 */
export const MIGRATIONS: string[][] = [
  [
    `CREATE TABLE IF NOT EXISTS synced_files(
      key_hash CHAR(64) CHARACTER SET ascii NOT NULL PRIMARY KEY,
      input_file TEXT NOT NULL,
      transported_file_basename TEXT NOT NULL,
      url TEXT NOT NULL,
      server VARCHAR(255) NOT NULL,
      dest VARCHAR(255) NOT NULL DEFAULT '',
      remote_path TEXT NOT NULL,
      fingerprint VARCHAR(255) NOT NULL,
      node VARCHAR(255) NOT NULL,
      synced_at BIGINT NOT NULL,
      KEY synced_files_input_file (input_file(255))
    ) ${TABLE_OPTIONS}`,
    `CREATE TABLE IF NOT EXISTS fc_leases(
      key_hash CHAR(64) CHARACTER SET ascii NOT NULL PRIMARY KEY,
      input_file TEXT NOT NULL,
      server VARCHAR(255) NOT NULL,
      dest VARCHAR(255) NOT NULL,
      node VARCHAR(255) NOT NULL,
      until BIGINT NOT NULL,
      KEY fc_leases_node (node)
    ) ${TABLE_OPTIONS}`,
    `CREATE TABLE IF NOT EXISTS fc_nodes(
      node VARCHAR(255) NOT NULL PRIMARY KEY,
      started_at BIGINT NOT NULL,
      heartbeat_at BIGINT NOT NULL,
      queued INT NOT NULL,
      failed INT NOT NULL,
      version VARCHAR(255) NOT NULL
    ) ${TABLE_OPTIONS}`,
    `CREATE TABLE IF NOT EXISTS fc_feed(id INT NOT NULL PRIMARY KEY, seq BIGINT NOT NULL)
      ${TABLE_OPTIONS}`,
    "INSERT IGNORE INTO fc_feed(id, seq) VALUES (1, 0)",
    `CREATE TABLE IF NOT EXISTS fc_changes(
      seq BIGINT NOT NULL PRIMARY KEY,
      key_hash CHAR(64) CHARACTER SET ascii NOT NULL,
      input_file TEXT NOT NULL,
      server VARCHAR(255) NOT NULL,
      dest VARCHAR(255) NOT NULL,
      removed TINYINT NOT NULL
    ) ${TABLE_OPTIONS}`,
    `CREATE TABLE IF NOT EXISTS fc_server_health(
      server VARCHAR(255) NOT NULL,
      node VARCHAR(255) NOT NULL,
      failing_since BIGINT NULL,
      last_error TEXT NULL,
      last_ok BIGINT NULL,
      updated_at BIGINT NOT NULL,
      PRIMARY KEY(server, node)
    ) ${TABLE_OPTIONS}`,
  ],
  [
    "ALTER TABLE fc_nodes ADD COLUMN feed_cursor BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE fc_feed ADD COLUMN pruned BIGINT NOT NULL DEFAULT 0",
  ],
  ["ALTER TABLE synced_files ADD COLUMN source_stat VARCHAR(255) NOT NULL DEFAULT ''"],
];

/** Error number of a column added twice (a migration run again): already done. */
export const ER_DUP_FIELDNAME = 1060;
