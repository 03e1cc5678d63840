/**
 * Fleets of real daemons (subprocesses) sharing one store and one
 * destination folder: every node answers for every file, a shared folder is
 * uploaded once, a killed node's work is taken over.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { cli, diffTrees, eventually, sleep, tree, write } from "../_harness.ts";
import { assert, assertEquals } from "../_assert.ts";
import { freshDatabase, restartDatabase } from "../_servers.ts";
import { openSharedStore } from "../../src/store/shared/open.ts";
import type { SharedStore } from "../../src/store/shared/types.ts";
import {
  type FleetNode,
  fleetNode,
  fleetWorld,
  localQueue,
  startNode,
  stopAll,
  uploadsOf,
  urlOn,
  webDiag,
  webRows,
} from "./_fleet.ts";

/** A shared store for one test: its URL, and how to remove it. */
interface TestStore {
  url: string;
  drop(): Promise<void>;
}

/** The shared stores the multi-daemon tests run against. */
const STORES: { name: string; open: (root: string) => Promise<TestStore> }[] = [
  {
    name: "sqlite",
    open: (root) =>
      Promise.resolve({ url: `sqlite:${path.join(root, "shared.db")}`, drop: async () => {} }),
  },
  { name: "postgres", open: () => freshDatabase("postgres") },
  { name: "mariadb", open: () => freshDatabase("mariadb") },
];

async function world(store: (root: string) => Promise<TestStore>) {
  const w = fleetWorld(() => "");
  const db = await store(w.root);
  return {
    ...w,
    store: db.url,
    cleanup: async () => {
      await db.drop().catch(() => {});
      w.cleanup();
    },
  };
}

