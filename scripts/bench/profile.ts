/**
 * Summarises V8 `.cpuprofile` files (from `deno run --cpu-prof`) by self and
 * inclusive time per function, so a slow path shows up without a browser.
 *
 * Run: `deno run -A scripts/bench/profile.ts DIR_OR_FILE... [--top N]`.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Time of one function, summed over its call sites. */
export interface ProfileRow {
  /** `name file:line`. */
  fn: string;
  /** Milliseconds spent in the function itself. */
  selfMs: number;
  /** Milliseconds spent in it or anything it called (recursion counted once). */
  totalMs: number;
}

function label(f: CallFrame): string {
  const name = f.functionName || "(anonymous)";
  if (!f.url) return name;
  const u = f.url.replace(/^file:\/\//, "");
  const short = u.includes("/node_modules/")
    ? u.slice(u.lastIndexOf("/node_modules/") + 14)
    : u.includes("/src/")
    ? u.slice(u.lastIndexOf("/src/") + 1)
    : path.basename(u);
  return `${name} ${short}:${f.lineNumber + 1}`;
}

/** Aggregates one profile: rows sorted by self time, plus the sampled wall time. */
export function summarise(profile: CpuProfile): { rows: ProfileRow[]; ms: number } {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let ms = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0) / 1000;
    ms += dt;
    let id: number | undefined = profile.samples[i]!;
    const leaf = label(byId.get(id)!.callFrame);
    self.set(leaf, (self.get(leaf) ?? 0) + dt);
    const seen = new Set<string>();
    while (id !== undefined) {
      const l = label(byId.get(id)!.callFrame);
      if (!seen.has(l)) {
        seen.add(l);
        total.set(l, (total.get(l) ?? 0) + dt);
      }
      id = parent.get(id);
    }
  }
  const rows = [...total].map(([fn, t]) => ({ fn, selfMs: self.get(fn) ?? 0, totalMs: t }));
  rows.sort((a, b) => b.selfMs - a.selfMs);
  return { rows, ms };
}

function files(args: string[]): string[] {
  return args.flatMap((a) =>
    fs.statSync(a).isDirectory()
      ? fs.readdirSync(a).filter((f) => f.endsWith(".cpuprofile")).map((f) => path.join(a, f))
      : [a]
  );
}

if (import.meta.main) {
  const i = Deno.args.indexOf("--top");
  const top = i >= 0 ? Number(Deno.args[i + 1]) : 30;
  const targets = Deno.args.filter((_, j) => j !== i && j !== i + 1);
  for (const f of files(targets)) {
    const { rows, ms } = summarise(JSON.parse(fs.readFileSync(f, "utf8")) as CpuProfile);
    const out = [`${f}: ${ms.toFixed(0)} ms sampled`, "", "self ms   self %   function"];
    for (const r of rows.slice(0, top)) {
      out.push(
        `${r.selfMs.toFixed(0).padStart(7)} ${
          (100 * r.selfMs / ms).toFixed(1).padStart(7)
        }%   ${r.fn}`,
      );
    }
    out.push("", "incl ms   incl %   function");
    for (const r of [...rows].sort((a, b) => b.totalMs - a.totalMs).slice(0, top)) {
      out.push(
        `${r.totalMs.toFixed(0).padStart(7)} ${
          (100 * r.totalMs / ms).toFixed(1).padStart(7)
        }%   ${r.fn}`,
      );
    }
    // deno-lint-ignore no-console
    console.log(out.join("\n"));
  }
}
