/**
 * Scenario 4 (restart over many unchanged files) with the resource use of a
 * restart and of watching idle (scenario 6): fileconveyor's watch mode and
 * `--once`, rsync and rclone no-op re-syncs, lsyncd's start-up.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { type Context, fresh, startFc, startLsyncd } from "./_context.ts";
import { fcCommand, fcConfig, lsyncdConfig, rcloneCommand, rsyncCommand } from "./_tools.ts";
import { makeTree, median, procUsage, rmTree, say, sleep, timed } from "./_util.ts";

/** One measured way of "starting over an unchanged tree". */
export interface RestartRow {
  tool: string;
  /** What the time measures. */
  what: string;
  runs: { ms: number; maxRssMiB?: number; cpuS?: number; uploads: number }[];
  medianMs: number;
  medianRssMiB: number | null;
  medianCpuS: number | null;
}

/** Scenario 4 results. */
export interface RestartResult {
  files: number;
  dirs: number;
  /** The first (full) sync that built the state, ms. */
  setup: Record<string, number>;
  rows: RestartRow[];
  /** fileconveyor watching the tree, idle: RSS after 2 s and 10 s (MiB), median over runs. */
  idleRssMiB: { after2s: number; after10s: number };
  /** The daemon's own "Initial scan done in N ms" (median). */
  scanMs: number;
  /**
   * Where a restart's wall time goes, from the daemon's log (medians, ms):
   * `--once` runs and watch-mode runs. Absent for a checkout that does not
   * log the parts.
   */
  parts?: { once: RestartParts; watch: RestartParts };
}

/** The parts of one kind of restart (medians, ms of wall time). */
export interface RestartParts {
  /** Process start until the run began: Deno, modules, configuration, store open. */
  startupMs: number;
  /** The native watches' set-up (0 for `--once`). */
  watchSetupMs: number;
  /** The scan as a whole, and of it: listing directories, reading stored rows. */
  scanMs: number;
  listMs: number;
  storedMs: number;
}

/** The parts a daemon's log names, or undefined when it does not name them. */
export function partsOf(log: string): RestartParts | undefined {
  const done = /Initial scan done in \d+ ms .*startupMs=(\d+) watchSetupMs=(\d+)/.exec(log);
  const scan = /Scanned source "[^"]*": .*\((\d+) ms: listing (\d+) ms, stored rows (\d+) ms/.exec(
    log,
  );
  if (!done || !scan) return undefined;
  return {
    startupMs: Number(done[1]),
    watchSetupMs: Number(done[2]),
    scanMs: Number(scan[1]),
    listMs: Number(scan[2]),
    storedMs: Number(scan[3]),
  };
}

function medianParts(all: RestartParts[]): RestartParts | undefined {
  if (all.length === 0) return undefined;
  const m = (k: keyof RestartParts) => median(all.map((p) => p[k]));
  return {
    startupMs: m("startupMs"),
    watchSetupMs: m("watchSetupMs"),
    scanMs: m("scanMs"),
    listMs: m("listMs"),
    storedMs: m("storedMs"),
  };
}

function row(tool: string, what: string, runs: RestartRow["runs"]): RestartRow {
  const rss = runs.map((r) => r.maxRssMiB).filter((x): x is number => x !== undefined);
  const cpu = runs.map((r) => r.cpuS).filter((x): x is number => x !== undefined);
  return {
    tool,
    what,
    runs,
    medianMs: median(runs.map((r) => r.ms)),
    medianRssMiB: rss.length ? median(rss) : null,
    medianCpuS: cpu.length ? median(cpu) : null,
  };
}

function uploads(text: string): number {
  return (text.match(/\] (?:uploaded|updated) /g) ?? []).length;
}

function parts(once?: RestartParts, watch?: RestartParts): Pick<RestartResult, "parts"> {
  return once && watch ? { parts: { once, watch } } : {};
}

