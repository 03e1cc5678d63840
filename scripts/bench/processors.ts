/**
 * Processor throughput on the fixture site (`tests/testdata/site/shop`),
 * copied `copies` times so that timings mean something.
 *
 * Each row is one processor run over every file it handles: `files` and
 * `bytes` count its input, `ms` the wall time of `runChain` calls (setup
 * excluded; engines are loaded before timing). The first rows are the
 * one-off engine start-up costs.
 *
 * {@linkcode benchSampleChain} runs the original sample chain
 * (image_optimizer, YUI compressor, Closure compiler, CSS URL updater,
 * unique names) over a real front-end tree, two files at a time (the
 * daemon's default `maxSimultaneousProcessorChains`), and reports files/s,
 * CPU per processed file, peak RSS and the RSS once the process has been
 * idle for a while after the sync (what a waiting daemon keeps).
 *
 * Run alone: `deno run -A scripts/bench/processors.ts [copies]`, or
 * `deno run -A scripts/bench/processors.ts --chain DIR [--idle SECONDS]`
 * for the sample chain over the tree in DIR (e.g. the unpacked
 * `npm pack bootstrap@5 jquery-ui-dist`).
 *
 * @module
 */
import "../../src/processors/mod.ts";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import type { ProcessorRef } from "../../src/config/types.ts";
import { checkOptions } from "../../src/options.ts";
import { runChain, setupProcessors } from "../../src/processors/chain.ts";
import { getProcessorDef, handles } from "../../src/processors/processor.ts";
import { minifyText } from "../../src/processors/minify.ts";
import { configureEngines, enginePool } from "../../src/processors/_engine_pool.ts";

const SHOP = path.resolve(import.meta.dirname!, "..", "..", "tests", "testdata", "site", "shop");

/** One measurement. */
export interface ProcessorBench {
  name: string;
  files: number;
  bytes: number;
  ms: number;
}

function ref(name: string, raw: Record<string, string> = {}): ProcessorRef {
  const def = getProcessorDef(name);
  if (!def) throw new Error(`No processor "${name}"`);
  const { values, problems } = checkOptions(def.options ?? [], raw);
  if (problems.length > 0) throw new Error(problems.map((p) => p.message).join("; "));
  return { name, def, options: values };
}

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]
  ).sort();
}

/** The processors measured, with the options used. */
const CASES: [string, Record<string, string>][] = [
  ["filename.SpacesToUnderscores", {}],
  ["unique_filename.Mtime", {}],
  ["unique_filename.MD5", {}],
  ["unique_filename.ContentHash", {}],
  ["minify.CSS", {}],
  ["minify.JS", {}],
  ["image_optimizer.Max", {}],
  ["image_optimizer.KeepFilename", {}],
  ["link_updater.CSSURLUpdater", { maxWait: "0" }],
  ["compress.Gzip", { minSize: "0" }],
  ["compress.Brotli", { minSize: "0" }],
  ["command", { command: "cat" }],
];

/**
 * Measures every processor on `copies` copies of the fixture site (default
 * 20, about 1.7 MB). Returns one row per processor plus engine start-up rows.
 */
