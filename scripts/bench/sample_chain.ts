/**
 * Part of scenario p: the original's sample rule (`image_optimizer`, YUI
 * and Closure minifiers, CSS URL updater, unique names) through the real
 * daemon over a real front-end tree (`front_end_tree.ts`), to a local
 * folder, from an empty database and an empty result cache.
 *
 * Each run starts `fileconveyor sync` (watch mode, default settings),
 * reads the process's RSS and CPU from `/proc` every 250 ms, counts the
 * files it reports uploaded, takes the last upload or update as the end of
 * the sync, then leaves it idle for longer than `engineIdleTimeout` and
 * reads the RSS again (what a waiting daemon keeps). With a baseline (another
 * checkout's `mod.ts`) the two alternate, baseline first, and the medians
 * are compared; with `together`, each pair runs at the same time instead
 * (on a machine whose load from other work drifts, both then share it).
 *
 * Run alone: `deno run -A scripts/bench/sample_chain.ts TREE [--runs N]
 * [--baseline OTHER/mod.ts] [--together] [--idle SECONDS]`.
 *
 * @module
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FC_ENTRY } from "./_tools.ts";
import { background, median, procUsage, rmTree, say, sleep } from "./_util.ts";

/** One daemon run. */
export interface SampleChainRun {
  /** `fileconveyor` or `fileconveyor (baseline)`. */
  tool: string;
  files: number;
  /** From the start of the process to the last file uploaded or updated. */
  seconds: number;
  filesPerS: number;
  /** User + system CPU of the process (every thread) at the end of the sync. */
  cpuS: number;
  cpuMsPerFile: number;
  peakRssMiB: number;
  /** RSS `idleS` seconds after the last upload. */
  idleRssMiB: number;
  idleS: number;
  /** RSS over time: [seconds since start, MiB], one point per second. */
  rss: [number, number][];
}

/** Medians per tool, and the ratio of the current code to the baseline. */
export interface SampleChainRow {
  tool: string;
  runs: number;
  seconds: number;
  filesPerS: number;
  cpuMsPerFile: number;
  peakRssMiB: number;
  idleRssMiB: number;
}

/** The part of scenario p this module measures. */
export interface SampleChainResult {
  tree: string;
  files: number;
  bytes: number;
  runs: SampleChainRun[];
  rows: SampleChainRow[];
}

const CHAIN = `<processorChain>
        <processor name="image_optimizer.KeepFilename" missingTools="warn" />
        <processor name="yui_compressor.YUICompressor" />
        <processor name="google_closure_compiler.GoogleClosureCompiler" />
        <processor name="link_updater.CSSURLUpdater" />
        <processor name="unique_filename.Mtime" />
      </processorChain>`;

function xml(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll('"', "&quot;").replaceAll("<", "&lt;");
}

function treeSize(root: string): { files: number; bytes: number } {
  let files = 0, bytes = 0;
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        files++;
        bytes += fs.statSync(p).size;
      }
    }
  };
  walk(root);
  return { files, bytes };
}

/** Runs the daemon once over `tree`; see the module documentation. */
async function runOnce(
  tree: string,
  work: string,
  o: { entry: string; tool: string; files: number; idleS: number; timeoutS: number },
): Promise<SampleChainRun> {
  const dir = fs.mkdtempSync(path.join(work, "chain-"));
  const dst = path.join(dir, "dst");
  const data = path.join(dir, "data");
  fs.mkdirSync(dst);
  const config = path.join(dir, "config.xml");
  fs.writeFileSync(
    config,
    `<?xml version="1.0"?>
<config>
  <sources><source name="fe" scanPath="${xml(tree)}" documentRoot="${
      xml(tree)
    }" basePath="/" /></sources>
  <servers>
    <server name="local" transporter="symlink_or_copy"><location>${
      xml(dst)
    }</location><url>http://local.cdn.test/</url></server>
  </servers>
  <rules>
    <rule for="fe" label="sample chain">
      ${CHAIN}
      <destinations><destination server="local" /></destinations>
    </rule>
  </rules>
  <settings><dataDir>${xml(data)}</dataDir></settings>
</config>
`,
  );
  const log = path.join(dir, "fc.log");
  const bg = background([Deno.execPath(), "run", "-A", o.entry, "sync", "--config", config], {
    logFile: log,
  });
  const pid = bg.child.pid;
  const t0 = performance.now();
  const series: [number, number, number][] = []; // seconds, RSS MiB, CPU s
  let peak = 0, uploads = 0, lastActivity = 0, cpuAtLast = 0, seen = 0;
  try {
    for (;;) {
      await sleep(250);
      const t = (performance.now() - t0) / 1000;
      const u = procUsage(pid);
      if (!u || bg.exited()) throw new Error(`fileconveyor exited early; see ${log}`);
      peak = Math.max(peak, u.hwmMiB);
      series.push([t, u.rssMiB, u.cpuS]);
      const text = bg.text();
      const lines = text.slice(seen).match(/\] (?:uploaded|updated) /g)?.length ?? 0;
      seen = text.lastIndexOf("\n") + 1;
      if (lines > 0) {
        uploads += lines;
        lastActivity = t;
        cpuAtLast = u.cpuS;
      }
      // Done: every file uploaded and nothing more (CSS updates after their images) for 5 s.
      if (uploads >= o.files && t - lastActivity >= 5) break;
      if (t > o.timeoutS) throw new Error(`no end after ${o.timeoutS} s (${uploads} uploads)`);
    }
    while ((performance.now() - t0) / 1000 < lastActivity + o.idleS) {
      await sleep(1000);
      const u = procUsage(pid);
      if (u) series.push([(performance.now() - t0) / 1000, u.rssMiB, u.cpuS]);
    }
    const idle = procUsage(pid);
    const rss: [number, number][] = [];
    for (const [t, m] of series) {
      if (rss.length === 0 || t - rss.at(-1)![0] >= 1) rss.push([Math.round(t), Math.round(m)]);
    }
    return {
      tool: o.tool,
      files: o.files,
      seconds: Math.round(lastActivity * 10) / 10,
      filesPerS: Math.round(o.files / lastActivity),
      cpuS: Math.round(cpuAtLast * 10) / 10,
      cpuMsPerFile: Math.round((cpuAtLast * 1000 / o.files) * 10) / 10,
      peakRssMiB: Math.round(Math.max(peak, idle?.hwmMiB ?? 0)),
      idleRssMiB: Math.round(idle?.rssMiB ?? NaN),
      idleS: o.idleS,
      rss,
    };
  } finally {
    await bg.stop();
    rmTree(dir);
  }
}

