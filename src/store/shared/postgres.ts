/**
 * The shared store on PostgreSQL (npm `pg`, node-postgres), through a small
 * pool that replaces broken connections, so the store works again by itself
 * after the server restarts.
 *
 * Rows are keyed by `key_hash` (SHA-256 of input file, server and
 * destination, see `_keys.ts`): a B-tree entry is limited to about 2.7 kB,
 * less than a long path. The column is `char(64)`: every statement passes
 * hashes as `bpchar[]` (or an untyped parameter), never `text[]`, which
 * would compare the column cast to text and read the whole table instead of
 * its key index (every claim and publish would grow with the store).
 *
 * Claims: one statement per batch (`CLAIM_SQL`, one round trip): `INSERT …
 * ON CONFLICT (key_hash) DO UPDATE … WHERE the lease expired OR it is ours`
 * takes the leases of the keys whose record does not hold the fingerprint
 * yet (nor vouches for the stat asked); a conflicting row that is not
 * updated is still locked, so two claimers of one key queue up and exactly
 * one wins. The records are read at the start of the statement, so a record
 * published while it waited for a lock is not seen: the keys it leaves ours
 * whose lease row was already there are read again in a second statement,
 * and those found published are done (no second upload). A lease row
 * outlives its lease: publishing ends it (`until = -1`, writing the row when
 * the key had none) instead of deleting it, and it goes only with its
 * record. So a record published after a claim's snapshot always left a row
 * that the claim met, and a key whose row the claim created (a file never
 * claimed before) needs no second read.
 *
 * Change feed: PostgreSQL sequences hand out numbers in call order but
 * transactions commit in any order, so a follower could read seq 12 before
 * seq 11 commits and never see 11. Instead, each publishing transaction
 * first increments the one row of `fc_feed` and numbers its changes from
 * it. The row stays locked until that transaction commits, so the next
 * publisher takes its numbers only after the previous one committed:
 * changes become visible in `seq` order and a follower never skips one.
 * Publishing is one statement (`PUBLISH_SQL`), so the lock is held for one
 * round trip.
 *
 * @module
 */
import type pg from "pg";
import { distinctItems, distinctKeys, distinctRecords, inOrder, keyId } from "./_keys.ts";
import { toNodeRow, toServerHealth } from "./_keys.ts";
import type { KeyedItem } from "./_keys.ts";
import {
  decideClaim,
  ENDED_UNTIL,
  isDone,
  mineClaim,
  type RecordRow,
  RELEASED_UNTIL,
  toRecord,
} from "./_keys.ts";
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
  CLAIM_SQL,
  END_LEASES_SQL,
  LEASES_SQL,
  MIGRATION_LOCK,
  MIGRATIONS,
  PUBLISH_SQL,
  RECORD_COLUMNS_SQL,
  RECORDS_SQL,
  UNPUBLISH_SQL,
} from "./_postgres_sql.ts";
import { appendChanges, lockFeed, readChanges, readFeedBounds } from "./_postgres_feed.ts";
import { pruneFeed } from "./_postgres_prune.ts";
import { openPool } from "./_postgres_pool.ts";

/** Options of {@linkcode PostgresSharedStore}. */
export interface PostgresSharedOptions {
  /** Connections in the pool (default 3). */
  poolSize?: number;
  /** How long connecting may take, ms (default 5,000). */
  connectTimeoutMs?: number;
  /** The store URL as messages name it, without its password (`redactStoreUrl`). */
  shown: string;
}

const RECORD_COLUMNS = RECORD_COLUMNS_SQL;

// Named statements: each connection parses them once, and PostgreSQL may keep one plan for each,
// made while the tables were small (a new fleet's first batches). Both reach their rows through
// the tables' indexes whatever their sizes (see `CLAIM_SQL`), so a kept plan stays right as they
// grow (`tests/store/shared_postgres_plan_test.ts`).
const CLAIM_QUERY = { name: "fc_claim", text: CLAIM_SQL };
const PUBLISH_QUERY = { name: "fc_publish", text: PUBLISH_SQL };

type Client = pg.PoolClient;

/** The shared store on PostgreSQL. */
export class PostgresSharedStore extends ClaimsInBatches implements SharedStore {
  readonly kind = "postgres" as const;
  readonly node: string;
  readonly #pool: pg.Pool;
  readonly #shown: string;
  #startedAt: number | undefined;

