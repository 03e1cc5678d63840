/**
 * Scenario s (scale): how fileconveyor's costs grow with the tree. For each
 * size, a fresh tree of small files (64–512 bytes, 100 per directory) goes
 * to a local folder (symlinks, the local transporter's default, so the
 * destination costs no data):
 *
 * - the initial sync (`sync --once` from an empty database): wall time,
 *   peak RSS and CPU (GNU time), and the daemon's own "Initial scan done"
 *   (walk, compare and queue, without the uploads);
 * - the database directory's size afterwards;
 * - a restart over the unchanged tree (`sync --once`, nothing to do), the
 *   same figures;
 * - watch mode over the unchanged tree: start until the initial scan is
 *   done, and the RSS once idle.
 *
 * Not part of the default run (a million files take a long while): `deno
 * task bench --scale` (sizes of the mode: quick 20,000 and 50,000; full
 * 10,000, 100,000 and 1,000,000) or `--scale 10000,100000,1000000`. Run
 * alone: `deno run -A scripts/bench/scale.ts 100000,300000`. A million
 * files take 3.9 GB of the tree's file system (tmpfs: memory), 1.1 GB of
 * database and about 40 minutes on 2 busy cores (most of it the initial
 * sync).
 *
 * @module
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { type Context, startFc } from "./_context.ts";
import { fcCommand, fcConfig } from "./_tools.ts";
import { makeTree, rmTree, say, sleep, timed } from "./_util.ts";

/** Sizes measured when none are given. */
export const SCALE_SIZES: Record<"quick" | "full", number[]> = {
  quick: [20_000, 50_000],
  full: [10_000, 100_000, 1_000_000],
};

/** One process run. */
export interface ScaleRun {
  ms: number;
  maxRssMiB: number | null;
  cpuS: number | null;
  /** The daemon's "Initial scan done in N ms". */
  scanMs: number | null;
}

/** Everything measured at one size. */
export interface ScalePoint {
  files: number;
  dirs: number;
  /** Building the source tree (not fileconveyor's time). */
  treeMs: number;
  initial: ScaleRun;
  /** Database directory after the initial sync, bytes. */
  dbBytes: number;
  restart: ScaleRun;
  /** Watch mode: spawn until the initial scan is done. */
  watchReadyMs: number;
  watchScanMs: number | null;
  /** Watch mode, 5 s after the initial scan, nothing to do. */
  watchIdleRssMiB: number | null;
}

/** Scenario s results. */
export interface ScaleResult {
  points: ScalePoint[];
}

/** Bytes of every file below `dir`. */
function treeBytes(dir: string): number {
  let sum = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) sum += treeBytes(p);
    else if (e.isFile()) sum += fs.statSync(p).size;
  }
  return sum;
}

function scanMs(log: string): number | null {
  const m = /Initial scan done in (\d+) ms/.exec(log);
  return m ? Number(m[1]) : null;
}