/**
 * Measures the sample chain over `tree`: `runs` runs of the current code,
 * alternating with as many of `baselineEntry` when given.
 */
export async function sampleChain(
  tree: string,
  o: {
    work?: string;
    runs?: number;
    baselineEntry?: string;
    idleS?: number;
    /** Run the baseline and the current code at the same time (a loaded, shared machine). */
    together?: boolean;
  } = {},
): Promise<SampleChainResult> {
  const root = fs.realpathSync(tree);
  const { files, bytes } = treeSize(root);
  const work = o.work ?? os.tmpdir();
  const idleS = o.idleS ?? 40;
  const variants = [
    ...(o.baselineEntry ? [{ entry: o.baselineEntry, tool: "fileconveyor (baseline)" }] : []),
    { entry: FC_ENTRY, tool: "fileconveyor" },
  ];
  const runs: SampleChainRun[] = [];
  const one = async (v: { entry: string; tool: string }, i: number) => {
    say(`p: sample chain over ${files} files, ${v.tool}, run ${i + 1}`);
    const r = await runOnce(root, work, { ...v, files, idleS, timeoutS: 3600 });
    say(
      `p: ${v.tool}: ${r.seconds} s, ${r.filesPerS} files/s, ${r.cpuMsPerFile} ms CPU/file, peak ${r.peakRssMiB} MiB, idle ${r.idleRssMiB} MiB`,
    );
    runs.push(r);
  };
  for (let i = 0; i < (o.runs ?? 1); i++) {
    if (o.together) {
      // At the same time: both share whatever else loads the machine.
      await Promise.all(variants.map((v) => one(v, i)));
      continue;
    }
    // Alternate the order, so a trend in the machine's load is shared.
    for (const v of i % 2 === 0 ? variants : [...variants].reverse()) await one(v, i);
  }
  const rows = variants.map((v): SampleChainRow => {
    const mine = runs.filter((r) => r.tool === v.tool);
    const m = (f: (r: SampleChainRun) => number) => median(mine.map(f));
    return {
      tool: v.tool,
      runs: mine.length,
      seconds: m((r) => r.seconds),
      filesPerS: m((r) => r.filesPerS),
      cpuMsPerFile: m((r) => r.cpuMsPerFile),
      peakRssMiB: m((r) => r.peakRssMiB),
      idleRssMiB: m((r) => r.idleRssMiB),
    };
  });
  return { tree: root, files, bytes, runs, rows };
}

if (import.meta.main) {
  const tree = Deno.args[0];
  if (!tree) {
    throw new Error(
      "Usage: sample_chain.ts TREE [--runs N] [--baseline OTHER/mod.ts] [--together] [--idle S]",
    );
  }
  const opt = (name: string) => {
    const i = Deno.args.indexOf(name);
    return i > 0 ? Deno.args[i + 1] : undefined;
  };
  const baseline = opt("--baseline");
  const result = await sampleChain(tree, {
    runs: Number(opt("--runs") ?? "1"),
    together: Deno.args.includes("--together"),
    idleS: Number(opt("--idle") ?? "40"),
    ...(baseline ? { baselineEntry: path.resolve(baseline) } : {}),
  });
  // deno-lint-ignore no-console
  console.log(
    JSON.stringify(
      { ...result, runs: result.runs.map((r) => ({ ...r, rss: undefined })) },
      null,
      2,
    ),
  );
}
