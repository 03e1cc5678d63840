/**
 * The conformance suite of the shared store: one set of cases every
 * implementation (SQLite, PostgreSQL, MariaDB) passes against a real
 * database. `shared_conformance_test.ts` runs it per backend.
 *
 * @module
 */
import { StoreUnavailable } from "../../src/errors.ts";
import { fingerprint } from "../../src/pipeline/fleet_keys.ts";
import { askAgain } from "../../src/pipeline/fleet_lease.ts";
import type { SharedKey, SharedRecord, SharedStore } from "../../src/store/shared/types.ts";
import { assert, assertEquals } from "../_assert.ts";

/** What the suite needs from a backend. */
export interface SuiteBackend {
  /** Opens a new store object (its own connections) on the backend's test database. */
  open(node: string): Promise<SharedStore>;
  /**
   * A store URL whose server does not answer (a closed port), with a password
   * the error message must not show; undefined where there is no server.
   */
  unreachableUrl?: string;
  /** The password inside `unreachableUrl`. */
  unreachablePassword?: string;
  /** Stops the database server, keeping its data (undefined where there is none). */
  stop?(): Promise<void>;
  /** Starts the stopped database server again. */
  start?(): Promise<void>;
}

/** A test step runner (Deno's `t.step`). */
type Step = (name: string, fn: () => Promise<void>) => Promise<unknown>;

let counter = 0;
/** A key no other case uses. */
function key(name: string, server = "cdn", dest = ""): SharedKey {
  counter++;
  return {
    input_file: `/srv/site/files/${name}-${counter}-${crypto.randomUUID()}.css`,
    server,
    dest,
  };
}

function record(
  k: SharedKey,
  node: string,
  fingerprint: string,
  now = 1_000,
  sourceStat = "",
): SharedRecord {
  const base = k.input_file.split("/").pop()!;
  return {
    ...k,
    transported_file_basename: base,
    url: `https://cdn.example/${base}`,
    remote_path: `static/${base}`,
    fingerprint,
    node,
    synced_at: now,
    source_stat: sourceStat,
  };
}

/**
 * Runs every case against one backend.
 *
 * @param step `t.step` of the enclosing test.
 * @param backend The backend under test.
 */
