/**
 * Frees a thread of this process that is blocked opening a named pipe.
 *
 * The OS watcher's thread can open a FIFO that appears in a watched tree;
 * the open waits for a writer that may never come, and closing the watcher
 * then blocks the main thread too — the process could not stop. Opening the
 * FIFO for writing without blocking succeeds only while a reader waits, lets
 * that reader's open return (it then reads end-of-file) and never blocks
 * this process. Linux only (elsewhere nothing is detected).
 *
 * @module
 */
import { moduleDataUrl } from "../util/module_url.ts";

/**
 * Code of the releaser thread: the main thread may be blocked (closing a
 * watcher whose thread waits on a FIFO), so the releasing runs beside it.
 * Inline, so that a bundle or a compiled binary carries it.
 */
const RELEASER = `
import * as fs from "node:fs";
import * as path from "node:path";
const blocked = () => {
  try {
    return fs.readdirSync("/proc/self/task").some((t) => {
      try { return fs.readFileSync("/proc/self/task/" + t + "/wchan", "utf8").trim() === "wait_for_partner"; }
      catch { return false; }
    });
  } catch { return false; }
};
const release = (root) => {
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop();
    let entries;
    try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { continue; }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (!e.isFile() && !e.isSymbolicLink()) {
        try {
          if (fs.lstatSync(p).isFIFO()) fs.closeSync(fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
        } catch { /* Nobody waits on this one. */ }
      }
    }
  }
};
self.onmessage = (m) => {
  const roots = m.data;
  const tick = () => {
    if (blocked()) for (const r of roots) release(r);
    setTimeout(tick, 25);
  };
  tick();
  self.postMessage("ready");
};
`;

/**
 * Starts a thread that, until `stop()`, keeps releasing the readers blocked
 * on a FIFO below `roots` (a thread of this process waits in
 * `wait_for_partner`): for a blocking call on the main thread, such as
 * closing the OS watcher. Linux only; elsewhere a no-op.
 */
export async function startFifoReleaser(roots: readonly string[]): Promise<{ stop(): void }> {
  if (Deno.build.os !== "linux") return { stop() {} };
  const worker = new Worker(moduleDataUrl(RELEASER), { type: "module" });
  // Running before the main thread may block (at most 2 s: a slow start must not hold the stop).
  let timer = 0;
  await Promise.race([
    new Promise<void>((resolve) => {
      worker.onmessage = () => resolve();
      worker.postMessage([...roots]);
    }),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 2000) as unknown as number;
    }),
  ]);
  clearTimeout(timer);
  return {
    stop() {
      worker.terminate();
    },
  };
}
