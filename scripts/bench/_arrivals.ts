/**
 * When did each written file arrive at the destination? Two methods:
 *
 * - observed: the destination folder (local, or the SFTP server's folder on
 *   this machine) is watched with inotify and the expected paths are also
 *   polled every 2 ms; a file has arrived when its final name exists with the
 *   full size (every tool writes a temp name and renames).
 * - logged: fileconveyor's own log line `uploaded <path>` (written after the
 *   server confirmed the upload and the record was committed; millisecond
 *   timestamps). The only method for S3, whose storage is opaque.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import * as fs from "node:fs";
import * as path from "node:path";
import { epochMs, sleep } from "./_util.ts";

/** Write and arrival times (epoch ms) of the files of one run, by key (relative path). */
export class Arrivals {
  readonly closedAt = new Map<string, number>();
  readonly arrivedAt = new Map<string, number>();

  /** A file was written and closed at `at`. */
  closed(key: string, at: number): void {
    this.closedAt.set(key, at);
  }

  /** A file was seen at its destination at `at` (the first sighting counts). */
  arrived(key: string, at: number): void {
    if (!this.arrivedAt.has(key)) this.arrivedAt.set(key, at);
  }

  /** Written files not seen yet. */
  pending(): string[] {
    return [...this.closedAt.keys()].filter((k) => !this.arrivedAt.has(k));
  }

  /** Waits until every written file arrived; false on timeout. */
  async waitAll(timeoutMs: number, poll?: () => void): Promise<boolean> {
    const t0 = performance.now();
    while (performance.now() - t0 < timeoutMs) {
      poll?.();
      if (this.arrivedAt.size >= this.closedAt.size && this.pending().length === 0) return true;
      await sleep(5);
    }
    poll?.();
    return this.pending().length === 0;
  }

  /** Latencies (ms) of the files that arrived, in write order. */
  latencies(): number[] {
    const out: number[] = [];
    for (const [k, c] of this.closedAt) {
      const a = this.arrivedAt.get(k);
      if (a !== undefined) out.push(Math.max(0, a - c));
    }
    return out;
  }
}

/**
 * Watches `root` (recursively) for the expected files and polls the pending
 * ones every 2 ms. `size` is the expected size of every file.
 */
export function observe(
  root: string,
  arrivals: Arrivals,
  size: (key: string) => number,
): { stop(): void } {
  const check = (key: string) => {
    if (arrivals.arrivedAt.has(key) || !arrivals.closedAt.has(key)) return;
    try {
      if (fs.statSync(path.join(root, key)).size === size(key)) arrivals.arrived(key, epochMs());
    } catch {
      // Not there yet.
    }
  };
  fs.mkdirSync(root, { recursive: true });
  const w = Deno.watchFs(root, { recursive: true });
  const loop = (async () => {
    try {
      for await (const ev of w) {
        for (const p of ev.paths) {
          if (!p.startsWith(root + "/")) continue;
          check(p.slice(root.length + 1));
        }
      }
    } catch {
      // Closed.
    }
  })();
  const timer = setInterval(() => {
    for (const k of arrivals.closedAt.keys()) {
      if (!arrivals.arrivedAt.has(k)) check(k);
    }
  }, 2);
  return {
    stop() {
      clearInterval(timer);
      try {
        w.close();
      } catch {
        // Already closed.
      }
      void loop;
    },
  };
}

const UPLOADED =
  /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) INFO +\[[^\]]+\] (?:uploaded|updated) (.+) \(\d/;

/**
 * Reads fileconveyor's log (text format) from `offset`: records every
 * `uploaded <path>` line as an arrival (keys are remote paths, relative to
 * the destination root). Returns the new offset.
 */
export function readUploads(text: string, offset: number, arrivals: Arrivals): number {
  const end = text.lastIndexOf("\n") + 1;
  if (end <= offset) return offset;
  for (const line of text.slice(offset, end).split("\n")) {
    const m = UPLOADED.exec(line);
    if (m) arrivals.arrived(m[2]!, Date.parse(m[1]!));
  }
  return end;
}

/** Incrementally reads a growing log file for uploads. */
export function logReader(file: string, arrivals: Arrivals): () => void {
  let offset = 0;
  let carry = "";
  return () => {
    let fd: number;
    try {
      fd = fs.openSync(file, "r");
    } catch {
      return;
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size <= offset) return;
      const buf = Buffer.alloc(size - offset);
      fs.readSync(fd, buf, 0, buf.length, offset);
      offset = size;
      const text = carry + buf.toString("utf8");
      const used = readUploads(text, 0, arrivals);
      carry = text.slice(used);
    } finally {
      fs.closeSync(fd);
    }
  };
}
