/**
 * The shared store in an SQLite file (`node:sqlite`): for several daemon
 * processes on one machine, and for tests. WAL mode, a busy timeout, and
 * every write in a `BEGIN IMMEDIATE` transaction, so that the processes
 * sharing the file take turns and a claim is atomic across them.
 *
 * The change feed's `seq` is an AUTOINCREMENT key assigned inside those
 * transactions; SQLite has one writer at a time, so changes commit in `seq`
 * order and a follower never misses one.
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { SQLITE, sqliteCode, StoreUnavailable } from "../../errors.ts";
import { decideClaim, distinctItems, distinctKeys, distinctRecords, inOrder } from "./_keys.ts";
import { isDone, RELEASED_UNTIL } from "./_keys.ts";
import { recordValues } from "./_keys.ts";
import { keyId, type RecordRow, toNodeRow, toRecord } from "./_keys.ts";
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
import { MIGRATIONS } from "./_sqlite_sql.ts";
import {
  type Prepare,
  PUBLISHED_CHANGE_SQL,
  readChanges,
  readFeedBounds,
  REMOVED_CHANGE_SQL,
} from "./_sqlite_feed.ts";
import { pruneFeed } from "./_sqlite_prune.ts";

/** Options of {@linkcode SqliteSharedStore}. */
export interface SqliteSharedOptions {
  /** How long a write waits for another process's transaction, in ms (default 10,000). */
  busyTimeoutMs?: number;
}

const KEY_WHERE = "input_file = ? AND server = ? AND dest = ?";
const RECORD_COLUMNS =
  "input_file, server, dest, transported_file_basename, url, remote_path, fingerprint, node, synced_at, " +
  "source_stat";

/** Runs `fn` now; its result or exception as a promise (the interface is asynchronous). */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (e) {
    return Promise.reject(e);
  }
}

/** The shared store on an SQLite file. */
export class SqliteSharedStore extends ClaimsInBatches implements SharedStore {
  readonly kind = "sqlite" as const;
  readonly node: string;
  readonly #file: string;
  readonly #busyTimeoutMs: number;
  #db: DatabaseSync | undefined;
  readonly #stmts = new Map<string, StatementSync>();
  #startedAt: number | undefined;

  /**
   * @param file Absolute path of the database file (created when missing).
   * @param node This daemon's node name.
   * @param options Busy timeout.
   */
  constructor(file: string, node: string, options: SqliteSharedOptions = {}) {
    super();
    this.#file = file;
    this.node = node;
    this.#busyTimeoutMs = options.busyTimeoutMs ?? 10_000;
  }

  #open(): DatabaseSync {
    if (this.#db) return this.#db;
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(this.#file);
      db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(this.#busyTimeoutMs))}`);
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = NORMAL");
    } catch (e) {
      throw this.#wrap(e, "open");
    }
    this.#db = db;
    return db;
  }

  #wrap(e: unknown, action: string): unknown {
    const code = sqliteCode(e);
    if (code === SQLITE.BUSY || code === SQLITE.LOCKED || code === SQLITE.CANTOPEN) {
      return new StoreUnavailable(
        `Cannot ${action} the shared store "sqlite:${this.#file}": ${
          (e as Error).message ?? String(e)
        }`,
        { cause: e },
      );
    }
    return e;
  }

  /** `#q`, for the modules that hold this store's SQL. */
  readonly #prepare: Prepare = (sql) => this.#q(sql);

