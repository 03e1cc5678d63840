/**
 * Renders the results as `docs/BENCHMARKS.md` (tables, goals, machine,
 * commands) and `docs/BENCHMARKS.json` (every figure, every run).
 *
 * @module
 */
import { type ScaleResult, scaleSection } from "./scale.ts";
import type { ProcessorBench } from "./processors.ts";
import type { SampleChainResult } from "./sample_chain.ts";
import type { InitialRow } from "./initial.ts";
import type { BurstRow, LatencyRow } from "./latency.ts";
import { type FleetResult, fleetSection } from "./fleet.ts";
import type { MassDeleteResult, Phase } from "./mass_delete.ts";
import type { RestartResult } from "./restart.ts";
import type { SustainedRow } from "./sustained.ts";
import type { Sizes } from "./_context.ts";

/** Everything one benchmark run produced. */
export interface Results {
  date: string;
  mode: "quick" | "full";
  command: string;
  concurrency: number;
  sizes: Sizes;
  machine: Record<string, string>;
  load: { start: number; end: number };
  storage: { trees: string; databases: string; sftp: string; s3: string };
  durationS: number;
  initial?: InitialRow[];
  latency?: LatencyRow[];
  burst?: BurstRow[];
  restart?: RestartResult;
  sustained?: SustainedRow[];
  processors?: ProcessorBench[];
  /** Scenario p: the sample chain through the daemon over a front-end tree. */
  sampleChain?: SampleChainResult;
  scale?: ScaleResult;
  massDelete?: MassDeleteResult;
  fleet?: FleetResult;
  errors: { scenario: string; message: string }[];
  commands: Record<string, string>;
  /** Notes written by whoever ran and analysed it (profiles, limits). */
  notes: string[];
}

/** One goal and whether it was met. */
export interface Goal {
  goal: string;
  measured: string;
  met: boolean | null;
}

function s(ms: number | null | undefined, digits = 2): string {
  return ms === null || ms === undefined || !Number.isFinite(ms)
    ? "–"
    : (ms / 1000).toFixed(digits);
}

function n(x: number | null | undefined, digits = 1): string {
  return x === null || x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(digits);
}

function int(x: number): string {
  return Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "–";
}

function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

const DEST_NAME = { local: "local folder", sftp: "SFTP", s3: "S3 (Swift s3api)" } as const;

function fcRow(rows: InitialRow[], dest: InitialRow["dest"]): InitialRow | undefined {
  return rows.find((r) => r.dest === dest && r.tool === "fileconveyor");
}

/** `a <= b` for measured values (a missing figure, NaN or null in JSON, never meets a goal). */
function le(a: number | null | undefined, b: number): boolean {
  return typeof a === "number" && Number.isFinite(a) && a <= b;
}

