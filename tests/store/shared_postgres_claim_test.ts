/**
 * How the PostgreSQL shared store claims: a key never claimed before is
 * claimed in one round trip per batch; a key whose lease row was there is
 * read again after the claim, which is what finds a record published while
 * the claim waited for that row (no second upload). Against the real server,
 * with the store's own statements; the round trips are counted on the `pg`
 * client the store uses.
 *
 * @module
 */
import pg from "pg";
import { openSharedStore } from "../../src/store/shared/open.ts";
import { distinctRecords } from "../../src/store/shared/_keys.ts";
import { PUBLISH_SQL } from "../../src/store/shared/_postgres_sql.ts";
import type { SharedKey, SharedRecord, SharedStore } from "../../src/store/shared/types.ts";
import { assert, assertEquals } from "../_assert.ts";
import { sleep } from "../_harness.ts";
import { freshDatabase } from "../_servers.ts";

const key = (name: string): SharedKey => ({
  input_file: `/srv/site/${name}`,
  server: "cdn",
  dest: "",
});

const recordOf = (k: SharedKey, fingerprint: string, node: string): SharedRecord => ({
  ...k,
  transported_file_basename: "f.css",
  url: "https://cdn.example/f.css",
  remote_path: "f.css",
  fingerprint,
  node,
  synced_at: 1,
  source_stat: "",
});

/** Runs `t` with two migrated stores (nodes n1, n2) and a client of their fresh database. */
async function onFreshStores(
  t: (n1: SharedStore, n2: SharedStore, client: pg.Client) => Promise<void>,
): Promise<void> {
  const db = await freshDatabase("postgres");
  const n1 = await openSharedStore(db.url, "n1");
  const n2 = await openSharedStore(db.url, "n2");
  const client = new pg.Client({ connectionString: db.url });
  try {
    await n1.migrate();
    await client.connect();
    await t(n1, n2, client);
  } finally {
    await client.end().catch(() => {});
    await n1.close().catch(() => {});
    await n2.close().catch(() => {});
    await db.drop().catch(() => {});
  }
}

/** Runs `fn` and returns how many queries every `pg` client of this process sent meanwhile. */
async function counted<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const proto = pg.Client.prototype as unknown as { query: (...a: unknown[]) => unknown };
  const query = proto.query;
  let n = 0;
  proto.query = function (this: unknown, ...a: unknown[]) {
    n++;
    return query.apply(this, a);
  };
  try {
    return [await fn(), n];
  } finally {
    proto.query = query;
  }
}

Deno.test("shared store (postgres): new keys are claimed in one round trip; keys with a lease row are read again", async () => {
  await onFreshStores(async (n1, n2) => {
    const keys = Array.from({ length: 64 }, (_, i) => key(`new${i}.css`));
    const ask = (fp: string) => keys.map((k) => ({ key: k, fingerprint: fp }));
    const [first, trips] = await counted(() => n1.claimMany(ask("a"), 1_000, 60_000));
    assert(first.every((c) => c.kind === "mine"), JSON.stringify(first));
    assertEquals(trips, 1, "a batch of keys never claimed: one statement");
    await n1.publish(keys.map((k) => recordOf(k, "a", "n1")));
    // Published: the same content is done, a new one is "mine" after a second read (the rows
    // stay, ended, for that reason).
    const [done, doneTrips] = await counted(() => n2.claimMany(ask("a"), 2_000, 60_000));
    assert(done.every((c) => c.kind === "done"), JSON.stringify(done));
    assertEquals(doneTrips, 1);
    const [changed, changedTrips] = await counted(() => n2.claimMany(ask("b"), 2_000, 60_000));
    assert(
      changed.every((c) => c.kind === "mine" && c.from === undefined),
      JSON.stringify(changed),
    );
    assertEquals(changedTrips, 2, "keys whose lease row was there: the claim, then a read");
    // A released lease is still taken over with its node named.
    await n2.release(keys[0]!);
    const [again] = await n1.claimMany(ask("b").slice(0, 1), 3_000, 60_000);
    assertEquals(again?.kind, "mine");
    assertEquals((again as { from?: string }).from, undefined, "a lease given back names no node");
  });
});

Deno.test("shared store (postgres): a record published while a claim waited for its lease row is done, not claimed", async () => {
  await onFreshStores(async (n1, _n2, client) => {
    const k = key("race.css");
    const published = recordOf(k, "r", "n2");
    const [d] = distinctRecords([published]);
    // Node n2 publishes in a transaction held open: its record and its lease row are written,
    // not yet committed.
    await client.query("BEGIN");
    await client.query(PUBLISH_SQL, [
      [d!.hash],
      [k.input_file],
      [k.server],
      [k.dest],
      [published.transported_file_basename],
      [published.url],
      [published.remote_path],
      [published.fingerprint],
      [published.node],
      [published.synced_at],
      "n2",
      [published.source_stat],
    ]);
    // n1 claims the same content: its snapshot is taken before that commit, then it waits for
    // the lease row.
    const claim = n1.claim(k, "r", Date.now(), 60_000);
    let waiting = false;
    for (let i = 0; i < 100 && !waiting; i++) {
      const r = await client.query(
        `SELECT count(*) AS n FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'`,
      );
      waiting = Number(r.rows[0].n) > 0;
      if (!waiting) await sleep(50);
    }
    assert(waiting, "the claim did not wait for the lease row");
    await client.query("COMMIT");
    const c = await claim;
    assertEquals(c.kind, "done", JSON.stringify(c));
    // Its lease on the key ended with it: the key is free for the next change.
    const row = await client.query("SELECT node, until FROM fc_leases");
    assertEquals(row.rows.map((r) => [r.node, Number(r.until)]), [["n1", -1]]);
  });
});
