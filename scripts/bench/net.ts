/**
 * Scenario 1 for the network destinations only, with chosen sizes: the quick
 * loop for work on a transport.
 *
 * `deno run -A scripts/bench/net.ts [--dest sftp,s3] [--files N] [--runs N]
 * [--concurrency N] [--baseline OTHER_CHECKOUT/mod.ts] [--skip "TOOL NAME"]…`
 *
 * Uses the test servers (started if needed, never stopped), prints one line
 * per tool: median wall time, median CPU seconds, CPU per file and the ratio
 * of fileconveyor's CPU to this tool's. With `--baseline`, that checkout's
 * fileconveyor runs in the same rotation, so before/after ratios come from
 * one run.
 *
 * @module
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { startServer } from "../../tests/_servers.ts";
import { type Context, SIZES } from "./_context.ts";
import { initialSync } from "./initial.ts";
import { rmTree, say } from "./_util.ts";

const args = Deno.args;
const opt = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const kinds = opt("--dest", "sftp,s3").split(",").map((s) => s.trim()) as ("sftp" | "s3")[];
const files = Number(opt("--files", "1000"));
const runs = Number(opt("--runs", "2"));
const baseline = opt("--baseline", "");

const shm = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
const work = fs.mkdtempSync(path.join(shm, "fc-netbench-"));
const data = fs.mkdtempSync(path.join(os.tmpdir(), "fc-netbench-data-"));
try {
  const [sftp, swift] = await Promise.all([startServer("sftp"), startServer("swift")]);
  const ctx: Context = {
    mode: "quick",
    sizes: {
      ...SIZES.quick,
      initialFiles: { local: files, sftp: files, s3: files },
      initialRuns: { local: runs, sftp: runs, s3: runs },
    },
    concurrency: Number(opt("--concurrency", "8")),
    work,
    data,
    sftp,
    swift,
    commands: new Map(),
    ...(baseline ? { baselineEntry: path.resolve(baseline) } : {}),
    skipTools: args.flatMap((a, i) => a === "--skip" && args[i + 1] ? [args[i + 1]!] : []),
  };
  const rows = await initialSync(ctx, kinds);
  for (const kind of kinds) {
    const mine = rows.find((r) => r.dest === kind && r.tool === "fileconveyor");
    say(`${kind}: ${files} files, ${runs} runs, concurrency ${ctx.concurrency}`);
    for (const r of rows.filter((r) => r.dest === kind)) {
      const cpu = r.medianCpuS;
      const ratio = cpu && mine?.medianCpuS ? (mine.medianCpuS / cpu).toFixed(2) : "-";
      const speed = mine ? (r.medianMs / mine.medianMs).toFixed(2) : "-";
      say(
        `  ${r.tool.padEnd(38)} ${(r.medianMs / 1000).toFixed(2).padStart(7)} s  CPU ${
          cpu?.toFixed(2) ?? "-"
        } s (${cpu ? (cpu / r.files * 1000).toFixed(3) : "-"} ms/file)  fc CPU ÷ this ${ratio}` +
          `  fc speed × ${speed}  ok ${r.runs.filter((x) => x.ok).length}/${r.runs.length}`,
      );
    }
  }
} finally {
  rmTree(work);
  rmTree(data);
}
