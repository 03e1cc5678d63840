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
import * as fs from "node:fs";
import * as path from "node:path";

/** Whether a thread of this process waits in the kernel for the other end of a FIFO. */
export function blockedOnFifo(): boolean {
  let tasks: string[];
  try {
    tasks = fs.readdirSync("/proc/self/task");
  } catch {
    return false;
  }
  return tasks.some((t) => {
    try {
      return fs.readFileSync(`/proc/self/task/${t}/wchan`, "utf8").trim() === "wait_for_partner";
    } catch {
      return false;
    }
  });
}

/**
 * While a thread waits on a FIFO, opens (and closes at once) for writing,
 * without blocking, every FIFO below `roots`, then looks again (the freed
 * thread may open the next one); returns how many readers were released.
 * Gives up after `maxRounds` walks.
 */
export async function releaseFifoReaders(
  roots: readonly string[],
  maxRounds = 10,
): Promise<number> {
  let released = 0;
  for (let round = 0; round < maxRounds && blockedOnFifo(); round++) {
    for (const root of roots) released += releaseBelow(root);
    await new Promise((r) => setTimeout(r, 50));
  }
  return released;
}

function releaseBelow(root: string): number {
  let released = 0;
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (!e.isFile() && !e.isSymbolicLink() && isFifo(p)) {
        try {
          fs.closeSync(fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
          released++;
        } catch {
          // ENXIO: nobody waits on this one.
        }
      }
    }
  }
  return released;
}

/** Dirents do not tell special files apart here: lstat does. */
function isFifo(p: string): boolean {
  try {
    return fs.lstatSync(p).isFIFO();
  } catch {
    return false;
  }
}