export async function runSharedStoreSuite(step: Step, backend: SuiteBackend): Promise<void> {
  const a = await backend.open("node-a");
  const b = await backend.open("node-b");
  try {
    await step("migrate() twice and concurrently is harmless", async () => {
      const others = await Promise.all([1, 2, 3].map((i) => backend.open(`migrator-${i}`)));
      try {
        await Promise.all([a.migrate(), b.migrate(), ...others.map((s) => s.migrate())]);
        await a.migrate();
      } finally {
        await Promise.all(others.map((s) => s.close()));
      }
      assertEquals(await a.get(key("none")), undefined);
    });

    await step("heartbeat() lists nodes, newest first", async () => {
      await a.heartbeat({ queued: 3, failed: 1, now: 10_000, version: "1.0" });
      await b.heartbeat({ queued: 0, failed: 0, now: 20_000, version: "1.1" });
      await a.heartbeat({ queued: 2, failed: 0, now: 15_000, version: "1.0" });
      const rows = (await a.nodes()).filter((n) => n.node === "node-a" || n.node === "node-b");
      assertEquals(rows.map((n) => n.node), ["node-b", "node-a"]);
      assertEquals(rows[1], {
        node: "node-a",
        started_at: 10_000,
        heartbeat_at: 15_000,
        queued: 2,
        failed: 0,
        version: "1.0",
        cursor: 0,
      });
    });

    await step("claim(): mine, busy for another node, takeover after expiry", async () => {
      const k = key("lease");
      const mine = await a.claim(k, "fp1", 1_000, 500);
      assertEquals(mine, { kind: "mine", until: 1_500 });
      assertEquals(await b.claim(k, "fp1", 1_200, 500), {
        kind: "busy",
        node: "node-a",
        until: 1_500,
      });
      // The owner claiming again renews.
      assertEquals(await a.claim(k, "fp1", 1_300, 500), { kind: "mine", until: 1_800 });
      // Taken over: the answer names the node that held it (it may have uploaded).
      assertEquals(await b.claim(k, "fp1", 1_800, 500), {
        kind: "mine",
        until: 2_300,
        from: "node-a",
      });
      // A claim of one's own lease again names nobody.
      assertEquals(await b.claim(k, "fp1", 1_850, 500), { kind: "mine", until: 2_350 });
      assertEquals(await a.renew(k, 1_900, 500), false);
      assertEquals(await b.renew(k, 1_900, 500), true);
      assertEquals(await a.claim(k, "fp1", 2_000, 500), {
        kind: "busy",
        node: "node-b",
        until: 2_400,
      });
    });

    await step("claim() after publish: same fingerprint done, another one mine", async () => {
      const k = key("done");
      assertEquals((await a.claim(k, "v1", 1_000, 60_000)).kind, "mine");
      const rec = record(k, "node-a", "v1", 1_100);
      await a.publish([rec]);
      assertEquals(await b.claim(k, "v1", 1_200, 60_000), { kind: "done", record: rec });
      // publish dropped node-a's lease, so a changed file is free to claim at once; "mine"
      // comes with the record of other content.
      assertEquals(await b.claim(k, "v2", 1_200, 60_000), {
        kind: "mine",
        until: 61_200,
        record: rec,
      });
      assertEquals(await a.claim(k, "v2", 1_300, 60_000), {
        kind: "busy",
        node: "node-b",
        until: 61_200,
      });
    });

    await step(
      "a claim asking to upload again (after a lost lease) is mine over a record of the same content",
      async () => {
        // The fingerprint a node asks with after its late transfer may have overwritten another
        // node's upload (`askAgain`, fleet_lease.ts): every backend must take it as text.
        const k = key("again");
        const fp = fingerprint(20_007, 1_700_000_000_123, "0123456789abcdef0123456789abcdef");
        assertEquals((await a.claim(k, fp, 1_000, 60_000)).kind, "mine");
        const rec = record(k, "node-a", fp, 1_100);
        await a.publish([rec]);
        assertEquals((await b.claim(k, fp, 1_200, 60_000)).kind, "done");
        assertEquals(await b.claim(k, askAgain(fp), 1_200, 60_000), {
          kind: "mine",
          until: 61_200,
          record: rec,
        });
      },
    );

    await step("a lost lease: renew() is false, and the other node's record is taken", async () => {
      const k = key("lost");
      assertEquals(await a.claim(k, "same", 1_000, 500), { kind: "mine", until: 1_500 });
      // node-a was too slow: its lease expired and node-b took the file over and published it.
      assertEquals(await b.claim(k, "same", 2_000, 500), {
        kind: "mine",
        until: 2_500,
        from: "node-a",
      });
      const theirs = record(k, "node-b", "same", 2_100);
      await b.publish([theirs]);
      assertEquals(await a.renew(k, 2_200, 500), false);
      // Asking again: the content node-a was uploading is done, with node-b's record.
      assertEquals(await a.claim(k, "same", 2_300, 500), { kind: "done", record: theirs });
      // Other content than the record holds is free to claim (node-b's lease went with its publish).
      assertEquals(await a.claim(k, "changed", 2_300, 500), {
        kind: "mine",
        until: 2_800,
        record: theirs,
      });
    });

    await step("release() frees the lease; another node's release does nothing", async () => {
      const k = key("release");
      await a.claim(k, "f", 1_000, 60_000);
      await b.release(k);
      assertEquals((await b.claim(k, "f", 1_000, 60_000)).kind, "busy");
      await a.release(k);
      assertEquals(await b.claim(k, "f", 1_000, 60_000), { kind: "mine", until: 61_000 });
    });

    await step("releaseDead() frees the leases of silent nodes only", async () => {
      const dead = await backend.open("node-dead");
      try {
        await dead.heartbeat({ queued: 0, failed: 0, now: 100_000, version: "1" });
        await a.heartbeat({ queued: 0, failed: 0, now: 190_000, version: "1" });
        const k1 = key("dead1");
        const k2 = key("dead2");
        const k3 = key("alive");
        await dead.claimMany(
          [{ key: k1, fingerprint: "x" }, { key: k2, fingerprint: "x" }],
          100_000,
          1e9,
        );
        await a.claim(k3, "x", 190_000, 1e9);
        assertEquals((await b.claim(k1, "x", 195_000, 1_000)).kind, "busy");
        const released = await b.releaseDead(200_000, 60_000);
        assertEquals(released >= 2, true, `released ${released}`);
        // Released once: a second round finds nothing more to release.
        assertEquals(await b.releaseDead(200_000, 60_000), 0);
        // The claim that takes a released lease names the silent node.
        assertEquals(await b.claim(k1, "x", 200_000, 1_000), {
          kind: "mine",
          until: 201_000,
          from: "node-dead",
        });
        assertEquals((await b.claim(k3, "x", 200_000, 1_000)).kind, "busy");
        // The silent node cannot renew what was released, even before anyone claimed it.
        assertEquals(await dead.renew(k2, 200_000, 1_000), false);
        assertEquals((await a.claimMany([{ key: k2, fingerprint: "x" }], 200_000, 1_000))[0], {
          kind: "mine",
          until: 201_000,
          from: "node-dead",
        });
      } finally {
        await dead.close();
      }
    });

    await step("claimMany() answers a mixed batch in order", async () => {
      const done = key("m-done");
      const busy = key("m-busy");
      const fresh = key("m-fresh");
      const changed = key("m-changed");
      const old = record(changed, "node-b", "old");
      await b.publish([record(done, "node-b", "same"), old]);
      await b.claim(busy, "x", 5_000, 10_000);
      const out = await a.claimMany(
        [
          { key: fresh, fingerprint: "n" },
          { key: done, fingerprint: "same" },
          { key: busy, fingerprint: "x" },
          { key: changed, fingerprint: "new" },
          { key: fresh, fingerprint: "n" },
        ],
        6_000,
        1_000,
      );
      assertEquals(out.map((c) => c.kind), ["mine", "done", "busy", "mine", "mine"]);
      assertEquals(out[2], { kind: "busy", node: "node-b", until: 15_000 });
      assertEquals(out[0], { kind: "mine", until: 7_000 });
      assertEquals(out[3], { kind: "mine", until: 7_000, record: old });
      assertEquals(await a.claimMany([], 0, 1), []);
    });

    await step("8 stores claiming at once: exactly one gets mine", async () => {
      const stores = await Promise.all(
        Array.from({ length: 8 }, (_, i) => backend.open(`racer-${i}`)),
      );
      try {
        for (let round = 0; round < 3; round++) {
          const keys = Array.from({ length: 20 }, () => key("race"));
          const results = await Promise.all(
            stores.map((s) =>
              s.claimMany(keys.map((k) => ({ key: k, fingerprint: "r" })), 1_000, 60_000)
            ),
          );
          for (let i = 0; i < keys.length; i++) {
            const kinds = results.map((r) => r[i]!.kind);
            assertEquals(kinds.filter((k) => k === "mine").length, 1, `key ${i}: ${kinds}`);
            assertEquals(kinds.filter((k) => k === "busy").length, 7, `key ${i}: ${kinds}`);
          }
          const single = key("race-one");
          const one = await Promise.all(stores.map((s) => s.claim(single, "r", 1_000, 60_000)));
          assertEquals(one.filter((c) => c.kind === "mine").length, 1);
        }
      } finally {
        await Promise.all(stores.map((s) => s.close()));
      }
    });

    await step("publish() is idempotent and fills the original columns", async () => {
      const k = key("pub", "cdn", "images");
      const rec = record(k, "node-a", "p1", 2_000);
      await a.publish([rec]);
      await a.publish([rec, rec]);
      assertEquals(await b.get(k), rec);
      assertEquals(await b.get({ ...k, dest: "" }), undefined);
      const newer = {
        ...rec,
        url: "https://cdn.example/v2.css",
        fingerprint: "p2",
        node: "node-b",
      };
      await b.publish([newer]);
      assertEquals(await a.get(k), newer);
    });

    await step("a record's source stat travels with it: get, claim, feed, copy", async () => {
      const k = key("stat");
      const stat = "120:1700000000123.25:1700000000000:4242";
      const fp = fingerprint(120, 1_700_000_000_123.25, "0123456789abcdef0123456789abcdef");
      const start = await lastSeq(a);
      const rec = record(k, "node-a", fp, 1_700_000_005_000, stat);
      await a.publish([rec]);
      assertEquals(await b.get(k), rec);
      assertEquals(await b.claim(k, fp, 2_000, 60_000), { kind: "done", record: rec });
      const feed = await b.changesSince(start, 100);
      assertEquals(feed.find((c) => c.key.input_file === k.input_file)?.record, rec);
      let after = "";
      let found: SharedRecord | undefined;
      for (;;) {
        const page = await b.records(after, 1000);
        found ??= page.records.find((r) => r.input_file === k.input_file);
        if (page.records.length < 1000) break;
        after = page.next;
      }
      assertEquals(found, rec);
      // A newer upload without a stat (an older node's) does not keep the old one.
      const plain = { ...rec, fingerprint: "other", source_stat: "" };
      await b.publish([plain]);
      assertEquals(await a.get(k), plain);
    });

    await step(
      "a claim with the file's stat: done when the record vouches for it, not racy, not another stat",
      async () => {
        const stat = "120:1700000000123.25:1700000000000:4242";
        const fp = fingerprint(120, 1_700_000_000_123.25, "0123456789abcdef0123456789abcdef");
        const at = 1_700_000_005_000;
        const k = key("vouch");
        // node-a holds the file (a lease claimed earlier); node-b's record comes in meanwhile.
        assertEquals((await a.claim(k, "unread", 1_000, 60_000)).kind, "mine");
        const rec = record(k, "node-b", fp, at, stat);
        await b.publish([rec]);
        // Synced at the racy bound, not after it: the stat vouches for nothing.
        assertEquals(await a.claim(k, "unread", 2_000, 60_000, { id: stat, after: at }), {
          kind: "mine",
          until: 62_000,
          record: rec,
        });
        // Another stat (another change time: the file was written since): not done.
        const other = "120:1700000000123.25:1700000000001:4242";
        assertEquals(await a.claim(k, "unread", 2_000, 60_000, { id: other, after: at - 1 }), {
          kind: "mine",
          until: 62_000,
          record: rec,
        });
        // The same stat, synced after its racy bound: done with the record, and node-a's
        // lease went (node-b may claim other content at once).
        assertEquals(await a.claim(k, "unread", 3_000, 60_000, { id: stat, after: at - 1 }), {
          kind: "done",
          record: rec,
        });
        assertEquals(await b.claim(k, "new", 3_000, 60_000), {
          kind: "mine",
          until: 63_000,
          record: rec,
        });

        // In a batch, each item by its own stat; a record without a stat vouches for none.
        const v = key("vouch-batch");
        const racy = key("vouch-racy");
        const plain = key("vouch-plain");
        const vRec = record(v, "node-b", fp, at, stat);
        const racyRec = record(racy, "node-b", fp, at, stat);
        const plainRec = record(plain, "node-b", fp, at, "");
        await b.publish([vRec, racyRec, plainRec]);
        const out = await a.claimMany(
          [
            { key: racy, fingerprint: "unread", stat: { id: stat, after: at } },
            { key: v, fingerprint: "unread", stat: { id: stat, after: at - 1 } },
            { key: plain, fingerprint: "unread", stat: { id: "", after: 0 } },
          ],
          4_000,
          60_000,
        );
        assertEquals(out, [
          { kind: "mine", until: 64_000, record: racyRec },
          { kind: "done", record: vRec },
          { kind: "mine", until: 64_000, record: plainRec },
        ]);
        // The fingerprint still decides alone when no stat is asked.
        assertEquals(await b.claim(v, fp, 5_000, 60_000), { kind: "done", record: vRec });
      },
    );

    await step("unpublish() removes records and is idempotent", async () => {
      const k = key("unpub");
      await a.publish([record(k, "node-a", "u")]);
      await a.unpublish([k]);
      await a.unpublish([k]);
      await b.unpublish([key("never")]);
      assertEquals(await b.get(k), undefined);
      assertEquals(await b.urlFor(k.input_file), undefined);
    });

    await step("urlFor() finds a file's URL on any server or on one", async () => {
      const k1 = key("url", "alpha");
      const k2 = { ...k1, server: "beta" };
      await a.publish([record(k1, "node-a", "1"), {
        ...record(k2, "node-b", "1"),
        url: "https://b/x",
      }]);
      assertEquals(await b.urlFor(k1.input_file), record(k1, "node-a", "1").url);
      assertEquals(await b.urlFor(k1.input_file, "beta"), "https://b/x");
      assertEquals(await b.urlFor(k1.input_file, "gamma"), undefined);
    });

    await step("changesSince() returns changes in order, from a cursor", async () => {
      const start = await lastSeq(a);
      const k1 = key("feed1");
      const k2 = key("feed2");
      await a.publish([record(k1, "node-a", "1")]);
      await b.publish([record(k2, "node-b", "1")]);
      await a.unpublish([k1]);
      const all = await b.changesSince(start, 100);
      assertEquals(all.length, 3);
      assert(all[0]!.seq > start && all[0]!.seq < all[1]!.seq && all[1]!.seq < all[2]!.seq);
      assertEquals(all.map((c) => c.key.input_file), [k1.input_file, k2.input_file, k1.input_file]);
      assertEquals(all[1]!.record, record(k2, "node-b", "1"));
      assertEquals(all[2]!.record, undefined);
      const page = await b.changesSince(start, 2);
      assertEquals(page.map((c) => c.seq), all.slice(0, 2).map((c) => c.seq));
      assertEquals((await b.changesSince(page[1]!.seq, 10)).map((c) => c.seq), [all[2]!.seq]);
      assertEquals(await b.changesSince(all[2]!.seq, 10), []);
    });

    await step(
      "changesSince() with concurrent publishers: a follower sees every change once",
      async () => {
        const start = await lastSeq(a);
        const writers = await Promise.all([1, 2, 3, 4].map((i) => backend.open(`writer-${i}`)));
        const expected = new Set<string>();
        const seen: number[] = [];
        const seenKeys = new Set<string>();
        let cursor = start;
        let writing = true;
        const follow = async () => {
          while (true) {
            const stop = !writing;
            const page = await b.changesSince(cursor, 50);
            for (const c of page) {
              seen.push(c.seq);
              seenKeys.add(c.key.input_file);
              cursor = c.seq;
            }
            if (stop && page.length === 0) return;
            if (page.length === 0) await new Promise((r) => setTimeout(r, 2));
          }
        };
        const follower = follow();
        try {
          await Promise.all(writers.map(async (w, i) => {
            for (let n = 0; n < 15; n++) {
              const batch = [key(`w${i}`), key(`w${i}`)];
              for (const k of batch) expected.add(k.input_file);
              await w.publish(batch.map((k) => record(k, w.node, "f")));
            }
          }));
        } finally {
          writing = false;
          await follower;
          await Promise.all(writers.map((w) => w.close()));
        }
        assertEquals(seen.length, expected.size, "every change exactly once");
        assertEquals(new Set(seen).size, seen.length, "no change twice");
        assertEquals([...seen].sort((x, y) => x - y), seen, "in order");
        for (const k of expected) assert(seenKeys.has(k), `missed ${k}`);
      },
    );

    await step("long paths and non-ASCII names are keys like any other", async () => {
      const long = { ...key("long"), input_file: `/srv/${"d".repeat(250)}/`.repeat(16) + "f.css" };
      const caseTwin = { ...long, input_file: long.input_file.replace("f.css", "F.css") };
      const uni = { ...key("uni"), input_file: "/srv/files/Ünïcødé 文件 🎉.png" };
      assert(long.input_file.length > 4000);
      assertEquals(
        (await a.claimMany(
          [
            { key: long, fingerprint: "l" },
            { key: caseTwin, fingerprint: "l" },
            { key: uni, fingerprint: "u" },
          ],
          1_000,
          1_000,
        )).map((c) => c.kind),
        ["mine", "mine", "mine"],
      );
      await a.publish([record(long, "node-a", "l"), record(uni, "node-a", "u")]);
      assertEquals(await b.get(long), record(long, "node-a", "l"));
      assertEquals(await b.get(caseTwin), undefined);
      assertEquals(await b.get(uni), record(uni, "node-a", "u"));
      assertEquals(await b.urlFor(long.input_file), record(long, "node-a", "l").url);
      assertEquals(await b.urlFor(caseTwin.input_file), undefined);
      assertEquals((await b.claim(long, "l", 1_000, 1_000)).kind, "done");
    });

    await step("server health is stored per server and node", async () => {
      const h = {
        server: "cdn-health",
        node: "node-a",
        failing_since: 5_000,
        last_error: "Cannot connect",
        last_ok: 4_000,
        updated_at: 5_500,
      };
      await a.putServerHealth(h);
      await b.putServerHealth({ ...h, node: "node-b", failing_since: null, last_error: null });
      await a.putServerHealth({ ...h, updated_at: 6_000 });
      const rows = (await b.serverHealth()).filter((r) => r.server === "cdn-health");
      assertEquals(rows, [
        { ...h, updated_at: 6_000 },
        { ...h, node: "node-b", failing_since: null, last_error: null },
      ]);
    });

    await step(
      "pruneChanges(): up to the lowest cursor of nodes heard from; the newest stays",
      async () => {
        // Far later than the other cases' heartbeats: only this case's nodes count.
        const now = 50_000_000;
        const keep = 1_000_000;
        const p1 = await backend.open("prune-1");
        const p2 = await backend.open("prune-2");
        const old = await backend.open("prune-old");
        try {
          const keys = [key("prune1"), key("prune2"), key("prune3")];
          for (const k of keys) await a.publish([record(k, "node-a", "p")]);
          const head = (await a.feed()).head;
          assertEquals((await a.changesSince(head - 3, 10)).map((c) => c.seq), [
            head - 2,
            head - 1,
            head,
          ]);
          await p1.heartbeat({ queued: 0, failed: 0, now, version: "1", cursor: head });
          await p2.heartbeat({ queued: 0, failed: 0, now, version: "1", cursor: head - 2 });
          // Gone longer than the retention, far behind: it holds nothing back.
          await old.heartbeat({
            queued: 0,
            failed: 0,
            now: now - 2 * keep,
            version: "1",
            cursor: 1,
          });
          assert(await a.pruneChanges(now, keep) >= 1);
          assertEquals((await b.feed()).pruned, head - 2);
          assertEquals((await b.changesSince(0, 10)).map((c) => c.seq), [head - 1, head]);
          // Without a cursor the heartbeat keeps the last one.
          await p2.heartbeat({ queued: 0, failed: 0, now, version: "1" });
          assertEquals((await a.nodes()).find((n) => n.node === "prune-2")?.cursor, head - 2);
          // Every node read everything: all but the newest change go.
          await p2.heartbeat({ queued: 0, failed: 0, now, version: "1", cursor: head });
          await Promise.all([a.pruneChanges(now, keep), b.pruneChanges(now, keep)]);
          assertEquals(await b.feed(), { pruned: head - 1, head });
          assertEquals((await b.changesSince(0, 10)).map((c) => c.seq), [head]);
          assertEquals(await a.pruneChanges(now, keep), 0);
          // The node that was gone comes back behind the pruned range: a gap before the first
          // change tells it, and it starts over from the records, page by page.
          const first = (await old.changesSince(1, 10))[0]!;
          assert(first.seq > 2 && (await old.feed()).pruned >= 2);
          const seen = new Map<string, SharedRecord>();
          let after = "";
          for (let page = 0; page < 10_000; page++) {
            const p = await old.records(after, 7);
            for (const r of p.records) {
              assert(!seen.has(r.input_file + r.server + r.dest), "a record twice");
              seen.set(r.input_file + r.server + r.dest, r);
            }
            after = p.next;
            if (p.records.length < 7) break;
          }
          for (const k of keys) {
            assertEquals(seen.get(k.input_file + k.server + k.dest), record(k, "node-a", "p"));
          }
          assertEquals(seen.size, (await old.records("", 100_000)).records.length);
          await a.unpublish([keys[0]!]);
          assertEquals((await b.feed()).head, head + 1);
        } finally {
          await Promise.all([p1.close(), p2.close(), old.close()]);
        }
      },
    );

    if (backend.unreachableUrl) {
      const url = backend.unreachableUrl;
      await step(
        "an unreachable database is StoreUnavailable, quickly, without the password",
        async () => {
          const { openSharedStore } = await import("../../src/store/shared/open.ts");
          const s = await openSharedStore(url, "node-x", { connectTimeoutMs: 2_000 });
          const t0 = Date.now();
          try {
            await s.migrate();
            throw new Error("migrate() on a closed port succeeded");
          } catch (e) {
            assert(
              e instanceof StoreUnavailable,
              `got ${(e as Error).name}: ${(e as Error).message}`,
            );
            const pw = backend.unreachablePassword!;
            assert(!(e as Error).message.includes(pw), `password in "${(e as Error).message}"`);
            assert(!String((e as Error).stack).includes(pw), "password in the stack");
          } finally {
            await s.close();
          }
          assert(Date.now() - t0 < 5_000, `took ${Date.now() - t0} ms`);
        },
      );
    }

    if (backend.stop && backend.start) {
      const { stop, start } = backend;
      await step(
        "while the database is down: StoreUnavailable; after it restarts the same store works",
        async () => {
          const k = key("restart");
          await a.publish([record(k, "node-a", "r1")]);
          await stop();
          try {
            for (const call of [() => a.get(k), () => a.claim(k, "r2", 1_000, 1_000)]) {
              try {
                await call();
                throw new Error("a call succeeded while the database was stopped");
              } catch (e) {
                assert(
                  e instanceof StoreUnavailable,
                  `got ${(e as Error).name}: ${(e as Error).message}`,
                );
              }
            }
          } finally {
            await start();
          }
          let lastError: unknown;
          let ok = false;
          for (let i = 0; i < 50 && !ok; i++) {
            try {
              assertEquals((await a.get(k))?.fingerprint, "r1");
              ok = true;
            } catch (e) {
              lastError = e;
              assert(
                e instanceof StoreUnavailable,
                `got ${(e as Error).name}: ${(e as Error).message}`,
              );
              await new Promise((r) => setTimeout(r, 200));
            }
          }
          assert(ok, `the store did not recover: ${lastError}`);
          assertEquals((await a.claim(k, "r2", 1_000, 1_000)).kind, "mine");
          await b.publish([record(k, "node-b", "r2")]);
          assertEquals((await a.get(k))?.fingerprint, "r2");
        },
      );
    }
  } finally {
    await a.close();
    await b.close();
  }
}

async function lastSeq(s: SharedStore): Promise<number> {
  let cursor = 0;
  while (true) {
    const page = await s.changesSince(cursor, 1_000);
    if (page.length === 0) return cursor;
    cursor = page[page.length - 1]!.seq;
  }
}
