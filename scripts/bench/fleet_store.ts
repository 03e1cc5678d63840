/**
 * Scenario f, the shared store alone: a node's round trips to the
 * PostgreSQL and the MariaDB store for many files (`fleet_store_run.ts`), in
 * a fresh database, with the database server's CPU (its processes' user +
 * system time, read from `/proc`: the servers run on this machine). What it
 * shows: whether the cost of each 10,000 files stays the same as the shared
 * record grows from empty — a plan that reads a whole table (one PostgreSQL
 * made while the tables were empty and kept for a named statement, say)
 * makes each slice slower than the one before. With `--baseline`, the other
 * checkout's store runs in the same rotation.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import mysql from "mysql2/promise";
import pg from "pg";
import { type DatabaseServer, freshDatabase } from "../../tests/_servers.ts";
import type { Context } from "./_context.ts";
import { descendants, median, procUsage, say, sleep, timed } from "./_util.ts";

/** One checkout's runs on one database server. */
export interface StoreAloneRow {
  engine: DatabaseServer;
  baseline: boolean;
  /** Wall time of each run, ms. */
  runs: number[];
  /** The database server's CPU seconds of each run. */
  serverCpuS: number[];
  /** Each run's time per 10,000 files, ms, in order. */
  slices: number[][];
  failed: number;
}

/** Results of the store alone. */
export interface StoreAloneResult {
  files: number;
  rows: StoreAloneRow[];
}

const RUNNER = path.join(import.meta.dirname!, "fleet_store_run.ts");

/** The database servers, in their rotation order. */
const ENGINES: DatabaseServer[] = ["postgres", "mariadb"];

const ENGINE_NAME: Record<DatabaseServer, string> = { postgres: "PostgreSQL", mariadb: "MariaDB" };

/**
 * A database server's CPU seconds so far: its main process (with its children that ended) and its
 * live children (PostgreSQL's backends).
 */
function serverCpu(pid: number): number {
  let total = 0;
  for (const p of [pid, ...descendants(pid)]) total += procUsage(p)?.cpuS ?? 0;
  return total;
}

/** The process whose CPU is the database server's (with its ended children's). */
function serverPid(engine: DatabaseServer, url: string): Promise<number> {
  return engine === "postgres" ? postmasterOf(url) : mariadbPid(url);
}

/** MariaDB's one process (its threads are counted in it), from the server's pid file. */
async function mariadbPid(url: string): Promise<number> {
  const c = await mysql.createConnection(url);
  try {
    const [rows] = await c.query("SELECT @@pid_file AS f");
    const file = (rows as { f: string }[])[0]!.f;
    return Number(fs.readFileSync(file, "utf8").trim());
  } finally {
    await c.end();
  }
}

/** PostgreSQL's main process: the parent of a backend. */
async function postmasterOf(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query("SELECT pg_backend_pid() AS pid");
    const stat = fs.readFileSync(`/proc/${r.rows[0].pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } finally {
    await c.end();
  }
}

/** Runs the store alone for `files` files, `runs` times per checkout and database server. */
export async function storeAlone(
  ctx: Context,
  files: number,
  runs: number,
): Promise<StoreAloneResult> {
  // This checkout's root is two levels up from scripts/bench.
  const checkouts = [{ root: path.resolve(path.dirname(RUNNER), "../.."), baseline: false }];
  if (ctx.baselineEntry) checkouts.push({ root: path.dirname(ctx.baselineEntry), baseline: true });
  const roots = ENGINES.flatMap((engine) => checkouts.map((c) => ({ ...c, engine })));
  const rows: StoreAloneRow[] = roots.map((r) => ({
    engine: r.engine,
    baseline: r.baseline,
    runs: [],
    serverCpuS: [],
    slices: [],
    failed: 0,
  }));
  say(`scenario f, the store alone: ${files} files, ${runs} run(s)`);
  for (let i = 0; i < runs; i++) {
    for (let k = 0; k < roots.length; k++) {
      const at = (i + k) % roots.length;
      const { root, baseline, engine } = roots[at]!;
      const row = rows[at]!;
      const name = `${ENGINE_NAME[engine]}${baseline ? " (baseline)" : ""}`;
      const db = await freshDatabase(engine);
      try {
        // Unknown (a pid file this user cannot read): the run is timed without the server's CPU.
        const server = await serverPid(engine, db.url).catch(() => undefined);
        const before = server === undefined ? NaN : serverCpu(server);
        const r = await timed(
          [
            Deno.execPath(),
            "run",
            "-A",
            "--config",
            path.join(root, "deno.json"),
            RUNNER,
            root,
            String(files),
          ],
          // The URL holds the database's password: not on the command line.
          { timeoutMs: 30 * 60_000, env: { FC_BENCH_STORE_URL: db.url } },
        );
        // The run's connections have closed: their backends end and are counted.
        await sleep(500);
        const cpu = server === undefined ? NaN : serverCpu(server) - before;
        const out = r.code === 0 ? r.stdout.trim().split("\n").at(-1) : undefined;
        if (!out) {
          row.failed++;
          say(`  store alone, ${name}: exit ${r.code}: ${r.stderr.slice(-800)}`);
          continue;
        }
        const o = JSON.parse(out) as { wallMs: number; slices: number[] };
        row.runs.push(o.wallMs);
        row.serverCpuS.push(cpu);
        row.slices.push(o.slices);
        say(
          `  store alone, ${name}, run ${i + 1}: ${(o.wallMs / 1000).toFixed(2)} s, server CPU ${
            cpu.toFixed(2)
          } s, per 10,000 files ${o.slices.map((s) => (s / 1000).toFixed(2)).join(" ")} s`,
        );
      } finally {
        await db.drop().catch(() => {});
      }
    }
  }
  return { files, rows };
}

/** The report's part on the store alone. */
export function storeAloneSection(x: StoreAloneResult): string {
  const s = (ms: number) => (ms / 1000).toFixed(2);
  const rows = x.rows.map((row) => {
    const slices = row.slices.map((sl) => sl.map(s).join(" → ")).join("; ") || "–";
    return `| ${ENGINE_NAME[row.engine]}, ${row.baseline ? "baseline" : "this code"} | ${
      row.runs.length ? s(median(row.runs)) : "–"
    } | ${row.runs.map(s).join(", ") || "–"} | ${
      row.serverCpuS.map((c) => Number.isNaN(c) ? "–" : c.toFixed(2)).join(", ") || "–"
    } | ${slices} | ${row.failed} |`;
  });
  return `
### The shared store alone, ${x.files.toLocaleString("en-US")} files

A node's round trips to the PostgreSQL and the MariaDB store without the node
(\`scripts/bench/fleet_store_run.ts\`): claims of 64 files, publishes of 32, a follow of the change
feed every 10 claims, into a fresh database. "Server CPU" is the database server's user + system time of the run; each 10,000 files
should cost the same however large the shared record has grown.

| store | median wall time (s) | runs (s) | server CPU (s) | each 10,000 files, per run (s) | failed runs |
|---|---|---|---|---|---|
${rows.join("\n")}
`;
}