/** Evaluates the goals against the results. */
export function goals(r: Results): Goal[] {
  const out: Goal[] = [];
  const quick = r.mode === "quick";
  if (r.initial) {
    for (const dest of ["local", "sftp", "s3"] as const) {
      const fc = fcRow(r.initial, dest);
      const rc = r.initial.find((x) => x.dest === dest && x.tool === "rclone copy");
      if (!fc || !rc) continue;
      out.push({
        goal: `Initial sync at least as fast as rclone (equal concurrency), ${DEST_NAME[dest]}`,
        measured: `${s(fc.medianMs)} s vs ${s(rc.medianMs)} s (${
          n(rc.medianMs / fc.medianMs, 2)
        }× rclone's speed)`,
        met: le(fc.medianMs, rc.medianMs),
      });
    }
    const fc = fcRow(r.initial, "s3");
    const ceil = r.initial.find((x) => x.dest === "s3" && x.tool.startsWith("raw S3"));
    if (fc && ceil) {
      const share = fc.filesPerS / ceil.filesPerS;
      out.push({
        goal: "Initial sync to S3 ≥ 80 % of the raw PUT ceiling",
        measured: `${n(fc.filesPerS, 0)} of ${n(ceil.filesPerS, 0)} files/s (${
          n(share * 100, 0)
        } %)`,
        met: le(0.8, share),
      });
    }
  }
  if (r.latency) {
    for (const l of r.latency.filter((x) => x.tool === "fileconveyor")) {
      const limit = l.dest === "local" ? 20 : 50;
      out.push({
        goal: `Latency to ${DEST_NAME[l.dest]}: p50 ≤ ${limit} ms, p99 ≤ 250 ms`,
        measured: `p50 ${n(l.p50)} ms, p99 ${n(l.p99)} ms${
          l.missing ? `, ${l.missing} missing` : ""
        }`,
        met: le(l.p50, limit) && le(l.p99, 250) && l.missing === 0,
      });
    }
  }
  if (r.restart) {
    const w = r.restart.rows[0]!;
    out.push({
      goal: "Restart over 100,000 unchanged files ≤ 2 s (watching and idle, 0 uploads)",
      measured: `${s(w.medianMs)} s over ${int(r.restart.files)} files${
        quick ? " (quick mode: fewer files)" : ""
      }, uploads ${Math.max(...w.runs.map((x) => x.uploads))}`,
      met: quick ? null : le(w.medianMs, 2000) && w.runs.every((x) => x.uploads === 0),
    });
    out.push({
      goal: "RSS ≤ 200 MB while watching 100,000 files (idle)",
      measured: `${n(r.restart.idleRssMiB.after2s, 0)} MiB over ${int(r.restart.files)} files${
        quick ? " (quick mode: fewer files)" : ""
      }`,
      met: quick ? null : le(r.restart.idleRssMiB.after2s * 1.048576, 200),
    });
  }
  if (r.sustained) {
    for (const x of r.sustained.filter((x) => x.rate >= 1000)) {
      // Growing: the second half added more than 5 % of what was written in it (and > 50 files).
      const growing = x.backlog[3]! - x.backlog[1]! > Math.max(50, 0.05 * x.rate * x.seconds / 2);
      out.push({
        goal: `1,000 files/s sustained with no growing backlog (${DEST_NAME[x.dest]})`,
        measured: `arrived ${n(x.arrivedPerS, 0)}/s; backlog ${x.backlog.join(" → ")}; p99 ${
          x.p99Censored ? "≥ " : ""
        }${n(x.p99, 0)} ms`,
        met: !growing && le(0.95 * x.writtenPerS, x.arrivedPerS),
      });
    }
  }
  if (r.fleet) {
    const f = r.fleet;
    const size = quick ? " (quick mode: fewer files)" : "";
    out.push({
      goal: "Initial sync with a PostgreSQL shared store ≤ 1.5× the SQLite store (one node)",
      measured: `${n(f.sharedRatio, 2)}× over ${int(f.files)} files${size}`,
      met: le(f.sharedRatio, 1.5),
    });
    // The goal is about web nodes on machines of their own: measured with each node pinned to a
    // core of its own (see scripts/bench/fleet.ts); the unpinned ratio is shown beside it.
    const pinned = f.twoNodesPinnedRatio;
    out.push({
      goal: "Two nodes on one shared folder finish faster than one",
      measured: `${n(pinned ?? null, 2)}× the one-node time with a core per node; ${
        n(f.twoNodesRatio, 2)
      }× with both nodes sharing this machine's cores${size}`,
      met: typeof pinned === "number" && pinned < 1,
    });
  }
  if (r.sampleChain) {
    const c = r.sampleChain;
    const fc = c.rows.find((x) => x.tool === "fileconveyor");
    const base = c.rows.find((x) => x.tool.includes("baseline"));
    if (fc) {
      out.push({
        goal: "Sample chain over a front-end tree: peak RSS ≤ 400 MiB, idle ≤ 200 MiB",
        measured: `peak ${n(fc.peakRssMiB, 0)} MiB, idle ${n(fc.idleRssMiB, 0)} MiB (${
          int(c.files)
        } files)`,
        met: le(fc.peakRssMiB, 400) && le(fc.idleRssMiB, 200),
      });
    }
    if (fc && base) {
      out.push({
        goal: "Sample chain ≥ 2× faster than the baseline",
        measured: `${n(base.seconds / fc.seconds, 2)}× (${n(fc.filesPerS, 1)} vs ${
          n(base.filesPerS, 1)
        } files/s; ${n(fc.cpuMsPerFile, 1)} vs ${n(base.cpuMsPerFile, 1)} ms CPU/file)`,
        met: le(2, base.seconds / fc.seconds),
      });
    }
  }
  return out;
}

