/**
 * Scenario f: what the shared store costs. Initial sync (`sync --once`) of
 * N small files to a local folder by one node with the embedded SQLite
 * store, by one node with a PostgreSQL shared store, and by two nodes
 * sharing one source folder and one PostgreSQL store (started together;
 * the wall time ends when both have exited). Every run starts from an empty
 * destination, data directories and database; a run counts only when the
 * destination then holds all N files. The two-node row also says how many
 * uploads the nodes made together (N when no file went out twice).
 *
 * Two nodes on this one machine share its cores, which web nodes on
 * machines of their own do not: the unpinned rows measure what the shared
 * store costs in CPU, not what a second machine gains. The "pinned" rows
 * model one machine per node as far as one machine can: each node is held
 * to a core of its own with `taskset` (one node on core 0; two nodes on
 * cores 0 and 1), so the second node brings a core of its own. The
 * database server is not pinned: it runs on whatever core is free, and
 * with two nodes it competes with both (on real web machines it has its
 * own), so the pinned two-node row is if anything pessimistic. The source
 * folder and the destination are local to both nodes in these rows; a
 * local destination makes an upload (a copy) cost about what recording a
 * file another node uploaded costs, so a second node has little to take
 * over. The "SFTP" rows (pinned the same way) send to the SFTP test server
 * on 127.0.0.1 instead (OpenSSH, as in scenario 1; not pinned), where the
 * transfer is most of a file's cost, as with a remote CDN origin.
 *
 * The runs alternate: round i starts with the i-th setup, so a slow spell
 * of the shared machine does not land on one setup only. With `--baseline`
 * each setup is also run with that checkout's `mod.ts`, in the same
 * rotation ("(baseline)" rows), so a change is measured beside its parent.
 *
 * PostgreSQL is the test server of `scripts/dev-servers/postgres.sh`
 * (private cluster on 127.0.0.1, `synchronous_commit=off`), started by
 * the benchmark under its own servers directory and stopped with the rest.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { freshDatabase, startServer } from "../../tests/_servers.ts";
import { type Context, fresh } from "./_context.ts";
import { FC_ENTRY, fcCommand, fcConfig } from "./_tools.ts";
import { countFiles, makeTree, median, rmTree, say, timed } from "./_util.ts";
import { fleetLatency, type FleetLatencyRow, type LatencyFigures } from "./fleet_latency.ts";
import { storeAlone, type StoreAloneResult, storeAloneSection } from "./fleet_store.ts";

/** The setups of scenario f, in their rotation order. */
const SETUPS = [
  "sqlite",
  "postgres",
  "postgres-2-nodes",
  "postgres-pinned",
  "postgres-2-nodes-pinned",
  "postgres-sftp",
  "postgres-2-nodes-sftp",
] as const;
type Setup = typeof SETUPS[number];

/** The nodes of a setup, each with the core it is pinned to (`undefined`: not pinned). */
function nodesOf(setup: Setup): { node: string; core?: number }[] {
  switch (setup) {
    case "postgres-2-nodes":
      return [{ node: "n1" }, { node: "n2" }];
    case "postgres-pinned":
    case "postgres-sftp":
      return [{ node: "n1", core: 0 }];
    case "postgres-2-nodes-pinned":
    case "postgres-2-nodes-sftp":
      return [{ node: "n1", core: 0 }, { node: "n2", core: 1 }];
    default:
      return [{ node: "n1" }];
  }
}

/** One configuration of scenario f. */
export interface FleetRow {
  setup: Setup;
  /** Run with the `--baseline` checkout's `mod.ts`. */
  baseline?: boolean;
  /** Wall time of each valid run, ms. */
  runs: number[];
  /** Wall time of the run of each round (all setups run once per round), ms; null: failed. */
  rounds: (number | null)[];
  medianMs: number | null;
  /** Uploads made by all nodes together in the last run (N: each file once). */
  uploads: number;
  /** Runs whose destination missed files or whose process failed. */
  failed: number;
  /** User + system CPU seconds of all nodes together in each valid run (not the database's). */
  cpuS: number[];
}

