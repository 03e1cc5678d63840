/**
 * What every scenario gets: the mode and its sizes, the servers, the working
 * directories, and helpers to start fileconveyor and lsyncd and wait until
 * they are ready.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { SftpInfo, SwiftInfo } from "../../tests/_servers.ts";
import { fcCommand, lsyncdCommand } from "./_tools.ts";
import { type Background, background } from "./_util.ts";

/** Sizes of one mode. */
export interface Sizes {
  /** Scenario 1: files per destination. */
  initialFiles: { local: number; sftp: number; s3: number };
  initialDirs: number;
  /** Scenario 1: runs per tool and destination. */
  initialRuns: { local: number; sftp: number; s3: number };
  /** Scenario 2: single writes per run, the pace (writes/s), runs per tool. */
  latencyWrites: number;
  latencyRate: number;
  latencyRuns: number;
  /** Scenario 3: files per burst, runs per tool. */
  burstFiles: number;
  burstRuns: number;
  /** Scenario 4: files in the tree, directories, runs. */
  restartFiles: number;
  restartDirs: number;
  restartRuns: number;
  /** Scenario 5: rates (files/s), seconds of writing, longest wait for the backlog to drain. */
  sustainedRates: number[];
  sustainedSeconds: number;
  sustainedDrainSeconds: number;
  /** Processor table: copies of the fixture site. */
  processorCopies: number;
  /** Scenario p: sample-chain runs over the front-end tree (each, with a baseline). */
  sampleChainRuns: number;
  /** Scenario d: files created, deleted and recreated in one directory while watching. */
  massDeleteFiles: number;
  /** Scenario f: files of the initial sync with a shared store, runs per setup. */
  fleetFiles: number;
  fleetRuns: number;
  /** Scenario f: files written one at a time for the change-to-record latency. */
  fleetLatencySamples: number;
  /** Scenario f: files of the shared store alone (`fleet_store.ts`), and its runs per checkout. */
  fleetStoreFiles: number;
  fleetStoreRuns: number;
}

/** The two modes. */
export const SIZES: Record<"quick" | "full", Sizes> = {
  quick: {
    initialFiles: { local: 5000, sftp: 1000, s3: 500 },
    initialDirs: 50,
    initialRuns: { local: 3, sftp: 3, s3: 2 },
    latencyWrites: 60,
    latencyRate: 20,
    latencyRuns: 1,
    burstFiles: 300,
    burstRuns: 2,
    restartFiles: 10_000,
    restartDirs: 100,
    restartRuns: 3,
    sustainedRates: [500, 1000],
    sustainedSeconds: 10,
    sustainedDrainSeconds: 15,
    processorCopies: 5,
    sampleChainRuns: 1,
    massDeleteFiles: 5000,
    fleetFiles: 2000,
    fleetRuns: 1,
    fleetLatencySamples: 50,
    fleetStoreFiles: 10_000,
    fleetStoreRuns: 1,
  },
  full: {
    initialFiles: { local: 10_000, sftp: 10_000, s3: 10_000 },
    initialDirs: 100,
    initialRuns: { local: 5, sftp: 2, s3: 2 },
    latencyWrites: 200,
    latencyRate: 20,
    latencyRuns: 1,
    burstFiles: 1000,
    burstRuns: 3,
    restartFiles: 100_000,
    restartDirs: 1000,
    restartRuns: 3,
    sustainedRates: [500, 1000],
    sustainedSeconds: 30,
    sustainedDrainSeconds: 30,
    processorCopies: 20,
    sampleChainRuns: 2,
    massDeleteFiles: 20_000,
    fleetFiles: 10_000,
    fleetRuns: 5,
    fleetLatencySamples: 200,
    fleetStoreFiles: 50_000,
    fleetStoreRuns: 3,
  },
};

/** Everything a scenario needs. */
export interface Context {
  mode: "quick" | "full";
  sizes: Sizes;
  /** Transfers/checkers/maxConnections of every tool. */
  concurrency: number;
  /** Trees (sources and local destinations) live here (tmpfs when available). */
  work: string;
  /** fileconveyor data directories (database) live here (the real disk). */
  data: string;
  sftp: SftpInfo;
  swift: SwiftInfo;
  /** Commands as run, for the report (deduplicated by label). */
  commands: Map<string, string>;
  /** Scenario 1 also runs this `mod.ts` (another checkout) as "fileconveyor (baseline)". */
  baselineEntry?: string;
  /** Scenario 1 leaves out the tools whose names are listed here. */
  skipTools?: string[];
}

let seq = 0;

/** A fresh, unique name (directories, buckets): lowercase letters, digits and dashes. */
export function fresh(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${(seq++).toString(36)}`;
}

/**
 * Makes a directory in the SFTP user's home, owned by that user (the
 * benchmark runs as root; the tools log in as the user).
 */
export function sftpDir(ctx: Context, name: string): string {
  const p = path.join(ctx.sftp.root, name);
  fs.mkdirSync(p, { recursive: true });
  const st = fs.statSync(ctx.sftp.root);
  fs.chownSync(p, st.uid, st.gid);
  return p;
}

/** A running fileconveyor daemon (watch mode). */
export interface RunningFc {
  bg: Background;
  logFile: string;
  /** Milliseconds from spawn until the initial scan was done (watching). */
  readyMs: number;
}

/** Starts `fileconveyor sync` (watch mode) and waits until its initial scan is done. */
export async function startFc(
  ctx: Context,
  config: string,
  logFile: string,
  label: string,
  timeoutMs = 120_000,
): Promise<RunningFc> {
  const c = fcCommand(config, false);
  ctx.commands.set(label, c.shown);
  fs.rmSync(logFile, { force: true });
  const bg = background(c.cmd, { env: c.env, unsetEnv: c.unsetEnv, logFile });
  const ok = await bg.waitFor(/Initial scan done/, timeoutMs);
  const readyMs = performance.now() - bg.startedAt;
  if (!ok) {
    await bg.stop();
    throw new Error(`fileconveyor did not finish its initial scan:\n${bg.text().slice(-2000)}`);
  }
  return { bg, logFile, readyMs };
}

/** Starts lsyncd and waits until its startup rsync finished. */
export async function startLsyncd(
  ctx: Context,
  config: string,
  label: string,
  timeoutMs = 300_000,
): Promise<Background> {
  const c = lsyncdCommand(config);
  ctx.commands.set(label, c.shown);
  const bg = background(c.cmd, { env: c.env, unsetEnv: c.unsetEnv });
  const ok = await bg.waitFor(/Startup of .* finished/, timeoutMs);
  if (!ok) {
    await bg.stop();
    throw new Error(`lsyncd did not start:\n${bg.text().slice(-2000)}`);
  }
  return bg;
}
