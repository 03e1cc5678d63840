/**
 * Processor throughput on the fixture site (`tests/testdata/site/shop`),
 * copied `copies` times so that timings mean something.
 *
 * Each row is one processor run over every file it handles: `files` and
 * `bytes` count its input, `ms` the wall time of `runChain` calls (setup
 * excluded; engines are loaded before timing). The first rows are the
 * one-off engine start-up costs.
 *
 * Run alone: `deno run -A scripts/bench/processors.ts [copies]`.
 *
 * @module
 */
import "../../src/processors/mod.ts";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { ProcessorRef } from "../../src/config/types.ts";
import { checkOptions } from "../../src/options.ts";
import { runChain, setupProcessors } from "../../src/processors/chain.ts";
import { getProcessorDef, handles } from "../../src/processors/processor.ts";
import { esbuildInitMs, loadEsbuild } from "../../src/processors/minify.ts";
import { loadOxipng } from "../../src/processors/image_optimizer.ts";

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
  await loadEsbuild();
  rows.push({
    name: "esbuild-wasm init (compile + initialize)",
    files: 0,
    bytes: 0,
    ms: esbuildInitMs() ?? performance.now() - t0,
  });
  const t1 = performance.now();
  await loadOxipng();
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

if (import.meta.main) {
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