/** Scenario f results. */
export interface FleetResult {
  files: number;
  rows: FleetRow[];
  /** PostgreSQL (one node) / SQLite wall time. */
  sharedRatio: number | null;
  /** Two nodes / one node, both on PostgreSQL, sharing this machine's cores. */
  twoNodesRatio: number | null;
  /** Two nodes on a core each / one node on one core (see the module's note). */
  twoNodesPinnedRatio?: number | null;
  /** The same to the SFTP server. */
  twoNodesSftpRatio?: number | null;
  /** Change-to-record latency, SQLite vs PostgreSQL (one node, watching). */
  latency?: FleetLatencyRow[];
  /** The shared store alone, for many files (`fleet_store.ts`). */
  store?: StoreAloneResult;
}

/** Uploads a daemon's log reports. */
function uploadsIn(log: string): number {
  return [...log.matchAll(/\] (?:uploaded|updated) \S+ \(/g)].length;
}

/** Runs scenario f. */
export async function fleetBench(ctx: Context): Promise<FleetResult> {
  const files = ctx.sizes.fleetFiles;
  const runs = ctx.sizes.fleetRuns;
  const src = path.join(ctx.work, "sf-src");
  rmTree(src);
  makeTree(src, { files, dirs: 50, minBytes: 64, maxBytes: 256, seed: 11 });
  say(`scenario f: ${files} files, ${runs} run(s) per setup`);

  const sftp = SETUPS.some((x) => x.endsWith("-sftp")) ? await startServer("sftp") : undefined;
  const once = async (setup: Setup, i: number, entry: string) => {
    // The destination as the nodes see it, and where its files are on this machine.
    const remote = setup.endsWith("-sftp") ? fresh("sf-dst") : undefined;
    const dst = remote ? path.join(sftp!.root, remote) : path.join(ctx.work, fresh("sf-dst"));
    if (remote) {
      fs.mkdirSync(dst, { recursive: true });
      const st = fs.statSync(sftp!.root);
      fs.chownSync(dst, st.uid, st.gid);
    }
    const db = setup === "sqlite" ? undefined : await freshDatabase("postgres");
    try {
      const results = await Promise.all(
        nodesOf(setup).map(({ node, core }) => {
          const data = path.join(ctx.data, fresh(`sf-${node}`));
          const config = fcConfig(path.join(ctx.work, `sf-${setup}-${node}.xml`), {
            src,
            dest: remote ? { kind: "sftp", info: sftp!, dir: remote } : { kind: "local", dir: dst },
            dataDir: data,
            concurrency: ctx.concurrency,
            settings: db ? { store: db.url, node } : {},
          });
          const c = fcCommand(config, true, entry);
          if (core !== undefined) {
            c.cmd.unshift("taskset", "-c", String(core));
            c.shown = `taskset -c ${core} ${c.shown}`;
          }
          // The config holds the database password; the command line shows only its path.
          if (entry === FC_ENTRY) ctx.commands.set(`f ${setup} (${node})`, c.shown);
          const log = path.join(ctx.work, `sf-${setup}-${node}-${i}.log`);
          fs.rmSync(log, { force: true });
          return timed(c.cmd, { timeoutMs: 30 * 60_000, stderrFile: log, rusage: true }).then(
            (r) => {
              const text = fs.readFileSync(log, "utf8");
              rmTree(data);
              return { ...r, uploads: uploadsIn(text), tail: text.slice(-1500) };
            },
          );
        }),
      );
      const arrived = countFiles(dst);
      const ms = Math.max(...results.map((r) => r.ms));
      const ok = results.every((r) => r.code === 0) && arrived === files;
      if (!ok) {
        say(`  f ${setup}: exits ${results.map((r) => r.code)}, ${arrived}/${files} files`);
        for (const r of results) if (r.code !== 0) say(r.tail);
      }
      const cpuS = results.reduce((a, r) => a + (r.cpuS ?? NaN), 0);
      return { ms, ok, cpuS, uploads: results.reduce((a, r) => a + r.uploads, 0) };
    } finally {
      rmTree(dst);
      await db?.drop().catch(() => {});
    }
  };

  const rows: FleetRow[] = [];
  for (const baseline of ctx.baselineEntry ? [false, true] : [false]) {
    for (const setup of SETUPS) {
      rows.push({
        setup,
        runs: [],
        rounds: [],
        medianMs: null,
        uploads: 0,
        failed: 0,
        cpuS: [],
        baseline,
      });
    }
  }
  for (let i = 0; i < runs; i++) {
    for (let k = 0; k < rows.length; k++) {
      const row = rows[(i + k) % rows.length]!;
      const r = await once(row.setup, i, row.baseline ? ctx.baselineEntry! : FC_ENTRY);
      row.rounds.push(r.ok ? r.ms : null);
      if (r.ok) {
        row.runs.push(r.ms);
        row.cpuS.push(r.cpuS);
      } else row.failed++;
      row.uploads = r.uploads;
      say(
        `  f ${row.setup}${row.baseline ? " (baseline)" : ""} run ${i + 1}: ${
          (r.ms / 1000).toFixed(2)
        } s, CPU ${r.cpuS.toFixed(2)} s${r.ok ? "" : " (failed)"}`,
      );
    }
  }
  for (const row of rows) row.medianMs = row.runs.length > 0 ? median(row.runs) : null;
  rmTree(src);
  const latency = await fleetLatency(ctx, ctx.sizes.fleetLatencySamples);
  const store = await storeAlone(ctx, ctx.sizes.fleetStoreFiles, ctx.sizes.fleetStoreRuns);
  const ratio = (a: Setup, b: Setup) => pairedRatio(rows, a, b, false);
  return {
    files,
    rows,
    sharedRatio: ratio("postgres", "sqlite"),
    twoNodesRatio: ratio("postgres-2-nodes", "postgres"),
    twoNodesPinnedRatio: ratio("postgres-2-nodes-pinned", "postgres-pinned"),
    twoNodesSftpRatio: ratio("postgres-2-nodes-sftp", "postgres-sftp"),
    latency,
    store,
  };
}

