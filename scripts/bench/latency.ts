/**
 * Scenarios 2 (latency of single writes at a steady pace) and 3 (a burst of
 * files written at once): fileconveyor in watch mode vs lsyncd, to a local
 * folder, SFTP and S3.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { type Context, fresh, sftpDir, startFc, startLsyncd } from "./_context.ts";
import { Arrivals, logReader, observe } from "./_arrivals.ts";
import { type Dest, fcConfig, lsyncdConfig } from "./_tools.ts";
import { type Background, epochMs, percentile, rmTree, say, sleep } from "./_util.ts";

/** A tool watching a source and pushing to a destination. */
export interface LiveTarget {
  label: string;
  tool: "fileconveyor" | "lsyncd";
  dest: "local" | "sftp" | "s3";
  /** lsyncd's delay in seconds; undefined: its default (15 s for default.rsync). */
  delay?: number;
}

/** Latency figures of one target (pooled over its runs). */
export interface LatencyRow extends LiveTarget {
  method: string;
  samples: number;
  missing: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  /** fileconveyor to a folder we can observe: the same figures from its log, as a check. */
  logged?: { p50: number; p95: number; p99: number };
}

/** Burst figures of one target (median over runs). */
export interface BurstRow extends LiveTarget {
  method: string;
  files: number;
  runs: { allMs: number; afterLastMs: number; missing: number }[];
  /** Median over runs: first write to last arrival. */
  allMs: number;
  /** Median over runs: last close to last arrival. */
  afterLastMs: number;
}

const DIRS = 10;
const SIZE = 4096;

/** The targets of scenarios 2 and 3. */
export function liveTargets(withDefaultDelay: boolean): LiveTarget[] {
  const t: LiveTarget[] = [
    { label: "fileconveyor → local", tool: "fileconveyor", dest: "local" },
    { label: "lsyncd (delay=0) → local", tool: "lsyncd", dest: "local", delay: 0 },
  ];
  if (withDefaultDelay) {
    t.push({ label: "lsyncd (default delay) → local", tool: "lsyncd", dest: "local" });
  }
  t.push(
    { label: "fileconveyor → SFTP", tool: "fileconveyor", dest: "sftp" },
    { label: "lsyncd (delay=0) → rsync over SSH", tool: "lsyncd", dest: "sftp", delay: 0 },
  );
  if (withDefaultDelay) {
    t.push({ label: "lsyncd (default delay) → rsync over SSH", tool: "lsyncd", dest: "sftp" });
  }
  t.push({ label: "fileconveyor → S3", tool: "fileconveyor", dest: "s3" });
  return t;
}

/** One started target: where files go and how their arrival is seen. */
interface Session {
  src: string;
  /** Watches for arrivals; `logged` is fileconveyor's log (undefined for lsyncd). */
  track(a: Arrivals, b?: Arrivals): { stop(): void; poll(): void };
  method: string;
  stop(): Promise<void>;
}

async function startSession(ctx: Context, t: LiveTarget, scenario: string): Promise<Session> {
  const src = path.join(ctx.work, fresh(`${scenario}-src`));
  for (let d = 0; d < DIRS; d++) {
    fs.mkdirSync(path.join(src, `d${d}`), { recursive: true });
    fs.writeFileSync(
      path.join(src, `d${d}`, "seed.bin"),
      crypto.getRandomValues(new Uint8Array(SIZE)),
    );
  }
  let dest: Dest;
  let observed: string | undefined;
  let cleanup = () => {};
  if (t.dest === "local") {
    observed = path.join(ctx.work, fresh(`${scenario}-dst`));
    fs.mkdirSync(observed, { recursive: true });
    dest = { kind: "local", dir: observed };
    const dir = observed;
    cleanup = () => rmTree(dir);
  } else if (t.dest === "sftp") {
    const name = fresh(`${scenario}`);
    observed = sftpDir(ctx, name);
    dest = { kind: "sftp", info: ctx.sftp, dir: name };
    const dir = observed;
    cleanup = () => rmTree(dir);
  } else {
    dest = { kind: "s3", info: ctx.swift, bucket: fresh(scenario) };
  }
  let bg: Background;
  let logFile: string | undefined;
  const label = `${scenario === "s2" ? "2" : "3"} ${t.label}`;
  if (t.tool === "fileconveyor") {
    logFile = path.join(ctx.work, fresh(`${scenario}-fc`) + ".log");
    const config = fcConfig(path.join(ctx.work, fresh(`${scenario}`) + ".xml"), {
      src,
      dest,
      dataDir: path.join(ctx.data, fresh(scenario)),
      concurrency: ctx.concurrency,
    });
    bg = (await startFc(ctx, config, logFile, label)).bg;
  } else {
    const base = path.join(ctx.work, fresh(`${scenario}-lsyncd`));
    const config = lsyncdConfig(base + ".lua", {
      src,
      dest,
      ...(t.delay !== undefined ? { delay: t.delay } : {}),
      logFile: base + ".log",
      statusFile: base + ".status",
    });
    bg = await startLsyncd(ctx, config, label);
  }
  const method = observed
    ? "observed at the destination folder (inotify + 2 ms polling)"
    : "fileconveyor's log line after the verified PUT (ms timestamps)";
  return {
    src,
    method,
    track(a, b) {
      const stops: (() => void)[] = [];
      const polls: (() => void)[] = [];
      if (observed) stops.push(observe(observed, a, () => SIZE).stop);
      const logTarget = observed ? b : a;
      if (logFile && logTarget) polls.push(logReader(logFile, logTarget));
      return {
        stop: () => stops.forEach((s) => s()),
        poll: () => polls.forEach((p) => p()),
      };
    },
    async stop() {
      await bg.stop();
      rmTree(src);
      cleanup();
    },
  };
}

