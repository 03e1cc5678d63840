/**
 * Runs one operation sequence against the engine and checks the oracle at
 * every quiescent point:
 *
 * - the destination holds exactly the files the model of the source implies
 *   (`Model.expected`), byte for byte;
 * - every path where it does not is reported in `status --json` with a
 *   reason (the path itself, a directory above it, or the file a symlink
 *   resolves to);
 * - the destination never holds a FIFO, socket, symlink or other special file;
 * - a `--once` pass reports failure (exit 1) iff `status` lists failures;
 * - at the end (every permission given back) the only failures left are
 *   for names the engine cannot hold (not UTF-8).
 *
 * Quiescence in watch mode: the destination is polled until it matches (and
 * the engine is idle), or until it has stopped changing and every remaining
 * difference is reported, or until a timeout. The timeout is about being
 * stuck, not slow: while the engine still has work queued or running it is
 * extended (up to four times; a hang is caught by the sequence's deadline),
 * so a loaded machine does not turn slow progress into a verdict.
 *
 * @module
 */
import { localConfig, sleep, workspace } from "../_harness.ts";
import * as fs from "node:fs";
import { CliEngine, type Engine, type Failure, InProcessEngine, repair } from "./_engines.ts";
import { SourceTree, walk } from "./_fs.ts";
import type { Driver } from "./_gen.ts";
import { applyToModel, describe, isRaw, Model, type Op } from "./_model.ts";
import { type Diff, diffDst, uncovered } from "./_oracle.ts";

/** Settings that make the engine quick to settle, retry and report. */
export const MODEL_SETTINGS: Record<string, string> = {
  settleDelay: "20",
  maxDelay: "300",
  deleteDelay: "50",
  retryInitialDelay: "0.1",
  retryMaxDelay: "0.5",
  retryFailAfter: "1",
  rescanInterval: "0",
  // What the watcher never reports (symlinks out of the tree or looping) is found by the sweep.
  dirSweepInterval: "0.3",
  deleteGuardMinFiles: "1000000",
};

/** Options of {@linkcode runSequence}. */
export interface RunOptions {
  driver: Driver;
  /** Milliseconds a watch-mode quiescent point may take. */
  timeoutMs?: number;
  /** Printed with a failure so it can be replayed. */
  replay?: string;
}

class Violation extends Error {}

/** Failures that cannot be explained once every permission is back: all but odd names. */
function stale(failures: Failure[]): Failure[] {
  return failures.filter((f) => !isRaw(f.file) && !/\uFFFD/.test(f.file));
}

