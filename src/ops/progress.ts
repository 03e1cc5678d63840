/**
 * Live progress of the initial scan and sync on a terminal: per source, the
 * files found to sync; per server, files and bytes done, rate and ETA. It
 * ends with one summary line once the queue is empty after the initial
 * scan. Shown only when standard error is a terminal (the caller decides).
 *
 * @module
 */
import type { Daemon, DaemonEvent } from "../pipeline/daemon.ts";
import { type PendingWorkRow, ReadModel } from "../store/read_model.ts";
import { formatBytes } from "../util/format.ts";
import type { Terminal } from "./terminal.ts";

/** One source's initial scan. */
export interface ScanProgress {
  source: string;
  /** Created or modified files found so far. */
  files: number;
  bytes: number;
  done: boolean;
}

/** One server's share of the initial sync. */
export interface ServerProgress {
  name: string;
  doneFiles: number;
  doneBytes: number;
  /** Queued jobs (running included) and the size of their source files. */
  remainingFiles: number;
  remainingBytes: number;
  running: number;
  /** Queued jobs waiting for a retry. */
  waiting: number;
  failed: number;
  /** Files and bytes per second over the last seconds. */
  fileRate: number;
  byteRate: number;
}

/** Everything one frame shows. */
export interface ProgressSnapshot {
  elapsedMs: number;
  scans: ScanProgress[];
  scanDone: boolean;
  servers: ServerProgress[];
}

const WINDOW_MS = 10_000;