function initialSection(rows: InitialRow[], concurrency: number): string {
  const parts: string[] = [];
  for (const dest of ["local", "sftp", "s3"] as const) {
    const rs = rows.filter((r) => r.dest === dest);
    if (rs.length === 0) continue;
    const fc = fcRow(rows, dest);
    parts.push(
      `### ${DEST_NAME[dest]}: ${int(rs[0]!.files)} files, ${
        n(rs[0]!.bytes / 1e6)
      } MB, concurrency ${concurrency}\n`,
    );
    parts.push(table(
      [
        "tool",
        "median s",
        "files/s",
        "fileconveyor's time ÷ this time",
        "peak RSS MiB",
        "CPU s",
        "runs (s)",
      ],
      rs.map((r) => [
        r.tool,
        s(r.medianMs),
        n(r.filesPerS, 0),
        fc ? n(fc.medianMs / r.medianMs, 2) : "–",
        n(r.medianRssMiB, 0),
        n(r.medianCpuS, 2),
        r.runs.map((x) => `${s(x.ms)}${x.ok ? "" : " ✗"}`).join(", "),
      ]),
    ));
    parts.push("");
  }
  return parts.join("\n");
}

/** Renders BENCHMARKS.md. */
export function markdown(r: Results): string {
  const g = goals(r);
  const out: string[] = [];
  out.push(`# Benchmarks

Generated by \`${r.command}\` on ${r.date.slice(0, 10)} (${r.mode} mode, ${
    Math.round(r.durationS / 60)
  } min). Every figure below comes from this one run: medians of several runs per tool, and ratios
between tools measured in the same run, in alternating order so that background load does not favour
one tool. ${
    r.mode === "quick"
      ? "**Quick mode: smaller sizes than the goals name;** run `deno task bench --full` for the full sizes."
      : ""
  }

## Goals

${
    table(
      ["goal", "measured", "met"],
      g.map((x) => [x.goal, x.measured, x.met === null ? "n/a (quick)" : x.met ? "yes" : "**no**"]),
    )
  }
`);
  if (r.notes.length > 0) {
    out.push(`### What limits it\n\n${r.notes.map((x) => `- ${x}`).join("\n")}\n`);
  }
  out.push(`## Machine

${
    table(["", ""], [
      ...Object.entries(r.machine).map(([k, v]) => [k, v]),
      ["load average (1 min) at start / end", `${n(r.load.start, 2)} / ${n(r.load.end, 2)}`],
      ["source and local destination trees", r.storage.trees],
      ["fileconveyor databases", r.storage.databases],
      ["SFTP server", r.storage.sftp],
      ["S3 server", r.storage.s3],
    ])
  }

Other work on the machine (a shared build machine: load averages above 2 mean other processes
competed for the 2 cores) makes every absolute figure noisy; compare ratios within this run.
`);
  if (r.initial) {
    out.push(`## 1. Initial sync of many small files (1–8 KiB)

\`fileconveyor sync --once\` from an empty database and destination vs \`rclone copy\` with the same
concurrency (\`--transfers N --checkers N\`, fileconveyor \`maxConnections="N"\`) and \`rsync -a\`. Times
include process start-up. A run counts only when every file arrived (counted on the destination
afterwards; S3 with \`rclone size\`). The local destination gets copies (\`<copy>true</copy>\`), like
rclone and rsync make; the symlink row is the local transporter's default.

${initialSection(r.initial, r.concurrency)}`);
    const fc = fcRow(r.initial, "s3");
    const ceil = r.initial.find((x) => x.dest === "s3" && x.tool.startsWith("raw S3"));
    if (fc && ceil) {
      out.push(`## 7. The S3 ceiling

A minimal client (\`scripts/bench/ceiling.ts\`: fetch with SigV4 from \`@smithy/signature-v4\`,
unsigned payload, no retries, no verification, no records; its own process, timed like the tools)
PUTs the same files to the same server with the same concurrency: **${
        n(ceil.filesPerS, 0)
      } files/s**
(${n(ceil.medianCpuS, 1)} CPU s against fileconveyor's ${n(fc.medianCpuS, 1)}). fileconveyor reaches
**${n(fc.filesPerS, 0)} files/s = ${n(fc.filesPerS / ceil.filesPerS * 100, 0)} %** of that, with
Content-MD5 on every PUT, the ETag checked, and every upload recorded in its database.
`);
    }
  }
  if (r.latency) {
    out.push(`## 2. Latency from close-after-write to arrival

${r.sizes.latencyWrites} single 4 KiB writes at ${r.sizes.latencyRate}/s into 10 directories, ${r.sizes.latencyRuns} run(s)
per target (percentiles over all samples); each tool already running and warmed up (one file per
directory synced first). lsyncd runs \`default.rsync\` with \`delay = 0\` and with its default delay
(15 s; one run).

${
      table(
        ["target", "p50 ms", "p95 ms", "p99 ms", "max ms", "samples", "missing", "measured how"],
        r.latency.map((l) => [
          l.label,
          n(l.p50),
          n(l.p95),
          n(l.p99),
          n(l.max),
          String(l.samples),
          String(l.missing),
          l.method + (l.logged
            ? ` (fileconveyor's log says p50 ${n(l.logged.p50)}, p99 ${n(l.logged.p99)})`
            : ""),
        ]),
      )
    }

