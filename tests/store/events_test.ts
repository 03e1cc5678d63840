import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  CREATED,
  DELETED,
  type FileEvent,
  MERGE,
  mergeEvents,
  MODIFIED,
} from "../../src/store/events.ts";
import { Store } from "../../src/store/store.ts";
import { assert, assertEquals } from "../_assert.ts";

const ALL: FileEvent[] = [CREATED, MODIFIED, DELETED];

Deno.test("mergeEvents() follows the combination table for every pair", () => {
  const expected: Record<string, FileEvent | null> = {
    "1,1": CREATED,
    "1,2": CREATED,
    "1,4": null,
    "2,1": MODIFIED,
    "2,2": MODIFIED,
    "2,4": DELETED,
    "4,1": MODIFIED,
    "4,2": MODIFIED,
    "4,4": DELETED,
  };
  for (const a of ALL) {
    for (const b of ALL) {
      assertEquals(mergeEvents(a, b), expected[`${a},${b}`], `${a} then ${b}`);
      assertEquals(MERGE[a][b], expected[`${a},${b}`]);
    }
  }
});

Deno.test("mergeEvents() of any sequence ends in the state the last event implies", () => {
  // Exhaustive over all sequences up to length 4: after merging, a last
  // DELETED must end as deleted or cancelled, anything else as an upload.
  const seqs: FileEvent[][] = [[]];
  for (let n = 0; n < 4; n++) {
    for (const s of [...seqs]) for (const e of ALL) seqs.push([...s, e]);
  }
  for (const seq of seqs.filter((s) => s.length > 0)) {
    let q: FileEvent | null = null;
    for (const e of seq) q = q === null ? e : mergeEvents(q, e);
    const last = seq.at(-1)!;
    if (last === DELETED) assert(q === DELETED || q === null, `${seq} → ${q}`);
    else assert(q === CREATED || q === MODIFIED, `${seq} → ${q}`);
  }
});

function store() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fc-store-"));
  return { s: new Store(dir), dir, done: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

const change = (event: FileEvent) => ({
  input_file: "/src/a.css",
  source: "s",
  server: "cdn",
  dest: "",
  event,
});

Deno.test("Store.enqueue() merges per file and destination; cancels only untouched work", () => {
  const { s, done } = store();
  try {
    s.enqueue([change(CREATED)], 1000);
    s.enqueue([change(MODIFIED)], 1001);
    let rows = s.q("SELECT event, gen FROM queue").all() as { event: number; gen: number }[];
    assertEquals(rows, [{ event: CREATED, gen: 1 }]);
    s.enqueue([change(DELETED)], 1002);
    assertEquals(s.q("SELECT COUNT(*) AS n FROM queue").get(), { n: 0 });
    // Running work is never cancelled: it becomes a delete.
    s.enqueue([change(CREATED)], 1003);
    const [job] = s.pick("cdn", 10, 2000);
    s.enqueue([change(DELETED)], 1004);
    rows = s.q("SELECT event, gen FROM queue").all() as { event: number; gen: number }[];
    assertEquals(rows[0]!.event, DELETED);
    // Completing the stale job keeps the newer event queued.
    s.complete(job!);
    const left = s.q("SELECT event, running FROM queue").all();
    assertEquals(left, [{ event: DELETED, running: 0 }]);
    // Another destination of the same file is separate work.
    s.enqueue([{ ...change(CREATED), dest: "static" }], 1005);
    assertEquals((s.q("SELECT COUNT(*) AS n FROM queue").get() as { n: number }).n, 2);
  } finally {
    s.close();
    done();
  }
});

Deno.test("Store.pick() takes uploads before deletes and respects ready_at", () => {
  const { s, done } = store();
  try {
    s.enqueue([{ ...change(DELETED), input_file: "/src/d" }], 1000);
    s.enqueue([{ ...change(CREATED), input_file: "/src/c" }], 1001);
    s.enqueue([{ ...change(CREATED), input_file: "/src/later" }], 5000);
    const jobs = s.pick("cdn", 10, 2000);
    assertEquals(jobs.map((j) => j.input_file), ["/src/c", "/src/d"]);
    assertEquals(s.pick("cdn", 10, 2000).length, 0, "running jobs are not picked twice");
  } finally {
    s.close();
    done();
  }
});

Deno.test("Store.fail() backs off, marks failed after N attempts, and a new event resets it", () => {
  const { s, done } = store();
  try {
    s.enqueue([change(CREATED)], 0);
    for (let i = 1; i <= 3; i++) {
      const [job] = s.pick("cdn", 1, 10_000_000);
      s.fail(job!, "retry", `boom ${i}`, 100 * i, 3);
    }
    let row = s.q("SELECT state, attempts, last_error FROM queue").get();
    assertEquals(row, { state: "failed", attempts: 3, last_error: "boom 3" });
    assertEquals(s.pick("cdn", 1, 10_000_000).length, 0, "failed jobs are not picked");
    s.enqueue([change(MODIFIED)], 50);
    row = s.q("SELECT state, attempts, last_error FROM queue").get();
    assertEquals(row, { state: "queued", attempts: 0, last_error: null });
    const [job] = s.pick("cdn", 1, 10_000_000);
    s.fail(job!, "fatal", "bad file", 100, 10);
    assertEquals(s.q("SELECT state FROM queue").get(), { state: "failed" });
    assertEquals(s.retryFailed(0), 1);
    assertEquals(s.q("SELECT state, attempts FROM queue").get(), { state: "queued", attempts: 0 });
  } finally {
    s.close();
    done();
  }
});

Deno.test("Store files live in private files and survive reopening", () => {
  const { s, dir, done } = store();
  try {
    s.enqueue([change(CREATED)], 0);
    s.close();
    assertEquals(fs.statSync(dir).mode & 0o777, 0o700);
    assertEquals(fs.statSync(path.join(dir, "fileconveyor.db")).mode & 0o777, 0o600);
    const again = new Store(dir);
    assertEquals((again.q("SELECT COUNT(*) AS n FROM queue").get() as { n: number }).n, 1);
    assertEquals(again.q("PRAGMA journal_mode").get(), { journal_mode: "wal" });
    again.close();
  } finally {
    done();
  }
});
