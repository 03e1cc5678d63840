/**
 * `rm -rf` of a large directory in watch mode. The watcher reports the
 * deletion in many batches (and loses part of it); the delete guard judges
 * it as one deletion: within its allowance everything is deleted, beyond it
 * nothing is, and `status` and the log say what is held and how to approve.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { assert, assertEquals, assertIncludes } from "../_assert.ts";
import {
  cli,
  diffTrees,
  eventually,
  localConfig,
  sleep,
  spawn,
  tree,
  type Workspace,
  workspace,
} from "../_harness.ts";
import { figure, mode } from "./_util.ts";

const BIG = mode(5_000, 20_000);

function files(ws: Workspace, dir: string, n: number) {
  for (let i = 0; i < n; i++) {
    const d = path.join(ws.src, dir, `d${i % 50}`);
    if (i < 50) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, `f${i}.txt`), `${dir} ${i}\n`);
  }
}

function count(root: string): number {
  let n = 0;
  const walk = (d: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return; // Removed while counting (the daemon deletes emptied directories).
    }
    for (const e of entries) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else n++;
    }
  };
  walk(root);
  return n;
}

async function start(ws: Workspace) {
  const d = spawn(["sync", "--config", ws.config]);
  await d.waitFor("Initial scan done", 60_000);
  await eventually(
    () => count(ws.dst) === count(ws.src) ? "" : `${count(ws.dst)} of ${count(ws.src)}`,
    120_000,
    "initial sync",
  );
  return d;
}

Deno.test("hostile tree: rm -rf of a large directory within the guard's allowance is deleted entirely", async () => {
  const ws = workspace("fc-rmrf-");
  localConfig(ws, { copy: false, settings: { rescanInterval: "0" } });
  files(ws, "keep", Math.ceil(BIG * 1.2));
  const d = await start(ws);
  try {
    // Measured (not asserted): create, delete and recreate of BIG files while watching.
    // Counting is cheap; the trees are compared in full after each step.
    const big = path.join(ws.dst, "big");
    const settled = async (want: number, what: string) => {
      await eventually(() => count(big) === want ? "" : `${count(big)} of ${want}`, 120_000, what);
      await eventually(() => diffTrees(tree(ws.src), tree(ws.dst)), 30_000, what);
    };
    let t0 = performance.now();
    files(ws, "big", BIG);
    await eventually(() => count(big) === BIG ? "" : `${count(big)}`, 120_000, "the creation");
    const createMs = performance.now() - t0;
    await settled(BIG, "the creation");
    t0 = performance.now();
    fs.rmSync(path.join(ws.src, "big"), { recursive: true });
    await eventually(() => count(big) === 0 ? "" : `${count(big)} left`, 60_000, "the deletion");
    const deleteMs = performance.now() - t0;
    await settled(0, "the deletion");
    assert(!/Delete guard/.test(d.log()), "the guard held a deletion within its allowance");
    t0 = performance.now();
    files(ws, "big", BIG);
    await eventually(() => count(big) === BIG ? "" : `${count(big)}`, 120_000, "the recreation");
    const recreateMs = performance.now() - t0;
    await settled(BIG, "the recreation");
    figure(`watch.rmrf.${BIG}`, {
      createMs: Math.round(createMs),
      deleteMs: Math.round(deleteMs),
      recreateMs: Math.round(recreateMs),
    });
    assertEquals(await d.stop(), 0);
  } finally {
    await d.kill();
    ws.cleanup();
  }
});

Deno.test("hostile tree: rm -rf of a large directory beyond the guard's allowance is held entirely, then approved", async () => {
  const ws = workspace("fc-rmrf-held-");
  localConfig(ws, { copy: false, settings: { rescanInterval: "0" } });
  files(ws, "big", BIG);
  files(ws, "keep", Math.ceil(BIG / 5));
  const total = count(ws.src);
  const d = await start(ws);
  try {
    fs.rmSync(path.join(ws.src, "big"), { recursive: true });
    await d.waitFor("Delete guard", 30_000);
    // Whatever batches the watcher delivered it in: nothing at all is deleted.
    await sleep(3000);
    assertEquals(count(ws.dst), total, "part of the held deletion was applied");
    assertIncludes(d.log(), `approve-deletes --config ${ws.config} --source site`);
    const text = (await cli(["status", "--config", ws.config])).stdout;
    assertIncludes(text, `holds ${BIG} deletions`);
    assertIncludes(text, `fileconveyor approve-deletes --config ${ws.config} --source site`);
    const ok = await cli(["approve-deletes", "--config", ws.config, "--source", "site"]);
    assertEquals(ok.code, 0, ok.stderr);
    await eventually(() => diffTrees(tree(ws.src), tree(ws.dst)), 60_000, "the approved deletion");
    assertEquals(await d.stop(), 0);
  } finally {
    await d.kill();
    ws.cleanup();
  }
});

Deno.test("hostile tree: a deletion beyond the allowance made of two rm -rf with a pause is held entirely, sweeps or not", async () => {
  const ws = workspace("fc-rmrf-two-");
  // Sweeps every 0.2 s: walks meet the deletions half done and between the two parts, and must
  // not apply what they saw alone (they did, 2 runs in 3, before sweeps left a deletion under
  // way to the guard's judgment of the whole).
  localConfig(ws, { copy: false, settings: { rescanInterval: "0", dirSweepInterval: "0.2" } });
  // Each part alone is within the allowance (150 of 400 files); both together are not.
  files(ws, "a", 150);
  files(ws, "b", 150);
  files(ws, "keep", 100);
  const total = count(ws.src);
  const d = await start(ws);
  try {
    fs.rmSync(path.join(ws.src, "a"), { recursive: true });
    // Longer than a watcher batch's gap on a loaded machine, shorter than the guard's window.
    await sleep(1500);
    fs.rmSync(path.join(ws.src, "b"), { recursive: true });
    await d.waitFor("Delete guard", 30_000);
    await sleep(4000);
    assertEquals(count(ws.dst), total, "part of the held deletion was applied");
    assertIncludes(d.log(), '300 deletions of source "site" are held, none of them applied');
    const text = (await cli(["status", "--config", ws.config])).stdout;
    assertIncludes(text, "holds 300 deletions");
    assertIncludes(text, `fileconveyor approve-deletes --config ${ws.config} --source site`);
    assertEquals(await d.stop(), 0);
  } finally {
    await d.kill();
    ws.cleanup();
  }
});
