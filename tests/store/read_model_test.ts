import * as fs from "node:fs";
import { DELETED, MODIFIED } from "../../src/store/events.ts";
import { ReadModel } from "../../src/store/read_model.ts";
import { type Change, NEVER, Store } from "../../src/store/store.ts";
import { assert, assertEquals } from "../_assert.ts";
import { syncedRow } from "../_synced_row.ts";

function withStore(fn: (store: Store, read: ReadModel) => void) {
  const dir = Deno.makeTempDirSync();
  const store = new Store(dir);
  try {
    fn(store, new ReadModel(store));
  } finally {
    store.close();
    fs.rmSync(dir, { recursive: true });
  }
}

Deno.test("ReadModel.queueByServer() counts active, queued, waiting, running and failed jobs", () => {
  withStore((store, read) => {
    const now = 1_000;
    const change = (f: string, server: string): Change => ({
      input_file: f,
      source: "s",
      server,
      dest: "",
      event: MODIFIED,
    });
    store.enqueue(
      [change("/a", "x"), change("/b", "x"), change("/c", "x"), change("/d", "y")],
      now,
    );
    const [running] = store.pick("y", 1, now);
    assert(running);
    const picked = store.pick("x", 2, now);
    store.fail(picked[0]!, "fatal", "denied", NEVER, 5); // failed
    store.requeue(picked[1]!, now + 60_000, "wait"); // waiting
    const rows = new Map(read.queueByServer(now).map((r) => [r.server, { ...r }]));
    assertEquals(rows.get("x"), {
      server: "x",
      active: 2,
      queued: 2,
      waiting: 1,
      running: 0,
      failed: 1,
    });
    assertEquals(rows.get("y"), {
      server: "y",
      active: 1,
      queued: 0,
      waiting: 0,
      running: 1,
      failed: 0,
    });
    assertEquals(read.failedByServer().map((r) => ({ ...r })), [{ server: "x", n: 1 }]);
    const problems = read.problemJobs();
    assertEquals(problems.map((p) => [p.input_file, p.state, p.last_error]), [
      ["/a", "failed", "denied"],
      ["/b", "queued", "wait"],
    ]);
    assertEquals(read.jobState("/a", "x", "")?.state, "failed");
    assertEquals(read.jobState("/zzz", "x", ""), undefined);
    assert(store.retryJob(problems[0]!.id, now));
    assertEquals(read.jobState("/a", "x", "")?.state, "queued");
    assert(!store.retryJob(running.id, now), "a running job is not retried");
  });
});

Deno.test("ReadModel.pendingWork() sums the stored sizes of queued files", () => {
  withStore((store, read) => {
    store.putFile({
      path: "/a",
      dir: "/",
      source: "s",
      is_dir: 0,
      size: 10,
      mtime_ms: 1,
      ctime_ms: 1,
      ino: 1,
    });
    store.putFile({
      path: "/b",
      dir: "/",
      source: "s",
      is_dir: 0,
      size: 5,
      mtime_ms: 1,
      ctime_ms: 1,
      ino: 2,
    });
    store.enqueue(
      ["/a", "/b", "/gone"].map((f) => ({
        input_file: f,
        source: "s",
        server: "x",
        dest: "",
        event: MODIFIED,
      })),
      0,
    );
    store.enqueue(
      [{ input_file: "/later", source: "s", server: "x", dest: "", event: DELETED }],
      0,
      0,
      50,
    );
    assertEquals(read.pendingWork(10).map((r) => ({ ...r })), [
      { server: "x", n: 4, bytes: 15, running: 0, waiting: 1 },
    ]);
  });
});

Deno.test("ReadModel.lagStats() and transferBuckets() summarise the transfer log", () => {
  withStore((store, read) => {
    const t = (at: number, lag: number, server = "x") =>
      store.addTransfer({
        server,
        input_file: "/f",
        remote_path: "f",
        event: MODIFIED,
        bytes: 100,
        ms: 1,
        lag_ms: lag,
      }, at);
    t(60_000, 30);
    t(61_000, 10);
    t(125_000, 20);
    t(125_000, 99, "y");
    assertEquals(read.lagStats("x", 0), { transfers: 3, p50Ms: 20, maxMs: 30 });
    assertEquals(read.lagStats("x", 100_000), { transfers: 1, p50Ms: 20, maxMs: 20 });
    assertEquals(read.lagStats("z", 0), { transfers: 0, p50Ms: null, maxMs: null });
    const buckets = read.transferBuckets(0, 60_000).filter((b) => b.server === "x").map((b) => ({
      ...b,
    }));
    assertEquals(buckets, [
      { server: "x", t: 60_000, files: 2, bytes: 200, lagAvg: 20, lagMax: 30 },
      { server: "x", t: 120_000, files: 1, bytes: 100, lagAvg: 20, lagMax: 20 },
    ]);
  });
});

Deno.test("ReadModel.recordSnapshot(), remotePathRecordedOrAnnounced() and remotePathOwner() answer what verify asks", () => {
  withStore((store, read) => {
    store.putSynced(
      syncedRow("/b", { server: "x", transported_file_basename: "b.txt", remote_path: "b.txt" }),
    );
    store.putSynced(
      syncedRow("/a", { server: "x", transported_file_basename: "a.txt", remote_path: "a.txt" }),
    );
    store.addIntent("x", "c.txt", 1, "/c", "");
    store.enqueue([{ input_file: "/c", source: "s", server: "x", dest: "", event: MODIFIED }], 1);
    const snap = read.recordSnapshot();
    assertEquals(snap.synced.map((r) => r.input_file), ["/a", "/b"]);
    assertEquals(snap.queue.map((j) => j.input_file), ["/c"]);
    assertEquals(snap.intents.map((i) => ({ ...i })), [{ server: "x", remote_path: "c.txt" }]);
    assert(read.remotePathRecordedOrAnnounced("x", "c.txt"), "announced");
    assert(read.remotePathRecordedOrAnnounced("x", "a.txt"), "recorded");
    assert(!read.remotePathRecordedOrAnnounced("y", "c.txt"));
    assert(!read.remotePathRecordedOrAnnounced("x", "zzz"));
    assertEquals({ ...read.remotePathOwner("x", "a.txt") }, { input_file: "/a", dest: "" });
    assertEquals({ ...read.remotePathOwner("x", "c.txt") }, { input_file: "/c", dest: "" });
    assertEquals(read.remotePathOwner("x", "zzz"), undefined);
  });
});

Deno.test("ReadModel.fileState() reads a file's record and its job together", () => {
  withStore((store, read) => {
    assertEquals(read.fileState("/a", "x", ""), { synced: undefined, job: undefined });
    store.putSynced(syncedRow("/a", { server: "x", synced_at: 5 }));
    store.enqueue([{ input_file: "/a", source: "s", server: "x", dest: "", event: MODIFIED }], 1);
    const before = read.fileState("/a", "x", "");
    assertEquals([before.synced?.synced_at, before.job?.state], [5, "queued"]);
    // The upload recorded and its job completed in one commit: the next read sees both.
    const [job] = store.pick("x", 1, 1);
    assert(job);
    store.tx(() => {
      store.putSynced(syncedRow("/a", { server: "x", synced_at: 9 }));
      store.complete(job);
    });
    const after = read.fileState("/a", "x", "");
    assertEquals([after.synced?.synced_at, after.job], [9, undefined]);
  });
});