/** Runs `ops`; resolves with "" when every check held, or with a full failure report. */
export async function runSequence(ops: readonly Op[], o: RunOptions): Promise<string> {
  const ws = workspace("fc-model-");
  const outside = ws.root + "/outside";
  localConfig(ws, { settings: MODEL_SETTINGS });
  const model = new Model();
  const tree = new SourceTree(ws.src, outside);
  const engine: Engine = o.driver === "cli"
    ? new CliEngine(ws.config)
    : new InProcessEngine(ws.config);
  const timeout = o.timeoutMs ?? (o.driver === "cli" ? 20_000 : 8_000);
  let note = "";

  const check = async (final: boolean) => {
    const self = await tree.selfCheck(model);
    if (self) throw new Error(`The test's model and the real source disagree:\n${self}`);
    const expected = model.expected();
    const diffNow = async () => diffDst(expected, await walk(ws.dst));
    let failures: Failure[] | undefined;
    let diffs: Diff[];
    if (!engine.running) {
      const r = await engine.once();
      if (r.problem) throw new Violation(r.problem);
      diffs = await diffNow();
      // Reading status costs a little: always through the CLI, otherwise where it can differ.
      if (r.failed || diffs.length > 0 || final || o.driver === "cli") {
        failures = await engine.failures();
      }
      if (failures && r.failed !== (failures.length > 0)) {
        throw new Violation(
          `--once ${
            r.failed ? "failed" : "succeeded"
          } but status lists ${failures.length} failures: ${JSON.stringify(failures)}; ` +
            `destination differences: ${JSON.stringify(diffs)}`,
        );
      }
    } else {
      const t0 = Date.now();
      let last = "", changed = Date.now(), asked = 0;
      for (;;) {
        diffs = await diffNow();
        const key = JSON.stringify(diffs);
        if (key !== last) [last, changed] = [key, Date.now()];
        if (diffs.length === 0 && await engine.idle()) {
          await sleep(60);
          diffs = await diffNow();
          // At the end, a failure that a retry is about to clear is not the verdict yet.
          if (diffs.length === 0 && (!final || stale(await engine.failures()).length === 0)) break;
        } else if (
          diffs.length > 0 && Date.now() - changed >= 300 && Date.now() - asked >= 1000 &&
          await engine.idle()
        ) {
          asked = Date.now();
          failures = await engine.failures();
          const explained = uncovered(diffs, failures, model, ws.src).length === 0;
          if (explained && (!final || stale(failures).length === 0)) break;
        }
        if (Date.now() - t0 > timeout) {
          const busy = !(await engine.idle());
          if (busy && Date.now() - t0 <= 4 * timeout) {
            await sleep(25);
            continue;
          }
          if (busy) note += ` (still busy after ${Math.round((Date.now() - t0) / 1000)} s)`;
          failures = await engine.failures();
          break;
        }
        await sleep(25);
      }
      if (final) failures = await engine.failures();
    }
    const bad = uncovered(diffs, failures ?? [], model, ws.src);
    if (bad.length > 0) {
      throw new Violation(
        `destination differs from the model, unreported:\n${
          bad.slice(0, 20).map((d) => `  ${d.what}: ${JSON.stringify(d.path)}`).join("\n")
        }\nstatus failures: ${JSON.stringify(failures ?? [])}`,
      );
    }
    if (final && failures && stale(failures).length > 0) {
      throw new Violation(
        `failures still listed once every file is readable again: ${
          JSON.stringify(stale(failures))
        }`,
      );
    }
  };

  // A hang is a finding too: the sequence as a whole gets a deadline.
  const limit = 60_000 + ops.length * (o.driver === "cli" ? 15_000 : 3_000);
  let hung: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    hung = setTimeout(
      () => reject(new Violation(`the sequence did not finish within ${limit / 1000} s (hung)`)),
      limit,
    );
  });
  try {
    await Promise.race([deadline, steps()]);
    return "";
  } catch (e) {
    const kind = e instanceof Violation ? "ORACLE VIOLATION" : "ERROR";
    return `${kind} ${note}: ${e instanceof Error ? e.message : e}\n` +
      `driver: ${o.driver}${o.replay ? `\nreplay: ${o.replay}` : ""}\nops:\n${describe(ops)}\n` +
      `log (last lines):\n${engine.log()}`;
  } finally {
    clearTimeout(hung);
    tree.close(model);
    await engine.close().catch(() => undefined);
    ws.cleanup();
  }

  async function steps() {
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      note = `at op ${i} (${op.op})`;
      switch (op.op) {
        case "check":
          await check(i === ops.length - 1);
          break;
        case "start":
          if (!engine.running) await engine.start();
          break;
        case "stop": {
          const p = await engine.stop();
          if (p) throw new Violation(p);
          break;
        }
        case "restart": {
          const p = await engine.stop();
          if (p) throw new Violation(p);
          await engine.start();
          break;
        }
        case "kill9":
          await engine.kill9();
          break;
        case "rmdst":
          if (applyToModel(model, op)) {
            try {
              fs.rmSync(`${ws.dst}/${op.path}`, { recursive: true, force: true });
            } catch (e) {
              // A file where a folder of the path would be (a type change not synced yet):
              // there is no such folder at the destination to remove.
              if ((e as { code?: string }).code !== "ENOTDIR") throw e;
            }
          }
          break;
        case "repair": {
          applyToModel(model, op);
          const p = await repair(ws.config);
          if (p) throw new Violation(p);
          break;
        }
        default:
          if (applyToModel(model, op)) await tree.apply(op, model);
      }
    }
    // A clean stop ends every sequence: SIGTERM (or stop()) must end the daemon, whatever the tree.
    note = "at the end (stop)";
    const p = await engine.stop();
    if (p) throw new Violation(p);
  }
}

/**
 * Shrinks a failing sequence: drops ops one at a time (keeping the last
 * check) while it still fails with the same kind of message. Slow; for
 * reports, not for CI.
 */
export async function shrink(
  ops: readonly Op[],
  o: RunOptions,
  same: (report: string) => boolean,
): Promise<{ ops: Op[]; report: string }> {
  let cur = [...ops];
  let report = await runSequence(cur, o);
  if (!same(report)) return { ops: cur, report };
  let progress = true;
  while (progress) {
    progress = false;
    for (let i = cur.length - 2; i >= 0; i--) {
      const trial = [...cur.slice(0, i), ...cur.slice(i + 1)];
      const r = await runSequence(trial, o);
      if (r && same(r)) {
        cur = trial;
        report = r;
        progress = true;
      }
    }
  }
  return { ops: cur, report };
}
