/**
 * Scenario 1 (initial sync of many small files to a local folder, SFTP and
 * S3), with the resource use of every run (scenario 6) and the raw S3 PUT
 * ceiling (scenario 7).
 *
 * @module
 */
import * as path from "node:path";
import { type Context, fresh, sftpDir } from "./_context.ts";
import { type Dest, fcCommand, fcConfig, rcloneCommand, rsyncCommand } from "./_tools.ts";
import { countFiles, makeTree, median, rmTree, say, timed, type TreeInfo } from "./_util.ts";

const CEILING = path.resolve(import.meta.dirname!, "ceiling.ts");

/** One run of one tool. */
export interface RunResult {
  ms: number;
  maxRssMiB?: number;
  cpuS?: number;
  /** Files found at the destination afterwards. */
  arrived: number;
  ok: boolean;
}

/** One tool on one destination. */
export interface InitialRow {
  dest: "local" | "sftp" | "s3";
  tool: string;
  files: number;
  bytes: number;
  runs: RunResult[];
  medianMs: number;
  filesPerS: number;
  medianRssMiB: number | null;
  medianCpuS: number | null;
}

type Kind = InitialRow["dest"];

interface Variant {
  tool: string;
  /** Runs once into a fresh destination; returns the result. */
  run(i: number): Promise<RunResult>;
}

function summarise(dest: Kind, tool: string, tree: TreeInfo, runs: RunResult[]): InitialRow {
  const good = runs.filter((r) => r.ok);
  const ms = median(good.map((r) => r.ms));
  const rss = good.map((r) => r.maxRssMiB).filter((x): x is number => x !== undefined);
  const cpu = good.map((r) => r.cpuS).filter((x): x is number => x !== undefined);
  return {
    dest,
    tool,
    files: tree.files,
    bytes: tree.bytes,
    runs,
    medianMs: ms,
    filesPerS: tree.files / ms * 1000,
    medianRssMiB: rss.length ? median(rss) : null,
    medianCpuS: cpu.length ? median(cpu) : null,
  };
}

async function rcloneCount(ctx: Context, bucket: string): Promise<number> {
  const c = rcloneCommand("", { kind: "s3", info: ctx.swift, bucket }, 1);
  const r = await timed(["rclone", "size", "--json", `:s3:${bucket}`], {
    env: c.env,
    unsetEnv: c.unsetEnv,
    timeoutMs: 120_000,
  });
  try {
    return (JSON.parse(r.stdout) as { count: number }).count;
  } catch {
    return -1;
  }
}

