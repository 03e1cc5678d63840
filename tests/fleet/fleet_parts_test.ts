/**
 * The parts of a fleet node against a real shared store (an SQLite file)
 * and a real local store: leases lost to another node, the unpublishing of
 * removed records, the follower starting over when the change feed was
 * pruned past it, and the bound on the local buffer.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { RequeueError } from "../../src/errors.ts";
import { logger } from "../../src/log.ts";
import { admits } from "../../src/pipeline/fleet_buffer.ts";
import { FleetFollower } from "../../src/pipeline/fleet_follow.ts";
import { FleetLeases } from "../../src/pipeline/fleet_lease.ts";
import { FleetLocal } from "../../src/store/fleet_local.ts";
import { openSharedStore } from "../../src/store/shared/open.ts";
import type { SharedKey, SharedRecord, SharedStore } from "../../src/store/shared/types.ts";
import { Store } from "../../src/store/store.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../_assert.ts";
import { withTempStore } from "../_store.ts";
import { sleep } from "../_harness.ts";
import { syncedRow } from "../_synced_row.ts";

const log = logger("test");

async function shared(nodes: string[]) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "fc-fleet-parts-"));
  const url = `sqlite:${path.join(root, "shared.db")}`;
  const stores: SharedStore[] = [];
  for (const n of nodes) {
    const s = await openSharedStore(url, n);
    await s.migrate();
    stores.push(s);
  }
  return {
    root,
    stores,
    async close() {
      for (const s of stores) await s.close();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

function key(name: string): SharedKey {
  return { input_file: `/srv/site/${name}`, server: "cdn", dest: "" };
}

function record(k: SharedKey, node: string, fingerprint: string): SharedRecord {
  return {
    ...k,
    transported_file_basename: path.basename(k.input_file),
    url: `https://cdn.example/${path.basename(k.input_file)}`,
    remote_path: path.basename(k.input_file),
    fingerprint,
    node,
    synced_at: 1_000,
    source_stat: "",
  };
}

Deno.test("FleetLeases: a lease lost while uploading is not recorded; the next claim takes the other node's record", async () => {
  const w = await shared(["a", "b"]);
  const [a, b] = w.stores as [SharedStore, SharedStore];
  const leases = new FleetLeases({ call: (fn) => fn(a), leaseMs: () => 300, log });
  try {
    // The same content: node b took the file over and published it.
    const k = key("same.css");
    leases.claimed(1, k, "v1", await a.claim(k, "v1", Date.now(), 300));
    await leases.confirm(1);
    assertEquals((await b.claim(k, "v1", Date.now() + 1_000, 300)).kind, "mine");
    await b.publish([record(k, "b", "v1")]);
    // The next renewal (every 100 ms) finds the lease gone.
    await sleep(400);
    await assertRejects(() => leases.confirm(1), RequeueError, "took");
    leases.finished(1, false);
    const asked = leases.fingerprintToClaim(k, "v1");
    assertEquals(asked, "v1");
    assertEquals(await a.claim(k, asked, Date.now(), 300), {
      kind: "done",
      record: record(k, "b", "v1"),
    });

    // Other content: this node's late transfer may have replaced node b's, so it uploads again.
    const k2 = key("changed.css");
    leases.claimed(2, k2, "v1", await a.claim(k2, "v1", Date.now(), 300));
    assertEquals((await b.claim(k2, "v2", Date.now() + 1_000, 300)).kind, "mine");
    await b.publish([record(k2, "b", "v2")]);
    await assertRejects(async () => {
      await sleep(400);
      await leases.confirm(2);
    }, RequeueError);
    leases.finished(2, false);
    const again = leases.fingerprintToClaim(k2, "v2");
    assert(again !== "v2");
    const c = await a.claim(k2, again, Date.now(), 300);
    assertEquals(c.kind, "mine");
    leases.claimed(3, k2, "v2", c);
    assertEquals(leases.fingerprintToClaim(k2, "v2"), "v2");
    leases.finished(3, false);

    // A lease that may have run out unnoticed is checked before recording, without waiting
    // for the timer.
    const k3 = key("late.css");
    await a.claim(k3, "v1", Date.now() - 10_000, 100);
    leases.claimed(4, k3, "v1", { kind: "mine", until: Date.now() - 9_900 });
    assertEquals((await b.claim(k3, "v1", Date.now(), 60_000)).kind, "mine");
    await assertRejects(() => leases.confirm(4), RequeueError);
    leases.finished(4, false);
    // Still ours: confirmed by a renewal.
    const k4 = key("mine.css");
    await a.claim(k4, "v1", Date.now(), 60_000);
    leases.claimed(5, k4, "v1", { kind: "mine", until: Date.now() + 10 });
    await leases.confirm(5);
    leases.finished(5, true);

    // A job that ends unrecorded (changed during its transfer) after its lease may have run
    // out unnoticed (the node stalled, no renewal ran): its transfer may have landed after the
    // other node's record of new content, so the next claim uploads again.
    const k5 = key("stalled.css");
    await a.claim(k5, "v1", Date.now() - 10_000, 100);
    leases.claimed(6, k5, "v1", { kind: "mine", until: Date.now() - 9_900 });
    assertEquals((await b.claim(k5, "v2", Date.now(), 60_000)).kind, "mine");
    await b.publish([record(k5, "b", "v2")]);
    leases.finished(6, false);
    const stalled = leases.fingerprintToClaim(k5, "v2");
    assert(stalled !== "v2");
    assertEquals((await a.claim(k5, stalled, Date.now() + 60_000, 300)).kind, "mine");
    // The same ending with a lease well within its length: no other node can have written
    // meanwhile, so the next claim asks for the content as it is.
    const k6 = key("fresh.css");
    leases.claimed(7, k6, "v1", await a.claim(k6, "v1", Date.now(), 60_000));
    leases.finished(7, false);
    assertEquals(leases.fingerprintToClaim(k6, "v2"), "v2");
  } finally {
    leases.stop();
    await w.close();
  }
});

Deno.test("FleetLeases: every lease held is renewed while its job runs, one claimed long before too", async () => {
  const w = await shared(["a", "b"]);
  const [a, b] = w.stores as [SharedStore, SharedStore];
  const leaseMs = 1200;
  const leases = new FleetLeases({ call: (fn) => fn(a), leaseMs: () => leaseMs, log });
  try {
    const ks = ["1.css", "2.css", "3.css"].map(key);
    for (const [i, k] of ks.entries()) {
      leases.claimed(i, k, "v1", await a.claim(k, "v1", Date.now(), leaseMs));
    }
    // Claimed ahead, most of its length gone before its job started.
    const late = key("late.css");
    await a.claim(late, "v1", Date.now() - leaseMs + 300, leaseMs);
    leases.claimed(9, late, "v1", { kind: "mine", until: Date.now() + 300 });
    await sleep(3 * leaseMs);
    for (const k of [...ks, late]) {
      assertEquals((await b.claim(k, "v1", Date.now(), leaseMs)).kind, "busy", k.input_file);
    }
    // A job that ended is not renewed any more.
    leases.finished(0, true);
    await sleep(2 * leaseMs);
    assertEquals((await b.claim(ks[0]!, "v1", Date.now(), leaseMs)).kind, "mine");
    assertEquals((await b.claim(ks[1]!, "v1", Date.now(), leaseMs)).kind, "busy");
  } finally {
    leases.stop();
    await w.close();
  }
});

Deno.test("FleetLocal: every local record removed queues its removal from the shared record", () =>
  withTempStore("fc-fleet-local-", (store) => {
    const local = new FleetLocal(store, "here");
    const row = (file: string) => syncedRow(file, { chain: "", source_md5: "x" });
    store.putSynced(row("/src/old.txt"));
    store.putSynced(row("/src/gone.txt"));
    // An upsert is not a removal.
    store.putSynced({ ...row("/src/gone.txt"), url: "https://cdn.example/v2" });
    assertEquals(local.outboxSize(), 0);
    store.recordMove(store.getSynced("/src/old.txt", "cdn", "")!, row("/src/new.txt"));
    store.recordDeleted("/src/gone.txt", "cdn", "");
    assertEquals(
      local.outbox(10).map((e) => [e.key.input_file, e.record === undefined]),
      [["/src/old.txt", true], ["/src/gone.txt", true]],
    );
    // The count follows the writes of the trigger (it is kept between writes).
    assertEquals(local.outboxSize(), 2);
  }));

Deno.test("FleetLocal: entries sent leave the outbox at once; their rows go with the next outbox write or dropSent()", () =>
  withTempStore("fc-fleet-local-", (store) => {
    const local = new FleetLocal(store, "here");
    const rows = () => Number(store.db.prepare("SELECT COUNT(*) AS n FROM fleet_outbox").get()!.n);
    const rec = (file: string, fp: string): SharedRecord => record(key(file), "here", fp);
    store.tx(() => {
      local.queuePublish(rec("a.css", "1"));
      local.queuePublish(rec("b.css", "1"));
    });
    const sent = local.outbox(10);
    assertEquals(sent.length, 2);
    // b.css changes while the batch is on its way: its new entry is not the one sent.
    store.tx(() => local.queuePublish(rec("b.css", "2")));
    local.published(sent);
    assertEquals(local.outboxSize(), 1);
    const names = () => local.outbox(10).map((e) => path.basename(e.key.input_file));
    assertEquals(local.outbox(10).map((e) => e.record?.fingerprint), ["2"]);
    assertEquals(names(), ["b.css"]);
    assertEquals(rows(), 2);
    // The next write deletes the rows sent, in its own transaction: a rollback keeps them, out
    // of the outbox (they were sent), and the rows go once more entries are sent.
    assertThrows(() =>
      store.tx(() => {
        local.queuePublish(rec("c.css", "1"));
        throw new Error("rolled back");
      })
    );
    assertEquals(rows(), 2);
    assertEquals(names(), ["b.css"]);
    local.published(local.outbox(10));
    assertEquals(local.outboxSize(), 0);
    store.tx(() => local.queuePublish(rec("c.css", "1")));
    assertEquals(rows(), 1);
    local.published(local.outbox(10));
    assertEquals(local.outboxSize(), 0);
    assertEquals(rows(), 1);
    local.dropSent();
    assertEquals(rows(), 0);
    // Batches acknowledged out of order: the older one stays until it is taken, the newer one
    // never comes back, and entries written meanwhile wait.
    store.tx(() => ["d", "e", "f", "g"].forEach((n) => local.queuePublish(rec(`${n}.css`, "1"))));
    const older = local.outbox(2);
    const newer = local.outbox(4).slice(2);
    assertEquals(newer.map((e) => path.basename(e.key.input_file)), ["f.css", "g.css"]);
    local.published(newer);
    assertEquals(names(), ["d.css", "e.css"]);
    store.tx(() => local.queuePublish(rec("h.css", "1")));
    assertEquals(names(), ["d.css", "e.css", "h.css"]);
    assertEquals(local.outboxSize(), 3);
    local.published(older);
    assertEquals(names(), ["h.css"]);
    assertEquals(local.outboxSize(), 1);
    local.dropSent();
    assertEquals(rows(), 1);
  }));

Deno.test("FleetLocal: a record this node published is not mirrored over its own row; the web database re-reads only files whose mirror rows changed", () =>
  withTempStore("fc-fleet-local-", (store) => {
    const local = new FleetLocal(store, "here");
    const mirror = () =>
      store.db.prepare(
        "SELECT input_file, node, fingerprint FROM fleet_records ORDER BY input_file",
      )
        .all().map((r) => [path.basename(String(r.input_file)), r.node, r.fingerprint]);
    const marked = () => [...store.syncedChanged].map((f) => path.basename(f)).sort();
    const [a, b, c] = ["a.css", "b.css", "c.css"].map(key) as SharedKey[];
    // Another node's record of a.css, mirrored before this node recorded a.css itself.
    local.applyChanges([{ seq: 1, key: a!, record: record(a!, "other", "1") }], 1);
    store.putSynced(syncedRow(a!.input_file, { synced_at: 2 }));
    store.syncedChanged = new Set();
    local.applyChanges([
      // Its own record over its row: the older mirror row goes.
      { seq: 2, key: a!, record: record(a!, "here", "2") },
      // Its own record without a row (a data directory wiped): mirrored.
      { seq: 3, key: b!, record: record(b!, "here", "1") },
      { seq: 4, key: c!, record: record(c!, "other", "1") },
    ], 4);
    assertEquals(mirror(), [["b.css", "here", "1"], ["c.css", "other", "1"]]);
    assertEquals(marked(), ["a.css", "b.css", "c.css"]);
    assertEquals(local.mirroredStat(a!), undefined);
    assertEquals(local.mirroredStat(b!)?.fingerprint, "1");
    assertEquals(local.cursor(), 4);
    // Its own record again, and the removal of a key the mirror lacks: nothing changes there.
    store.syncedChanged = new Set();
    local.applyChanges([
      { seq: 5, key: a!, record: record(a!, "here", "3") },
      { seq: 6, key: key("d.css") },
    ], 6);
    assertEquals(marked(), []);
    // Another node's record replaces this node's: mirrored (this node's row still shows first).
    local.applyChanges([{ seq: 7, key: a!, record: record(a!, "other", "4") }, {
      seq: 8,
      key: c!,
    }], 8);
    assertEquals(mirror(), [["a.css", "other", "4"], ["b.css", "here", "1"]]);
    assertEquals(marked(), ["a.css", "c.css"]);
    // A copy of the whole record follows the same rule.
    local.beginRebuild();
    local.rebuildPage([record(a!, "here", "5"), record(b!, "here", "1"), record(c!, "other", "2")]);
    store.syncedChanged = new Set();
    assertEquals(local.finishRebuild(9), 2);
    assertEquals(mirror(), [["b.css", "here", "1"], ["c.css", "other", "2"]]);
    assertEquals(marked(), ["a.css", "c.css"]);
  }));

Deno.test("FleetLocal: the change of a record this node queued is passed over when it comes back; a mirror row of its key still goes", () =>
  withTempStore("fc-fleet-echo-", (store) => {
    const local = new FleetLocal(store, "here");
    const mirror = () =>
      store.db.prepare("SELECT input_file, node FROM fleet_records ORDER BY input_file").all()
        .map((r) => [path.basename(String(r.input_file)), r.node]);
    const [a, b] = ["a.css", "b.css"].map(key) as SharedKey[];
    const mine = record(a!, "here", "1");
    store.tx(() => {
      store.putSynced(syncedRow(a!.input_file, { synced_at: mine.synced_at }));
      local.queuePublish(mine);
    });
    // Another node's record of the key reaches the mirror before this node's change comes back.
    local.applyChanges([{ seq: 1, key: a!, record: record(a!, "other", "0") }], 1);
    assertEquals(mirror(), [["a.css", "other"]]);
    store.syncedChanged = new Set();
    local.applyChanges([{ seq: 2, key: a!, record: mine }], 2);
    assertEquals(mirror(), []);
    assertEquals([...store.syncedChanged].map((f) => path.basename(f)), ["a.css"]);
    // Queued, then its row deleted (its removal is queued): when it comes back it is not
    // mirrored, so the web database does not show the file again until the removal lands.
    const again = { ...record(b!, "here", "1"), synced_at: 2_000 };
    store.tx(() => {
      store.putSynced(syncedRow(b!.input_file, { synced_at: again.synced_at }));
      local.queuePublish(again);
    });
    store.tx(() => store.deleteSynced(b!.input_file, b!.server, b!.dest));
    local.applyChanges([{ seq: 3, key: b!, record: again }], 3);
    assertEquals(mirror(), []);
    // Once passed over it is forgotten: the same record coming again is this node's own without
    // a row here (as after a data directory was wiped), and is mirrored.
    local.applyChanges([{ seq: 4, key: b!, record: again }], 4);
    assertEquals(mirror(), [["b.css", "here"]]);
    assertEquals(local.cursor(), 4);
  }));

Deno.test("FleetFollower: behind a pruned range, the mirror is copied anew, then followed", async () => {
  const w = await shared(["writer", "other"]);
  const [writer, other] = w.stores as [SharedStore, SharedStore];
  const store = new Store(path.join(w.root, "data"));
  try {
    const local = new FleetLocal(store, "here");
    const follower = new FleetFollower(local, (fn) => fn(writer), log);
    const [k1, k2, k3, k4] = ["1.css", "2.css", "3.css", "4.css"].map(key) as SharedKey[];
    await writer.publish([record(k1!, "writer", "a"), record(k2!, "writer", "a")]);
    await writer.publish([record(k3!, "writer", "a")]);
    await follower.follow();
    assertEquals(local.mirrored(), 3);
    const behind = local.cursor();
    // While this node was gone: changes, then read by every node still there, and pruned.
    await writer.unpublish([k1!]);
    await writer.publish([record(k2!, "writer", "b"), record(k4!, "writer", "a")]);
    await writer.publish([record(k3!, "writer", "a")]);
    const head = (await writer.feed()).head;
    const now = Date.now();
    await other.heartbeat({ queued: 0, failed: 0, now, version: "1", cursor: head });
    assert(await writer.pruneChanges(now, 60_000) > 0);
    assert((await writer.feed()).pruned > behind);
    store.syncedChanged = new Set();
    await follower.follow();
    assertEquals(local.cursor(), head);
    const mirror = store.db.prepare(
      "SELECT input_file, fingerprint FROM fleet_records ORDER BY input_file",
    ).all().map((r) => [r.input_file, r.fingerprint]);
    assertEquals(mirror, [[k2!.input_file, "b"], [k3!.input_file, "a"], [k4!.input_file, "a"]]);
    // The web database re-reads the files whose rows differ, not the others.
    assertEquals(
      [...store.syncedChanged].sort(),
      [k1!.input_file, k2!.input_file, k4!.input_file].sort(),
    );
    // Then the feed again.
    await writer.unpublish([k4!]);
    await follower.follow();
    assertEquals(local.mirrored(), 2);
  } finally {
    store.close();
    await w.close();
  }
});

Deno.test("admits(): a batch is held only while the store is unreachable and the buffer would overflow", () => {
  // [reachable, holding, entries, n, limit] → admitted
  const table: [boolean, boolean, number, number, number, boolean][] = [
    [true, false, 0, 1, 1, true],
    [true, false, 10, 5, 1, true],
    [true, true, 1e9, 1, 1, true],
    [false, false, 0, 1, 1, true],
    [false, false, 0, 0, 1, true],
    [false, false, 5, 5, 10, true],
    [false, false, 5, 6, 10, false],
    [false, false, 0, 2, 1, false],
    [false, false, 11, 0, 10, false],
    [false, true, 0, 0, 10, false],
    [false, true, 0, 1, 10, false],
  ];
  for (const [reachable, holding, entries, n, limit, want] of table) {
    assertEquals(
      admits({ reachable, holding, entries, n, limit }),
      want,
      JSON.stringify({ reachable, holding, entries, n, limit }),
    );
  }
});