for (const store of STORES) {
  Deno.test(`fleet (${store.name}): a lease taken over from a silent node: what it stored is found, not uploaded again`, async () => {
    const w = await world(store.open);
    const shared = path.join(w.root, "shared");
    const a = fleetNode(w, "alpha", shared);
    const b = fleetNode(w, "beta", shared);
    const once = async (n: FleetNode) => {
      const r = await cli(["sync", "--once", "--config", n.config]);
      assertEquals(r.code, 0, r.stderr);
      return r.stderr;
    };
    let ghost: SharedStore | undefined;
    try {
      write(path.join(shared, "keep.txt"), "k");
      await once(a);
      const db = new DatabaseSync(path.join(a.data, "fileconveyor.db"), { readOnly: true });
      const keep = db.prepare("SELECT remote_path, dest FROM synced_files WHERE input_file = ?")
        .get(path.join(shared, "keep.txt")) as { remote_path: string; dest: string };
      db.close();
      const remoteDir = path.join(w.dst, path.dirname(keep.remote_path));
      // "ghost" claimed three files and went silent: it had stored one of them (same bytes),
      // another with other bytes than the source has now, and never got to the third.
      const files = { same: "same content", other: "the source now", never: "never stored" };
      for (const [name, body] of Object.entries(files)) {
        write(path.join(shared, `${name}.txt`), body);
      }
      write(path.join(remoteDir, "same.txt"), files.same);
      write(path.join(remoteDir, "other.txt"), "what ghost stored");
      ghost = await openSharedStore(w.store, "ghost");
      const now = Date.now();
      const claims = await ghost.claimMany(
        Object.keys(files).map((name) => ({
          key: { input_file: path.join(shared, `${name}.txt`), server: "cdn", dest: keep.dest },
          fingerprint: "ghost",
        })),
        now - 120_000,
        60_000,
      );
      assertEquals(claims.map((c) => c.kind), ["mine", "mine", "mine"]);
      const log = await once(b);
      assertEquals(diffTrees(tree(shared), tree(w.dst)), "", log);
      const rel = (name: string) => path.join(path.dirname(keep.remote_path), name);
      assert(
        log.includes(`found ${rel("same.txt")} at the destination as node "ghost" stored it`),
        log,
      );
      const uploaded = uploadsOf({ ...b, daemon: { log: () => log } as FleetNode["daemon"] });
      assertEquals(uploaded.sort(), [rel("never.txt"), rel("other.txt")], log);
      // Found or uploaded, each is recorded and published: a third node finds all three done.
      const c = fleetNode(w, "gamma", shared);
      const log3 = await once(c);
      assertEquals(
        uploadsOf({ ...c, daemon: { log: () => log3 } as FleetNode["daemon"] }),
        [],
        log3,
      );
      assert(!log3.includes("found "), log3);
    } finally {
      await ghost?.close();
      await w.cleanup();
    }
  });

  Deno.test(`fleet (${store.name}): two nodes with their own sources serve each other's URLs`, async () => {
    const w = await world(store.open);
    const a = fleetNode(w, "alpha", path.join(w.root, "src-a"));
    const b = fleetNode(w, "beta", path.join(w.root, "src-b"));
    try {
      for (let i = 0; i < 5; i++) {
        write(path.join(a.src, "a", `a${i}.txt`), `alpha ${i}`);
        write(path.join(b.src, "b", `b${i}.txt`), `beta ${i}`);
      }
      startNode(a);
      startNode(b);
      const all = [
        ...[0, 1, 2, 3, 4].map((i) => path.join(a.src, "a", `a${i}.txt`)),
        ...[0, 1, 2, 3, 4].map((i) => path.join(b.src, "b", `b${i}.txt`)),
      ];
      // Every node's web database gets every node's rows.
      for (const n of [a, b]) {
        await eventually(
          () => {
            const rows = webRows(n);
            return all.filter((f) => !rows.has(f)).map((f) => `${n.name} lacks ${f}`).join("\n");
          },
          30_000,
          `${n.name}'s web database`,
        );
      }
      // `url` on either node answers for both nodes' files.
      assertEquals(await urlOn(a, path.join(b.src, "b", "b3.txt")), "http://cdn.test/b/b3.txt");
      assertEquals(await urlOn(b, path.join(a.src, "a", "a1.txt")), "http://cdn.test/a/a1.txt");
      assertEquals(webRows(a).get(path.join(b.src, "b", "b0.txt")), "http://cdn.test/b/b0.txt");
      // Each file was uploaded by its own node only.
      assertEquals(uploadsOf(a).sort(), [0, 1, 2, 3, 4].map((i) => `a/a${i}.txt`));
      assertEquals(uploadsOf(b).sort(), [0, 1, 2, 3, 4].map((i) => `b/b${i}.txt`));
    } finally {
      await stopAll([a, b]);
      await w.cleanup();
    }
  });

  Deno.test(`fleet (${store.name}): a file moved or deleted on one node leaves the shared record and every web database`, async () => {
    const w = await world(store.open);
    const a = fleetNode(w, "alpha", path.join(w.root, "src-a"));
    const b = fleetNode(w, "beta", path.join(w.root, "src-b"));
    const old = path.join(a.src, "a", "old.txt");
    const moved = path.join(a.src, "a", "new.txt");
    const gone = path.join(a.src, "a", "gone.txt");
    try {
      write(old, "moved on alpha");
      write(gone, "deleted on alpha");
      write(path.join(b.src, "b.txt"), "beta");
      startNode(a);
      startNode(b);
      await eventually(
        () => webRows(b).has(gone) && webRows(b).has(old) ? "" : "not yet",
        30_000,
        "beta's web db",
      );
      assertEquals(await urlOn(b, old), "http://cdn.test/a/old.txt");
      fs.renameSync(old, moved);
      fs.rmSync(gone);
      await a.daemon!.waitFor('moved "a/old.txt" to "a/new.txt"', 30_000);
      for (const n of [a, b]) {
        await eventually(
          () => {
            const rows = webRows(n);
            const wrong = [
              rows.has(old) ? "still has the old name" : "",
              rows.has(gone) ? "still has the deleted file" : "",
              rows.get(moved) === "http://cdn.test/a/new.txt" ? "" : "lacks the new name",
            ].filter(Boolean);
            return wrong.length ? `${n.name}'s web db ${wrong.join(", ")}; ${webDiag(n)}` : "";
          },
          30_000,
          `${n.name}'s web database`,
        );
      }
      assertEquals(await urlOn(b, moved), "http://cdn.test/a/new.txt");
      assert((await urlOn(b, old)).startsWith("exit 1"), "beta still answers for the old name");
      assert(
        (await urlOn(b, gone)).startsWith("exit 1"),
        "beta still answers for the deleted file",
      );
      assert(!fs.existsSync(path.join(w.dst, "a", "old.txt")));
      assert(!fs.existsSync(path.join(w.dst, "a", "gone.txt")));
    } finally {
      await stopAll([a, b]);
      await w.cleanup();
    }
  });

  Deno.test(`fleet (${store.name}): a restart keeps a leftover whose path another node uploaded and recorded meanwhile`, async () => {
    const w = await world(store.open);
    const shared = path.join(w.root, "shared");
    const [a, b] = ["alpha", "beta"].map((n) => fleetNode(w, n, shared)) as [
      FleetNode,
      FleetNode,
    ];
    const once = async (n: FleetNode) => {
      const r = await cli(["sync", "--once", "--config", n.config]);
      assertEquals(r.code, 0, r.stderr);
      return r.stderr;
    };
    try {
      await once(a);
      const file = path.join(shared, "page.css");
      write(file, "body{}");
      await once(b);
      const db = new DatabaseSync(path.join(b.data, "fileconveyor.db"), { readOnly: true });
      const rec = db.prepare("SELECT remote_path, dest FROM synced_files WHERE input_file = ?")
        .get(file) as { remote_path: string; dest: string };
      db.close();
      // alpha was killed while uploading the same file before beta's upload: its intent.
      const adb = new DatabaseSync(path.join(a.data, "fileconveyor.db"));
      adb.prepare(
        "INSERT INTO intents(server, remote_path, input_file, dest, created_at) VALUES ('cdn', ?, ?, ?, ?)",
      ).run(rec.remote_path, file, rec.dest, Date.now());
      adb.close();
      // alpha's restart: the leftover's path is beta's recorded copy, not alpha's to delete.
      const log = await once(a);
      assertEquals(diffTrees(tree(shared), tree(w.dst)), "", log);
      assert(!log.includes("removed leftover"), log);
      // A leftover no record points at is still removed.
      const bdb = new DatabaseSync(path.join(a.data, "fileconveyor.db"));
      bdb.prepare(
        "INSERT INTO intents(server, remote_path, input_file, dest, created_at) VALUES ('cdn', 'gone.css', ?, ?, ?)",
      ).run(path.join(shared, "gone.css"), rec.dest, Date.now());
      bdb.close();
      write(path.join(w.dst, "gone.css"), "old");
      const log2 = await once(a);
      assert(log2.includes(`removed leftover "gone.css"`), log2);
      assertEquals(diffTrees(tree(shared), tree(w.dst)), "", log2);
    } finally {
      await w.cleanup();
    }
  });

  Deno.test(`fleet (${store.name}): three nodes on one shared folder upload each file once; a killed node's work is finished`, async () => {
    const w = await world(store.open);
    const shared = path.join(w.root, "shared");
    const nodes = ["n1", "n2", "n3"].map((n) => fleetNode(w, n, shared));
    try {
      for (const n of nodes) startNode(n);
      for (const n of nodes) await n.daemon!.waitFor("Initial scan done", 30_000);
      // A first burst: each file uploaded by exactly one node.
      const N = 60;
      for (let i = 0; i < N; i++) write(path.join(shared, `d${i % 6}`, `f${i}.txt`), `one ${i}`);
      await eventually(() => diffTrees(tree(shared), tree(w.dst)), 60_000, "first burst");
      await eventually(
        () => {
          const n = nodes.reduce((t, x) => t + uploadsOf(x).length, 0);
          return n >= N ? "" : `${n} uploads`;
        },
        10_000,
        "upload logs",
      );
      await sleep(500);
      const first = nodes.flatMap(uploadsOf);
      assertEquals(first.length, N, `uploads: ${first.length}`);
      assertEquals(new Set(first).size, N);
      // A second burst, and one node killed in the middle of it.
      const M = 150;
      for (let i = 0; i < M; i++) {
        write(path.join(shared, "burst", `g${i}.txt`), `two ${i} ${"y".repeat(i * 50)}`);
      }
      // The victim: the first node that uploads a file of this burst.
      const before = nodes.map((n) => uploadsOf(n).length);
      let victim = nodes[0]!;
      await eventually(
        () => {
          const i = nodes.findIndex((n, i) => uploadsOf(n).length > before[i]!);
          if (i < 0) return "nothing uploaded yet";
          victim = nodes[i]!;
          return "";
        },
        30_000,
        "a first upload of the burst",
      );
      await victim.daemon!.kill();
      await eventually(() => diffTrees(tree(shared), tree(w.dst)), 90_000, "after the kill");
      for (const n of nodes) {
        assert(!/Uncaught/.test(n.daemon!.log()), n.daemon!.log().slice(-3000));
      }
      const all = nodes.flatMap(uploadsOf);
      const dups = all.length - new Set(all).size;
      const found = nodes.reduce(
        (t, n) => t + (n.daemon!.log().match(/\] found \S+ at the destination/g)?.length ?? 0),
        0,
      );
      // How close to the bound a run comes, and what the survivors found: in the test output.
      // deno-lint-ignore no-console
      console.error(
        `fleet (${store.name}): ${dups} duplicate upload(s) after the kill, ${found} found at the destination`,
      );
      // Every file is at the destination (above) and in the shared record (the survivors'
      // web databases, below); the victim's last log lines may die with it, so the logs
      // count duplicates, not coverage.
      // Duplicates only around the kill: what the victim uploaded and the shared store never
      // learnt, taken over by the survivors. The claims that take its leases over name it, and
      // this destination (a local folder) reports what it stores, so the survivors compare
      // before uploading: only the victim's unfinished uploads (one per connection,
      // defaultMaxConnections 8) go out again. Its recorded, unpublished uploads (up to
      // UNPUBLISHED_MAX_CHECKED here) and the ones done that waited to be recorded are found.
      // (A destination that cannot report it: up to 8 + UNPUBLISHED_MAX + FREED_MAX.)
      const bound = 8;
      assert(dups <= bound, `${dups} duplicate uploads, more than the design's ${bound}`);
      // The survivors: whichever node was killed, its web database stopped with it.
      for (const n of nodes.filter((x) => x !== victim)) {
        await eventually(
          () => {
            const rows = webRows(n);
            return rows.size >= N + M
              ? ""
              : `${n.name}: ${rows.size} rows; ${webDiag(n)}; log:\n${
                n.daemon!.log().split("\n").filter((l) => !l.includes("] uploaded ")).join("\n")
                  .slice(-3000)
              }`;
          },
          30_000,
          `${n.name}'s web database`,
        );
      }
    } finally {
      await stopAll(nodes);
      await w.cleanup();
    }
  });
}

