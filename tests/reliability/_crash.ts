/**
 * The crash driver shared by the local, SFTP and S3 crash tests: kill -9 the
 * daemon at random moments during an initial sync and during live changes,
 * then restart it and check that everything converges — `verify` finds
 * nothing, an independent client finds the destination identical to the
 * source, no temp file is left, and the database passes integrity_check.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { sleep, type Workspace, write } from "../_harness.ts";
import { figure, integrityCheck, rand, randomBytes, run, start } from "./_util.ts";

/** A destination under test. */
export interface CrashTarget {
  /** Short name for messages and figures (local, sftp, s3). */
  name: string;
  /** The `<server name="dest" …>…</server>` element. */
  serverXml: string;
  /** The `path` of the destination. */
  destPath: string;
  /**
   * Compares the destination with the source by a route fileconveyor does
   * not use (diff -r, rclone check); returns "" when identical and no temp
   * file is left, else a description.
   */
  independentCheck(src: string): Promise<string>;
}

/** How hard to push. */
export interface CrashPlan {
  /** Kills during the initial sync. */
  initialKills: number;
  /** Kills during live changes. */
  liveKills: number;
  /** Source files at the start. */
  files: number;
  /** Largest file, bytes (a few files get this size so kills land mid-transfer). */
  bigSize: number;
  /** Milliseconds after the start before a kill, range. */
  killAfter: [number, number];
}

/** Writes the config of a crash run. */
export function crashConfig(ws: Workspace, target: CrashTarget): void {
  fs.writeFileSync(
    ws.config,
    `<config>
  <sources><source name="site" scanPath="${ws.src}" /></sources>
  <servers>
    ${target.serverXml}
  </servers>
  <rules>
    <rule for="site" label="all">
      <destinations><destination server="dest" path="${target.destPath}" /></destinations>
    </rule>
  </rules>
  <settings>
    <dataDir>${ws.data}</dataDir>
    <settleDelay>30</settleDelay>
    <maxDelay>500</maxDelay>
    <retryInitialDelay>0.2</retryInitialDelay>
    <retryMaxDelay>2</retryMaxDelay>
    <rescanInterval>0</rescanInterval>
    <deleteGuardMinFiles>1000000</deleteGuardMinFiles>
    <timeout>20</timeout>
  </settings>
</config>
`,
  );
}

/** Fills the source: small text files in nested directories, a few big binary ones. */
export function fillSource(src: string, plan: CrashPlan): void {
  for (let i = 0; i < plan.files; i++) {
    const dir = `d${i % 7}/e${i % 3}`;
    if (i % 25 === 0) {
      write(path.join(src, dir, `big${i}.bin`), randomBytes(rand(plan.bigSize / 2, plan.bigSize)));
    } else {
      write(path.join(src, dir, `f${i}.txt`), `file ${i} ${"x".repeat(rand(0, 4000))}\n`);
    }
  }
}

/** Random live changes: rewrites (same size too), appends, creates, deletes, renames, new dirs. */
export function mutator(src: string): { stop(): Promise<number> } {
  let stopped = false;
  let ops = 0;
  const files = () => {
    const out: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else out.push(p);
      }
    };
    walk(src);
    return out;
  };
  const loop = (async () => {
    while (!stopped) {
      const all = files();
      const pick = all[rand(0, all.length - 1)];
      const r = Math.random();
      try {
        if (!pick || r < 0.25) {
          write(path.join(src, `live/n${rand(0, 9)}`, `new${ops}.txt`), `new ${ops}\n`);
        } else if (r < 0.45) {
          // Same size, new content: stat-based change detection must still see it.
          const old = fs.readFileSync(pick);
          const next = new Uint8Array(old.length);
          next.set(old);
          if (next.length > 0) next[0] = (next[0]! + 1) % 256;
          fs.writeFileSync(pick, next);
        } else if (r < 0.6) {
          fs.appendFileSync(pick, `append ${ops}\n`);
        } else if (r < 0.72) {
          fs.rmSync(pick);
        } else if (r < 0.85) {
          const to = path.join(path.dirname(pick), `renamed${ops}-${path.basename(pick)}`);
          fs.renameSync(pick, to);
        } else if (r < 0.93) {
          const dir = path.join(src, `burst${ops}`);
          for (let k = 0; k < 5; k++) write(path.join(dir, `sub/b${k}.txt`), `burst ${ops} ${k}\n`);
        } else {
          fs.writeFileSync(pick, randomBytes(rand(100_000, 600_000)));
        }
      } catch {
        // Raced with another change: fine.
      }
      ops++;
      await sleep(rand(5, 40));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return ops;
    },
  };
}

/** Runs the whole crash scenario against one target. */
export async function crashScenario(ws: Workspace, target: CrashTarget, plan: CrashPlan) {
  crashConfig(ws, target);
  fillSource(ws.src, plan);
  const db = path.join(ws.data, "fileconveyor.db");
  const kills: { phase: string; afterMs: number; sawUpload: boolean }[] = [];
  const args = ["sync", "--config", ws.config];
  const killOnce = async (phase: string) => {
    const d = start(args, { env: { FILECONVEYOR_LOG: "info" } });
    const t0 = Date.now();
    // Every other kill counts from the first transfer, not the start: on a busy machine
    // start-up alone can outlast the random delay, and the kills must hit transfers too.
    if (kills.length % 2 === 1) {
      await d.waitFor(/uploaded|updated|deleted|moved/, 4000).catch(() => {});
      await sleep(rand(0, 600));
    } else await sleep(rand(plan.killAfter[0], plan.killAfter[1]));
    const afterMs = Date.now() - t0;
    const sawUpload = /uploaded|updated/.test(d.log());
    await d.kill();
    kills.push({ phase, afterMs, sawUpload });
    assert(
      !/Uncaught|panicked/.test(d.log()),
      `daemon crashed by itself:\n${d.log().slice(-3000)}`,
    );
    if (fs.existsSync(db)) {
      const ic = await integrityCheck(db);
      assertEquals(ic, "ok", `integrity_check after kill #${kills.length}`);
    }
  };

  for (let i = 0; i < plan.initialKills; i++) await killOnce("initial");
  const m = mutator(ws.src);
  try {
    for (let i = 0; i < plan.liveKills; i++) await killOnce("live");
  } finally {
    const ops = await m.stop();
    figure(`crash.${target.name}.liveOps`, ops);
  }

  // Restart: everything must converge.
  const t0 = performance.now();
  const final = await run(["sync", "--once", "--config", ws.config], { timeoutMs: 240_000 });
  const convergeMs = Math.round(performance.now() - t0);
  assertEquals(final.code, 0, `final sync --once failed:\n${final.stderr.slice(-4000)}`);
  const v = await run(["verify", "--config", ws.config, "--json"], { timeoutMs: 120_000 });
  assertEquals(
    v.code,
    0,
    `verify found differences:\n${v.stdout.slice(0, 4000)}${v.stderr.slice(-2000)}`,
  );
  const report = JSON.parse(v.stdout) as { servers: { records: number; ok: number }[] };
  assert(report.servers[0]!.records > 0, "nothing recorded");
  const diff = await target.independentCheck(ws.src);
  assertEquals(diff, "", `independent check (${target.name})`);
  assertEquals(await integrityCheck(db), "ok", "integrity_check at the end");
  figure(`crash.${target.name}`, {
    kills: kills.length,
    killsAfterUploadsStarted: kills.filter((k) => k.sawUpload).length,
    convergeMs,
    records: report.servers[0]!.records,
  });
  return { kills, convergeMs };
}
