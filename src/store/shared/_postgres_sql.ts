/**
 * The schema and the long statements of the PostgreSQL shared store
 * (`postgres.ts` explains the locking they rely on).
 *
 * @module
 */

/** Schema migrations; index + 1 is the schema version after it runs. */
export const MIGRATIONS: string[] = [
  `
  CREATE TABLE synced_files(
    key_hash char(64) PRIMARY KEY,
    input_file text NOT NULL,
    transported_file_basename text NOT NULL,
    url text NOT NULL,
    server text NOT NULL,
    dest text NOT NULL DEFAULT '',
    remote_path text NOT NULL,
    fingerprint text NOT NULL,
    node text NOT NULL,
    synced_at bigint NOT NULL
  );
  CREATE INDEX synced_files_input_file ON synced_files USING hash (input_file);
  CREATE TABLE fc_leases(
    key_hash char(64) PRIMARY KEY,
    input_file text NOT NULL,
    server text NOT NULL,
    dest text NOT NULL,
    node text NOT NULL,
    until bigint NOT NULL
  );
  CREATE INDEX fc_leases_node ON fc_leases(node);
  CREATE TABLE fc_nodes(
    node text PRIMARY KEY,
    started_at bigint NOT NULL,
    heartbeat_at bigint NOT NULL,
    queued integer NOT NULL,
    failed integer NOT NULL,
    version text NOT NULL
  );
  CREATE TABLE fc_feed(id integer PRIMARY KEY, seq bigint NOT NULL);
  INSERT INTO fc_feed(id, seq) VALUES (1, 0);
  CREATE TABLE fc_changes(
    seq bigint PRIMARY KEY,
    key_hash char(64) NOT NULL,
    input_file text NOT NULL,
    server text NOT NULL,
    dest text NOT NULL,
    removed boolean NOT NULL
  );
  CREATE TABLE fc_server_health(
    server text NOT NULL,
    node text NOT NULL,
    failing_since bigint,
    last_error text,
    last_ok bigint,
    updated_at bigint NOT NULL,
    PRIMARY KEY(server, node)
  );
  `,
  `
  ALTER TABLE fc_nodes ADD COLUMN feed_cursor bigint NOT NULL DEFAULT 0;
  ALTER TABLE fc_feed ADD COLUMN pruned bigint NOT NULL DEFAULT 0;
  `,
  `
  ALTER TABLE synced_files ADD COLUMN source_stat text NOT NULL DEFAULT '';
  `,
  // A lease row now outlives its lease (ended: until = -1) and tells the claim that takes it
  // what it was (prev_*); only the rows of leases held are indexed by node.
  `
  ALTER TABLE fc_leases ADD COLUMN prev_node text, ADD COLUMN prev_until bigint;
  DROP INDEX fc_leases_node;
  CREATE INDEX fc_leases_held ON fc_leases(node) WHERE until > 0;
  `,
];

/** The record's columns in `synced_files`, in the order the statements use. */
export const RECORD_COLUMNS_SQL =
  "input_file, server, dest, transported_file_basename, url, remote_path, fingerprint, node, synced_at, " +
  "source_stat";

/*
 * Hashes reach every statement as `bpchar[]`, the type of `key_hash`
 * (`char(64)`): compared with `text[]`, the column is cast to text and the
 * key index cannot serve, so each statement would read the whole table.
 */

/** The leases of the keys `$1`. */
export const LEASES_SQL =
  "SELECT key_hash, node, until FROM fc_leases WHERE key_hash = ANY($1::bpchar[])";

/** The records of the keys `$1`. */
export const RECORDS_SQL =
  `SELECT key_hash, ${RECORD_COLUMNS_SQL} FROM synced_files WHERE key_hash = ANY($1::bpchar[])`;

/** Ends node `$2`'s leases of the keys `$1` (their rows stay, see `ENDED_UNTIL`). */
export const END_LEASES_SQL =
  "UPDATE fc_leases SET until = -1 WHERE key_hash = ANY($1::bpchar[]) AND node = $2 AND until > 0";

/**
 * Removes the records of the keys `$1`, and the rows of their leases no
 * longer held; returns the keys that were there.
 */
export const UNPUBLISH_SQL = `
  WITH gone AS (
    DELETE FROM synced_files WHERE key_hash = ANY($1::bpchar[]) RETURNING key_hash
  ), dl AS (
    DELETE FROM fc_leases WHERE key_hash IN (SELECT key_hash FROM gone) AND until <= 0
  )
  SELECT key_hash FROM gone`;

/** Key of the advisory lock that serialises migrations ("fcsch" in ASCII). */
export const MIGRATION_LOCK = 0x6663736368;

/**
 * Whether the record `rec` of a claim row answers "done": its fingerprint
 * is the one asked, or its source stat is the stat asked (not "") and it
 * was synced after the stat's racy bound (`statVouches` in `_keys.ts`).
 */
const DONE = "(rec.fingerprint = rec.fp OR (rec.st <> '' AND rec.source_stat = rec.st " +
  "AND rec.synced_at > rec.af))";

