/** Claims made ahead: when an answer serves a job, and how the look ahead moves over the queue. */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  AHEAD_BATCH,
  AHEAD_BATCH_MAX,
  aheadExpired,
  type AheadFile,
  BUSY_FRESH_MS,
  busyWait,
  ClaimAhead,
  shouldJump,
  useAhead,
} from "../../src/pipeline/fleet_ahead.ts";
import { fingerprint, statAsk, statId, unreadFingerprint } from "../../src/pipeline/fleet_keys.ts";
import type { Fingerprint } from "../../src/pipeline/plan.ts";
import { CREATED, DELETED } from "../../src/store/events.ts";
import type { Claim, SharedRecord } from "../../src/store/shared/types.ts";
import { Store } from "../../src/store/store.ts";
import type { Job } from "../../src/store/store.ts";
import { assert, assertEquals } from "../_assert.ts";
import { queuedJob } from "../_job.ts";

const LEASE = 4000;
const NOW = 1_000_000;
const record: SharedRecord = {
  input_file: "/s/a",
  server: "cdn",
  dest: "",
  transported_file_basename: "a",
  url: "http://x/a",
  remote_path: "a",
  fingerprint: "1:2:x",
  node: "other",
  synced_at: 1,
};
const mine = (until: number): Claim => ({ kind: "mine", until });
const busy: Claim = { kind: "busy", node: "other", until: NOW + LEASE };
const done: Claim = { kind: "done", record };

Deno.test("useAhead() serves a job only with the fingerprint claimed, and only while fresh", () => {
  const e = (claim: Claim | undefined, at = NOW) => ({ fingerprint: "fp", claim, at });
  // Every kind × fingerprint × age.
  const cases: [Claim | undefined, string, number, string][] = [
    [undefined, "fp", NOW, "wait"],
    [undefined, "other", NOW, "claim"],
    [mine(NOW + LEASE), "fp", NOW, "use"],
    [mine(NOW + LEASE), "fp", NOW + LEASE / 2, "use"],
    [mine(NOW + LEASE), "fp", NOW + LEASE / 2 + 1, "claim"],
    [mine(NOW + LEASE), "other", NOW, "claim"],
    [busy, "fp", NOW + BUSY_FRESH_MS, "use"],
    [busy, "fp", NOW + BUSY_FRESH_MS + 1, "claim"],
    [busy, "other", NOW, "claim"],
    [done, "fp", NOW + LEASE / 2, "use"],
    [done, "fp", NOW + LEASE / 2 + 1, "claim"],
    [done, "other", NOW, "claim"],
  ];
  for (const [claim, fp, now, want] of cases) {
    assertEquals(useAhead(e(claim), fp, now, LEASE), want, `${claim?.kind} ${fp} +${now - NOW}`);
  }
  assertEquals(aheadExpired(e(undefined, 0), NOW * 10, LEASE), false, "in flight is never old");
});

Deno.test("busyWait() starts short, doubles per wait, and stays within the lease and 2 s", () => {
  const far = NOW + 60_000;
  assertEquals([0, 1, 2, 3, 4, 5, 60].map((r) => busyWait(far, NOW, r)), [
    150,
    300,
    600,
    1200,
    2000,
    2000,
    2000,
  ]);
  assertEquals(busyWait(NOW + 120, NOW, 3), 120, "not past the lease");
  assertEquals(busyWait(NOW - 5, NOW, 0), 100, "an expired lease: a short wait");
});

Deno.test("shouldJump() when most answers say another node works there", () => {
  assertEquals(shouldJump([]), false);
  assertEquals(shouldJump([mine(1), mine(1), busy]), false);
  assertEquals(shouldJump([mine(1), busy]), false);
  assertEquals(shouldJump([mine(1), busy, done]), true);
  assertEquals(shouldJump([done, done]), true);
});