function int(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** Formats a duration for humans: `4 s`, `2 m 05 s`, `1 h 02 m`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} m ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor(s / 60) % 60).padStart(2, "0")} m`;
}

/** Seconds left, from whichever of the file and byte rates predicts longer; undefined when unknown. */
export function eta(p: ServerProgress): number | undefined {
  if (p.remainingFiles === 0) return 0;
  const byFiles = p.fileRate > 0 ? p.remainingFiles / p.fileRate : undefined;
  const byBytes = p.byteRate > 0 && p.remainingBytes > 0 ? p.remainingBytes / p.byteRate : 0;
  if (byFiles === undefined) return undefined;
  return Math.max(byFiles, byBytes);
}

/** `1.2/4.0 MiB`: a done/total pair in the total's unit. */
export function formatPair(done: number, total: number): string {
  const t = formatBytes(total);
  const unit = t.slice(t.indexOf(" ") + 1);
  const scale = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 }[unit] ?? 1;
  const d = done / scale;
  return `${unit === "B" ? d : d.toFixed(unit === "GiB" || unit === "TiB" ? 2 : 1)}/${t}`;
}

function bar(share: number, width = 12): string {
  const full = Math.max(0, Math.min(width, Math.round(share * width)));
  return "[" + "█".repeat(full) + "░".repeat(width - full) + "]";
}

/**
 * Renders one progress frame.
 *
 * @example
 * ```ts
 * import { formatProgress } from "./progress.ts";
 * const text = formatProgress({
 *   elapsedMs: 3000,
 *   scanDone: true,
 *   scans: [{ source: "site", files: 10, bytes: 2048, done: true }],
 *   servers: [{
 *     name: "cdn", doneFiles: 4, doneBytes: 1024, remainingFiles: 6, remainingBytes: 1024,
 *     running: 2, waiting: 0, failed: 0, fileRate: 2, byteRate: 512,
 *   }],
 * });
 * if (!text.includes("4/10 files")) throw new Error(text);
 * ```
 */
export function formatProgress(s: ProgressSnapshot): string {
  const running = s.servers.reduce((a, p) => a + p.running, 0);
  const lines = [
    `fileconveyor: initial ${s.scanDone ? "sync" : "scan and sync"} · ${
      formatDuration(s.elapsedMs)
    }${running > 0 ? ` · ${int(running)} in flight` : ""}`,
  ];
  const nameWidth = Math.max(
    6,
    ...s.scans.map((x) => x.source.length),
    ...s.servers.map((x) => x.name.length),
  );
  for (const scan of s.scans) {
    lines.push(
      `  ${scan.source.padEnd(nameWidth)} ${scan.done ? "scanned: " : "scanning:"} ${
        int(scan.files)
      } files to sync (${formatBytes(scan.bytes)})`,
    );
  }
  for (const p of s.servers) {
    const totalFiles = p.doneFiles + p.remainingFiles;
    const totalBytes = p.doneBytes + p.remainingBytes;
    const share = totalBytes > 0
      ? p.doneBytes / totalBytes
      : totalFiles > 0
      ? p.doneFiles / totalFiles
      : 1;
    const left = eta(p);
    const extra = [
      p.waiting > 0 ? `${int(p.waiting)} waiting to retry` : "",
      p.failed > 0 ? `${int(p.failed)} failed` : "",
    ].filter(Boolean).join(", ");
    lines.push(
      `  ${p.name.padEnd(nameWidth)} ${bar(share)} ${
        String(Math.floor(share * 100)).padStart(3)
      }%  ${int(p.doneFiles)}/${int(totalFiles)} files  ${formatPair(p.doneBytes, totalBytes)}  ${
        formatBytes(Math.round(p.byteRate))
      }/s  ETA ${left === undefined ? "--" : formatDuration(left * 1000)}${
        extra ? `  (${extra})` : ""
      }`,
    );
  }
  return lines.join("\n");
}

/** Options for {@linkcode Progress}. */
export interface ProgressOptions {
  /** Milliseconds between frames (default 250). */
  interval?: number;
  /** Called once the initial sync is done (or the daemon stops). */
  onDone?: () => void;
}

interface Tally {
  files: number;
  bytes: number;
  failed: number;
  samples: { t: number; files: number; bytes: number }[];
}

/**
 * Follows a daemon's events and draws progress frames on a terminal until
 * the initial sync is done.
 */
export class Progress {
  readonly #daemon: Daemon;
  readonly #terminal: Terminal;
  readonly #o: ProgressOptions;
  readonly #t0 = performance.now();
  readonly #scans = new Map<string, ScanProgress>();
  readonly #tally = new Map<string, Tally>();
  #scanDone = false;
  #timer: number | undefined;
  #off: (() => void) | undefined;
  #finished = false;
  #db:
    | {
      queued: Map<string, PendingWorkRow>;
      failed: Map<string, number>;
      /** Tallies at the time of the read. */
      done: Map<string, { files: number; bytes: number }>;
    }
    | undefined;
  #nextRefresh = 0;

  constructor(daemon: Daemon, terminal: Terminal, options: ProgressOptions = {}) {
    this.#daemon = daemon;
    this.#terminal = terminal;
    this.#o = options;
  }

  /** Starts following events and drawing. */
  start(): void {
    this.#off = this.#daemon.on((e) => this.#event(e));
    this.#timer = setInterval(() => this.#tick(), this.#o.interval ?? 250) as unknown as number;
    Deno.unrefTimer(this.#timer);
    this.#daemon.signal.addEventListener("abort", () => this.finish(), { once: true });
    this.#tick();
  }

  #event(e: DaemonEvent) {
    switch (e.type) {
      case "scan-start":
        if (e.initial) {
          this.#scans.set(e.source, { source: e.source, files: 0, bytes: 0, done: false });
        }
        break;
      case "scan-found": {
        const s = this.#scans.get(e.source);
        if (s && !s.done) {
          s.files += e.files;
          s.bytes += e.bytes;
        }
        break;
      }
      case "scan-done": {
        const s = this.#scans.get(e.source);
        if (s) s.done = true;
        break;
      }
      case "initial-scan-done":
        this.#scanDone = true;
        this.#nextRefresh = 0;
        break;
      case "job-done": {
        const t = this.#tallyOf(e.server);
        t.files++;
        t.bytes += e.bytes;
        break;
      }
      case "job-failed":
        if (e.failed) this.#tallyOf(e.server).failed++;
        break;
      default:
        break;
    }
  }

  #tallyOf(server: string): Tally {
    let t = this.#tally.get(server);
    if (!t) {
      t = { files: 0, bytes: 0, failed: 0, samples: [{ t: this.#t0, files: 0, bytes: 0 }] };
      this.#tally.set(server, t);
    }
    return t;
  }

  /**
   * Reads queue counts from the store. With a big queue this takes a while
   * (~0.1 s for 100,000 jobs), so it runs at most every second and uses at
   * most ~5 % of the time; between reads, finished jobs seen as events are
   * subtracted.
   */
  #refresh(now: number) {
    const t0 = performance.now();
    const read = new ReadModel(this.#daemon.store);
    const queued = new Map(read.pendingWork(Date.now()).map((r) => [r.server, r]));
    const failed = new Map(read.failedByServer().map((r) => [r.server, r.n]));
    const done = new Map([...this.#tally].map(([k, t]) => [k, { files: t.files, bytes: t.bytes }]));
    this.#db = { queued, failed, done };
    const took = performance.now() - t0;
    this.#nextRefresh = now + Math.max(1000, 20 * took);
  }

  /** The current state (also for tests). */
  snapshot(refresh = false): ProgressSnapshot {
    const now = performance.now();
    if (refresh || !this.#db || now >= this.#nextRefresh) this.#refresh(now);
    const db = this.#db!;
    const servers: ServerProgress[] = [];
    for (const server of this.#daemon.config.servers) {
      const t = this.#tallyOf(server.name);
      t.samples.push({ t: now, files: t.files, bytes: t.bytes });
      while (t.samples.length > 2 && now - t.samples[1]!.t > WINDOW_MS) t.samples.shift();
      const first = t.samples[0]!;
      const dt = (now - first.t) / 1000;
      const q = db.queued.get(server.name);
      const since = db.done.get(server.name) ?? { files: 0, bytes: 0 };
      servers.push({
        name: server.name,
        doneFiles: t.files,
        doneBytes: t.bytes,
        remainingFiles: Math.max(0, (q?.n ?? 0) - (t.files - since.files)),
        remainingBytes: Math.max(0, (q?.bytes ?? 0) - (t.bytes - since.bytes)),
        running: q?.running ?? 0,
        waiting: q?.waiting ?? 0,
        failed: db.failed.get(server.name) ?? 0,
        fileRate: dt > 0.2 ? (t.files - first.files) / dt : 0,
        byteRate: dt > 0.2 ? (t.bytes - first.bytes) / dt : 0,
      });
    }
    return {
      elapsedMs: now - this.#t0,
      scans: [...this.#scans.values()],
      scanDone: this.#scanDone,
      servers,
    };
  }

  #tick() {
    if (this.#finished) return;
    let snap: ProgressSnapshot;
    try {
      snap = this.snapshot();
      // Looks done from the events: confirm with the store before saying so.
      if (this.#scanDone && snap.servers.every((s) => s.remainingFiles === 0)) {
        snap = this.snapshot(true);
      }
    } catch {
      return; // The store is closing.
    }
    if (this.#scanDone && snap.servers.every((s) => s.remainingFiles === 0)) {
      this.finish();
      return;
    }
    this.#terminal.frame(formatProgress(snap));
  }

  /**
   * Ends the display with a summary (from the events seen, so it works after
   * the store closed): "done" once the initial scan finished, otherwise
   * "interrupted".
   */
  finish(): void {
    if (this.#finished) return;
    const parts = this.#daemon.config.servers.map((s) => {
      const t = this.#tallyOf(s.name);
      return `${s.name} ${int(t.files)} files (${formatBytes(t.bytes)})${
        t.failed ? `, ${int(t.failed)} failed` : ""
      }`;
    });
    const took = formatDuration(performance.now() - this.#t0);
    this.stop(
      `${this.#scanDone ? "Initial sync done" : "Initial sync interrupted"} after ${took}: ${
        parts.join("; ")
      }`,
    );
  }

  /** Stops drawing; `last` stays on the terminal as a plain line. */
  stop(last?: string): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#off?.();
    this.#terminal.done(last);
    this.#o.onDone?.();
  }
}
