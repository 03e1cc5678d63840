/**
 * The shared store on MariaDB ≥ 10.6 or MySQL ≥ 8 (npm `mysql2`), through
 * a small pool that replaces broken connections, so the store works again
 * by itself after the server restarts. Every connection uses READ COMMITTED
 * (no gap locks; each statement sees what committed before it).
 *
 * Rows are keyed by `key_hash` (SHA-256 of input file, server and
 * destination, see `_keys.ts`): InnoDB cannot index three long TEXT
 * columns. `input_file` has a prefix index for `urlFor`. Text is utf8mb4
 * with a binary collation: paths compare byte for byte, as on the disk.
 *
 * Claims, in one transaction: `INSERT … ON DUPLICATE KEY UPDATE` creates the
 * missing lease rows (ours) and locks the existing ones, in key order;
 * `UPDATE … WHERE expired OR ours` takes what may be taken; a `SELECT` of
 * the leases and records decides each claim. Two claimers of one key queue
 * on its row lock, and exactly one finds it free. A `DELETE` before it
 * drops our leases of the keys that are done (the record holds the
 * fingerprint, or vouches for the stat asked: `statVouches` in `_keys.ts`),
 * with the same rule `decideClaim` applies to what the `SELECT` returns.
 *
 * Change feed: AUTO_INCREMENT values, like PostgreSQL sequences, are handed
 * out before commit and commit in any order, so a follower could skip a
 * change. Each publishing transaction instead ends by incrementing the one
 * row of `fc_feed` and numbering its changes from it; the row stays locked
 * until commit, so changes become visible in `seq` order.
 *
 * @module
 */
import mysql from "mysql2/promise";
import { decideClaim, distinctItems, distinctKeys, distinctRecords, inOrder } from "./_keys.ts";
import { recordValues, toNodeRow, toServerHealth } from "./_keys.ts";
import { keyId, type RecordRow, RELEASED_UNTIL, toRecord } from "./_keys.ts";
import type { KeyedItem } from "./_keys.ts";
import { withDbErrors } from "./_db_errors.ts";
import { ClaimsInBatches } from "./_one_claim.ts";
import type {
  Claim,
  ClaimItem,
  FeedBounds,
  NodeRow,
  RecordChange,
  RecordPage,
  SharedKey,
  SharedRecord,
  SharedServerHealth,
  SharedStore,
} from "./types.ts";
import type { ServerUrl } from "./url.ts";
import {
  CLAIM_RESULTS,
  claimSql,
  ER_DUP_FIELDNAME,
  MIGRATIONS,
  TABLE_OPTIONS,
} from "./_mysql_sql.ts";
import { type Conn, QUERY_TIMEOUT_MS, queryRows, queryRun, type Row } from "./_mysql_query.ts";
import { appendChanges, readChanges, readFeedBounds } from "./_mysql_feed.ts";
import { pruneFeed } from "./_mysql_prune.ts";

/** Name of the lock (GET_LOCK) that serialises migrations. */
const MIGRATION_LOCK = "fileconveyor.schema";

/** Options of {@linkcode MysqlSharedStore}. */
export interface MysqlSharedOptions {
  /** Connections in the pool (default 3). */
  poolSize?: number;
  /** How long connecting may take, ms (default 5,000). */
  connectTimeoutMs?: number;
  /** The store URL as messages name it, without its password (`redactStoreUrl`). */
  shown: string;
}

const RECORD_COLUMNS =
  "input_file, server, dest, transported_file_basename, url, remote_path, fingerprint, node, synced_at, " +
  "source_stat";

/**
 * The part of the claim's `DELETE` (of `l`, our leases, joined to `s`,
 * their records) for the items asked with a stat: the record vouches for
 * it (`statVouches` in `_keys.ts`). Empty when no item has a stat. The
 * SQL depends on the number of items only; every value is a placeholder.
 */