/** Runs scenario 4. */
export async function restart(ctx: Context): Promise<RestartResult> {
  const { restartFiles: files, restartDirs: dirs, restartRuns: runs } = ctx.sizes;
  const src = path.join(ctx.work, "s4-src");
  rmTree(src);
  say(`scenario 4: writing ${files} files in ${dirs} directories`);
  makeTree(src, { files, dirs, minBytes: 1024, maxBytes: 4096, seed: 4 });
  const dstFc = path.join(ctx.work, "s4-dst-fc");
  const dstRsync = path.join(ctx.work, "s4-dst-rsync");
  const dstRclone = path.join(ctx.work, "s4-dst-rclone");
  const data = path.join(ctx.data, "s4");
  for (const d of [dstFc, dstRsync, dstRclone, data]) rmTree(d);
  const config = fcConfig(path.join(ctx.work, "s4.xml"), {
    src,
    dest: { kind: "local", dir: dstFc },
    dataDir: data,
    concurrency: ctx.concurrency,
  });
  const log = path.join(ctx.work, "s4-fc.log");
  const limit = 60 * 60_000;
  const setup: Record<string, number> = {};
  try {
    say("scenario 4: initial syncs (state for the restarts)");
    const fcOnce = fcCommand(config, true);
    let r = await timed(fcOnce.cmd, { timeoutMs: limit, stderrFile: log });
    if (r.code !== 0) throw new Error(`fileconveyor initial sync failed (${r.code}); see ${log}`);
    setup["fileconveyor sync --once"] = r.ms;
    const rs = rsyncCommand(src, { kind: "local", dir: dstRsync })!;
    r = await timed(rs.cmd, { timeoutMs: limit });
    setup["rsync -a"] = r.ms;
    const rc = rcloneCommand(src, { kind: "local", dir: dstRclone }, ctx.concurrency);
    r = await timed(rc.cmd, { env: rc.env, unsetEnv: rc.unsetEnv, timeoutMs: limit });
    setup["rclone copy"] = r.ms;
    ctx.commands.set("4 fileconveyor --once (no-op)", fcOnce.shown);
    ctx.commands.set("4 rsync (no-op)", rs.shown);
    ctx.commands.set("4 rclone (no-op)", rc.shown);

    const watch: RestartRow["runs"] = [];
    const once: RestartRow["runs"] = [];
    const baseline: RestartRow["runs"] = [];
    const baseOnce = ctx.baselineEntry ? fcCommand(config, true, ctx.baselineEntry) : undefined;
    if (baseOnce) ctx.commands.set("4 fileconveyor --once (baseline, no-op)", baseOnce.shown);
    const rsync: RestartRow["runs"] = [];
    const rclone: RestartRow["runs"] = [];
    const lsyncd: RestartRow["runs"] = [];
    const idle2: number[] = [];
    const idle10: number[] = [];
    const scan: number[] = [];
    const onceParts: RestartParts[] = [];
    const watchParts: RestartParts[] = [];
    for (let i = 0; i < runs; i++) {
      say(`scenario 4: run ${i + 1}/${runs}`);
      // Watch mode: from spawn until watching with the initial scan done.
      const fc = await startFc(ctx, config, log, "4 fileconveyor watch mode (restart)", limit);
      const at = procUsage(fc.bg.child.pid);
      const m = /Initial scan done in (\d+) ms/.exec(fc.bg.text());
      if (m) scan.push(Number(m[1]));
      const wp = partsOf(fc.bg.text());
      if (wp) watchParts.push(wp);
      await sleep(2000);
      idle2.push(procUsage(fc.bg.child.pid)?.rssMiB ?? NaN);
      if (i === 0) {
        await sleep(8000);
        idle10.push(procUsage(fc.bg.child.pid)?.rssMiB ?? NaN);
      }
      const up = uploads(fc.bg.text());
      await fc.bg.stop();
      watch.push({
        ms: fc.readyMs,
        ...(at ? { maxRssMiB: at.hwmMiB, cpuS: at.cpuS } : {}),
        uploads: up,
      });
      // --once: until it exits with nothing to do.
      fs.rmSync(log, { force: true });
      const o = await timed(fcOnce.cmd, { timeoutMs: limit, rusage: true, stderrFile: log });
      const op = partsOf(fs.readFileSync(log, "utf8"));
      if (op) onceParts.push(op);
      once.push({
        ms: o.ms,
        ...(o.maxRssMiB !== undefined ? { maxRssMiB: o.maxRssMiB, cpuS: o.cpuS! } : {}),
        uploads: uploads(fs.readFileSync(log, "utf8")),
      });
      if (baseOnce) {
        // Another checkout over the same state: its restart beside this one's, in one rotation.
        fs.rmSync(log, { force: true });
        const b = await timed(baseOnce.cmd, { timeoutMs: limit, rusage: true, stderrFile: log });
        baseline.push({
          ms: b.ms,
          ...(b.maxRssMiB !== undefined ? { maxRssMiB: b.maxRssMiB, cpuS: b.cpuS! } : {}),
          uploads: uploads(fs.readFileSync(log, "utf8")),
        });
      }
      const a = await timed(rs.cmd, { timeoutMs: limit, rusage: true });
      rsync.push({
        ms: a.ms,
        ...(a.maxRssMiB !== undefined ? { maxRssMiB: a.maxRssMiB, cpuS: a.cpuS! } : {}),
        uploads: 0,
      });
      const b = await timed(rc.cmd, {
        env: rc.env,
        unsetEnv: rc.unsetEnv,
        timeoutMs: limit,
        rusage: true,
      });
      rclone.push({
        ms: b.ms,
        ...(b.maxRssMiB !== undefined ? { maxRssMiB: b.maxRssMiB, cpuS: b.cpuS! } : {}),
        uploads: 0,
      });
      // lsyncd: from spawn until its start-up rsync finished (then it watches).
      const base = path.join(ctx.work, fresh("s4-lsyncd"));
      const lcfg = lsyncdConfig(base + ".lua", {
        src,
        dest: { kind: "local", dir: dstRsync },
        delay: 0,
        logFile: base + ".log",
        statusFile: base + ".status",
      });
      const t0 = performance.now();
      const l = await startLsyncd(ctx, lcfg, "4 lsyncd start-up", limit);
      const lms = performance.now() - t0;
      const lu = procUsage(l.child.pid);
      await l.stop();
      lsyncd.push({ ms: lms, ...(lu ? { maxRssMiB: lu.hwmMiB, cpuS: lu.cpuS } : {}), uploads: 0 });
    }
    return {
      files,
      dirs,
      setup,
      rows: [
        row("fileconveyor sync (watch mode)", "start → watching, initial scan done, idle", watch),
        row("fileconveyor sync --once", "start → exit (nothing to do)", once),
        ...(baseOnce
          ? [row("fileconveyor sync --once (baseline)", "the other checkout, same state", baseline)]
          : []),
        row("rsync -a", "no-op re-sync", rsync),
        row("rclone copy", "no-op re-sync", rclone),
        row("lsyncd (default.rsync)", "start → start-up rsync done, watching", lsyncd),
      ],
      idleRssMiB: { after2s: median(idle2), after10s: median(idle10) },
      scanMs: median(scan),
      ...parts(medianParts(onceParts), medianParts(watchParts)),
    };
  } finally {
    for (const d of [src, dstFc, dstRsync, dstRclone, data]) rmTree(d);
  }
}