Measurement: "observed" arrivals are seen by the benchmark itself watching the destination folder
(for SFTP: the server's folder on this machine) with inotify, backed by polling every 2 ms; a file
has arrived when its final name has the full size. S3 storage is opaque to us (Swift's object
files), and polling with HEAD requests would load the server under test, so S3 arrivals are the
timestamps of fileconveyor's \`uploaded <path>\` log lines, written after the server answered the PUT
and the record was committed (millisecond resolution: a slight over-estimate). Where both methods
apply, the log figures are shown beside the observed ones as a check.
`);
  }
  if (r.burst) {
    out.push(`## 3. Burst: ${r.sizes.burstFiles} files written at once

${
      table(
        ["target", "first write → all arrived (ms)", "last close → all arrived (ms)", "runs"],
        r.burst.map((b) => [
          b.label,
          n(b.allMs, 0),
          n(b.afterLastMs, 0),
          b.runs.map((x) => `${n(x.allMs, 0)}${x.missing ? ` (${x.missing} missing)` : ""}`).join(
            ", ",
          ),
        ]),
      )
    }

Measured as in scenario 2.
`);
  }
  if (r.restart) {
    const x = r.restart;
    out.push(`## 4. Restart over ${int(x.files)} unchanged files (${int(x.dirs)} directories)

The state was built by one full sync first (${
      Object.entries(x.setup).map(([k, v]) => `${k} ${s(v, 1)} s`).join(", ")
    }). Then, ${x.rows[0]!.runs.length} times each:

${
      table(
        ["tool", "measures", "median s", "peak RSS MiB", "CPU s", "uploads", "runs (s)"],
        x.rows.map((w) => [
          w.tool,
          w.what,
          s(w.medianMs),
          n(w.medianRssMiB, 0),
          n(w.medianCpuS, 2),
          String(Math.max(...w.runs.map((y) => y.uploads))),
          w.runs.map((y) => s(y.ms)).join(", "),
        ]),
      )
    }

fileconveyor's own "Initial scan done" figure (scan and compare with the database, without process
start-up): median ${int(x.scanMs)} ms. Watch mode is timed from spawning the process until that log
line (the inotify watches are in place before the scan starts). Peak RSS and CPU of the watch-mode
run are read from \`/proc\` at that moment; the others come from GNU time.
`);
    if (x.parts) {
      const p = x.parts;
      const rest = (q: typeof p.once) => q.scanMs - q.listMs - q.storedMs;
      out.push(
        `Where fileconveyor's time goes (wall ms, medians, from its log: "Initial scan done" and
"Scanned source"):

${
          table(
            ["part", "--once", "watch mode"],
            [
              [
                "start (Deno, modules, configuration, store open)",
                p.once.startupMs,
                p.watch.startupMs,
              ],
              ["watch set-up (native watches)", p.once.watchSetupMs, p.watch.watchSetupMs],
              ["scan: listing directories", p.once.listMs, p.watch.listMs],
              ["scan: stored rows", p.once.storedMs, p.watch.storedMs],
              ["scan: stats, comparison, the rest", rest(p.once), rest(p.watch)],
            ].map(([k, a, b]) => [String(k), int(Number(a)), int(Number(b))]),
          )
        }
`,
      );
    }
  }
  if (r.sustained) {
    out.push(`## 5. Sustained load

New 2 KiB files at a steady rate (100 directories) for ${r.sizes.sustainedSeconds} s, then up to ${r.sizes.sustainedDrainSeconds} s for the backlog
to drain. Arrivals from fileconveyor's log (as for S3 in scenario 2). Backlog = files written but not
arrived yet, at 25 / 50 / 75 / 100 % of the writing time.

${
      table(
        [
          "destination",
          "rate asked",
          "written/s",
          "arrived/s (2nd half)",
          "backlog",
          "left when we stopped",
          "drain s",
          "p50 ms",
          "p99 ms",
          "RSS MiB",
        ],
        r.sustained.map((x) => [
          DEST_NAME[x.dest],
          String(x.rate),
          n(x.writtenPerS, 0),
          n(x.arrivedPerS, 0),
          x.backlog.join(" → "),
          String(x.leftAtStop),
          x.drainMs === null ? "not drained" : s(x.drainMs, 1),
          n(x.p50, 0),
          `${x.p99Censored ? "≥ " : ""}${n(x.p99, 0)}`,
          n(x.rssMiB, 0),
        ]),
      )
    }
`);
  }
  if (r.initial || r.restart) {
    const rows: string[][] = [];
    for (const i of r.initial ?? []) {
      rows.push([`1 ${DEST_NAME[i.dest]}`, i.tool, n(i.medianRssMiB, 0), n(i.medianCpuS, 2)]);
    }
    for (const w of r.restart?.rows ?? []) {
      rows.push([`4 restart`, w.tool, n(w.medianRssMiB, 0), n(w.medianCpuS, 2)]);
    }
    if (r.restart) {
      rows.push([
        `watching ${int(r.restart.files)} files, idle`,
        "fileconveyor sync (watch mode)",
        `${n(r.restart.idleRssMiB.after2s, 0)} (after 10 s: ${
          n(r.restart.idleRssMiB.after10s, 0)
        })`,
        "–",
      ]);
    }
    out.push(`## 6. Resource use

Peak resident memory and CPU seconds (user + system), medians. GNU time counts the child processes a
tool waits for (ssh under rsync and rclone's SFTP); servers (sshd, Swift) are not counted for anyone.
lsyncd's figures come from \`/proc\`: its CPU includes the rsync runs it waited for, its RSS is its own.

${table(["scenario", "tool", "peak RSS MiB", "CPU s"], rows)}
`);
  }
  if (r.processors) {
    out.push(`## Processors

\`benchProcessors(${r.sizes.processorCopies})\` from \`scripts/bench/processors.ts\`: each processor alone over ${r.sizes.processorCopies} copies of the
fixture site \`tests/testdata/site/shop\` (engines loaded before timing; the first rows are their
one-off start-up costs).

${
      table(
        ["processor", "files", "KiB in", "ms", "ms/file", "KiB/s"],
        r.processors.map((p) => [
          p.name,
          String(p.files),
          n(p.bytes / 1024, 0),
          n(p.ms, 1),
          p.files > 0 ? n(p.ms / p.files, 2) : "–",
          p.files > 0 && p.ms > 0 ? n(p.bytes / 1024 / (p.ms / 1000), 0) : "–",
        ]),
      )
    }
`);
  }
  if (r.sampleChain) out.push(sampleChainSection(r.sampleChain));
  if (r.scale) out.push(scaleSection(r.scale));
  if (r.fleet) out.push(fleetSection(r.fleet));
  if (r.massDelete) {
    out.push(massDeleteSection(r.massDelete));
  }
  if (r.errors.length > 0) {
    out.push(
      `## Errors in this run\n\n${
        r.errors.map((e) => `- scenario ${e.scenario}: ${e.message}`).join("\n")
      }\n`,
    );
  }
  out.push(`## How to run

\`\`\`sh
deno task bench           # quick mode (a few minutes): smaller sizes
deno task bench --full    # the sizes named in the goals
deno task bench --only 1,4 --concurrency 16   # some scenarios; another concurrency
deno task bench --scale   # adds the scale scenario (full: up to 1,000,000 files; long)
# one row, before and after a change: scenario 1 to the local folder only, the previous
# checkout's fileconveyor in the same rotation, a tool left out
deno task bench --full --only 1 --dest local --baseline ../before/mod.ts \\
  --skip "fileconveyor (symlinks: the local default)" --out /tmp/bench
\`\`\`

It installs what it compares against from Debian (\`rclone rsync lsyncd openssh-client time\`, plus
the servers' packages), starts a private SSH server and a private Swift (S3) server on 127.0.0.1
(\`FC_SERVERS_DIR=/tmp/fileconveyor-bench-servers-<pid>\`, so neither the test suite's servers nor another bench run's are touched),
runs every scenario, writes this file and \`docs/BENCHMARKS.json\` (every run's figures), and stops the
servers and every process it started, also when interrupted. Profiles: \`deno run -A --cpu-prof
--cpu-prof-dir=DIR mod.ts sync --config … --once\`, then
\`deno run -A scripts/bench/profile.ts DIR\` prints self and inclusive time per function.

### The exact commands

${
    table(
      ["what", "command"],
      Object.entries(r.commands).sort().map(([k, v]) => [k, `\`${v.replaceAll("|", "\\|")}\``]),
    )
  }