/** A job's file as claimed ahead unread: with its stat, not its MD5. */
function unreadFile(job: Job, stat: Fingerprint): AheadFile {
  return {
    key: { input_file: job.input_file, server: job.server, dest: job.dest },
    fingerprint: unreadFingerprint(stat),
    statAsk: statAsk(stat, job.force),
    stat,
  };
}

/** A queue of `n` upload jobs (ids 1..n) of server "cdn", in memory. */
function fakeQueue(n: number) {
  const jobs: Job[] = Array.from(
    { length: n },
    (_, i) => queuedJob({ id: i + 1, input_file: `/s/f${i + 1}` }),
  );
  const file = (job: Job): AheadFile => ({
    key: { input_file: job.input_file, server: job.server, dest: job.dest },
    fingerprint: `fp${job.id}`,
    md5: "m",
    stat: { size: 1, mtimeMs: 2, ctimeMs: 3, ino: job.id },
  });
  return {
    jobs,
    file,
    deps: {
      peek: (_server: string, limit: number, afterId: number) =>
        jobs.filter((j) => j.id > afterId && j.state === "queued").slice(0, limit),
      lastJobId: () => jobs.at(-1)?.id ?? 0,
      filesOf: (page: readonly Job[]) =>
        page.map((job) => job.event === DELETED ? undefined : file(job)),
    },
  };
}

Deno.test("ClaimAhead plans the next jobs once, hands out answers in order, and each answer once", async () => {
  const q = fakeQueue(200);
  q.jobs[2]!.event = DELETED; // a delete is left to its job
  const ahead = new ClaimAhead(q.deps, () => 0);
  const exclude = new Set([`/s/f1\0cdn\0`]);
  const b = ahead.plan("cdn", exclude);
  assertEquals(b.items.length, AHEAD_BATCH);
  assertEquals(b.entries[0]!.job.id, 2, "the excluded job and the delete are skipped");
  assertEquals(b.entries[1]!.job.id, 4);
  assertEquals(ahead.count("cdn"), AHEAD_BATCH);
  // In flight: nothing to hand out yet, but answers are coming.
  assertEquals(ahead.ready("cdn", 8, NOW, LEASE), { ids: [], wait: true });
  // A second plan goes on after the first.
  const b2 = ahead.plan("cdn", new Set());
  assertEquals(b2.entries[0]!.job.id, b.entries.at(-1)!.job.id + 1);
  const claims = b.items.map((_, i) => i === 1 ? busy : i === 2 ? done : mine(NOW + LEASE));
  b.settle(claims, NOW);
  assertEquals((await b.entries[0]!.answer).kind, "mine");
  const r = ahead.ready("cdn", 3, NOW, LEASE);
  assertEquals(r.ids, [2, 5, 6], "busy ones are not handed out");
  assertEquals(r.wait, true, "the second batch is still in flight");
  assertEquals(ahead.ready("cdn", 1, NOW, LEASE).ids, [7], "handed out once");
  // Handed out: no longer counted (the count decides when to claim the next batch).
  assertEquals(ahead.count("cdn"), 2 * AHEAD_BATCH - 4);
  // A job may write its intent at its pick only under a lease it holds (see Worker.claim).
  const key = (id: number) => q.file(q.jobs[id - 1]!).key;
  assertEquals(ahead.holds(key(2), NOW, LEASE), true, "mine");
  assertEquals(ahead.holds(key(4), NOW, LEASE), false, "busy");
  assertEquals(ahead.holds(key(5), NOW, LEASE), false, "done");
  assertEquals(ahead.holds(key(2), NOW + LEASE / 2 + 1, LEASE), false, "less than half left");
  assertEquals(ahead.holds(key(b2.entries[0]!.job.id), NOW, LEASE), false, "in flight");
  // The MD5 serves only the same file (same stat).
  assertEquals(ahead.md5For(q.file(q.jobs[1]!).key, q.file(q.jobs[1]!).stat), "m");
  assertEquals(
    ahead.md5For(q.file(q.jobs[1]!).key, { ...q.file(q.jobs[1]!).stat, mtimeMs: 9 }),
    undefined,
  );
  const taken = ahead.take(q.file(q.jobs[1]!).key);
  assertEquals(taken?.claim?.kind, "mine");
  assertEquals(ahead.take(q.file(q.jobs[1]!).key), undefined, "an answer serves one job");
  assertEquals(ahead.count("cdn"), 2 * AHEAD_BATCH - 4, "a handed answer taken was not counted");
  const busyOne = ahead.take(key(4));
  assertEquals(busyOne?.claim?.kind, "busy");
  assertEquals(ahead.count("cdn"), 2 * AHEAD_BATCH - 5, "an answer not handed out, taken");
  // A failed round trip drops its entries; their jobs claim on demand.
  const before = ahead.count("cdn");
  b2.fail(new Error("down"));
  assertEquals(ahead.count("cdn"), before - b2.items.length);
  let rejected = false;
  await b2.entries[0]!.answer.catch(() => (rejected = true));
  assert(rejected);
});