/** Runs scenario 1 (and 7) for every destination (or those named). */
export async function initialSync(
  ctx: Context,
  kinds: readonly Kind[] = ["local", "sftp", "s3"],
): Promise<InitialRow[]> {
  const rows: InitialRow[] = [];
  const n = ctx.concurrency;
  for (const kind of kinds) {
    const files = ctx.sizes.initialFiles[kind];
    const runs = ctx.sizes.initialRuns[kind];
    const src = path.join(ctx.work, `s1-src-${kind}`);
    rmTree(src);
    const tree = makeTree(src, {
      files,
      dirs: Math.min(ctx.sizes.initialDirs, Math.ceil(files / 10)),
      minBytes: 1024,
      maxBytes: 8192,
      seed: 1,
    });
    say(
      `scenario 1 (${kind}): ${tree.files} files, ${
        (tree.bytes / 1e6).toFixed(1)
      } MB, ${runs} runs`,
    );

    const destFor = (tag: string): { dest: Dest; count(): Promise<number>; cleanup(): void } => {
      if (kind === "local") {
        const dir = path.join(ctx.work, fresh(`s1-dst-${tag}`));
        return {
          dest: { kind, dir },
          count: () => Promise.resolve(countFiles(dir)),
          cleanup: () => rmTree(dir),
        };
      }
      if (kind === "sftp") {
        const name = fresh(`s1-${tag}`);
        const abs = sftpDir(ctx, name);
        return {
          dest: { kind, info: ctx.sftp, dir: name },
          count: () => Promise.resolve(countFiles(abs)),
          cleanup: () => rmTree(abs),
        };
      }
      const bucket = fresh(`s1-${tag}`);
      return {
        dest: { kind, info: ctx.swift, bucket },
        count: () => rcloneCount(ctx, bucket),
        cleanup: () => {},
      };
    };

    const once = async (
      tag: string,
      label: string,
      make: (
        dest: Dest,
      ) => { cmd: string[]; env: Record<string, string>; unsetEnv: string[]; shown: string },
    ): Promise<RunResult> => {
      const d = destFor(tag);
      const c = make(d.dest);
      ctx.commands.set(label, c.shown);
      const r = await timed(c.cmd, {
        env: c.env,
        unsetEnv: c.unsetEnv,
        timeoutMs: 30 * 60_000,
        rusage: true,
        stderrFile: path.join(ctx.work, "last-run.log"),
      });
      const arrived = await d.count();
      d.cleanup();
      const ok = r.code === 0 && arrived === tree.files;
      if (!ok) say(`  ${label}: exit ${r.code}, ${arrived}/${tree.files} files arrived`);
      return {
        ms: r.ms,
        ...(r.maxRssMiB !== undefined ? { maxRssMiB: r.maxRssMiB } : {}),
        ...(r.cpuS !== undefined ? { cpuS: r.cpuS } : {}),
        arrived,
        ok,
      };
    };

    const fc = (symlinks: boolean, entry?: string): Variant => ({
      tool: entry
        ? "fileconveyor (baseline)"
        : symlinks
        ? "fileconveyor (symlinks: the local default)"
        : "fileconveyor",
      run: (i) =>
        once(
          entry ? "fcb" : symlinks ? "fcl" : "fc",
          `1 ${kind}: fileconveyor${entry ? " (baseline)" : symlinks ? " (symlinks)" : ""}`,
          (dest) => {
            const data = path.join(ctx.data, fresh(`s1-${kind}-${i}`));
            const config = fcConfig(path.join(ctx.work, `s1-${kind}.xml`), {
              src,
              dest,
              dataDir: data,
              concurrency: n,
              symlinks,
            });
            return fcCommand(config, true, entry);
          },
        ),
    });
    const variants: Variant[] = [fc(false)];
    if (ctx.baselineEntry) variants.push(fc(false, ctx.baselineEntry));
    if (kind === "local") variants.push(fc(true));
    variants.push({
      tool: "rclone copy",
      run: () => once("rc", `1 ${kind}: rclone`, (dest) => rcloneCommand(src, dest, n)),
    });
    if (kind === "sftp") {
      variants.push({
        tool: "rclone copy --sftp-disable-hashcheck",
        run: () =>
          once(
            "rcn",
            `1 ${kind}: rclone without remote hashing`,
            (dest) => rcloneCommand(src, dest, n, ["--sftp-disable-hashcheck"]),
          ),
      });
    }
    if (kind !== "s3") {
      variants.push({
        tool: kind === "local" ? "rsync -a" : "rsync -a over SSH",
        run: () => once("rs", `1 ${kind}: rsync`, (dest) => rsyncCommand(src, dest)!),
      });
    } else {
      variants.push({
        tool: "raw S3 PUT client (ceiling)",
        run: () =>
          once("ceil", "1 s3: raw S3 PUT client (ceiling)", (dest) => {
            const info = ctx.swift;
            const bucket = dest.kind === "s3" ? dest.bucket : "";
            const cmd = [Deno.execPath(), "run", "-A", CEILING, src, bucket, String(n)];
            const env = {
              S3_ENDPOINT: info.s3Endpoint,
              AWS_ACCESS_KEY_ID: info.accessKeyId,
              AWS_SECRET_ACCESS_KEY: info.secretAccessKey,
              AWS_REGION: info.region,
            };
            return {
              cmd,
              env,
              unsetEnv: [],
              shown:
                `S3_ENDPOINT=${info.s3Endpoint} AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=*** ` +
                `deno run -A scripts/bench/ceiling.ts ${src} ${bucket} ${n}`,
            };
          }),
      });
    }

    if (ctx.skipTools) {
      for (let i = variants.length - 1; i >= 0; i--) {
        if (ctx.skipTools.includes(variants[i]!.tool)) variants.splice(i, 1);
      }
    }
    const results = new Map<string, RunResult[]>(variants.map((v) => [v.tool, []]));
    for (let i = 0; i < runs; i++) {
      // A different order each run, so background load does not favour one tool.
      const order = variants.map((_, j) => variants[(i + j) % variants.length]!);
      for (const v of order) {
        const r = await v.run(i);
        results.get(v.tool)!.push(r);
        say(
          `  run ${i + 1}/${runs} ${v.tool}: ${(r.ms / 1000).toFixed(2)} s${
            r.cpuS !== undefined ? `, CPU ${r.cpuS.toFixed(2)} s` : ""
          }${r.ok ? "" : " (FAILED)"}`,
        );
      }
    }
    for (const v of variants) rows.push(summarise(kind, v.tool, tree, results.get(v.tool)!));
    rmTree(src);
  }
  return rows;
}