Deno.test("fleet: a bad store URL is a configuration error naming the line, never the password", async () => {
  const w = fleetWorld(() => "ftp://user:hunter2@db.example/site");
  try {
    const n = fleetNode(w, "alpha", path.join(w.root, "src"));
    const r = await cli(["validate", "--config", n.config]);
    assertEquals(r.code, 2, r.stderr);
    assert(/:\d+: config\/settings\/store: /.test(r.stderr), r.stderr);
    assert(!r.stderr.includes("hunter2"), r.stderr);
    fs.rmSync(n.config);
  } finally {
    w.cleanup();
  }
});

Deno.test("fleet: an unreachable shared store holds uploads without a crash, within the local buffer's bound; they converge once it answers", async () => {
  // The shared SQLite file's directory is missing at first: the store cannot be opened.
  const w = fleetWorld((root) => `sqlite:${path.join(root, "later", "shared.db")}`);
  const limit = 12;
  const a = fleetNode(w, "alpha", path.join(w.root, "src"), {
    storeBufferLimit: String(limit),
  });
  try {
    for (let i = 0; i < 10; i++) write(path.join(a.src, `f${i}.txt`), `file ${i}`);
    const d = startNode(a);
    await d.waitFor("unreachable", 30_000);
    await d.waitFor("Initial scan done", 30_000);
    await sleep(1500);
    assertEquals(uploadsOf(a).length, 0, "nothing is uploaded without the shared store");
    const st = await cli(["status", "--config", a.config]);
    assertEquals(st.code, 0, st.stderr);
    assert(/shared store unreachable since \d{4}-/.test(st.stdout), st.stdout);
    // More changes than the buffer holds: the watcher goes on, the changes wait for a rescan.
    for (let i = 0; i < 20; i++) write(path.join(a.src, "burst", `g${i}.txt`), `burst ${i}`);
    write(path.join(a.src, "late.txt"), "discovered while down");
    await d.waitFor("Local buffer full", 30_000);
    await sleep(1000);
    const queued = localQueue(a);
    assert(queued <= limit, `${queued} jobs queued, more than the limit of ${limit}`);
    let full = "";
    for (let i = 0; i < 20 && !full; i++) {
      const r = await cli(["status", "--config", a.config]);
      if (/LOCAL BUFFER FULL since \d{4}-.*storeBufferLimit 12.*"site"/.test(r.stdout)) {
        full = "yes";
      } else await sleep(500);
    }
    assert(full, "status does not say that the local buffer is full");
    fs.mkdirSync(path.join(w.root, "later"));
    await eventually(() => diffTrees(tree(a.src), tree(w.dst)), 60_000, "after the store is back");
    await d.waitFor("answers again", 10_000);
    await d.waitFor('rescanning "site"', 10_000);
    const json = JSON.parse((await cli(["status", "--json", "--config", a.config])).stdout);
    assertEquals(json.fleet.nodes.map((n: { node: string }) => n.node), ["alpha"]);
    assertEquals(json.fleet.nodes[0].alive, true);
    await eventually(() => webRows(a).size === 31 ? "" : `${webRows(a).size} rows`, 10_000);
    assertEquals(json.fleet.daemon.buffer.fullSince, null);
    assert(d.child.pid > 0 && !/panic|Uncaught/i.test(d.log()), d.log().slice(-2000));
  } finally {
    await stopAll([a]);
    w.cleanup();
  }
});