  /**
   * @param url The parsed store URL (see `url.ts`).
   * @param node This daemon's node name.
   * @param options Pool size, connect timeout and the URL for messages.
   */
  constructor(
    url: ServerUrl,
    node: string,
    options: PostgresSharedOptions,
  ) {
    super();
    this.node = node;
    this.#shown = options.shown;
    this.#pool = openPool(url, node, options);
  }

  /** Runs `fn` on one pooled connection, classifying connection failures. */
  #with<T>(action: string, fn: (c: Client) => Promise<T>): Promise<T> {
    return withDbErrors(this.#shown, action, async () => {
      const client = await this.#pool.connect();
      let broken = false;
      try {
        return await fn(client);
      } catch (e) {
        // A connection whose query failed mid-way may be unusable: do not reuse it.
        broken = true;
        throw e;
      } finally {
        client.release(broken);
      }
    });
  }

  /** Runs `fn` in one transaction (run again when it loses a race, see `withDbErrors`). */
  #tx<T>(action: string, fn: (c: Client) => Promise<T>): Promise<T> {
    return this.#with(action, async (c) => {
      await c.query("BEGIN");
      try {
        const out = await fn(c);
        await c.query("COMMIT");
        return out;
      } catch (e) {
        await c.query("ROLLBACK").catch(() => {});
        throw e;
      }
    });
  }

  migrate(): Promise<void> {
    return this.#tx("migrate", async (c) => {
      // Held until COMMIT: a second migrating process waits here, then finds the new version.
      await c.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
      await c.query("CREATE TABLE IF NOT EXISTS fc_schema(version integer NOT NULL)");
      const r = await c.query<{ v: number | null }>("SELECT max(version) AS v FROM fc_schema");
      const current = r.rows[0]?.v ?? 0;
      if (current > MIGRATIONS.length) {
        throw new Error(
          `Cannot use the shared store "${this.#shown}": its schema version ${current} ` +
            `is newer than this fileconveyor knows (${MIGRATIONS.length})`,
        );
      }
      for (let v = current; v < MIGRATIONS.length; v++) await c.query(MIGRATIONS[v]!);
      if (current < MIGRATIONS.length) {
        await c.query("DELETE FROM fc_schema");
        await c.query("INSERT INTO fc_schema(version) VALUES ($1)", [MIGRATIONS.length]);
      }
    });
  }

  heartbeat(
    info: { queued: number; failed: number; now: number; version: string; cursor?: number },
  ): Promise<void> {
    this.#startedAt ??= info.now;
    const startedAt = this.#startedAt;
    return this.#with("write to", async (c) => {
      await c.query(
        `INSERT INTO fc_nodes(node, started_at, heartbeat_at, queued, failed, version, feed_cursor)
         VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7::bigint, 0))
         ON CONFLICT (node) DO UPDATE SET started_at = EXCLUDED.started_at,
           heartbeat_at = EXCLUDED.heartbeat_at, queued = EXCLUDED.queued,
           failed = EXCLUDED.failed, version = EXCLUDED.version,
           feed_cursor = COALESCE($7::bigint, fc_nodes.feed_cursor)`,
        [
          this.node,
          startedAt,
          info.now,
          info.queued,
          info.failed,
          info.version,
          info.cursor ?? null,
        ],
      );
    });
  }

  nodes(): Promise<NodeRow[]> {
    return this.#with("read", async (c) => {
      const r = await c.query(
        `SELECT node, started_at, heartbeat_at, queued, failed, version, feed_cursor
         FROM fc_nodes ORDER BY heartbeat_at DESC, node`,
      );
      return r.rows.map(toNodeRow);
    });
  }

  async claimMany(items: readonly ClaimItem[], now: number, leaseMs: number): Promise<Claim[]> {
    if (items.length === 0) return [];
    const distinct = distinctItems(items);
    const hashes = distinct.map((i) => i.hash);
    // One statement, hence one round trip and its own transaction (see the module doc).
    const rows = await this.#with("claim in", async (c) => {
      const r = await c.query(CLAIM_QUERY, [
        hashes,
        distinct.map((i) => i.key.input_file),
        distinct.map((i) => i.key.server),
        distinct.map((i) => i.key.dest),
        distinct.map((i) => i.fingerprint),
        this.node,
        now + leaseMs,
        now,
        distinct.map((i) => i.stat?.id ?? ""),
        // An integer for the bigint column (see `statVouches`).
        distinct.map((i) => Math.floor(i.stat?.after ?? 0)),
      ]);
      return r.rows;
    });
    const byHash = new Map(rows.map((row) => [row.key_hash as string, row]));
    const out = new Map<string, Claim>();
    const unknown: KeyedItem[] = [];
    // Keys whose lease row was there before the claim took it (see #recheckMine).
    const existed = new Set<string>();
    for (const item of distinct) {
      const row = byHash.get(item.hash);
      const record = row?.input_file != null ? toRecord(row as RecordRow) : undefined;
      let lease: { node: string; until: number } | undefined;
      if (row?.mine_until != null) lease = { node: this.node, until: Number(row.mine_until) };
      else if (row?.lease_node != null && Number(row.lease_until) > ENDED_UNTIL) {
        // An ended lease is none: one taken since is read back below.
        lease = { node: row.lease_node, until: Number(row.lease_until) };
      }
      if (
        row?.mine_until == null && !isDone(item, record) &&
        (!lease || lease.node === this.node)
      ) {
        // Neither taken nor visible: another claimer inserted the lease after this
        // statement's snapshot and we waited for it; read it back. (A lease taken here is
        // known from `mine_until`: reading it back would cost every "mine" a round trip.)
        unknown.push(item);
        continue;
      }
      // What the row said when we took it: another node's lease (expired or released), taken
      // over; an ended one is no lease.
      const from = row?.mine_prev_node != null && row.mine_prev_node !== this.node &&
          Number(row.mine_prev_until) > ENDED_UNTIL
        ? row.mine_prev_node as string
        : undefined;
      out.set(item.id, decideClaim(item, record, lease, this.node, from));
      if (row?.mine_until != null && row.mine_prev_until != null) existed.add(item.id);
    }
    if (unknown.length > 0) {
      const leases = await this.#with("claim in", async (c) => {
        const r = await c.query(
          LEASES_SQL,
          [unknown.map((u) => u.hash)],
        );
        return new Map(r.rows.map((row) => [row.key_hash as string, row]));
      });
      for (const item of unknown) {
        const l = leases.get(item.hash);
        // A lease gone since (its holder published or released) is busy for a moment:
        // asking again decides.
        // The lease row was there: its "mine" is checked again below.
        existed.add(item.id);
        out.set(
          item.id,
          !l || Number(l.until) <= ENDED_UNTIL
            ? { kind: "busy", node: "", until: now }
            : l.node !== this.node
            ? { kind: "busy", node: l.node, until: Number(l.until) }
            : { kind: "mine", until: Number(l.until) },
        );
      }
    }
    await this.#recheckMine(distinct.filter((i) => existed.has(i.id)), out);
    return inOrder(items, out);
  }

  /**
   * The claim statement reads the records at its start; when it waited for
   * the lock of a lease whose holder then published and ended it, the lease
   * is ours but the record it published was not seen. A second statement (a
   * new snapshot, after our lease is committed) sees every record published
   * before: those keys are done, and our lease on them ends; the others are
   * "mine" with the record as it is now.
   *
   * Only keys whose lease row was there before the claim are read again
   * (`existing`): a record is published together with a lease row of its key
   * (`PUBLISH_SQL`), and rows are deleted only with their record, so a
   * record committed after the claim's snapshot left a row that the claim
   * met (committed, or locked until then). A key claimed for the first time
   * (every new file) costs one round trip.
   */
  async #recheckMine(existing: readonly KeyedItem[], out: Map<string, Claim>): Promise<void> {
    const mine = existing.filter((i) => out.get(i.id)?.kind === "mine");
    if (mine.length === 0) return;
    const rows = await this.#with("claim in", async (c) => {
      const r = await c.query(
        RECORDS_SQL,
        [mine.map((i) => i.hash)],
      );
      return new Map(r.rows.map((row) => [row.key_hash as string, row as RecordRow]));
    });
    const done: KeyedItem[] = [];
    for (const item of mine) {
      const row = rows.get(item.hash);
      const record = row ? toRecord(row) : undefined;
      const { until, from } = out.get(item.id) as { until: number; from?: string };
      if (isDone(item, record)) {
        done.push(item);
        out.set(item.id, { kind: "done", record });
      } else out.set(item.id, mineClaim(until, record, from));
    }
    if (done.length === 0) return;
    await this.#with(
      "claim in",
      (c) =>
        c.query(END_LEASES_SQL, [
          done.map((i) => i.hash),
          this.node,
        ]),
    );
  }

  renew(key: SharedKey, now: number, leaseMs: number): Promise<boolean> {
    const [item] = distinctKeys([key]);
    return this.#with("renew a lease in", async (c) => {
      const r = await c.query(
        "UPDATE fc_leases SET until = $1 WHERE key_hash = $2 AND node = $3 AND until > $4",
        [now + leaseMs, item!.hash, this.node, RELEASED_UNTIL],
      );
      return (r.rowCount ?? 0) > 0;
    });
  }

  release(key: SharedKey): Promise<void> {
    const [item] = distinctKeys([key]);
    return this.#with("release a lease in", async (c) => {
      await c.query(END_LEASES_SQL, [[item!.hash], this.node]);
    });
  }

  releaseDead(now: number, deadAfterMs: number): Promise<number> {
    return this.#with("release leases in", async (c) => {
      const r = await c.query(
        // `until > 0` as written, so the index of the leases held serves (see the migrations).
        `UPDATE fc_leases SET until = $3 WHERE until > 0 AND node <> $1 AND node IN
           (SELECT node FROM fc_nodes WHERE heartbeat_at < $2)`,
        [this.node, now - deadAfterMs, RELEASED_UNTIL],
      );
      return r.rowCount ?? 0;
    });
  }

  publish(records: readonly SharedRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    const distinct = distinctRecords(records);
    const col = <K extends keyof SharedRecord>(k: K) => distinct.map((d) => d.record[k]);
    // One statement, hence one round trip and its own transaction (see the module doc).
    return this.#with("publish to", async (c) => {
      await c.query(PUBLISH_QUERY, [
        distinct.map((d) => d.hash),
        col("input_file"),
        col("server"),
        col("dest"),
        col("transported_file_basename"),
        col("url"),
        col("remote_path"),
        col("fingerprint"),
        col("node"),
        col("synced_at"),
        this.node,
        distinct.map((d) => d.record.source_stat ?? ""),
      ]);
    });
  }

  unpublish(keys: readonly SharedKey[]): Promise<void> {
    if (keys.length === 0) return Promise.resolve();
    const distinct = distinctKeys(keys);
    return this.#tx("unpublish from", async (c) => {
      // The feed first, as in PUBLISH_SQL: every feed writer locks in the same order.
      await lockFeed(c);
      const r = await c.query<{ key_hash: string }>(
        UNPUBLISH_SQL,
        [distinct.map((d) => d.hash)],
      );
      const gone = new Set(r.rows.map((row) => row.key_hash));
      await appendChanges(c, distinct.filter((d) => gone.has(d.hash)), true);
    });
  }

  get(key: SharedKey): Promise<SharedRecord | undefined> {
    const [item] = distinctKeys([key]);
    return this.#with("read", async (c) => {
      const r = await c.query(`SELECT ${RECORD_COLUMNS} FROM synced_files WHERE key_hash = $1`, [
        item!.hash,
      ]);
      const row = r.rows[0] as RecordRow | undefined;
      return row && keyId(row) === item!.id ? toRecord(row) : undefined;
    });
  }

  urlFor(inputFile: string, server?: string): Promise<string | undefined> {
    return this.#with("read", async (c) => {
      const r = server === undefined
        ? await c.query(
          "SELECT url FROM synced_files WHERE input_file = $1 ORDER BY server, dest LIMIT 1",
          [inputFile],
        )
        : await c.query(
          `SELECT url FROM synced_files WHERE input_file = $1 AND server = $2
           ORDER BY dest LIMIT 1`,
          [inputFile, server],
        );
      return r.rows[0]?.url as string | undefined;
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
      const r = await c.query(
        `SELECT key_hash, ${RECORD_COLUMNS} FROM synced_files WHERE key_hash > $1
         ORDER BY key_hash LIMIT $2`,
        [after, limit],
      );
      const last = r.rows[r.rows.length - 1];
      return {
        records: r.rows.map((row) => toRecord(row as RecordRow)),
        next: last ? String(last.key_hash) : after,
      };
    });
  }

  putServerHealth(row: SharedServerHealth): Promise<void> {
    return this.#with("write to", async (c) => {
      await c.query(
        `INSERT INTO fc_server_health(server, node, failing_since, last_error, last_ok, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (server, node) DO UPDATE SET failing_since = EXCLUDED.failing_since,
           last_error = EXCLUDED.last_error, last_ok = EXCLUDED.last_ok,
           updated_at = EXCLUDED.updated_at`,
        [row.server, row.node, row.failing_since, row.last_error, row.last_ok, row.updated_at],
      );
    });
  }

  serverHealth(): Promise<SharedServerHealth[]> {
    return this.#with("read", async (c) => {
      const r = await c.query(
        `SELECT server, node, failing_since, last_error, last_ok, updated_at
         FROM fc_server_health ORDER BY server, node`,
      );
      return r.rows.map(toServerHealth);
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
