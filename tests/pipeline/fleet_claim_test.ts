/**
 * The worker's claim before an upload (`claimUpload`): a file whose MD5 is
 * not known is claimed with its stat and not read, unless a "mine" answer
 * comes with a record of the same size and mtime (an identical copy on
 * another machine): then it is read, and adopted when it is that content.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { type ClaimFleet, type ClaimInput, claimUpload } from "../../src/pipeline/fleet_claim.ts";
import { fingerprint, statAsk, statId, unreadFingerprint } from "../../src/pipeline/fleet_keys.ts";
import type { AdoptedFile } from "../../src/pipeline/fleet_rows.ts";
import type { Fingerprint, PlanInput } from "../../src/pipeline/plan.ts";
import { CREATED } from "../../src/store/events.ts";
import type { Claim, SharedRecord, StatAsk } from "../../src/store/shared/types.ts";
import type { Job } from "../../src/store/store.ts";
import { RACY_MS } from "../../src/watch/_stat.ts";
import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { queuedJob } from "../_job.ts";

const OTHER_MD5 = "0123456789abcdef0123456789abcdef";

function job(file: string, force = 0): Job {
  return queuedJob({ id: 7, input_file: file, force });
}

function recordOf(file: string, fp: string, stat = ""): SharedRecord {
  return {
    input_file: file,
    server: "cdn",
    dest: "",
    transported_file_basename: path.basename(file),
    url: `https://cdn.example/${path.basename(file)}`,
    remote_path: path.basename(file),
    fingerprint: fp,
    node: "other",
    synced_at: Date.now() + 10 * RACY_MS,
    source_stat: stat,
  };
}

/** A fleet that answers every claim with `answer` and notes what it was asked and told. */
function fakeFleet(answer: Claim) {
  const asked: { fp: string; stat: StatAsk | undefined }[] = [];
  const givenBack: number[] = [];
  const adopted: { record: SharedRecord; local: AdoptedFile }[] = [];
  const fleet: ClaimFleet = {
    claim: (_job: Job, _server: string, fp: string, stat?: StatAsk) => {
      asked.push({ fp, stat });
      return Promise.resolve(answer);
    },
    giveBack: (j: Job) => void givenBack.push(j.id),
    md5For: () => undefined,
    vouched: () => undefined,
    adopt: (record: SharedRecord, local: AdoptedFile) => void adopted.push({ record, local }),
  };
  return { fleet, asked, givenBack, adopted };
}

function claimInput(j: Job, stat: Fingerprint, contentMd5?: string): ClaimInput {
  const input = {
    event: CREATED,
    force: j.force,
    observed: { type: "file", stat },
    rootPresent: true,
    held: false,
    stored: undefined,
    route: { chain: "c", processors: false },
    racy: false,
    canMove: false,
    moveFrom: undefined,
    ...(contentMd5 ? { contentMd5 } : {}),
  } as PlanInput;
  return {
    job: j,
    server: "cdn",
    rel: path.basename(j.input_file),
    stat,
    chain: "c",
    processed: false,
    input,
    signal: new AbortController().signal,
  };
}

/** A file on disk, its stat as the worker takes it, and its MD5. */
function aFile(dir: string, name: string, content: string) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, content);
  const st = fs.statSync(file);
  const stat = { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino };
  return { file, stat, md5: createHash("md5").update(content).digest("hex") };
}

/** A stat of a file that does not exist: reading it would fail the claim. */
const UNREADABLE = { size: 12, mtimeMs: 1_700_000_000_123.5, ctimeMs: 1_700_000_000_200, ino: 9 };

