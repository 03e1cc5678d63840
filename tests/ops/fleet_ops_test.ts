/**
 * Operations of a fleet node (shared store on an SQLite file, so no
 * database server is needed): `/metrics` samples carry the `node` label,
 * `/api/status` names the node and lists every node with its state and
 * the servers it sees failing, `status` shows other nodes' server health,
 * and server health is shared only when it changes.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import { cli, localConfig, spawn, workspace, write } from "../_harness.ts";
import { get, httpBase, until } from "./_helpers.ts";
import { addSecret } from "../../src/log.ts";
import { FleetHealth, REFRESH_MS } from "../../src/pipeline/fleet_health.ts";
import { openSharedStore } from "../../src/store/shared/open.ts";
import type { SharedStore } from "../../src/store/shared/types.ts";
import { Store } from "../../src/store/store.ts";
import type { LiveStatus } from "../../src/ops/status_api.ts";

Deno.test("fleet node: node label on every metric, nodes in /api/status, other nodes' server health in status", async () => {
  const ws = workspace("fc-ops-fleet-");
  const url = `sqlite:${path.join(ws.root, "shared.db")}`;
  // Another node that went silent a minute ago, seeing the server fail.
  const beta = await openSharedStore(url, "beta");
  const then = Date.now() - 60_000;
  try {
    await beta.migrate();
    await beta.heartbeat({ queued: 7, failed: 2, now: then, version: "0.0.1" });
    await beta.putServerHealth({
      server: "local",
      node: "beta",
      failing_since: then - 5000,
      last_error: "Connection refused",
      last_ok: null,
      updated_at: then,
    });
  } finally {
    await beta.close();
  }
  write(path.join(ws.src, "a.txt"), "alpha");
  const config = localConfig(ws, {
    settings: { store: url, node: "alpha", nodeTimeout: "10", rescanInterval: "0" },
  });
  const run = spawn(["sync", "--config", config, "--http", "127.0.0.1:0"]);
  try {
    const base = await httpBase(run);
    await run.waitFor("a.txt");
    let s: LiveStatus | undefined;
    await until(
      async () => {
        s = JSON.parse((await get(base, "/api/status")).text) as LiveStatus;
        return s.nodes?.length === 2 ? "" : JSON.stringify(s.nodes ?? null);
      },
      20_000,
      "both nodes in /api/status",
    );
    assertEquals(s!.node, "alpha");
    const [alpha, gone] = s!.nodes!;
    assertEquals(alpha!.node, "alpha", "newest heartbeat first");
    assertEquals(alpha!.alive, true);
    assertEquals(alpha!.failing, []);
    assertEquals(gone!.node, "beta");
    assertEquals(gone!.alive, false);
    assertEquals([gone!.queued, gone!.failed, gone!.version], [7, 2, "0.0.1"]);
    assertEquals(gone!.failing, [{
      server: "local",
      since: then - 5000,
      error: "Connection refused",
    }]);

    const m = await get(base, "/metrics");
    assertEquals(m.status, 200);
    const samples = m.text.split("\n").filter((l) => l && !l.startsWith("#"));
    assert(samples.length > 20, `${samples.length} samples`);
    const unlabelled = samples.filter((l) => !/^[a-z_]+\{node="alpha"[,}]/.test(l));
    assertEquals(unlabelled, [], 'every sample starts with node="alpha"');
    assertIncludes(m.text, 'fileconveyor_queue_depth{node="alpha",server="local"} ');
    assertIncludes(m.text, 'fileconveyor_start_time_seconds{node="alpha"} ');

    const st = await cli(["status", "--config", config]);
    assertEquals(st.code, 0, st.stderr);
    assertIncludes(st.stdout, 'Fleet: node "alpha"');
    assertIncludes(st.stdout, "Servers as other nodes see them:");
    assert(
      /local on beta: failing since .*: Connection refused; reported /.test(st.stdout),
      st.stdout,
    );
    assert(!st.stdout.includes("local on alpha"), "this node's own view is in the servers table");

    // The node shares its own view of the server (healthy, synced) at its heartbeat.
    const reader = await openSharedStore(url, "reader");
    try {
      await until(
        async () => {
          const mine = (await reader.serverHealth()).filter((h) => h.node === "alpha");
          const seen = JSON.stringify(
            mine.map((h) => [h.server, h.failing_since, h.last_ok !== null]),
          );
          return seen === JSON.stringify([["local", null, true]]) ? "" : seen;
        },
        10_000,
        "alpha's server health in the shared store",
      );
    } finally {
      await reader.close();
    }
  } finally {
    await run.stop();
    ws.cleanup();
  }
});

Deno.test("FleetHealth shares a server's health when it changes, a newer last success at most every 30 s", async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "fc-fleet-health-"));
  const store = new Store(path.join(root, "data"));
  const shared: SharedStore = await openSharedStore(`sqlite:${path.join(root, "s.db")}`, "n1");
  const writes: string[] = [];
  try {
    await shared.migrate();
    const health = new FleetHealth("n1", () => store.serverRows(), (fn) => {
      writes.push("call");
      return fn(shared);
    });
    const secret = "hunter2-fleet-health";
    addSecret(secret);
    const t0 = 1_000_000;
    assertEquals(await health.push(t0), 0, "no server row yet: nothing to share");

    store.serverFailed("cdn", `login refused for password ${secret}`, null, t0);
    assertEquals(await health.push(t0 + 1), 1, "turned failing");
    let rows = await shared.serverHealth();
    assertEquals(rows.length, 1);
    assertEquals([rows[0]!.server, rows[0]!.node, rows[0]!.failing_since], ["cdn", "n1", t0]);
    assert(!rows[0]!.last_error!.includes(secret), rows[0]!.last_error!);
    assertEquals(await health.push(t0 + 2), 0, "unchanged");

    store.serverOk("cdn", 10, t0 + 3);
    assertEquals(await health.push(t0 + 4), 1, "turned ok");
    rows = await shared.serverHealth();
    assertEquals([rows[0]!.failing_since, rows[0]!.last_ok], [null, t0 + 3]);

    store.serverOk("cdn", 10, t0 + 5);
    assertEquals(await health.push(t0 + 6), 0, "only a newer last success: waits");
    assertEquals(await health.push(t0 + 4 + REFRESH_MS), 1, "shared once the refresh is due");
    assertEquals((await shared.serverHealth())[0]!.last_ok, t0 + 5);
    assertEquals(writes.length, 3, "one round trip per push that had something to share");
  } finally {
    await shared.close();
    store.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});
