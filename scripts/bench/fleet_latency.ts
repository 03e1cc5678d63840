/**
 * Scenario f, latency: how long after a file is written (the daemon
 * watching) its URL can be read, with the embedded SQLite store and with a
 * PostgreSQL shared store (one node). Two places are timed: the node's own
 * web application database (`synced_files.db`, what the Drupal module
 * reads; it is refreshed once a second in both setups) and, for the shared
 * store, the shared record (`synced_files` in PostgreSQL, what every other
 * node and an app querying the database see). Files are written one at a
 * time at a steady pace; each place is polled every few milliseconds, so a
 * figure includes up to one polling interval.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import pg from "pg";
import { freshDatabase } from "../../tests/_servers.ts";
import { type Context, fresh, startFc } from "./_context.ts";
import { fcConfig } from "./_tools.ts";
import { percentile, rmTree, say, sleep } from "./_util.ts";

/** Figures of one place (ms). */
export interface LatencyFigures {
  samples: number;
  missing: number;
  p50: number;
  p99: number;
}

/** One setup's latencies. */
export interface FleetLatencyRow {
  setup: "sqlite" | "postgres";
  /** Until the URL is in the node's web database. */
  web: LatencyFigures;
  /** Until the record is in the shared store (PostgreSQL only). */
  shared?: LatencyFigures;
}

/** How often each place is looked at. */
const POLL_MS = 5;
/** A file not seen this long after it was written counts as missing. */
const DEADLINE_MS = 30_000;

function figures(times: (number | undefined)[]): LatencyFigures {
  const seen = times.filter((t): t is number => t !== undefined);
  return {
    samples: seen.length,
    missing: times.length - seen.length,
    p50: percentile(seen, 50),
    p99: percentile(seen, 99),
  };
}

/** The input files among `wanted` that the web database at `file` has a URL for. */
function inWebDb(file: string, wanted: readonly string[]): Set<string> {
  if (wanted.length === 0 || !fs.existsSync(file)) return new Set();
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(file, { readOnly: true });
    const rows = db.prepare(
      "SELECT input_file FROM synced_files WHERE input_file IN (SELECT value FROM json_each(?))",
    ).all(JSON.stringify(wanted)) as { input_file: string }[];
    return new Set(rows.map((r) => r.input_file));
  } catch {
    // Being replaced right now: the next poll reads it.
    return new Set();
  } finally {
    db?.close();
  }
}

/** Measures one setup: `samples` files written `paceMs` apart while the daemon watches. */
async function measure(
  ctx: Context,
  setup: FleetLatencyRow["setup"],
  samples: number,
  paceMs: number,
): Promise<FleetLatencyRow> {
  const src = path.join(ctx.work, fresh("sfl-src"));
  const dst = path.join(ctx.work, fresh("sfl-dst"));
  const data = path.join(ctx.data, fresh("sfl-data"));
  fs.mkdirSync(path.join(src, "seed"), { recursive: true });
  fs.writeFileSync(path.join(src, "seed", "seed.txt"), "seed");
  const db = setup === "postgres" ? await freshDatabase("postgres") : undefined;
  const client = db
    // The URL names the fresh database and holds the password: never printed.
    ? new pg.Client({ connectionString: db.url })
    : undefined;
  const config = fcConfig(path.join(ctx.work, fresh("sfl") + ".xml"), {
    src,
    dest: { kind: "local", dir: dst },
    dataDir: data,
    concurrency: ctx.concurrency,
    settings: db ? { store: db.url, node: "n1" } : {},
  });
  const log = path.join(ctx.work, fresh("sfl") + ".log");
  const fc = await startFc(ctx, config, log, `f latency ${setup}`);
  try {
    await client?.connect();
    const webDb = path.join(data, "synced_files.db");
    const files: string[] = [];
    const written: number[] = [];
    const web: (number | undefined)[] = [];
    const shared: (number | undefined)[] = [];
    let writing = true;
    const poll = async () => {
      while (writing || files.some((_, i) => web[i] === undefined || (client && !shared[i]))) {
        const now = performance.now();
        const late = (i: number) => now - written[i]! > DEADLINE_MS;
        const wantWeb = files.filter((_, i) => web[i] === undefined && !late(i));
        const wantShared = client
          ? files.filter((_, i) => shared[i] === undefined && !late(i))
          : [];
        if (!writing && wantWeb.length === 0 && wantShared.length === 0) break;
        const inWeb = inWebDb(webDb, wantWeb);
        const t = performance.now();
        files.forEach((f, i) => {
          if (web[i] === undefined && inWeb.has(f)) web[i] = t - written[i]!;
        });
        if (client && wantShared.length > 0) {
          // Before the daemon created the schema the table is missing: nothing is there yet.
          const rows = await client.query<{ input_file: string }>(
            "SELECT input_file FROM synced_files WHERE input_file = ANY($1::text[])",
            [wantShared],
          ).then((r) => r.rows, () => []);
          const t2 = performance.now();
          const got = new Set(rows.map((x) => x.input_file));
          files.forEach((f, i) => {
            if (shared[i] === undefined && got.has(f)) shared[i] = t2 - written[i]!;
          });
        }
        await sleep(POLL_MS);
      }
    };
    const polling = poll();
    for (let i = 0; i < samples; i++) {
      const f = path.join(src, `d${i % 10}`, `l${i}.txt`);
      fs.mkdirSync(path.dirname(f), { recursive: true });
      files.push(f);
      written.push(performance.now());
      fs.writeFileSync(f, `latency sample ${i}\n`);
      await sleep(paceMs);
    }
    writing = false;
    await polling;
    const row: FleetLatencyRow = { setup, web: figures(web) };
    if (client) row.shared = figures(shared);
    return row;
  } finally {
    await fc.bg.stop();
    await client?.end().catch(() => {});
    await db?.drop().catch(() => {});
    rmTree(src);
    rmTree(dst);
    rmTree(data);
  }
}

/** The latency rows of scenario f: SQLite, then PostgreSQL (one node each). */
export async function fleetLatency(
  ctx: Context,
  samples: number,
  paceMs = 100,
): Promise<FleetLatencyRow[]> {
  const rows: FleetLatencyRow[] = [];
  for (const setup of ["sqlite", "postgres"] as const) {
    const row = await measure(ctx, setup, samples, paceMs);
    const s = (x?: LatencyFigures) =>
      x ? `p50 ${x.p50.toFixed(0)} ms, p99 ${x.p99.toFixed(0)} ms, ${x.missing} missing` : "–";
    say(`  f latency ${setup}: web db ${s(row.web)}; shared record ${s(row.shared)}`);
    rows.push(row);
  }
  return rows;
}
