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

/** Where {@linkcode claimSql}'s results are, by statement. */
export const CLAIM_RESULTS = { expired: 2, rows: 5 } as const;

/**
 * The claim of a batch as one multi-statement transaction (one round trip):
 * the missing leases inserted; other nodes' expired leases read, for the
 * "taken over" of the answers; the leases taken or renewed; this node's
 * leases on keys done dropped (`vouchSql`: the stat-vouches condition of
 * `statDone`); then the leases and records as they are. Other nodes'
 * expired leases are read after the insert, when every key has a row this
 * transaction locked, by a locking read: it takes no gap locks and does not
 * fix the snapshot, which the final `SELECT` must take after the writes.
 */
export function claimSql(vouchSql: string): string {
  return `START TRANSACTION;
          INSERT INTO fc_leases(key_hash, input_file, server, dest, node, until) VALUES ?
            ON DUPLICATE KEY UPDATE key_hash = key_hash;
          SELECT key_hash, node FROM fc_leases
            WHERE key_hash IN (?) AND node <> ? AND until <= ? FOR UPDATE;
          UPDATE fc_leases SET node = ?, until = ?
            WHERE key_hash IN (?) AND (until <= ? OR node = ?);
          DELETE l FROM fc_leases l JOIN synced_files s ON s.key_hash = l.key_hash
            WHERE l.node = ? AND ((l.key_hash, s.fingerprint) IN (?)${vouchSql});
          SELECT k.key_hash, l.node AS lease_node, l.until AS lease_until,
            s.input_file, s.server, s.dest, s.transported_file_basename, s.url, s.remote_path,
            s.fingerprint, s.node, s.synced_at, s.source_stat
          FROM (SELECT key_hash FROM fc_leases WHERE key_hash IN (?)
                UNION SELECT key_hash FROM synced_files WHERE key_hash IN (?)) k
          LEFT JOIN fc_leases l ON l.key_hash = k.key_hash
          LEFT JOIN synced_files s ON s.key_hash = k.key_hash;
          COMMIT`;
}
