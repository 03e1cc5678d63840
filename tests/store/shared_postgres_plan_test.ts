/**
 * The PostgreSQL shared store's statements find records and lease rows by
 * their key index: each claim, re-check, publish and removal touches the
 * rows of its batch, never the whole shared record nor every lease row (one
 * per key published: a lease row outlives its lease), so their cost does not
 * grow with the number of files. Checked on the plans PostgreSQL makes for a
 * store of 20,000 records (analysed), with the statements as the store sends
 * them. And on a store that grew after its connections first ran them,
 * before the server analysed it again (a new fleet's first sync): counted by
 * the server, through the store.
 *
 * @module
 */
import pg from "pg";
import { openSharedStore } from "../../src/store/shared/open.ts";
import { distinctItems } from "../../src/store/shared/_keys.ts";
import {
  CLAIM_SQL,
  END_LEASES_SQL,
  LEASES_SQL,
  PUBLISH_SQL,
  RECORDS_SQL,
  UNPUBLISH_SQL,
} from "../../src/store/shared/_postgres_sql.ts";
import type { SharedKey, SharedRecord, SharedStore } from "../../src/store/shared/types.ts";
import { assert, assertEquals } from "../_assert.ts";
import { sleep } from "../_harness.ts";
import { freshDatabase } from "../_servers.ts";

const RECORDS = 20_000;
const BATCH = 64;
const LEASES = 2000;

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  Plans?: PlanNode[];
}

/** Every table a plan reads from start to end ("Seq Scan"). */
function seqScans(node: PlanNode, out: string[] = []): string[] {
  if (node["Node Type"] === "Seq Scan" && node["Relation Name"]) out.push(node["Relation Name"]);
  for (const child of node.Plans ?? []) seqScans(child, out);
  return out;
}

const key = (i: number) => ({ input_file: `/srv/site/f${i}.css`, server: "cdn", dest: "" });

/** A record of `k` as node n1 publishes it, its remote file named `name`. */
const recordOf = (k: SharedKey, fingerprint: string, name = "f.css"): SharedRecord => ({
  ...k,
  transported_file_basename: name,
  url: `https://cdn.example/${name}`,
  remote_path: name,
  fingerprint,
  node: "n1",
  synced_at: 1,
  source_stat: "",
});

/**
 * Runs `t` with a migrated store of node n1 on a fresh database and a client of that database of
 * its own; closes both and drops the database after.
 */
async function onFreshStore(
  t: (store: SharedStore, client: pg.Client) => Promise<void>,
): Promise<void> {
  const db = await freshDatabase("postgres");
  const store = await openSharedStore(db.url, "n1");
  const client = new pg.Client({ connectionString: db.url });
  try {
    await store.migrate();
    await client.connect();
    await t(store, client);
  } finally {
    await client.end().catch(() => {});
    await store.close().catch(() => {});
    await db.drop().catch(() => {});
  }
}

Deno.test("shared store (postgres): claims, re-checks, publishes and removals read records by key, not the whole table", async () => {
  await onFreshStore(async (store, client) => {
    // A store of many records, and leases of many keys, as a busy fleet has.
    for (let from = 0; from < RECORDS; from += 500) {
      const records: SharedRecord[] = [];
      for (let i = from; i < from + 500; i++) {
        records.push(recordOf(key(i), `10:1:${i}`, `f${i}.css`));
      }
      await store.publish(records);
    }
    const leased = Array.from({ length: LEASES }, (_, i) => ({
      key: key(RECORDS + i),
      fingerprint: "10:1:x",
    }));
    for (let i = 0; i < leased.length; i += 500) {
      await store.claimMany(leased.slice(i, i + 500), Date.now(), 60_000);
    }
    await client.query("ANALYZE");

    // A batch of keys: half recorded, half leased.
    const batch = distinctItems(
      Array.from({ length: BATCH }, (_, i) => ({
        key: key(i % 2 === 0 ? i * 7 : RECORDS + i * 3),
        fingerprint: `10:1:${i}`,
      })),
    );
    const hashes = batch.map((b) => b.hash);
    const col = (f: (b: typeof batch[number]) => unknown) => batch.map(f);
    const statements: [string, string, unknown[]][] = [
      ["claim", CLAIM_SQL, [
        hashes,
        col((b) => b.key.input_file),
        col((b) => b.key.server),
        col((b) => b.key.dest),
        col((b) => b.fingerprint),
        "n1",
        Date.now() + 60_000,
        Date.now(),
        // Some items asked with a stat (files not read), as the claims ahead ask.
        col((b) => b.fingerprint.endsWith("0") ? "" : "10:1:1:7"),
        col(() => 1),
      ]],
      ["publish", PUBLISH_SQL, [
        hashes,
        col((b) => b.key.input_file),
        col((b) => b.key.server),
        col((b) => b.key.dest),
        col(() => "f.css"),
        col(() => "https://cdn.example/f.css"),
        col(() => "f.css"),
        col((b) => b.fingerprint),
        col(() => "n1"),
        col(() => 1),
        "n1",
        col(() => ""),
      ]],
      ["leases", LEASES_SQL, [hashes]],
      ["records", RECORDS_SQL, [hashes]],
      ["drop leases", END_LEASES_SQL, [hashes, "n1"]],
      ["unpublish", UNPUBLISH_SQL, [hashes]],
    ];
    for (const [name, sql, params] of statements) {
      const r = await client.query(`EXPLAIN (FORMAT JSON) ${sql}`, params);
      const plan = (r.rows[0]["QUERY PLAN"] as { Plan: PlanNode }[])[0]!.Plan;
      const scanned = seqScans(plan).filter((t) => t === "synced_files" || t === "fc_leases");
      assertEquals(scanned, [], `${name} reads a whole table: ${JSON.stringify(plan)}`);
    }
    // The store answers as before (the statements above were only planned).
    const [c] = await store.claimMany(
      [{ key: key(14), fingerprint: "10:1:14" }],
      Date.now(),
      60_000,
    );
    assert(c?.kind === "done", JSON.stringify(c));
  });
});