export async function benchProcessors(copies = 20): Promise<ProcessorBench[]> {
  const rows: ProcessorBench[] = [];
  const t0 = performance.now();
  await minifyText("var a = 1;", "js");
  rows.push({
    name: "engine worker + esbuild-wasm init",
    files: 0,
    bytes: 0,
    ms: performance.now() - t0,
  });
  const t1 = performance.now();
  // A 1×1 RGBA image: the first oxipng job compiles and instantiates the engine.
  await enginePool().run({ kind: "raw", rgba: new Uint8Array(4), width: 1, height: 1, level: 1 });
  rows.push({ name: "oxipng wasm init", files: 0, bytes: 0, ms: performance.now() - t1 });

  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "fc-bench-proc-")));
  try {
    for (let i = 0; i < copies; i++) {
      fs.cpSync(SHOP, path.join(root, `copy${i}`), { recursive: true });
    }
    const files = walk(root);
    const source = { name: "bench", scanPath: root, documentRoot: root, basePath: "/" };
    const lookupUrl = (p: string) =>
      p.startsWith(root) ? "https://cdn.example.com/" + path.relative(root, p) : undefined;
    const signal = new AbortController().signal;
    for (const [name, options] of CASES) {
      const r = ref(name, options);
      const problems = await setupProcessors([r]);
      if (problems.length > 0) {
        rows.push({
          name: `${name} (unavailable: ${problems.join("; ")})`,
          files: 0,
          bytes: 0,
          ms: 0,
        });
        continue;
      }
      let n = 0, bytes = 0, ms = 0;
      for (const file of files) {
        const base = path.basename(file);
        if (!handles(r.def, base)) continue;
        const workDir = fs.mkdtempSync(path.join(root, ".work-"));
        const start = performance.now();
        await runChain({
          originalPath: file,
          relDir: path.relative(root, path.dirname(file)),
          name: base,
          source,
          server: "cdn",
          processors: [r],
          workDir,
          signal,
          lookupUrl,
        });
        ms += performance.now() - start;
        n++;
        bytes += fs.statSync(file).size;
        fs.rmSync(workDir, { recursive: true, force: true });
      }
      rows.push({ name, files: n, bytes, ms: Math.round(ms * 10) / 10 });
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  return rows;
}

/** The sample chain measurement. */
export interface ChainBench {
  files: number;
  /** Files at least one processor of the chain handles. */
  processed: number;
  seconds: number;
  filesPerSecond: number;
  /** Process CPU (user + system, all threads) per processed file. */
  cpuMsPerProcessedFile: number;
  rssBeforeMiB: number;
  peakRssMiB: number;
  rssAfterSyncMiB: number;
  /** RSS after `idleSeconds` without work. */
  rssIdleMiB: number;
  idleSeconds: number;
  /** Engine workers started during the run (each compiles its engine once). */
  workersStarted: number;
}

/** The original's sample rule (see tests/e2e/sample_chain_test.ts). */
const SAMPLE_CHAIN: [string, Record<string, string>][] = [
  ["image_optimizer.KeepFilename", { missingTools: "warn" }],
  ["yui_compressor.YUICompressor", {}],
  ["google_closure_compiler.GoogleClosureCompiler", {}],
  ["link_updater.CSSURLUpdater", { maxWait: "0" }],
  ["unique_filename.Mtime", {}],
];

function mib(bytes: number): number {
  return Math.round(bytes / 1024 / 1024);
}

/** Peak resident set of this process (all threads), from the kernel. */
function peakRss(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) * 1024 : Deno.memoryUsage().rss;
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * Runs the sample chain over every file below `tree`, `concurrency` at a
 * time, then waits `idleSeconds` and reads the RSS again.
 */
export async function benchSampleChain(
  tree: string,
  options: { concurrency?: number; idleSeconds?: number; cacheDir?: string } = {},
): Promise<ChainBench> {
  const concurrency = options.concurrency ?? 2;
  const idleSeconds = options.idleSeconds ?? 35;
  const rssBefore = Deno.memoryUsage().rss;
  const refs = SAMPLE_CHAIN.map(([n, o]) => ref(n, o));
  const root = fs.realpathSync(tree);
  const files = walk(root);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "fc-bench-chain-"));
  const source = { name: "bench", scanPath: root, documentRoot: root, basePath: "/" };
  const lookupUrl = (p: string) =>
    p.startsWith(root) ? "https://cdn.example.com/" + path.relative(root, p) : undefined;
  const signal = new AbortController().signal;
  let processed = 0;
  try {
    const problems = await setupProcessors(refs);
    if (problems.length > 0) throw new Error(problems.join("; "));
    const cpu0 = cpuMs();
    const t0 = performance.now();
    let next = 0;
    const lane = async () => {
      while (next < files.length) {
        const file = files[next++]!;
        const base = path.basename(file);
        if (refs.some((r) => handles(r.def, base))) processed++;
        const workDir = fs.mkdtempSync(path.join(work, "job-"));
        await runChain({
          originalPath: file,
          relDir: path.relative(root, path.dirname(file)),
          name: base,
          source,
          server: "cdn",
          processors: refs,
          workDir,
          signal,
          lookupUrl,
          ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
        });
        fs.rmSync(workDir, { recursive: true, force: true });
      }
    };
    await Promise.all(Array.from({ length: concurrency }, lane));
    const seconds = (performance.now() - t0) / 1000;
    const cpu = cpuMs() - cpu0;
    const rssAfterSync = Deno.memoryUsage().rss;
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    return {
      files: files.length,
      processed,
      seconds: Math.round(seconds * 100) / 100,
      filesPerSecond: Math.round(files.length / seconds),
      cpuMsPerProcessedFile: Math.round((cpu / Math.max(processed, 1)) * 10) / 10,
      rssBeforeMiB: mib(rssBefore),
      peakRssMiB: mib(peakRss()),
      rssAfterSyncMiB: mib(rssAfterSync),
      rssIdleMiB: mib(Deno.memoryUsage().rss),
      idleSeconds,
      workersStarted: enginePool().stats.started,
    };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.main && Deno.args[0] === "--chain") {
  const tree = Deno.args[1];
  if (!tree) {
    throw new Error(
      "Usage: processors.ts --chain DIR [--idle SECONDS] [--cache DIR] [--workers N] [--memory MiB]",
    );
  }
  const idleAt = Deno.args.indexOf("--idle");
  const cacheAt = Deno.args.indexOf("--cache");
  const workersAt = Deno.args.indexOf("--workers");
  const memoryAt = Deno.args.indexOf("--memory");
  configureEngines({
    ...(workersAt > 0 ? { maxWorkers: Number(Deno.args[workersAt + 1]) } : {}),
    ...(memoryAt > 0 ? { memoryBudget: Number(Deno.args[memoryAt + 1]) * 1024 * 1024 } : {}),
  });
  const result = await benchSampleChain(tree, {
    ...(idleAt > 0 ? { idleSeconds: Number(Deno.args[idleAt + 1]) } : {}),
    ...(cacheAt > 0 ? { cacheDir: Deno.args[cacheAt + 1]! } : {}),
  });
  // deno-lint-ignore no-console
  console.log(JSON.stringify(result, null, 2));
} else if (import.meta.main) {
  const copies = Number(Deno.args[0] ?? "20");
  const rows = await benchProcessors(copies);
  const lines = rows.map((r) =>
    `${r.name.padEnd(44)} ${String(r.files).padStart(5)} files ${String(r.bytes).padStart(9)} B ${
      r.ms.toFixed(1).padStart(9)
    } ms${r.files > 0 ? `  ${(r.ms / r.files).toFixed(2)} ms/file` : ""}`
  );
  // deno-lint-ignore no-console
  console.log(lines.join("\n"));
}