/**
 * Claims a batch in one statement. `k` is the batch ($1–$5: hash, input
 * file, server, dest, fingerprint; $9, $10: the stat asked, "" for none,
 * and its racy bound; sorted by hash, so rows are locked in that order);
 * `rec` the records, each read by its key (`LATERAL … LIMIT 1`: a join
 * would be planned as a read of the whole table while it is small, and the
 * plan of a named statement may be kept as the table grows; the leases are
 * read the same way); `ins` takes the leases of the keys whose record is not
 * done for what was asked (see {@linkcode DONE}), where the lease row is
 * missing, expired, ended or ours (a conflicting row it does not update is
 * still locked until the end of the statement, so claimers of one key queue
 * up), and keeps in `prev_node`/`prev_until` what the row said before, as
 * committed when it was taken (NULL: a new row); `dl` ends our own lease on
 * keys that are done. The result has, per key, the lease we took
 * (`mine_until`, with `mine_prev_*`), otherwise the lease as the
 * statement's snapshot saw it, and the record.
 */
export const CLAIM_SQL = `
  WITH k AS (
    SELECT * FROM unnest($1::bpchar[], $2::text[], $3::text[], $4::text[], $5::text[],
      $9::text[], $10::bigint[]) AS t(h, i, s, d, fp, st, af)
  ), rec AS (
    SELECT k.h, k.fp, k.st, k.af, sf.* FROM k
      CROSS JOIN LATERAL (SELECT * FROM synced_files WHERE key_hash = k.h LIMIT 1) sf
  ), ins AS (
    INSERT INTO fc_leases(key_hash, input_file, server, dest, node, until)
    SELECT k.h, k.i, k.s, k.d, $6, $7 FROM k
    WHERE NOT EXISTS (SELECT 1 FROM rec WHERE rec.h = k.h AND ${DONE})
    ORDER BY k.h
    ON CONFLICT (key_hash) DO UPDATE SET node = EXCLUDED.node, until = EXCLUDED.until,
      prev_node = fc_leases.node, prev_until = fc_leases.until
    WHERE fc_leases.until <= $8 OR fc_leases.node = $6
    RETURNING key_hash, until, prev_node, prev_until
  ), dl AS (
    UPDATE fc_leases l SET until = -1 FROM rec
    WHERE l.key_hash = rec.h AND ${DONE} AND l.node = $6 AND l.until > 0
  )
  SELECT k.h AS key_hash, ins.until AS mine_until, ins.prev_node AS mine_prev_node,
    ins.prev_until AS mine_prev_until, l.node AS lease_node, l.until AS lease_until,
    rec.input_file, rec.server, rec.dest, rec.transported_file_basename, rec.url,
    rec.remote_path, rec.fingerprint, rec.node, rec.synced_at, rec.source_stat
  FROM k LEFT JOIN ins ON ins.key_hash = k.h
    LEFT JOIN LATERAL (SELECT node, until FROM fc_leases WHERE key_hash = k.h LIMIT 1) l ON true
    LEFT JOIN rec ON rec.h = k.h`;

/**
 * Publishes a batch in one statement: `f` takes the feed's row lock first
 * (the other parts read from it, which makes PostgreSQL run it first), so
 * every publisher locks in the same order — the feed, then the records and
 * leases in hash order — and changes commit in `seq` order. $1–$10 and $12
 * are the record columns (sorted by hash), $11 this node.
 */
export const PUBLISH_SQL = `
  WITH f AS (
    UPDATE fc_feed SET seq = seq + cardinality($1::bpchar[]) WHERE id = 1 RETURNING seq
  ), k AS (
    SELECT t.*, f.seq - cardinality($1::bpchar[]) + t.o AS change_seq
    FROM f, unnest($1::bpchar[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
      $7::text[], $8::text[], $9::text[], $10::bigint[], $12::text[])
      WITH ORDINALITY AS t(h, i, s, d, b, u, rp, fp, n, at, st, o)
  ), up AS (
    INSERT INTO synced_files(key_hash, ${RECORD_COLUMNS_SQL})
    SELECT h, i, s, d, b, u, rp, fp, n, at, st FROM k ORDER BY h
    ON CONFLICT (key_hash) DO UPDATE SET
      transported_file_basename = EXCLUDED.transported_file_basename,
      url = EXCLUDED.url, remote_path = EXCLUDED.remote_path,
      fingerprint = EXCLUDED.fingerprint, node = EXCLUDED.node,
      synced_at = EXCLUDED.synced_at, source_stat = EXCLUDED.source_stat
  ), dl AS (
    INSERT INTO fc_leases(key_hash, input_file, server, dest, node, until)
    SELECT h, i, s, d, $11, -1 FROM k ORDER BY h
    ON CONFLICT (key_hash) DO UPDATE SET node = EXCLUDED.node, until = -1
    WHERE fc_leases.node = EXCLUDED.node OR fc_leases.until <= 0
  )
  INSERT INTO fc_changes(seq, key_hash, input_file, server, dest, removed)
  SELECT change_seq, h, i, s, d, false FROM k`;