function write(src: string, rel: string): number {
  fs.writeFileSync(path.join(src, rel), crypto.getRandomValues(new Uint8Array(SIZE)));
  return epochMs();
}

/** Writes one file per directory and waits for them: connections are open, caches warm. */
async function warmUp(s: Session, timeoutMs: number): Promise<void> {
  const a = new Arrivals();
  const t = s.track(a, a);
  for (let d = 0; d < DIRS; d++) a.closed(`d${d}/warm.bin`, write(s.src, `d${d}/warm.bin`));
  await a.waitAll(timeoutMs, t.poll);
  t.stop();
}

function stats(v: number[]): { p50: number; p95: number; p99: number; max: number } {
  return {
    p50: percentile(v, 50),
    p95: percentile(v, 95),
    p99: percentile(v, 99),
    max: v.length ? Math.max(...v) : NaN,
  };
}

/** Scenario 2: single writes at a steady pace. */
export async function latency(ctx: Context): Promise<LatencyRow[]> {
  const { latencyWrites: n, latencyRate: rate, latencyRuns: runs } = ctx.sizes;
  say(`scenario 2: ${n} writes at ${rate}/s, ${runs} run(s) per target`);
  const rows: LatencyRow[] = [];
  for (const t of liveTargets(true)) {
    const slow = t.tool === "lsyncd" && t.delay === undefined;
    const all: number[] = [];
    const logged: number[] = [];
    let missing = 0;
    let method = "";
    // lsyncd's default delay costs 15 s per write: once is enough to show it.
    for (let r = 0; r < (slow ? 1 : runs); r++) {
      const s = await startSession(ctx, t, "s2");
      method = s.method;
      try {
        if (!slow) await warmUp(s, 30_000);
        const a = new Arrivals();
        const b = new Arrivals();
        const tr = s.track(a, b);
        const t0 = performance.now();
        for (let i = 0; i < n; i++) {
          const due = t0 + i * 1000 / rate;
          const wait = due - performance.now();
          if (wait > 0) await sleep(wait);
          const rel = `d${i % DIRS}/lat-${String(i).padStart(5, "0")}.bin`;
          const at = write(s.src, rel);
          a.closed(rel, at);
          b.closed(rel, at);
          tr.poll();
        }
        await a.waitAll(slow ? 60_000 : 30_000, tr.poll);
        if (t.tool === "fileconveyor" && t.dest !== "s3") await b.waitAll(5000, tr.poll);
        tr.stop();
        all.push(...a.latencies());
        logged.push(...b.latencies());
        missing += a.pending().length;
      } finally {
        await s.stop();
      }
    }
    const row: LatencyRow = { ...t, method, samples: all.length, missing, ...stats(all) };
    if (t.tool === "fileconveyor" && t.dest !== "s3" && logged.length > 0) {
      const l = stats(logged);
      row.logged = { p50: l.p50, p95: l.p95, p99: l.p99 };
    }
    say(
      `  ${t.label}: p50 ${row.p50.toFixed(1)} ms, p95 ${row.p95.toFixed(1)}, p99 ${
        row.p99.toFixed(1)
      }, ${missing} missing`,
    );
    rows.push(row);
  }
  return rows;
}

/** Scenario 3: many files written at once. */
export async function burst(ctx: Context): Promise<BurstRow[]> {
  const { burstFiles: n, burstRuns: runs } = ctx.sizes;
  say(`scenario 3: bursts of ${n} files, ${runs} run(s) per target`);
  const rows: BurstRow[] = [];
  for (const t of liveTargets(false)) {
    const results: BurstRow["runs"] = [];
    let method = "";
    for (let r = 0; r < runs; r++) {
      const s = await startSession(ctx, t, "s3b");
      method = s.method;
      try {
        await warmUp(s, 30_000);
        const a = new Arrivals();
        const tr = s.track(a);
        const start = epochMs();
        for (let i = 0; i < n; i++) {
          const rel = `d${i % DIRS}/burst-${String(i).padStart(5, "0")}.bin`;
          a.closed(rel, write(s.src, rel));
        }
        const lastClose = epochMs();
        await a.waitAll(t.dest === "s3" ? 300_000 : 120_000, tr.poll);
        tr.stop();
        const last = Math.max(...a.arrivedAt.values());
        const missing = a.pending().length;
        results.push({ allMs: last - start, afterLastMs: last - lastClose, missing });
        say(
          `  ${t.label}: all ${n} in ${(last - start).toFixed(0)} ms${
            missing ? `, ${missing} missing` : ""
          }`,
        );
      } finally {
        await s.stop();
      }
    }
    const ok = results.filter((x) => x.missing === 0);
    rows.push({
      ...t,
      method,
      files: n,
      runs: results,
      allMs: percentile(ok.map((x) => x.allMs), 50),
      afterLastMs: percentile(ok.map((x) => x.afterLastMs), 50),
    });
  }
  return rows;
}
