/**
 * Two real daemons on one shared folder and a PostgreSQL store, in the
 * faults a shared folder meets: a node that stalls (SIGSTOP) longer than its
 * leases while it uploads, its files rewritten meanwhile; renames, which
 * every node sees and only one may carry out; and a node that finds every
 * file uploaded already, which records them without running their jobs.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { createHash } from "node:crypto";
import { cli, diffTrees, eventually, sleep, tree, write } from "../_harness.ts";
import { assert, assertEquals } from "../_assert.ts";
import { freshDatabase } from "../_servers.ts";
import {
  fleetNode,
  fleetWorld,
  localQueue,
  startNode,
  stopAll,
  uploadsOf,
  webDiag,
  webRows,
} from "./_fleet.ts";

/** Seconds without a heartbeat after which a node's leases are taken over (the nodes' setting). */
const NODE_TIMEOUT = 3;

async function pair() {
  const db = await freshDatabase("postgres");
  const w = fleetWorld(() => db.url);
  const shared = path.join(w.root, "shared");
  const nodes = ["n1", "n2"].map((n) =>
    fleetNode(w, n, shared, { nodeTimeout: String(NODE_TIMEOUT), logLevel: "debug" })
  );
  return {
    w,
    shared,
    nodes,
    cleanup: async () => {
      await stopAll(nodes);
      await db.drop().catch(() => {});
      w.cleanup();
    },
  };
}

/** Which tables of a node's database hold `file`: its own record, its mirror of the shared one. */
function whereIs(n: ReturnType<typeof fleetNode>, file: string): string {
  const db = new DatabaseSync(path.join(n.data, "fileconveyor.db"), { readOnly: true });
  try {
    const has = (table: string) =>
      db.prepare(`SELECT COUNT(*) AS n FROM ${table} WHERE input_file = ?`).get(file) as {
        n: number;
      };
    const node = db.prepare("SELECT node FROM fleet_records WHERE input_file = ?").get(file) as
      | { node: string }
      | undefined;
    const held = db.prepare("SELECT pending FROM guard").all() as { pending: number }[];
    return `local ${has("synced_files").n}, mirror ${has("fleet_records").n} by ${node?.node}${
      held.length ? `; the delete guard holds ${held[0]!.pending}` : ""
    }`;
  } finally {
    db.close();
  }
}

/** Every node's web database has a row with the expected URL for each file of the folder. */
function webDbsMatch(nodes: ReturnType<typeof fleetNode>[], shared: string): string {
  const want = tree(shared);
  for (const n of nodes) {
    const rows = webRows(n);
    for (const rel of want.keys()) {
      const url = rows.get(path.join(shared, rel));
      if (url !== `http://cdn.test/${rel}`) return `${n.name}: ${rel} → ${url}; ${webDiag(n)}`;
    }
    if (rows.size !== want.size) {
      const extra = [...rows.keys()].filter((f) => !want.has(path.relative(shared, f)));
      return `${n.name}: ${rows.size} rows for ${want.size} files; extra: ${
        extra.slice(0, 5).map((f) => `${path.relative(shared, f)} (${whereIs(n, f)})`).join(", ")
      }; ${webDiag(n)}`;
    }
  }
  return "";
}

/**
 * Where `FC_KEEP_LOGS` names a folder, each node's whole log is written there (overwritten on each
 * call), so a failure's every line can be read after the run.
 */
function keepLogs(nodes: ReturnType<typeof fleetNode>[]) {
  const dir = Deno.env.get("FC_KEEP_LOGS");
  if (!dir) return;
  fs.mkdirSync(dir, { recursive: true });
  for (const n of nodes) fs.writeFileSync(path.join(dir, `${n.name}.log`), n.daemon!.log());
}

/**
 * The node whose late transfer of old content lands after the other node recorded the new
 * content must upload again: a job that ends unrecorded after its lease may have run out
 * unnoticed counts as overtaken (`fleet_lease.ts`), and its next claim asks with a fingerprint
 * no record holds. That fingerprint once held a NUL byte, which PostgreSQL refuses: every claim
 * of the file failed, the link took the refusal for an outage, and the job was requeued
 * silently for good (old content left at the destination). Both are fixed, and tested on their
 * own (`fleet_link_test.ts`, the store conformance suite); this test meets the window by chance.
 */