Deno.test("claimUpload: the MD5 unknown, 'mine' with the record of an identical copy elsewhere: read, adopted, lease given back", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fc-claim-"));
  try {
    const f = aFile(dir, "a.css", "body{color:red}");
    // Another machine's copy: same size, mtime and content, another inode and change time.
    const elsewhere = { ...f.stat, ino: f.stat.ino + 1, ctimeMs: f.stat.ctimeMs + 5 };
    const rec = recordOf(
      f.file,
      fingerprint(f.stat.size, f.stat.mtimeMs, f.md5),
      statId(elsewhere),
    );
    const t = fakeFleet({ kind: "mine", until: Date.now() + 60_000, record: rec });
    const c = claimInput(job(f.file), f.stat);
    const r = await claimUpload(t.fleet, c);
    // Asked without reading: the stat, and a fingerprint no record holds.
    assertEquals(t.asked, [{ fp: unreadFingerprint(f.stat), stat: statAsk(f.stat, 0) }]);
    assert(r?.adopted, JSON.stringify(r));
    assertEquals(r.kind, "skipped");
    assertEquals(r.remotePath, rec.remote_path);
    assertEquals(t.givenBack, [7], "the lease goes at once, as a 'done' answer drops it");
    assertEquals(t.adopted, []);
    r.record!();
    assertEquals(t.adopted, [{
      record: rec,
      local: { ...f.stat, md5: f.md5, chain: "c", processed: false },
    }]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("claimUpload: the MD5 unknown, 'mine' with a record of the same size and mtime but other content: uploaded, the MD5 kept", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fc-claim-"));
  try {
    const f = aFile(dir, "a.css", "body{color:red}");
    const rec = recordOf(f.file, fingerprint(f.stat.size, f.stat.mtimeMs, OTHER_MD5), "1:2:3:4");
    const t = fakeFleet({ kind: "mine", until: Date.now() + 60_000, record: rec });
    const c = claimInput(job(f.file), f.stat);
    assertEquals(await claimUpload(t.fleet, c), undefined);
    assertEquals(t.givenBack, [], "the lease stays: this node uploads");
    assertEquals(c.input.contentMd5, f.md5, "read once: the upload reuses it");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("claimUpload: the MD5 unknown, 'mine' with no record or one of another size or mtime: uploaded without reading", async () => {
  const j = job("/nonexistent/fc-claim/a.css");
  const head = (size: number, mtime: number) => fingerprint(size, mtime, OTHER_MD5);
  for (
    const record of [
      undefined,
      recordOf(j.input_file, head(UNREADABLE.size + 1, UNREADABLE.mtimeMs)),
      recordOf(j.input_file, head(UNREADABLE.size, UNREADABLE.mtimeMs + 1000)),
    ]
  ) {
    const t = fakeFleet({ kind: "mine", until: 1, ...(record ? { record } : {}) });
    const c = claimInput(j, UNREADABLE);
    // The file does not exist: a read would throw.
    assertEquals(await claimUpload(t.fleet, c), undefined);
    assertEquals(c.input.contentMd5, undefined, "the MD5 comes from the transfer");
    assertEquals(t.givenBack, []);
  }
});

Deno.test("claimUpload: 'done' for the stat asked: adopted with the MD5 the record vouches for, without reading", async () => {
  const j = job("/nonexistent/fc-claim/b.css");
  const rec = recordOf(
    j.input_file,
    fingerprint(UNREADABLE.size, UNREADABLE.mtimeMs, OTHER_MD5),
    statId(UNREADABLE),
  );
  const t = fakeFleet({ kind: "done", record: rec });
  const r = await claimUpload(t.fleet, claimInput(j, UNREADABLE));
  assert(r?.adopted);
  r.record!();
  assertEquals(t.adopted[0]!.local.md5, OTHER_MD5);
  assertEquals(t.givenBack, [], "a 'done' answer holds no lease");
});

Deno.test("claimUpload: a watcher's write, or a known MD5: no stat asked; a known MD5 is never compared again", async () => {
  // force 1: the content is compared, as a single node does; the file is read on "mine".
  const forced = job("/nonexistent/fc-claim/c.css", 1);
  const t1 = fakeFleet({ kind: "mine", until: 1 });
  await claimUpload(t1.fleet, claimInput(forced, UNREADABLE));
  assertEquals(t1.asked, [{ fp: unreadFingerprint(UNREADABLE), stat: undefined }]);
  // Known MD5 (the plan hashed it): the fingerprint decides; a "mine" answer uploads even with
  // a record of the same size and mtime (the store compared the content already).
  const j = job("/nonexistent/fc-claim/d.css");
  const rec = recordOf(j.input_file, fingerprint(UNREADABLE.size, UNREADABLE.mtimeMs, OTHER_MD5));
  const t2 = fakeFleet({ kind: "mine", until: 1, record: rec });
  const md5 = "ffffffffffffffffffffffffffffffff";
  assertEquals(await claimUpload(t2.fleet, claimInput(j, UNREADABLE, md5)), undefined);
  assertEquals(t2.asked, [{
    fp: fingerprint(UNREADABLE.size, UNREADABLE.mtimeMs, md5),
    stat: undefined,
  }]);
  // The file is read only where the rule says so: a missing file on "mine" with a record of
  // the same size and mtime fails the claim (the read is attempted).
  const t3 = fakeFleet({ kind: "mine", until: 1, record: rec });
  await assertRejects(() => claimUpload(t3.fleet, claimInput(j, UNREADABLE)));
});
