/**
 * Scenario 5: new files at a steady high rate for a while, to S3 (and to a
 * local folder, to show what the pipeline itself sustains): backlog over
 * time, at the end, and latency percentiles. Arrival times come from
 * fileconveyor's log (S3 storage is opaque; the same method for both).
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { type Context, fresh, startFc } from "./_context.ts";
import { Arrivals, logReader } from "./_arrivals.ts";
import { type Dest, fcConfig } from "./_tools.ts";
import { epochMs, percentile, procUsage, rmTree, say, sleep } from "./_util.ts";

/** One rate to one destination. */
export interface SustainedRow {
  dest: "local" | "s3";
  /** Files per second asked for. */
  rate: number;
  seconds: number;
  written: number;
  /** Files per second really written (the writer is paced in 10 ms steps). */
  writtenPerS: number;
  /** Files per second that arrived during the second half of the writing. */
  arrivedPerS: number;
  /** Files written but not arrived, at 25/50/75/100 % of the writing time. */
  backlog: number[];
  /** Not arrived when the drain wait ended. */
  leftAtStop: number;
  drainMs: number | null;
  p50: number;
  p99: number;
  /** Whether p99 is a lower bound (some files never arrived while we waited). */
  p99Censored: boolean;
  rssMiB: number | null;
}

const SIZE = 2048;
const DIRS = 100;

/** Runs scenario 5. */
export async function sustained(ctx: Context): Promise<SustainedRow[]> {
  const { sustainedRates: rates, sustainedSeconds: secs, sustainedDrainSeconds: drain } = ctx.sizes;
  const rows: SustainedRow[] = [];
  const cases: { dest: "local" | "s3"; rate: number }[] = [
    ...rates.map((rate) => ({ dest: "s3" as const, rate })),
    { dest: "local", rate: Math.max(...rates) },
  ];
  for (const c of cases) {
    say(`scenario 5: ${c.rate} files/s for ${secs} s to ${c.dest}`);
    const src = path.join(ctx.work, fresh("s5-src"));
    for (let d = 0; d < DIRS; d++) fs.mkdirSync(path.join(src, `d${d}`), { recursive: true });
    const local = path.join(ctx.work, fresh("s5-dst"));
    const dest: Dest = c.dest === "local"
      ? { kind: "local", dir: local }
      : { kind: "s3", info: ctx.swift, bucket: fresh("s5") };
    const log = path.join(ctx.work, fresh("s5-fc") + ".log");
    const config = fcConfig(path.join(ctx.work, fresh("s5") + ".xml"), {
      src,
      dest,
      dataDir: path.join(ctx.data, fresh("s5")),
      concurrency: ctx.concurrency,
    });
    const fc = await startFc(ctx, config, log, `5 fileconveyor → ${c.dest}`);
    const a = new Arrivals();
    const poll = logReader(log, a);
    const data = crypto.getRandomValues(new Uint8Array(SIZE));
    const closes: number[] = [];
    let rss: number | null = null;
    try {
      const t0 = epochMs();
      const end = t0 + secs * 1000;
      const marks = [0.25, 0.5, 0.75, 1].map((f) => t0 + f * secs * 1000);
      const backlogAt: number[] = [];
      let i = 0;
      // Paced in 10 ms steps; bounded by time and count.
      for (let step = 0; epochMs() < end && step < secs * 200; step++) {
        const due = Math.min(end, t0 + (step + 1) * 10);
        const target = Math.floor((due - t0) / 1000 * c.rate);
        while (i < target) {
          const rel = `d${i % DIRS}/s-${String(i).padStart(6, "0")}.bin`;
          new DataView(data.buffer).setUint32(0, i);
          fs.writeFileSync(path.join(src, rel), data);
          const at = epochMs();
          a.closed(rel, at);
          closes.push(at);
          i++;
        }
        poll();
        while (marks.length > 0 && epochMs() >= marks[0]!) {
          marks.shift();
          backlogAt.push(a.pending().length);
        }
        const wait = due - epochMs();
        if (wait > 0) await sleep(wait);
      }
      while (backlogAt.length < 4) {
        poll();
        backlogAt.push(a.pending().length);
      }
      const writeEnd = epochMs();
      rss = procUsage(fc.bg.child.pid)?.rssMiB ?? null;
      const drained = await a.waitAll(drain * 1000, poll);
      const drainMs = drained ? Math.max(...a.arrivedAt.values()) - writeEnd : null;
      // Arrival rate during the second half of the writing (steady state).
      const half = t0 + secs * 500;
      const inHalf = [...a.arrivedAt.values()].filter((x) => x >= half && x <= writeEnd).length;
      const lat = a.latencies();
      const left = a.pending();
      const censored = left.map((k) => epochMs() - a.closedAt.get(k)!);
      const all = [...lat, ...censored];
      rows.push({
        dest: c.dest,
        rate: c.rate,
        seconds: secs,
        written: i,
        writtenPerS: i / ((writeEnd - t0) / 1000),
        arrivedPerS: inHalf / ((writeEnd - half) / 1000),
        backlog: backlogAt,
        leftAtStop: left.length,
        drainMs,
        p50: percentile(all, 50),
        p99: percentile(all, 99),
        p99Censored: left.length > 0,
        rssMiB: rss,
      });
      const r = rows.at(-1)!;
      say(
        `  wrote ${r.written} (${r.writtenPerS.toFixed(0)}/s), arrived ${
          r.arrivedPerS.toFixed(0)
        }/s, backlog ${r.backlog.join(" → ")}, left ${r.leftAtStop}, p99 ${r.p99.toFixed(0)} ms`,
      );
    } finally {
      await fc.bg.stop();
      rmTree(src);
      rmTree(local);
    }
  }
  return rows;
}