`);
  return out.join("\n");
}

/** A phase's wall time, or how far from converged it stayed. */
function phase(p: Phase): string {
  return p.ms === null ? `not converged (${int(p.off)} files off)` : s(p.ms);
}

/** Scenario d's section: what each figure measures and how the guard behaved. */
function massDeleteSection(x: MassDeleteResult): string {
  return `## d. Mass delete: ${
    int(x.files)
  } files created, \`rm -rf\`, recreated (watch mode, local)

fileconveyor watches a source holding ${int(x.kept)} files that stay; a directory of ${
    int(x.files)
  } small files (50 subdirectories) is written, removed with \`rm -rf\`, and written again. Each
figure is wall time from the first change in the source until the destination holds exactly the
source's files (counted, then compared by name). The deletion is within the delete guard's
allowance (below \`deleteGuardShare\` of the source), so all of it must go, however many batches
the watcher reports it in (it loses part of such deletions); the guard judges it as a whole. Then
every file is deleted (beyond the allowance): the guard must hold all of it and delete nothing.
The periodic rescan is off (\`rescanInterval\` 0), so files whose watcher events were lost show as
"not converged" (waited for up to 5 min per phase) instead of being found by a later scan.

${
    table(["phase", "wall time (s)", "guard"], [
      ["create", phase(x.create), "–"],
      [
        "delete (`rm -rf`, within the allowance)",
        phase(x.delete),
        x.heldWithin === 0 ? "nothing held" : `held ${x.heldWithin} times (wrong)`,
      ],
      ["recreate", phase(x.recreate), "–"],
      [
        "delete everything (beyond the allowance)",
        `${s(x.guardMs)} until held`,
        x.deletedBeyond === 0 ? "held entirely" : `${x.deletedBeyond} deleted anyway (wrong)`,
      ],
    ])
  }
`;
}