  #q(sql: string): StatementSync {
    let s = this.#stmts.get(sql);
    if (!s) {
      s = this.#open().prepare(sql);
      this.#stmts.set(sql, s);
    }
    return s;
  }

  /** Runs `fn` in one IMMEDIATE transaction (the write lock is taken at BEGIN). */
  #tx<T>(action: string, fn: () => T): T {
    const db = this.#open();
    try {
      db.exec("BEGIN IMMEDIATE");
    } catch (e) {
      throw this.#wrap(e, action);
    }
    try {
      const out = fn();
      db.exec("COMMIT");
      return out;
    } catch (e) {
      try {
        db.exec("ROLLBACK");
      } catch {
        // No transaction left to roll back.
      }
      throw this.#wrap(e, action);
    }
  }

  #read<T>(action: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw this.#wrap(e, action);
    }
  }

  migrate(): Promise<void> {
    return settle(() => {
      this.#tx("migrate", () => {
        const db = this.#open();
        db.exec("CREATE TABLE IF NOT EXISTS fc_schema(version INTEGER NOT NULL)");
        const row = db.prepare("SELECT max(version) AS v FROM fc_schema").get() as {
          v: number | null;
        };
        const current = row.v ?? 0;
        if (current > MIGRATIONS.length) {
          throw new Error(
            `Cannot use the shared store "sqlite:${this.#file}": its schema version ${current} ` +
              `is newer than this fileconveyor knows (${MIGRATIONS.length})`,
          );
        }
        for (let v = current; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!);
        if (current < MIGRATIONS.length) {
          db.exec("DELETE FROM fc_schema");
          db.prepare("INSERT INTO fc_schema(version) VALUES (?)").run(MIGRATIONS.length);
        }
      });
      this.#stmts.clear();
      return;
    });
  }

  heartbeat(
    info: { queued: number; failed: number; now: number; version: string; cursor?: number },
  ): Promise<void> {
    return settle(() => {
      this.#startedAt ??= info.now;
      const cursor = info.cursor ?? null;
      this.#tx("write to", () => {
        this.#q(
          `INSERT INTO fc_nodes(node, started_at, heartbeat_at, queued, failed, version, feed_cursor)
           VALUES (?, ?, ?, ?, ?, ?, COALESCE(?, 0))
           ON CONFLICT(node) DO UPDATE SET started_at = excluded.started_at,
             heartbeat_at = excluded.heartbeat_at, queued = excluded.queued,
             failed = excluded.failed, version = excluded.version,
             feed_cursor = COALESCE(?, feed_cursor)`,
        ).run(
          this.node,
          this.#startedAt!,
          info.now,
          info.queued,
          info.failed,
          info.version,
          cursor,
          cursor,
        );
      });
      return;
    });
  }

  nodes(): Promise<NodeRow[]> {
    return settle(() => {
      const rows = this.#read("read", () =>
        this.#q(
          `SELECT node, started_at, heartbeat_at, queued, failed, version, feed_cursor
           FROM fc_nodes ORDER BY heartbeat_at DESC, node`,
        ).all()) as unknown as Record<string, unknown>[];
      return rows.map(toNodeRow);
    });
  }

  claimMany(items: readonly ClaimItem[], now: number, leaseMs: number): Promise<Claim[]> {
    return settle(() => {
      if (items.length === 0) return [];
      const distinct = distinctItems(items);
      const byId = this.#tx("claim in", () => {
        const out = new Map<string, Claim>();
        const getRecord = this.#q(`SELECT ${RECORD_COLUMNS} FROM synced_files WHERE ${KEY_WHERE}`);
        const getLease = this.#q(`SELECT node, until FROM fc_leases WHERE ${KEY_WHERE}`);
        const take = this.#q(
          `INSERT INTO fc_leases(input_file, server, dest, node, until) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT(input_file, server, dest) DO UPDATE SET node = excluded.node,
             until = excluded.until`,
        );
        const drop = this.#q(`DELETE FROM fc_leases WHERE ${KEY_WHERE} AND node = ?`);
        for (const item of distinct) {
          const k = item.key;
          const row = getRecord.get(k.input_file, k.server, k.dest) as RecordRow | undefined;
          const record = row ? toRecord(row) : undefined;
          if (isDone(item, record)) {
            // As on the other backends: a file done needs no lease of ours.
            drop.run(k.input_file, k.server, k.dest, this.node);
            out.set(item.id, { kind: "done", record });
            continue;
          }
          let lease = getLease.get(k.input_file, k.server, k.dest) as
            | { node: string; until: number }
            | undefined;
          let from: string | undefined;
          if (!lease || lease.node === this.node || lease.until <= now) {
            if (lease && lease.node !== this.node) from = lease.node;
            lease = { node: this.node, until: now + leaseMs };
            take.run(k.input_file, k.server, k.dest, lease.node, lease.until);
          }
          out.set(item.id, decideClaim(item, record, lease, this.node, from));
        }
        return out;
      });
      return inOrder(items, byId);
    });
  }

  renew(key: SharedKey, now: number, leaseMs: number): Promise<boolean> {
    return settle(() => {
      const changes = this.#tx(
        "renew a lease in",
        () =>
          this.#q(`UPDATE fc_leases SET until = ? WHERE ${KEY_WHERE} AND node = ? AND until <> ?`)
            .run(now + leaseMs, key.input_file, key.server, key.dest, this.node, RELEASED_UNTIL)
            .changes,
      );
      return Number(changes) > 0;
    });
  }

  release(key: SharedKey): Promise<void> {
    return settle(() => {
      this.#tx("release a lease in", () => {
        this.#q(`DELETE FROM fc_leases WHERE ${KEY_WHERE} AND node = ?`)
          .run(key.input_file, key.server, key.dest, this.node);
      });
      return;
    });
  }

  releaseDead(now: number, deadAfterMs: number): Promise<number> {
    return settle(() => {
      const changes = this.#tx("release leases in", () =>
        this.#q(
          `UPDATE fc_leases SET until = ? WHERE until <> ? AND node <> ? AND node IN
             (SELECT node FROM fc_nodes WHERE heartbeat_at < ?)`,
        ).run(RELEASED_UNTIL, RELEASED_UNTIL, this.node, now - deadAfterMs).changes);
      return Number(changes);
    });
  }

  publish(records: readonly SharedRecord[]): Promise<void> {
    return settle(() => {
      if (records.length === 0) return;
      const distinct = distinctRecords(records);
      this.#tx("publish to", () => {
        const upsert = this.#q(
          `INSERT INTO synced_files(${RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(input_file, server, dest) DO UPDATE SET
             transported_file_basename = excluded.transported_file_basename,
             url = excluded.url, remote_path = excluded.remote_path,
             fingerprint = excluded.fingerprint, node = excluded.node,
             synced_at = excluded.synced_at, source_stat = excluded.source_stat`,
        );
        const drop = this.#q(`DELETE FROM fc_leases WHERE ${KEY_WHERE} AND node = ?`);
        const log = this.#q(PUBLISHED_CHANGE_SQL);
        for (const { record: r } of distinct) {
          upsert.run(...recordValues(r));
          drop.run(r.input_file, r.server, r.dest, this.node);
          log.run(r.input_file, r.server, r.dest);
        }
      });
      return;
    });
  }

  unpublish(keys: readonly SharedKey[]): Promise<void> {
    return settle(() => {
      if (keys.length === 0) return;
      const distinct = distinctKeys(keys);
      this.#tx("unpublish from", () => {
        const del = this.#q(`DELETE FROM synced_files WHERE ${KEY_WHERE}`);
        const log = this.#q(REMOVED_CHANGE_SQL);
        for (const { key: k } of distinct) {
          if (Number(del.run(k.input_file, k.server, k.dest).changes) > 0) {
            log.run(k.input_file, k.server, k.dest);
          }
        }
      });
      return;
    });
  }

  get(key: SharedKey): Promise<SharedRecord | undefined> {
    return settle(() => {
      const row = this.#read(
        "read",
        () =>
          this.#q(`SELECT ${RECORD_COLUMNS} FROM synced_files WHERE ${KEY_WHERE}`)
            .get(key.input_file, key.server, key.dest),
      ) as RecordRow | undefined;
      return row ? toRecord(row) : undefined;
    });
  }

  urlFor(inputFile: string, server?: string): Promise<string | undefined> {
    return settle(() => {
      const row = this.#read("read", () =>
        server === undefined
          ? this.#q(
            "SELECT url FROM synced_files WHERE input_file = ? ORDER BY server, dest LIMIT 1",
          ).get(inputFile)
          : this.#q(
            "SELECT url FROM synced_files WHERE input_file = ? AND server = ? ORDER BY dest LIMIT 1",
          ).get(inputFile, server)) as { url: string } | undefined;
      return row?.url;
    });
  }

  changesSince(cursor: number, limit: number): Promise<RecordChange[]> {
    return settle(() => this.#read("read", () => readChanges(this.#prepare, cursor, limit)));
  }

  feed(): Promise<FeedBounds> {
    return settle(() => this.#read("read", () => readFeedBounds(this.#prepare)));
  }

  pruneChanges(now: number, retentionMs: number): Promise<number> {
    return settle(() => this.#tx("prune", () => pruneFeed(this.#prepare, now, retentionMs)));
  }

  records(after: string, limit: number): Promise<RecordPage> {
    return settle(() => {
      const rows = this.#read("read", () => {
        if (after === "") {
          return this.#q(
            `SELECT ${RECORD_COLUMNS} FROM synced_files ORDER BY input_file, server, dest LIMIT ?`,
          ).all(limit);
        }
        const [i, s, d] = after.split("\0");
        return this.#q(
          `SELECT ${RECORD_COLUMNS} FROM synced_files
           WHERE (input_file, server, dest) > (?, ?, ?)
           ORDER BY input_file, server, dest LIMIT ?`,
        ).all(i ?? "", s ?? "", d ?? "", limit);
      }) as unknown as RecordRow[];
      const records = rows.map(toRecord);
      const last = records[records.length - 1];
      return { records, next: last ? keyId(last) : after };
    });
  }

  putServerHealth(row: SharedServerHealth): Promise<void> {
    return settle(() => {
      this.#tx("write to", () => {
        this.#q(
          `INSERT INTO fc_server_health(server, node, failing_since, last_error, last_ok, updated_at)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT(server, node) DO UPDATE SET failing_since = excluded.failing_since,
             last_error = excluded.last_error, last_ok = excluded.last_ok,
             updated_at = excluded.updated_at`,
        ).run(row.server, row.node, row.failing_since, row.last_error, row.last_ok, row.updated_at);
      });
      return;
    });
  }

  serverHealth(): Promise<SharedServerHealth[]> {
    return settle(() => {
      const rows = this.#read("read", () =>
        this.#q(
          `SELECT server, node, failing_since, last_error, last_ok, updated_at
           FROM fc_server_health ORDER BY server, node`,
        ).all()) as unknown as SharedServerHealth[];
      return rows.map((r) => ({ ...r }));
    });
  }

  close(): Promise<void> {
    return settle(() => {
      this.#stmts.clear();
      try {
        this.#db?.close();
      } catch {
        // Already closed.
      }
      this.#db = undefined;
      return;
    });
  }
}