Deno.test("fleet (postgres): the database stopped for 20 s mid-sync; two nodes converge, nothing lost", async () => {
  const instance = "fleet-outage";
  const db = await freshDatabase("postgres", instance);
  const w = { ...fleetWorld(() => db.url) };
  const shared = path.join(w.root, "shared");
  const nodes = ["p1", "p2"].map((n) => fleetNode(w, n, shared));
  try {
    for (const n of nodes) startNode(n);
    for (const n of nodes) await n.daemon!.waitFor("Initial scan done", 30_000);
    for (let i = 0; i < 40; i++) write(path.join(shared, "a", `f${i}.txt`), `before ${i}`);
    const outage = restartDatabase("postgres", { instance, downMs: 20_000 });
    // Changes made while the database is down wait in each node's queue.
    await sleep(3000);
    for (let i = 0; i < 40; i++) write(path.join(shared, "b", `g${i}.txt`), `during ${i}`);
    await eventually(
      () =>
        nodes.filter((n) => !/unreachable since/.test(n.daemon!.log())).map((n) =>
          `${n.name} did not notice; its log:\n${n.daemon!.log().slice(-2500)}`
        ).join("\n"),
      25_000,
      "the outage to be noticed",
    );
    await outage;
    await eventually(() => diffTrees(tree(shared), tree(w.dst)), 60_000, "after the outage");
    for (const n of nodes) {
      await eventually(
        () => {
          const rows = webRows(n);
          return rows.size >= 80
            ? ""
            : `${n.name}: ${rows.size} rows; ${webDiag(n)}; log:\n${
              n.daemon!.log().split("\n").filter((l) => !l.includes("] uploaded ")).join("\n")
                .slice(-3000)
            }`;
        },
        30_000,
        `${n.name}'s web database`,
      );
      assert(!/Uncaught/.test(n.daemon!.log()), n.daemon!.log().slice(-3000));
    }
    const all = nodes.flatMap(uploadsOf);
    assertEquals(new Set(all).size, 80);
    // No node died meanwhile, so no claim was taken over: a few duplicates at most (a claim
    // that expired while its node could not publish).
    assert(all.length - 80 <= 5, `${all.length - 80} duplicate uploads`);
    assertEquals(
      await urlOn(nodes[1]!, path.join(shared, "b", "g7.txt")),
      "http://cdn.test/b/g7.txt",
    );
  } finally {
    await stopAll(nodes);
    await db.drop().catch(() => {});
    w.cleanup();
  }
});