/** Reads the start of a log (the scan line comes before the uploads' lines). */
function logHead(file: string, bytes = 1 << 20): string {
  const fd = fs.openSync(file, "r");
  try {
    const b = new Uint8Array(bytes);
    const n = fs.readSync(fd, b, 0, bytes, 0);
    return new TextDecoder().decode(b.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
}

/** A log of `--once` runs can be large: the scan line is searched in its head, else in the whole. */
function scanFromLog(file: string): number | null {
  return scanMs(logHead(file)) ?? scanMs(fs.readFileSync(file, "utf8"));
}

async function once(cmd: string[], log: string, limit: number): Promise<ScaleRun> {
  fs.rmSync(log, { force: true });
  const r = await timed(cmd, { timeoutMs: limit, rusage: true, stderrFile: log });
  if (r.code !== 0) throw new Error(`fileconveyor sync --once failed (${r.code}); see ${log}`);
  return {
    ms: r.ms,
    maxRssMiB: r.maxRssMiB ?? null,
    cpuS: r.cpuS ?? null,
    scanMs: scanFromLog(log),
  };
}

/** Measures one size. */
async function point(ctx: Context, files: number): Promise<ScalePoint> {
  const dirs = Math.max(1, Math.ceil(files / 100));
  const src = path.join(ctx.work, "ss-src");
  const dst = path.join(ctx.work, "ss-dst");
  const data = path.join(ctx.data, "ss");
  const log = path.join(ctx.work, "ss-fc.log");
  for (const d of [src, dst, data]) rmTree(d);
  try {
    say(`scale: writing ${files} files in ${dirs} directories`);
    const t0 = performance.now();
    makeTree(src, { files, dirs, minBytes: 64, maxBytes: 512, seed: 7 });
    const treeMs = performance.now() - t0;
    const config = fcConfig(path.join(ctx.work, "ss.xml"), {
      src,
      dest: { kind: "local", dir: dst },
      dataDir: data,
      concurrency: ctx.concurrency,
      symlinks: true,
    });
    const cmd = fcCommand(config, true);
    ctx.commands.set("s fileconveyor --once (initial and restart)", cmd.shown);
    // Bounded by a generous rate (200 files/s), so a stuck run ends.
    const limit = Math.max(10 * 60_000, files * 5);
    say(`scale: initial sync of ${files} files`);
    const initial = await once(cmd.cmd, log, limit);
    const dbBytes = treeBytes(data);
    say(`scale: restart over ${files} unchanged files`);
    const restart = await once(cmd.cmd, log, limit);
    say(`scale: watch mode over ${files} unchanged files`);
    const fc = await startFc(ctx, config, log, "s fileconveyor watch mode (restart)", limit);
    const watchScanMs = scanMs(fc.bg.text());
    await sleep(5000);
    const status = fs.readFileSync(`/proc/${fc.bg.child.pid}/status`, "utf8");
    const rss = /^VmRSS:\s+(\d+)/m.exec(status);
    await fc.bg.stop();
    return {
      files,
      dirs,
      treeMs,
      initial,
      dbBytes,
      restart,
      watchReadyMs: fc.readyMs,
      watchScanMs,
      watchIdleRssMiB: rss ? Number(rss[1]) / 1024 : null,
    };
  } finally {
    for (const d of [src, dst, data]) rmTree(d);
    fs.rmSync(log, { force: true });
  }
}

/** Runs scenario s over `sizes` (ascending). */
export async function scale(ctx: Context, sizes: readonly number[]): Promise<ScaleResult> {
  const points: ScalePoint[] = [];
  for (const files of [...sizes].sort((a, b) => a - b)) points.push(await point(ctx, files));
  return { points };
}

/**
 * How `y` grows with the file count between the smallest and the largest
 * size: the exponent k of y ∝ files^k (1 is linear, 0 constant).
 */
export function growth(
  points: readonly ScalePoint[],
  y: (p: ScalePoint) => number | null,
): number | null {
  if (points.length < 2) return null;
  const a = points[0]!, b = points[points.length - 1]!;
  const ya = y(a), yb = y(b);
  if (ya === null || yb === null || !(ya > 0) || !(yb > 0)) return null;
  return Math.log(yb / ya) / Math.log(b.files / a.files);
}

function f(x: number | null, digits = 1): string {
  return x === null || !Number.isFinite(x) ? "–" : x.toFixed(digits);
}

function int(x: number): string {
  return x.toLocaleString("en-US");
}

/** The report's section for scenario s (heading, what was measured, the table). */
export function scaleSection(r: ScaleResult): string {
  return `## Scale: ${r.points.map((p) => int(p.files)).join(", ")} files

Each size is a fresh tree of files of 64–512 bytes, 100 per directory, synced to a local folder
(symlinks) from an empty database; then a restart over the unchanged tree (\`sync --once\`, nothing to
do) and watch mode over it (start until the initial scan is done; RSS 5 s later). Times include
process start-up; "scan" is the daemon's own "Initial scan done" (walk, compare with the database,
queue; in the initial sync the uploads run beside it). Peak RSS and CPU from GNU time. Growth: the
exponent k of value ∝ files^k between the smallest and the largest size (1 linear, 0 constant).

${scaleMarkdown(r)}
`;
}

/** The table of scenario s. */
export function scaleMarkdown(r: ScaleResult): string {
  const p = r.points;
  const cols: [string, (x: ScalePoint) => number | null, number][] = [
    ["initial sync s", (x) => x.initial.ms / 1000, 1],
    ["initial scan s (daemon's figure)", (x) => x.initial.scanMs && x.initial.scanMs / 1000, 2],
    ["initial sync peak RSS MiB", (x) => x.initial.maxRssMiB, 0],
    ["initial sync CPU s", (x) => x.initial.cpuS, 1],
    ["database MiB", (x) => x.dbBytes / 1024 / 1024, 1],
    ["restart `--once` s", (x) => x.restart.ms / 1000, 2],
    ["restart scan s (daemon's figure)", (x) => x.restart.scanMs && x.restart.scanMs / 1000, 2],
    ["restart peak RSS MiB", (x) => x.restart.maxRssMiB, 0],
    ["restart CPU s", (x) => x.restart.cpuS, 2],
    ["watch mode: start → scan done s", (x) => x.watchReadyMs / 1000, 2],
    ["watch mode: idle RSS MiB", (x) => x.watchIdleRssMiB, 0],
  ];
  const head = ["measure", ...p.map((x) => `${int(x.files)} files`), "growth (exponent)"];
  const rows = cols.map(([name, y, d]) => {
    const k = growth(p, y);
    return [name, ...p.map((x) => f(y(x), d)), k === null ? "–" : k.toFixed(2)];
  });
  // Per file: a figure that stays flat as the tree grows grows linearly with it.
  const perFile: [string, (x: ScalePoint) => number | null, number][] = [
    ["database bytes per file", (x) => x.dbBytes / x.files, 0],
    ["initial sync CPU ms per file", (x) => x.initial.cpuS && (x.initial.cpuS * 1000) / x.files, 3],
    ["restart µs per file", (x) => (x.restart.ms * 1000) / x.files, 1],
    ["restart CPU µs per file", (x) => x.restart.cpuS && (x.restart.cpuS * 1e6) / x.files, 1],
  ];
  for (const [name, y, d] of perFile) rows.push([name, ...p.map((x) => f(y(x), d)), "–"]);
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [
    line(head),
    line(head.map(() => "---")),
    ...rows.map(line),
  ].join("\n");
}

if (import.meta.main) {
  const sizes = (Deno.args[0] ?? SCALE_SIZES.quick.join(",")).split(",").map(Number);
  const shm = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
  const work = fs.mkdtempSync(path.join(shm, "fc-bench-scale-"));
  const data = fs.mkdtempSync(path.join(os.tmpdir(), "fc-bench-scale-data-"));
  try {
    const ctx = {
      mode: "full",
      work,
      data,
      concurrency: 8,
      commands: new Map(),
    } as unknown as Context;
    const result = await scale(ctx, sizes);
    // deno-lint-ignore no-console
    console.log(JSON.stringify(result, null, 2));
    // deno-lint-ignore no-console
    console.log(scaleMarkdown(result));
  } finally {
    rmTree(work);
    rmTree(data);
  }
}