function sampleChainSection(c: SampleChainResult): string {
  const base = c.rows.find((x) => x.tool.includes("baseline"));
  const rows = c.rows.map((x) => [
    x.tool,
    String(x.runs),
    n(x.seconds, 1),
    n(x.filesPerS, 1),
    n(x.cpuMsPerFile, 1),
    n(x.peakRssMiB, 0),
    n(x.idleRssMiB, 0),
    base && x !== base ? `${n(base.seconds / x.seconds, 2)}× faster` : "–",
  ]);
  const runs = c.runs.map((x) => [
    x.tool,
    n(x.seconds, 1),
    n(x.cpuS, 1),
    n(x.peakRssMiB, 0),
    n(x.idleRssMiB, 0),
    // RSS over time, one figure every tenth of the run.
    x.rss.filter((_, i) => i % Math.max(1, Math.round(x.rss.length / 10)) === 0)
      .map(([t, m]) => `${t} s: ${m}`).join(", "),
  ]);
  return `## Processors: the sample chain through the daemon

\`scripts/bench/sample_chain.ts\`: \`fileconveyor sync\` (watch mode, default settings) with the
original's sample rule (image_optimizer.KeepFilename, yui_compressor, google_closure_compiler,
link_updater.CSSURLUpdater, unique_filename.Mtime) over \`${c.tree}\` (${int(c.files)} files,
${n(c.bytes / 1024 / 1024, 0)} MiB), to a local folder, from an empty database and result cache. The
sync ends at the last file uploaded or updated; CPU is user + system of the whole process (every
thread) by then; peak RSS is the kernel's \`VmHWM\`; idle RSS is read once the daemon has waited
longer than \`engineIdleTimeout\` after the last file. Medians per tool.

${
    table(
      [
        "tool",
        "runs",
        "sync s",
        "files/s",
        "CPU ms/file",
        "peak RSS MiB",
        "idle RSS MiB",
        "vs baseline",
      ],
      rows,
    )
  }

Each run, with its RSS (MiB) over time:

${table(["tool", "sync s", "CPU s", "peak MiB", "idle MiB", "RSS over time"], runs)}
`;
}