Deno.test({
  name:
    "fleet (postgres): a node stalled past its leases while uploading, its files rewritten meanwhile, never leaves old content at the destination",
  fn: async () => {
    const { w, shared, nodes, cleanup } = await pair();
    try {
      for (const n of nodes) startNode(n);
      for (const n of nodes) await n.daemon!.waitFor("Initial scan done", 30_000);
      const N = 200;
      const file = (i: number) => path.join(shared, `d${i % 5}`, `f${i}.txt`);
      for (let i = 0; i < N; i++) write(file(i), `one ${i} ${"x".repeat(20_000)}`);
      // The victim: the first node seen uploading. Stopped at once, it holds leases on files it
      // is uploading and on files it claimed ahead.
      let victim = nodes[0]!;
      await eventually(
        () => {
          const i = nodes.findIndex((n) => uploadsOf(n).length > 0);
          if (i < 0) return "nothing uploaded yet";
          victim = nodes[i]!;
          return "";
        },
        30_000,
        "a first upload",
      );
      const pid = victim.daemon!.child.pid;
      Deno.kill(pid, "SIGSTOP");
      try {
        // Rewritten while the victim sleeps: what it uploads when it wakes is old content.
        for (let i = 0; i < N; i++) write(file(i), `two ${i}`);
        // Past its leases: the other node takes its files over.
        await sleep(NODE_TIMEOUT * 1000 * 2 + 1000);
      } finally {
        Deno.kill(pid, "SIGCONT");
      }
      await eventually(
        () => {
          const d = diffTrees(tree(shared), tree(w.dst));
          if (!d) return "";
          keepLogs(nodes);
          const first = d.split("\n")[0]!.replace(/^\w[^:]*: /, "");
          const at = (root: string) => {
            try {
              return fs.readFileSync(path.join(root, first), "utf8").slice(0, 12);
            } catch {
              return "(none)"; // A temp file of a transfer under way, or a file not there yet.
            }
          };
          // What each node did with that file, and the leases it lost.
          const about = nodes.map((n) =>
            `${n.name}:\n` + n.daemon!.log().split("\n")
              .filter((l) => l.includes(first) || /Lost the claim| (?:WARN|ERROR) /.test(l))
              .slice(-16)
              .join("\n")
          ).join("\n");
          return `${d}\n${first}: source "${at(shared)}", destination "${
            at(w.dst)
          }"; victim ${victim.name}\n${about}`;
        },
        90_000,
        "after the stall",
      );
      // Settled once neither node has a job left: a late transfer of the victim's, or its upload
      // again after one, belongs to a job still queued (a temp file at the destination meanwhile).
      await eventually(
        () => {
          const queued = nodes.map((n) => `${n.name}: ${localQueue(n)}`);
          return nodes.every((n) => localQueue(n) === 0) ? "" : `jobs left: ${queued.join(", ")}`;
        },
        60_000,
        "both nodes idle",
      );
      assertEquals(diffTrees(tree(shared), tree(w.dst)), "");
      await eventually(() => webDbsMatch(nodes, shared), 30_000, "the web databases");
      for (const n of nodes) {
        assert(!/Uncaught/.test(n.daemon!.log()), n.daemon!.log().slice(-3000));
      }
      const survivor = nodes.find((n) => n !== victim)!;
      assert(uploadsOf(survivor).length > 0, "the survivor took nothing over");
    } finally {
      await cleanup();
    }
  },
});