/**
 * The median over rounds of setup `a`'s wall time / setup `b`'s in the same
 * round: a round runs every setup once, back to back, so a ratio within one
 * round leaves out most of this machine's drift between rounds (the same
 * code's time moves by a third from one round to another), which a ratio of
 * the two medians keeps. Null without a round where both ran.
 */
function pairedRatio(
  rows: readonly FleetRow[],
  a: Setup,
  b: Setup,
  baseline: boolean,
): number | null {
  const find = (setup: Setup) =>
    rows.find((r) => r.setup === setup && (r.baseline ?? false) === baseline);
  const [ra, rb] = [find(a), find(b)];
  if (!ra || !rb) return null;
  const ratios: number[] = [];
  ra.rounds.forEach((x, i) => {
    const y = rb.rounds[i];
    if (x != null && y != null && y > 0) ratios.push(x / y);
  });
  return ratios.length > 0 ? median(ratios) : null;
}

const SETUP_NAME: Record<Setup, string> = {
  sqlite: "one node, embedded SQLite store",
  postgres: "one node, PostgreSQL shared store",
  "postgres-2-nodes": "two nodes, one shared folder, PostgreSQL (sharing both cores)",
  "postgres-pinned": "one node pinned to one core, PostgreSQL",
  "postgres-2-nodes-pinned":
    "two nodes, one shared folder, PostgreSQL, each pinned to its own core",
  "postgres-sftp": "one node pinned to one core, PostgreSQL, to SFTP",
  "postgres-2-nodes-sftp": "two nodes, one shared folder, PostgreSQL, a core each, to SFTP",
};