/** Claims the {@linkcode BATCH} keys from `first` on, as a node claims ahead; returns them. */
async function claimBatch(store: SharedStore, first: number): Promise<SharedKey[]> {
  const keys = Array.from({ length: BATCH }, (_, j) => key(first + j));
  await store.claimMany(keys.map((k) => ({ key: k, fingerprint: "10:1:x" })), Date.now(), 60_000);
  return keys;
}

/** Rows of `table` read by whole-table scans, and its index scans, as the server counts them. */
async function scans(
  client: pg.Client,
  table: string,
): Promise<{ seqRead: number; idx: number }> {
  const r = await client.query(
    "SELECT seq_tup_read, idx_scan FROM pg_stat_user_tables WHERE relname = $1",
    [table],
  );
  return { seqRead: Number(r.rows[0].seq_tup_read), idx: Number(r.rows[0].idx_scan ?? 0) };
}

Deno.test("shared store (postgres): a store that grew after its connections first claimed still claims and follows by key", async () => {
  // A new fleet: the store's connections claim and publish while the shared record is empty,
  // then it grows faster than the server re-analyses it (here: not at all). A plan made for the
  // empty table and kept for the connection, or one made from the stale statistics, would
  // read the whole table at every claim and follow: each batch would cost more than the last.
  await onFreshStore(async (store, client) => {
    await client.query("ALTER TABLE synced_files SET (autovacuum_enabled = false)");
    await client.query("ALTER TABLE fc_changes SET (autovacuum_enabled = false)");
    await client.query("ALTER TABLE fc_leases SET (autovacuum_enabled = false)");
    // More than the few executions after which PostgreSQL may keep one plan for a statement.
    for (let i = 0; i < 8; i++) {
      const keys = await claimBatch(store, 1_000_000 + i * BATCH);
      await store.publish(keys.map((k) => recordOf(k, "10:1:x")));
      await store.changesSince(0, 100);
    }
    // The record grows by 20,000 files (and the feed by as many changes), unanalysed.
    await client.query(
      `INSERT INTO synced_files(key_hash, input_file, transported_file_basename, url, server, dest,
         remote_path, fingerprint, node, synced_at)
       SELECT lpad(to_hex(i), 64, '0'), '/srv/site/g' || i || '.css', 'g' || i || '.css',
         'https://cdn.example/g' || i || '.css', 'cdn', '', 'g' || i || '.css', '10:1:' || i, 'n2', 1
       FROM generate_series(1, $1::int) AS i`,
      [RECORDS],
    );
    // Each of them published: an ended lease row per key.
    await client.query(
      `INSERT INTO fc_leases(key_hash, input_file, server, dest, node, until)
       SELECT lpad(to_hex(i), 64, '0'), '/srv/site/g' || i || '.css', 'cdn', '', 'n2', -1
       FROM generate_series(1, $1::int) AS i`,
      [RECORDS],
    );
    const { head } = await store.feed();
    await client.query(
      `INSERT INTO fc_changes(seq, key_hash, input_file, server, dest, removed)
       SELECT $2::bigint + i, lpad(to_hex(i), 64, '0'), '/srv/site/g' || i || '.css', 'cdn', '',
         false
       FROM generate_series(1, $1::int) AS i`,
      [RECORDS, head],
    );
    await client.query("UPDATE fc_feed SET seq = $1 WHERE id = 1", [head + RECORDS]);
    const before = await scans(client, "synced_files");
    const leasesBefore = await scans(client, "fc_leases");
    for (let i = 0; i < 3; i++) await claimBatch(store, 2_000_000 + i * BATCH);
    const changes = await store.changesSince(head + RECORDS - 2000, 2000);
    assertEquals(changes.length, 2000);
    assert(changes.every((c) => c.record?.node === "n2"), "each change comes with its record");
    // A session's counts reach the server's view when it ends: once the store's sessions are
    // gone, every one of them is counted.
    await store.close();
    const storeSessions = async () =>
      Number(
        (await client.query(
          `SELECT count(*) AS n FROM pg_stat_activity
           WHERE datname = current_database() AND application_name = 'fileconveyor n1'`,
        )).rows[0].n,
      );
    for (let i = 0; i < 150 && await storeSessions() > 0; i++) {
      await sleep(100);
    }
    assertEquals(await storeSessions(), 0, "the store's sessions ended");
    const after = await scans(client, "synced_files");
    assert(after.idx > before.idx, "the claims and the follow used the key index");
    assert(
      after.seqRead - before.seqRead < RECORDS,
      `${after.seqRead - before.seqRead} record rows read by whole-table scans`,
    );
    const leasesAfter = await scans(client, "fc_leases");
    assert(leasesAfter.idx > leasesBefore.idx, "the claims used the leases' key index");
    assert(
      leasesAfter.seqRead - leasesBefore.seqRead < RECORDS,
      `${leasesAfter.seqRead - leasesBefore.seqRead} lease rows read by whole-table scans`,
    );
  });
});