Deno.test("fleet (postgres): files renamed in a shared folder end under their new names once, on every node", async () => {
  const { w, shared, nodes, cleanup } = await pair();
  try {
    const N = 40;
    for (let i = 0; i < N; i++) write(path.join(shared, "a", `f${i}.txt`), `content ${i}`);
    // Files that stay: the renames are a part of the folder, within the delete guard's
    // allowance (a rename of everything may be judged a mass deletion and held, by design).
    for (let i = 0; i < 2 * N; i++) write(path.join(shared, "keep", `k${i}.txt`), `kept ${i}`);
    for (const n of nodes) startNode(n);
    await eventually(() => diffTrees(tree(shared), tree(w.dst)), 60_000, "the first sync");
    await eventually(() => webDbsMatch(nodes, shared), 30_000, "the web databases");
    // Both nodes see every rename; each is carried out by one node (server-side or by upload).
    for (let i = 0; i < N; i++) {
      fs.renameSync(path.join(shared, "a", `f${i}.txt`), path.join(shared, "a", `g${i}.txt`));
    }
    // And a directory renamed as a whole.
    fs.renameSync(path.join(shared, "a"), path.join(shared, "b"));
    await eventually(() => diffTrees(tree(shared), tree(w.dst)), 60_000, "after the renames");
    await eventually(() => webDbsMatch(nodes, shared), 30_000, "the web databases");
    await sleep(1000);
    assertEquals(diffTrees(tree(shared), tree(w.dst)), "");
    // Each file under its last name went out once, moved or uploaded, by one node: a move
    // claims the new name first, as an upload does.
    const done = new Map<string, number>();
    for (const n of nodes) {
      const log = n.daemon!.log();
      assert(!/Uncaught|failed permanently/.test(log), log.slice(-3000));
      for (
        const m of log.matchAll(/(?:uploaded |moved "[^"]*" to ")(?:[^\s"]*\/)?b\/(g\d+)\.txt/g)
      ) {
        done.set(m[1]!, (done.get(m[1]!) ?? 0) + 1);
      }
    }
    const twice = [...done].filter(([, k]) => k > 1).map(([f]) => f);
    assertEquals(twice, [], "moved or uploaded by both nodes");
    assertEquals(done.size, N);
  } finally {
    await cleanup();
  }
});

/** A node's own records (`synced_files`), by input file. */
function localRows(n: ReturnType<typeof fleetNode>): Map<string, Record<string, unknown>> {
  const db = new DatabaseSync(path.join(n.data, "fileconveyor.db"), { readOnly: true });
  try {
    const rows = db.prepare("SELECT * FROM synced_files").all() as Record<string, unknown>[];
    return new Map(rows.map((r) => [r.input_file as string, { ...r }]));
  } finally {
    db.close();
  }
}

Deno.test("fleet (postgres): a node that finds a folder uploaded by another records each file, without running its job, as its own run would", async () => {
  const { w, shared, nodes, cleanup } = await pair();
  const [n1, n2] = nodes as [ReturnType<typeof fleetNode>, ReturnType<typeof fleetNode>];
  try {
    const N = 300;
    const file = (i: number) => path.join(shared, `d${i % 4}`, `f${i}.txt`);
    for (let i = 0; i < N; i++) write(file(i), `content ${i} ${"z".repeat(i)}`);
    // Records made within 2 s of a file's change are racy: the next run compares content.
    await sleep(2500);
    const once = async (n: ReturnType<typeof fleetNode>) => {
      const r = await cli(["sync", "--once", "--config", n.config]);
      assertEquals(r.code, 0, r.stderr.slice(-3000));
      return r.stderr;
    };
    const first = await once(n1);
    assert(first.includes(`Done: ${N} synced`), first.slice(-3000));
    assertEquals(diffTrees(tree(shared), tree(w.dst)), "");
    // Every answer is "done": the claims ahead come back in batches and settle their jobs; the
    // few jobs started before the first batch came back adopt on their own. The run ends.
    const log = await once(n2);
    assert(log.includes(`Done: 0 synced, 0 deleted, 0 failed, ${N} unchanged`), log.slice(-3000));
    assert(!log.includes("] uploaded "), log.slice(-3000));
    const settled = [...log.matchAll(/Recorded (\d+) file\(s\) other nodes uploaded/g)]
      .reduce((t, m) => t + Number(m[1]), 0);
    assert(settled > N / 2, `${settled} of ${N} settled without running: ${log.slice(-3000)}`);
    // Its records are the ones its run would keep: the file's stat and content hash, the chain
    // its rule gives (as the uploading node's), the remote side of the uploading node's record.
    const mine = localRows(n2);
    const theirs = localRows(n1);
    assertEquals(mine.size, N);
    for (let i = 0; i < N; i++) {
      const f = file(i);
      const row = mine.get(f)!;
      const up = theirs.get(f)!;
      const st = Deno.lstatSync(f);
      const md5 = createHash("md5").update(fs.readFileSync(f)).digest("hex");
      assertEquals(
        [row.size, row.mtime_ms, row.ctime_ms, row.ino, row.md5, row.source_md5],
        [st.size, st.mtime!.getTime(), st.ctime!.getTime(), st.ino, md5, md5],
        f,
      );
      for (const k of ["chain", "remote_path", "url", "transported_file_basename", "synced_at"]) {
        assertEquals(row[k], up[k], `${f}: ${k}`);
      }
    }
    // Its next run finds nothing to do, and its web database serves every file.
    const again = await once(n2);
    assert(again.includes("Done: 0 synced, 0 deleted, 0 failed, 0 unchanged"), again.slice(-3000));
    assertEquals(webDbsMatch([n2], shared), "");
  } finally {
    await cleanup();
  }
});