/** Scenario f's section of the report. */
export function fleetSection(x: FleetResult): string {
  const s = (ms: number | null) => ms === null ? "–" : (ms / 1000).toFixed(2);
  const r = (v: number | null) => v === null ? "–" : `${v.toFixed(2)}×`;
  const rows = x.rows.map((row) =>
    `| ${SETUP_NAME[row.setup]}${row.baseline ? " (baseline)" : ""} | ${s(row.medianMs)} | ${
      row.runs.map(s).join(", ") || "–"
    } | ${(row.cpuS ?? []).map((c) => c.toFixed(2)).join(", ") || "–"} | ${
      row.uploads.toLocaleString("en-US")
    } | ${row.failed} |`
  );
  return `## f. Fleet: initial sync of ${x.files.toLocaleString("en-US")} files with a shared store

\`fileconveyor sync --once\` of ${
    x.files.toLocaleString("en-US")
  } small files (64–256 bytes, 50 directories) into an empty local folder (the SFTP rows: a
folder on the SFTP test server on 127.0.0.1). With two nodes, both watch the same source folder
and share one PostgreSQL store; they start together and the wall time ends when both have exited.
The unpinned rows run every process on both of this machine's cores, so a second node brings no
core of its own: they measure the shared store's cost, not a second web machine. "Pinned" and SFTP
rows hold each node to a core of its own (\`taskset\`: one node on core 0, two nodes on cores 0
and 1), the nearest this machine comes to one machine per node; the database and SFTP servers are
not pinned (with two nodes they take CPU from both). "Uploads" counts what the nodes' logs report in the last run
(${x.files.toLocaleString("en-US")} means every file went out exactly once); "CPU" is the user +
system time of the node processes of each run (the database server's is not included). PostgreSQL
is a private test cluster on 127.0.0.1 with \`synchronous_commit=off\`.

| setup | median wall time (s) | runs (s) | CPU of the nodes (s) | uploads | failed runs |
|---|---|---|---|---|---|
${rows.join("\n")}

Each ratio is the median over the rounds of the ratio within a round (every setup runs once per
round, back to back; this machine's speed drifts between rounds more than the effects measured).
PostgreSQL / SQLite on one node: **${r(x.sharedRatio)}** (goal ≤ 1.5×). Two nodes / one node on
PostgreSQL, all sharing this machine's cores: **${r(x.twoNodesRatio)}** (measures the shared
store's CPU, not a second machine). Two nodes each pinned to its own core / one node pinned to one
core (one machine per node, the database server unpinned): **${
    r(x.twoNodesPinnedRatio ?? null)
  }** (goal < 1×); the same to the SFTP server on 127.0.0.1: **${
    r(x.twoNodesSftpRatio ?? null)
  }**.${baselineRatios(x.rows)}
${x.latency ? latencySection(x.latency) : ""}${x.store ? storeAloneSection(x.store) : ""}`;
}

/** The ratios of the baseline rows, when the run had them. */
function baselineRatios(rows: readonly FleetRow[]): string {
  if (!rows.some((r) => r.baseline)) return "";
  const r = (a: Setup, b: Setup) => {
    const v = pairedRatio(rows, a, b, true);
    return v === null ? "–" : `${v.toFixed(2)}×`;
  };
  return ` The baseline in the same rotation: ${r("postgres", "sqlite")}, ${
    r("postgres-2-nodes", "postgres")
  } and ${r("postgres-2-nodes-pinned", "postgres-pinned")} (pinned) and ${
    r("postgres-2-nodes-sftp", "postgres-sftp")
  } (SFTP).`;
}

/** The latency table of scenario f. */
function latencySection(rows: readonly FleetLatencyRow[]): string {
  const f = (v?: LatencyFigures) =>
    v
      ? `${v.p50.toFixed(0)} / ${v.p99.toFixed(0)}${v.missing ? ` (${v.missing} missing)` : ""}`
      : "–";
  const n = rows[0]?.web.samples ?? 0;
  return `
Change-to-record latency, one node watching: ${n} files written 100 ms apart; the time from the write
until the file's URL is in the node's web application database (\`synced_files.db\`, refreshed once
a second in both setups) and, with the shared store, until its record is in PostgreSQL (what the
other nodes and an app querying the database see). p50 / p99 in ms, polled every 5 ms.

| store | web database p50 / p99 (ms) | shared record p50 / p99 (ms) |
|---|---|---|
${
    rows.map((row) =>
      `| ${row.setup === "sqlite" ? "embedded SQLite" : "PostgreSQL shared store"} | ${
        f(row.web)
      } | ${f(row.shared)} |`
    ).join("\n")
  }
`;
}
