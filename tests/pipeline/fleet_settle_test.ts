/**
 * Settling "done" answers claimed ahead without running their jobs: when
 * the answer and the file allow it (`adoptable`), and when the local queue
 * and records still do (`FleetLocal.settleAdopted`).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fingerprint } from "../../src/pipeline/fleet_keys.ts";
import { adoptedRow } from "../../src/pipeline/fleet_rows.ts";
import { adoptable, type SettleInput } from "../../src/pipeline/fleet_settle.ts";
import { CREATED, DELETED, MODIFIED } from "../../src/store/events.ts";
import { FleetLocal } from "../../src/store/fleet_local.ts";
import type { Claim, SharedRecord } from "../../src/store/shared/types.ts";
import { Store } from "../../src/store/store.ts";
import { assert, assertEquals } from "../_assert.ts";
import { syncedRow } from "../_synced_row.ts";

const MD5 = "0123456789abcdef0123456789abcdef";
const STAT = { size: 10, mtimeMs: 1000.5, ctimeMs: 1001.25, ino: 77 };

function record(file: string, stat = STAT, md5 = MD5): SharedRecord {
  return {
    input_file: file,
    server: "cdn",
    dest: "",
    transported_file_basename: path.basename(file),
    url: `http://x/${path.basename(file)}`,
    remote_path: path.basename(file),
    fingerprint: fingerprint(stat.size, stat.mtimeMs, md5),
    node: "other",
    synced_at: 5000,
    source_stat: "",
  };
}

const done: Claim = { kind: "done", record: record("/s/a") };

function input(over: Partial<SettleInput> = {}): SettleInput {
  return {
    event: CREATED,
    claim: done,
    handed: false,
    md5: MD5,
    hashed: STAT,
    observed: { type: "file", stat: { ...STAT } },
    route: { chain: "sig", processors: false },
    ...over,
  };
}

Deno.test("adoptable(): a done answer for the content hashed, the file unchanged, a plain route: the row the job would adopt", () => {
  for (const event of [CREATED, MODIFIED] as const) {
    const d = adoptable(input({ event }));
    assert(d.settle, JSON.stringify(d));
    assertEquals(d.record, done.kind === "done" ? done.record : undefined);
    assertEquals(d.local, { ...STAT, md5: MD5, chain: "sig", processed: false });
  }
});

Deno.test("adoptable(): every other case runs the job", () => {
  const cases: [string, Partial<SettleInput>][] = [
    ["in flight", { claim: undefined }],
    ["mine", { claim: { kind: "mine", until: 1 } }],
    ["busy", { claim: { kind: "busy", node: "other", until: 1 } }],
    ["handed to the scheduler", { handed: true }],
    ["a record of other content", {
      claim: { kind: "done", record: record("/s/a", STAT, "f".repeat(32)) },
    }],
    ["a record of another mtime", {
      claim: { kind: "done", record: record("/s/a", { ...STAT, mtimeMs: 2000 }) },
    }],
    ["a delete", { event: DELETED }],
    ["gone", { observed: { type: "missing" } }],
    ["a directory now", { observed: { type: "dir" } }],
    ["another size", { observed: { type: "file", stat: { ...STAT, size: 11 } } }],
    ["another mtime", { observed: { type: "file", stat: { ...STAT, mtimeMs: 1000.75 } } }],
    ["another ctime", { observed: { type: "file", stat: { ...STAT, ctimeMs: 1002 } } }],
    ["another inode", { observed: { type: "file", stat: { ...STAT, ino: 78 } } }],
    ["no rule sends it there", { route: undefined }],
    ["processors", { route: { chain: "sig", processors: true } }],
  ];
  for (const [why, over] of cases) {
    assertEquals(adoptable(input(over)).settle, false, why);
  }
});

Deno.test("FleetLocal.settleAdopted: completes the jobs still as claimed, with no record, intent or rename's old name there; leaves the others", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fc-settle-"));
  const store = new Store(path.join(dir, "db.sqlite"));
  try {
    const local = new FleetLocal(store, "here");
    const now = 1000;
    const names = ["ok", "merged", "running", "recorded", "intent", "renamed", "later", "ok2"];
    const file = (n: string) => `/s/${n}`;
    store.enqueue(
      names.map((n) => ({
        input_file: file(n),
        source: "s",
        server: "cdn",
        dest: "",
        event: CREATED,
      })),
      now,
    );
    const jobs = new Map(store.peek("cdn", 100, now).map((j) => [path.basename(j.input_file), j]));
    // Each case differs from "ok" by one thing that happened after the claim was planned.
    store.tx(() => {
      store.enqueue(
        [{ input_file: file("merged"), source: "s", server: "cdn", dest: "", event: MODIFIED }],
        now,
      );
      store.pickIds([jobs.get("running")!.id], now);
      store.putSynced(syncedRow(file("recorded"), { ino: 500, remote_path: "recorded-old" }));
      store.addIntent("cdn", "intent", now, file("intent"), "");
      store.putSynced(syncedRow("/s/old-name", { ino: 600, size: STAT.size }));
      store.defer(jobs.get("later")!, now + 5000);
    });
    const ino = (n: string) => n === "renamed" ? 600 : 100 + names.indexOf(n);
    const rowOf = (n: string) =>
      adoptedRow(record(file(n)), {
        ...STAT,
        ino: ino(n),
        md5: MD5,
        chain: "sig",
        processed: false,
      });
    const settled = local.settleAdopted(
      names.map((n) => ({ job: jobs.get(n)!, row: rowOf(n) })),
      now,
    );
    assertEquals(settled.map((j) => path.basename(j.input_file)), ["ok", "ok2"]);
    for (const n of ["ok", "ok2"]) {
      assertEquals({ ...store.getSynced(file(n), "cdn", "") }, rowOf(n), n);
    }
    for (const n of ["merged", "running", "intent", "renamed", "later"]) {
      assertEquals(store.getSynced(file(n), "cdn", ""), undefined, n);
    }
    assertEquals(store.getSynced(file("recorded"), "cdn", "")!.remote_path, "recorded-old");
    // The jobs left run (the one put off, later); the settled ones are gone.
    const left = new Set(
      store.peek("cdn", 100, now + 5000).concat(store.pick("cdn", 100, now + 5000))
        .map((j) => path.basename(j.input_file)),
    );
    for (const n of ["ok", "ok2"]) assert(!left.has(n), n);
    for (const n of ["merged", "recorded", "intent", "renamed", "later"]) assert(left.has(n), n);
    // Another node's upload: nothing of it is published by this node.
    assertEquals(local.outboxSize(), 0);
  } finally {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("adoptable(): a file claimed with its stat whose MD5 is not known runs (its job reads it)", () => {
  const d = adoptable(input({ md5: undefined }));
  assert(!d.settle);
  assertEquals(d.why, "content not known");
});