Deno.test("ClaimAhead sweeps answers no job took and jumps when another node works there", () => {
  const q = fakeQueue(1000);
  const ahead = new ClaimAhead(q.deps, () => 0.5);
  const b = ahead.plan("cdn", new Set());
  b.settle(b.items.map(() => mine(NOW + LEASE)), NOW);
  assertEquals(ahead.sweep(NOW + LEASE / 2, LEASE).length, 0, "half a lease left: kept");
  const swept = ahead.sweep(NOW + LEASE / 2 + 1, LEASE);
  assertEquals(swept.length, AHEAD_BATCH, "to be released");
  assertEquals(ahead.count("cdn"), 0);
  // Mostly "done": jump halfway between the cursor and the end of the queue.
  const c = ahead.plan("cdn", new Set());
  assertEquals(c.entries[0]!.job.id, AHEAD_BATCH + 1);
  c.settle(c.items.map(() => done), NOW);
  const d = ahead.plan("cdn", new Set());
  const cursor = 2 * AHEAD_BATCH;
  assertEquals(d.entries[0]!.job.id, cursor + Math.floor(0.5 * (1000 - cursor)) + 1);
  // At the end of the queue the look starts over with what it jumped over.
  let ids: number[] = [];
  for (let plans = 0; plans < 10 && !ids.includes(1000); plans++) {
    ids = ahead.plan("cdn", new Set()).entries.map((x) => x.job.id);
  }
  // The batch that reaches the end goes on from the start.
  const end = ids.indexOf(1000);
  assertEquals(ids.slice(end, end + 13), [1000, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  const left = ahead.count("cdn");
  assert(left > 0);
  assertEquals(ahead.drain().length, left);
  assertEquals(ahead.count("cdn"), 0);
});

Deno.test("ClaimAhead claims larger batches while another node works there, and the usual ones again after", () => {
  const q = fakeQueue(5000);
  const ahead = new ClaimAhead(q.deps, () => 0);
  const sizes: number[] = [];
  const round = (claim: (i: number) => Claim) => {
    const b = ahead.plan("cdn", new Set());
    sizes.push(b.items.length);
    b.settle(b.items.map((_, i) => claim(i)), NOW);
    ahead.drain();
  };
  // Mostly "done" or "busy": twice as many each time, up to the most.
  for (let i = 0; i < 5; i++) {
    round((i) => i % 3 === 0 ? mine(NOW + LEASE) : i % 3 === 1 ? done : busy);
  }
  // Mostly "mine": this node works alone here again.
  round(() => mine(NOW + LEASE));
  round(() => mine(NOW + LEASE));
  assertEquals(sizes, [
    AHEAD_BATCH,
    2 * AHEAD_BATCH,
    4 * AHEAD_BATCH,
    AHEAD_BATCH_MAX,
    AHEAD_BATCH_MAX,
    AHEAD_BATCH_MAX,
    AHEAD_BATCH,
  ]);
  assertEquals(4 * AHEAD_BATCH, AHEAD_BATCH_MAX);
});

Deno.test("ClaimAhead does not ask about files whose record it knows: they are done with it, in order", async () => {
  const q = fakeQueue(10);
  // Jobs 2 and 5: another node's record in the mirror vouches for the file as it is.
  const known = (id: number): SharedRecord => ({
    ...record,
    input_file: `/s/f${id}`,
    fingerprint: `fp${id}`,
  });
  const ahead = new ClaimAhead({
    ...q.deps,
    filesOf: (page) =>
      page.map((job) => ({
        ...q.file(job),
        ...(job.id === 2 || job.id === 5 ? { known: known(job.id) } : {}),
      })),
  }, () => 0);
  const b = ahead.plan("cdn", new Set());
  assertEquals(b.entries.map((e) => e.job.id), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assertEquals(
    b.items.map((i) => i.key.input_file),
    [1, 3, 4, 6, 7, 8, 9, 10].map((id) => `/s/f${id}`),
    "only the files whose answer is not known are asked",
  );
  b.settle(b.items.map(() => mine(NOW + LEASE)), NOW);
  assertEquals(b.entries.map((e) => e.claim?.kind), [
    "mine",
    "done",
    "mine",
    "mine",
    "done",
    "mine",
    "mine",
    "mine",
    "mine",
    "mine",
  ]);
  assertEquals(await b.entries[1]!.answer, { kind: "done", record: known(2) });
  // A batch of nothing but known files needs no answers at all.
  const only = new ClaimAhead({
    ...q.deps,
    filesOf: (page) => page.map((job) => ({ ...q.file(job), known: known(job.id) })),
  }, () => 0);
  const c = only.plan("cdn", new Set());
  assertEquals(c.items, []);
  c.settle([], NOW);
  assert(c.entries.length > 0 && c.entries.every((e) => e.claim?.kind === "done"));
});

Deno.test("Queue peek, pickIds and defer: look ahead without marking, take chosen jobs, put off idle ones", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fc-ahead-"));
  const store = new Store(path.join(dir, "db.sqlite"));
  try {
    const now = 1000;
    store.enqueue(
      [1, 2, 3, 4, 5].map((i) => ({
        input_file: `/s/f${i}`,
        source: "s",
        server: "cdn",
        dest: "",
        event: CREATED,
      })),
      now,
    );
    const all = store.peek("cdn", 10, now);
    assertEquals(all.map((j) => j.input_file), [1, 2, 3, 4, 5].map((i) => `/s/f${i}`));
    assertEquals(store.peek("cdn", 2, now, all[2]!.id).map((j) => j.id), [all[3]!.id, all[4]!.id]);
    assertEquals(store.peek("other", 10, now), []);
    assertEquals(store.lastJobId(), all[4]!.id);
    // pickIds takes the chosen ready jobs, in the order given, and marks them running.
    const picked = store.pickIds([all[3]!.id, all[1]!.id], now);
    assertEquals(picked.map((j) => j.id), [all[3]!.id, all[1]!.id]);
    assertEquals(store.pickIds([all[3]!.id], now), [], "running already");
    assertEquals(store.peek("cdn", 10, now).map((j) => j.id), [all[0]!.id, all[2]!.id, all[4]!.id]);
    // defer puts off an idle job only.
    assertEquals(store.defer(all[3]!, now + 500), false, "it runs");
    assertEquals(store.defer(all[0]!, now + 500), true);
    assertEquals(store.peek("cdn", 10, now).map((j) => j.id), [all[2]!.id, all[4]!.id]);
    assertEquals(store.peek("cdn", 10, now + 500)[0]!.requeues, 0, "it never ran");
    // A newer event (a new generation) is not put off with the old one.
    store.enqueue(
      [{ input_file: "/s/f3", source: "s", server: "cdn", dest: "", event: CREATED }],
      now,
    );
    assertEquals(store.defer(all[2]!, now + 500), false);
    assertEquals(store.pick("cdn", 10, now).map((j) => j.id), [all[2]!.id, all[4]!.id]);
  } finally {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("ClaimAhead: a file claimed with its stat carries it; a 'done' answer gives the MD5 its record vouches for", () => {
  const q = fakeQueue(3);
  const md5 = "0123456789abcdef0123456789abcdef";
  const stat = (job: Job) => ({ size: 5, mtimeMs: 1000.5, ctimeMs: 1001, ino: job.id });
  const ahead = new ClaimAhead({
    ...q.deps,
    // Not read: claimed with the stat, as the claimer does without a vouched MD5.
    filesOf: (page: readonly Job[]) => page.map((job) => unreadFile(job, stat(job))),
  }, () => 0);
  const b = ahead.plan("cdn", new Set());
  assertEquals(b.items.map((i) => i.stat), q.jobs.map((j) => statAsk(stat(j), 0)));
  const vouching = (job: Job, fp: string): SharedRecord => ({
    ...record,
    input_file: job.input_file,
    fingerprint: fp,
    source_stat: statId(stat(job)),
    synced_at: 1_000_000,
  });
  const [j1, j2, j3] = q.jobs as [Job, Job, Job];
  b.settle([
    { kind: "done", record: vouching(j1, fingerprint(5, 1000.5, md5)) },
    // Done by the stat, but the record's fingerprint names no MD5: the job reads the file.
    { kind: "done", record: vouching(j2, "5:1000:x") },
    mine(NOW + LEASE),
  ], NOW);
  const e = b.entries;
  assertEquals(e[0]!.md5, md5);
  assertEquals(e[0]!.fingerprint, fingerprint(5, 1000.5, md5), "serves the job that knows the MD5");
  assertEquals(ahead.md5For(e[0]!.key, stat(j1)), md5);
  assertEquals(e[1]!.md5, undefined);
  assertEquals(e[1]!.fingerprint, unreadFingerprint(stat(j2)));
  assertEquals(ahead.md5For(e[2]!.key, stat(j3)), undefined, "'mine': not read");
});

Deno.test("ClaimAhead: a file claimed unread, 'mine' with a record of the same size and mtime: read; of that content, done and given back", () => {
  const q = fakeQueue(4);
  const md5 = "0123456789abcdef0123456789abcdef";
  const stat = (job: Job) => ({ size: 5, mtimeMs: 1000.5, ctimeMs: 1001, ino: job.id });
  const read: number[] = [];
  const ahead = new ClaimAhead({
    ...q.deps,
    filesOf: (page: readonly Job[]) => page.map((job) => unreadFile(job, stat(job))),
    // Job 4's file cannot be read: its job reads it.
    read: (f: AheadFile) => {
      read.push(f.stat.ino);
      return f.stat.ino === 4 ? undefined : md5;
    },
  }, () => 0);
  const b = ahead.plan("cdn", new Set());
  const copy = (fp: string): Claim => ({
    kind: "mine",
    until: NOW + LEASE,
    record: { ...record, fingerprint: fp, source_stat: "5:1000.5:999:1234" },
  });
  const given = b.settle([
    copy(fingerprint(5, 1000.5, md5)), // an identical copy elsewhere
    copy(fingerprint(5, 1000.5, "ffffffffffffffffffffffffffffffff")), // other content
    copy(fingerprint(5, 2000, md5)), // another mtime: other content, not read
    copy(fingerprint(5, 1000.5, md5)), // unreadable now
  ], NOW);
  const e = b.entries;
  assertEquals(read, [1, 2, 4], "only files whose record has their size and mtime are read");
  assertEquals(e.map((x) => x.claim?.kind), ["done", "mine", "mine", "mine"]);
  assertEquals(given, [e[0]], "the lease of the one found done is released by the caller");
  assertEquals(ahead.md5For(e[1]!.key, stat(q.jobs[1]!)), md5, "the job uploads without reading");
  assertEquals(e[1]!.fingerprint, fingerprint(5, 1000.5, md5));
  assertEquals(e[2]!.md5, undefined);
  assertEquals(e[3]!.md5, undefined);
});