function statDone(items: readonly KeyedItem[]): { sql: string; values: unknown[] } {
  const asked = items.filter((i) => i.stat);
  if (asked.length === 0) return { sql: "", values: [] };
  const rows = asked.map((_, n) => n === 0 ? "SELECT ? AS h, ? AS st, ? AS af" : "SELECT ?, ?, ?");
  return {
    sql: ` OR EXISTS (SELECT 1 FROM (${rows.join(" UNION ALL ")}) v
              WHERE v.h = l.key_hash AND v.st = s.source_stat AND s.synced_at > v.af)`,
    // The bound rounded down, as on the other backends (see `statVouches`).
    values: asked.flatMap((i) => [i.hash, i.stat!.id, Math.floor(i.stat!.after)]),
  };
}

/** The shared store on MariaDB or MySQL. */
export class MysqlSharedStore extends ClaimsInBatches implements SharedStore {
  readonly kind = "mysql" as const;
  readonly node: string;
  readonly #pool: mysql.Pool;
  readonly #shown: string;
  #startedAt: number | undefined;

  /**
   * @param url The parsed store URL (see `url.ts`).
   * @param node This daemon's node name.
   * @param options Pool size, connect timeout and the URL for messages.
   */
  constructor(url: ServerUrl, node: string, options: MysqlSharedOptions) {
    super();
    this.node = node;
    this.#shown = options.shown;
    const config: mysql.PoolOptions = {
      host: url.host,
      port: url.port,
      user: url.user,
      password: url.password,
      database: url.database,
      connectionLimit: options.poolSize ?? 3,
      maxIdle: options.poolSize ?? 3,
      idleTimeout: 30_000,
      connectTimeout: options.connectTimeoutMs ?? 5_000,
      waitForConnections: true,
      queueLimit: 0,
      enableKeepAlive: true,
      charset: "UTF8MB4_BIN",
      supportBigNumbers: true,
      dateStrings: true,
      // Claims and publishes send their whole transaction at once. Every value goes through
      // the driver's escaping (placeholders); no SQL is built from data.
      multipleStatements: true,
    };
    if (url.tls) {
      const ssl: Record<string, unknown> = { rejectUnauthorized: url.tls.verifyChain };
      if (url.tls.ca !== undefined) ssl.ca = url.tls.ca;
      if (!url.tls.verifyHost) ssl.checkServerIdentity = () => undefined;
      config.ssl = ssl;
    }
    this.#pool = mysql.createPool(config);
    // deno-lint-ignore no-explicit-any
    const core = (this.#pool as any).pool;
    // deno-lint-ignore no-explicit-any
    core.on("connection", (c: any) => {
      // An idle connection that breaks (server restart) is dropped by the pool; without a
      // listener its 'error' event would crash the process.
      c.on("error", () => {});
      // Queued before anything the pool's user sends on this connection.
      c.query(
        "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED, innodb_lock_wait_timeout = 20",
        () => {},
      );
    });
  }

  /** Runs `fn` on one pooled connection, classifying connection failures. */
  #with<T>(action: string, fn: (c: Conn) => Promise<T>): Promise<T> {
    return withDbErrors(this.#shown, action, async () => {
      const conn = await this.#pool.getConnection();
      let broken = false;
      try {
        return await fn(conn);
      } catch (e) {
        broken = true;
        throw e;
      } finally {
        // A connection whose query failed mid-way may be unusable: do not reuse it.
        if (broken) conn.destroy();
        else conn.release();
      }
    });
  }

  /** Runs `fn` in one transaction (run again when it loses a race, see `withDbErrors`). */
  #tx<T>(action: string, fn: (c: Conn) => Promise<T>): Promise<T> {
    return this.#with(action, async (c) => {
      await this.#run(c, "START TRANSACTION");
      try {
        const out = await fn(c);
        await this.#run(c, "COMMIT");
        return out;
      } catch (e) {
        await this.#run(c, "ROLLBACK").catch(() => {});
        throw e;
      }
    });
  }

  #rows(c: Conn, sql: string, values?: unknown[]): Promise<Row[]> {
    return queryRows(c, sql, values);
  }

  #run(c: Conn, sql: string, values?: unknown[]): Promise<mysql.ResultSetHeader> {
    return queryRun(c, sql, values);
  }

  migrate(): Promise<void> {
    return this.#with("migrate", async (c) => {
      // DDL commits by itself in MariaDB, so a named lock (held by this connection, freed
      // if it dies) serialises migrating processes instead of a transaction.
      const [got] = await this.#rows(c, "SELECT GET_LOCK(?, 60) AS got", [MIGRATION_LOCK]);
      if (Number(got?.got) !== 1) {
        throw new Error(
          `Cannot migrate the shared store "${this.#shown}": another process holds the ` +
            `migration lock "${MIGRATION_LOCK}" for more than 60 s`,
        );
      }
      try {
        await this.#run(
          c,
          `CREATE TABLE IF NOT EXISTS fc_schema(version INT NOT NULL) ${TABLE_OPTIONS}`,
        );
        const [row] = await this.#rows(c, "SELECT max(version) AS v FROM fc_schema");
        const current = Number(row?.v ?? 0);
        if (current > MIGRATIONS.length) {
          throw new Error(
            `Cannot use the shared store "${this.#shown}": its schema version ${current} ` +
              `is newer than this fileconveyor knows (${MIGRATIONS.length})`,
          );
        }
        for (let v = current; v < MIGRATIONS.length; v++) {
          for (const sql of MIGRATIONS[v]!) {
            await this.#run(c, sql).catch((e) => {
              // MySQL has no ADD COLUMN IF NOT EXISTS: a column already there was added by a
              // migration that stopped half-way.
              if ((e as { errno?: number }).errno !== ER_DUP_FIELDNAME) throw e;
            });
          }
        }
        if (current < MIGRATIONS.length) {
          await this.#run(c, "DELETE FROM fc_schema");
          await this.#run(c, "INSERT INTO fc_schema(version) VALUES (?)", [MIGRATIONS.length]);
        }
      } finally {
        await this.#run(c, "SELECT RELEASE_LOCK(?)", [MIGRATION_LOCK]).catch(() => {});
      }
    });
  }

  heartbeat(
    info: { queued: number; failed: number; now: number; version: string; cursor?: number },
  ): Promise<void> {
    this.#startedAt ??= info.now;
    const startedAt = this.#startedAt;
    const cursor = info.cursor ?? null;
    return this.#with("write to", async (c) => {
      await this.#run(
        c,
        `INSERT INTO fc_nodes(node, started_at, heartbeat_at, queued, failed, version, feed_cursor)
         VALUES (?, ?, ?, ?, ?, ?, COALESCE(?, 0))
         ON DUPLICATE KEY UPDATE started_at = VALUES(started_at),
           heartbeat_at = VALUES(heartbeat_at), queued = VALUES(queued),
           failed = VALUES(failed), version = VALUES(version),
           feed_cursor = COALESCE(?, feed_cursor)`,
        [this.node, startedAt, info.now, info.queued, info.failed, info.version, cursor, cursor],
      );
    });
  }

  nodes(): Promise<NodeRow[]> {
    return this.#with("read", async (c) => {
      const rows = await this.#rows(
        c,
        `SELECT node, started_at, heartbeat_at, queued, failed, version, feed_cursor
         FROM fc_nodes ORDER BY heartbeat_at DESC, node`,
      );
      return rows.map(toNodeRow);
    });
  }

  async claimMany(items: readonly ClaimItem[], now: number, leaseMs: number): Promise<Claim[]> {
    if (items.length === 0) return [];
    const distinct = distinctItems(items);
    const hashes = distinct.map((i) => i.hash);
    const until = now + leaseMs;
    const vouch = statDone(distinct);
    // The whole transaction in one round trip (see `claimSql`; every value escaped).
    const rows = await this.#with("claim in", async (c) => {
      const [results] = await c.query({
        sql: claimSql(vouch.sql),
        timeout: QUERY_TIMEOUT_MS,
      }, [
        distinct.map((i) => [i.hash, i.key.input_file, i.key.server, i.key.dest, this.node, until]),
        hashes,
        this.node,
        now,
        this.node,
        until,
        hashes,
        now,
        this.node,
        this.node,
        distinct.map((i) => [i.hash, i.fingerprint]),
        ...vouch.values,
        hashes,
        hashes,
      ]);
      const r = results as unknown[];
      return { rows: r[CLAIM_RESULTS.rows] as Row[], expired: r[CLAIM_RESULTS.expired] as Row[] };
    });
    const byHash = new Map(rows.rows.map((row) => [row.key_hash as string, row]));
    // Expired leases of other nodes before the claim: a lease of ours now was taken over.
    const held = new Map(rows.expired.map((row) => [row.key_hash as string, row.node as string]));
    const out = new Map<string, Claim>();
    for (const item of distinct) {
      const row = byHash.get(item.hash);
      const record = row?.input_file != null ? toRecord(row as RecordRow) : undefined;
      const lease = row?.lease_node != null
        ? { node: row.lease_node as string, until: Number(row.lease_until) }
        : undefined;
      const from = lease?.node === this.node ? held.get(item.hash) : undefined;
      out.set(item.id, decideClaim(item, record, lease, this.node, from));
    }
    return inOrder(items, out);
  }

  renew(key: SharedKey, now: number, leaseMs: number): Promise<boolean> {
    const [item] = distinctKeys([key]);
    return this.#with("renew a lease in", async (c) => {
      const r = await this.#run(
        c,
        "UPDATE fc_leases SET until = ? WHERE key_hash = ? AND node = ? AND until <> ?",
        [now + leaseMs, item!.hash, this.node, RELEASED_UNTIL],
      );
      // affectedRows counts matched rows only with CLIENT_FOUND_ROWS; an unchanged
      // until (the same renewal twice) still holds the lease.
      if (r.affectedRows > 0) return true;
      const rows = await this.#rows(
        c,
        "SELECT 1 AS ok FROM fc_leases WHERE key_hash = ? AND node = ? AND until <> ?",
        [item!.hash, this.node, RELEASED_UNTIL],
      );
      return rows.length > 0;
    });
  }

  release(key: SharedKey): Promise<void> {
    const [item] = distinctKeys([key]);
    return this.#with("release a lease in", async (c) => {
      await this.#run(c, "DELETE FROM fc_leases WHERE key_hash = ? AND node = ?", [
        item!.hash,
        this.node,
      ]);
    });
  }

  releaseDead(now: number, deadAfterMs: number): Promise<number> {
    return this.#with("release leases in", async (c) => {
      const r = await this.#run(
        c,
        `UPDATE fc_leases SET until = ? WHERE until <> ? AND node <> ? AND node IN
           (SELECT node FROM fc_nodes WHERE heartbeat_at < ?)`,
        [RELEASED_UNTIL, RELEASED_UNTIL, this.node, now - deadAfterMs],
      );
      return r.affectedRows;
    });
  }

  publish(records: readonly SharedRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    const distinct = distinctRecords(records);
    const n = distinct.length;
    // Change i of n gets seq LAST_INSERT_ID() - n + 1 + i, LAST_INSERT_ID() being the
    // counter after the feed UPDATE (an INSERT into a table without AUTO_INCREMENT keeps it).
    const changeRows = distinct.map((_, i) => `(LAST_INSERT_ID() - ${n - 1 - i}, ?, ?, ?, ?, 0)`);
    // The whole transaction in one round trip (multiple statements; every value escaped).
    return this.#with("publish to", async (c) => {
      await c.query({
        sql: `START TRANSACTION;
          INSERT INTO synced_files(key_hash, ${RECORD_COLUMNS}) VALUES ?
          ON DUPLICATE KEY UPDATE
            transported_file_basename = VALUES(transported_file_basename),
            url = VALUES(url), remote_path = VALUES(remote_path),
            fingerprint = VALUES(fingerprint), node = VALUES(node),
            synced_at = VALUES(synced_at), source_stat = VALUES(source_stat);
          DELETE FROM fc_leases WHERE key_hash IN (?) AND node = ?;
          UPDATE fc_feed SET seq = LAST_INSERT_ID(seq + ?) WHERE id = 1;
          INSERT INTO fc_changes(seq, key_hash, input_file, server, dest, removed)
            VALUES ${changeRows.join(", ")};
          COMMIT`,
        timeout: QUERY_TIMEOUT_MS,
      }, [
        distinct.map(({ hash, record: r }) => [hash, ...recordValues(r)]),
        distinct.map((d) => d.hash),
        this.node,
        n,
        ...distinct.flatMap((d) => [d.hash, d.record.input_file, d.record.server, d.record.dest]),
      ]);
    });
  }

  unpublish(keys: readonly SharedKey[]): Promise<void> {
    if (keys.length === 0) return Promise.resolve();
    const distinct = distinctKeys(keys);
    const hashes = distinct.map((d) => d.hash);
    return this.#tx("unpublish from", async (c) => {
      const rows = await this.#rows(
        c,
        "SELECT key_hash FROM synced_files WHERE key_hash IN (?) FOR UPDATE",
        [hashes],
      );
      const gone = new Set(rows.map((row) => row.key_hash as string));
      if (gone.size === 0) return;
      await this.#run(c, "DELETE FROM synced_files WHERE key_hash IN (?)", [[...gone]]);
      await appendChanges(c, distinct.filter((d) => gone.has(d.hash)), true);
    });
  }

  get(key: SharedKey): Promise<SharedRecord | undefined> {
    const [item] = distinctKeys([key]);
    return this.#with("read", async (c) => {
      const [row] = await this.#rows(
        c,
        `SELECT ${RECORD_COLUMNS} FROM synced_files WHERE key_hash = ?`,
        [item!.hash],
      );
      return row && keyId(row as RecordRow) === item!.id ? toRecord(row as RecordRow) : undefined;
    });
  }

  urlFor(inputFile: string, server?: string): Promise<string | undefined> {
    return this.#with("read", async (c) => {
      const rows = server === undefined
        ? await this.#rows(
          c,
          "SELECT url FROM synced_files WHERE input_file = ? ORDER BY server, dest LIMIT 1",
          [inputFile],
        )
        : await this.#rows(
          c,
          "SELECT url FROM synced_files WHERE input_file = ? AND server = ? ORDER BY dest LIMIT 1",
          [inputFile, server],
        );
      return rows[0]?.url as string | undefined;
    });
  }

  changesSince(cursor: number, limit: number): Promise<RecordChange[]> {
    return this.#with("read", (c) => readChanges(c, cursor, limit));
  }

  feed(): Promise<FeedBounds> {
    return this.#with("read", (c) => readFeedBounds(c));
  }

  pruneChanges(now: number, retentionMs: number): Promise<number> {
    return this.#tx("prune", (c) => pruneFeed(c, now, retentionMs));
  }

  records(after: string, limit: number): Promise<RecordPage> {
    return this.#with("read", async (c) => {
      const rows = await this.#rows(
        c,
        `SELECT key_hash, ${RECORD_COLUMNS} FROM synced_files WHERE key_hash > ?
         ORDER BY key_hash LIMIT ?`,
        [after, limit],
      );
      const last = rows[rows.length - 1];
      return {
        records: rows.map((row) => toRecord(row as RecordRow)),
        next: last ? String(last.key_hash) : after,
      };
    });
  }

  putServerHealth(row: SharedServerHealth): Promise<void> {
    return this.#with("write to", async (c) => {
      await this.#run(
        c,
        `INSERT INTO fc_server_health(server, node, failing_since, last_error, last_ok, updated_at)
         VALUES (?, ?, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE failing_since = VALUES(failing_since),
           last_error = VALUES(last_error), last_ok = VALUES(last_ok),
           updated_at = VALUES(updated_at)`,
        [row.server, row.node, row.failing_since, row.last_error, row.last_ok, row.updated_at],
      );
    });
  }

  serverHealth(): Promise<SharedServerHealth[]> {
    return this.#with("read", async (c) => {
      const rows = await this.#rows(
        c,
        `SELECT server, node, failing_since, last_error, last_ok, updated_at
         FROM fc_server_health ORDER BY server, node`,
      );
      return rows.map(toServerHealth);
    });
  }

  async close(): Promise<void> {
    try {
      await this.#pool.end();
    } catch {
      // Already ended.
    }
  }
}
