/**
 * Shared helpers of the benchmark: test trees, processes (timed, tracked and
 * always ended), statistics and machine facts.
 *
 * @module
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/** Milliseconds since the epoch with sub-millisecond precision. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Sleeps `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Progress line on stderr. */
export function say(text: string): void {
  const t = new Date().toISOString().slice(11, 19);
  Deno.stderr.writeSync(new TextEncoder().encode(`[bench ${t}] ${text}\n`));
}

// ---- statistics ----

/** The `p`-th percentile (0–100) by linear interpolation; NaN for no values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const i = (s.length - 1) * p / 100;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return s[lo]! + (s[hi]! - s[lo]!) * (i - lo);
}

/** The median; NaN for no values. */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Rounds to `digits` decimals (keeps NaN as null for JSON). */
export function round(n: number, digits = 1): number | null {
  if (!Number.isFinite(n)) return null;
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

// ---- trees ----

/** A deterministic pseudo-random generator (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Options for {@linkcode makeTree}. */
export interface TreeOptions {
  files: number;
  dirs: number;
  minBytes: number;
  maxBytes: number;
  seed?: number;
}

/** What {@linkcode makeTree} wrote. */
export interface TreeInfo {
  root: string;
  files: number;
  dirs: number;
  bytes: number;
  /** Relative paths, `/`-separated. */
  paths: string[];
}

/**
 * Writes `files` files of random (incompressible) content, sizes uniform in
 * [minBytes, maxBytes], spread evenly over `dirs` directories.
 */
export function makeTree(root: string, o: TreeOptions): TreeInfo {
  const rand = prng(o.seed ?? 1);
  const pool = new Uint8Array(o.maxBytes + 65536);
  for (let i = 0; i < pool.length; i += 65536) {
    crypto.getRandomValues(pool.subarray(i, Math.min(pool.length, i + 65536)));
  }
  fs.mkdirSync(root, { recursive: true });
  const paths: string[] = [];
  let bytes = 0;
  const perDir = Math.ceil(o.files / o.dirs);
  for (let d = 0; d < o.dirs; d++) {
    const dir = `d${String(d).padStart(4, "0")}`;
    fs.mkdirSync(path.join(root, dir), { recursive: true });
    for (let i = 0; i < perDir && paths.length < o.files; i++) {
      const rel = `${dir}/f${String(i).padStart(5, "0")}.bin`;
      const size = o.minBytes + Math.floor(rand() * (o.maxBytes - o.minBytes + 1));
      const off = Math.floor(rand() * 65536);
      const data = pool.subarray(off, off + size);
      // A unique first block, so no two files are equal.
      new DataView(data.buffer, data.byteOffset).setUint32(0, paths.length);
      fs.writeFileSync(path.join(root, rel), data);
      paths.push(rel);
      bytes += size;
    }
  }
  return { root, files: paths.length, dirs: o.dirs, bytes, paths };
}

/** Counts the regular files below `root` (symlinks to files count; temp files do not). */
export function countFiles(root: string, skip = (name: string) => name.startsWith(".")): number {
  let n = 0;
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
      if (e.isDirectory()) stack.push(path.join(dir, e.name));
      else if (!skip(e.name)) n++;
    }
  }
  return n;
}

/** Removes a tree (no error when missing). */
export function rmTree(p: string): void {
  fs.rmSync(p, { recursive: true, force: true });
}

// ---- processes ----

const live = new Set<number>();

/** Every process started through this module that has not exited yet. */
export function liveProcesses(): number[] {
  return [...live];
}

/** The pids of every descendant of `pid` (children first level first). */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const stack = [pid];
  for (let guard = 0; stack.length > 0 && guard < 10_000; guard++) {
    const p = stack.pop()!;
    let kids: number[] = [];
    try {
      for (const t of fs.readdirSync(`/proc/${p}/task`)) {
        const text = fs.readFileSync(`/proc/${p}/task/${t}/children`, "utf8").trim();
        if (text) kids = kids.concat(text.split(/\s+/).map(Number));
      }
    } catch {
      // Gone already.
    }
    for (const k of kids) {
      out.push(k);
      stack.push(k);
    }
  }
  return out;
}

function signal(pid: number, sig: Deno.Signal): void {
  try {
    Deno.kill(pid, sig);
  } catch {
    // Gone already.
  }
}

/**
 * Ends a process we started and everything it started, by pid: SIGTERM,
 * then SIGKILL after `graceMs`.
 */
export async function endTree(child: Deno.ChildProcess, graceMs = 5000): Promise<void> {
  const pids = [child.pid, ...descendants(child.pid)];
  for (const p of pids) signal(p, "SIGTERM");
  const done = await Promise.race([
    child.status.then(() => true),
    sleep(graceMs).then(() => false),
  ]);
  for (const p of [...pids, ...descendants(child.pid)]) {
    if (fs.existsSync(`/proc/${p}`)) signal(p, "SIGKILL");
  }
  if (!done) await child.status;
}

/** A finished command: wall time and, when measured, resource use. */
export interface Timed {
  code: number;
  ms: number;
  /** Peak resident set size of the process and its waited-for children, MiB. */
  maxRssMiB?: number;
  /** User + system CPU seconds. */
  cpuS?: number;
  stdout: string;
  stderr: string;
}

/** Options for {@linkcode timed}. */
export interface TimedOptions {
  env?: Record<string, string>;
  /** Environment variables to remove (e.g. AWS_CA_BUNDLE for rclone). */
  unsetEnv?: string[];
  cwd?: string;
  /** Kill after this many milliseconds (the result then has code -1). */
  timeoutMs: number;
  /** Measure peak RSS and CPU with GNU time. */
  rusage?: boolean;
  /** Write stderr here instead of collecting it (large logs). */
  stderrFile?: string;
}

function envFor(o: { env?: Record<string, string>; unsetEnv?: string[] }): Record<string, string> {
  const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1", ...o.env };
  for (const k of o.unsetEnv ?? []) delete env[k];
  return env;
}

/** Runs a command to completion, bounded in time; optionally under GNU time. */
export async function timed(cmd: string[], o: TimedOptions): Promise<Timed> {
  const rusageFile = o.rusage
    ? path.join(os.tmpdir(), `fc-bench-rusage-${crypto.randomUUID()}`)
    : undefined;
  const argv = rusageFile ? ["/usr/bin/time", "-f", "%M %U %S", "-o", rusageFile, ...cmd] : cmd;
  let errFile: Deno.FsFile | undefined;
  if (o.stderrFile) {
    errFile = Deno.openSync(o.stderrFile, { write: true, create: true, append: true });
  }
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    env: envFor(o),
    clearEnv: true,
    ...(o.cwd ? { cwd: o.cwd } : {}),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  live.add(child.pid);
  const t0 = performance.now();
  const dec = new TextDecoder();
  let stdout = "";
  let stderr = "";
  const readOut = (async () => {
    for await (const c of child.stdout) stdout += dec.decode(c, { stream: true });
  })();
  const readErr = (async () => {
    for await (const c of child.stderr) {
      if (errFile) errFile.writeSync(c);
      else stderr += dec.decode(c, { stream: true });
    }
  })();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void endTree(child, 2000);
  }, o.timeoutMs);
  const status = await child.status;
  const ms = performance.now() - t0;
  clearTimeout(timer);
  live.delete(child.pid);
  await Promise.all([readOut, readErr]);
  errFile?.close();
  const r: Timed = { code: timedOut ? -1 : status.code, ms, stdout, stderr };
  if (rusageFile) {
    try {
      const last = fs.readFileSync(rusageFile, "utf8").trim().split("\n").at(-1) ?? "";
      const [rss, user, sys] = last.split(" ").map(Number);
      if (Number.isFinite(rss)) r.maxRssMiB = rss! / 1024;
      if (Number.isFinite(user) && Number.isFinite(sys)) r.cpuS = user! + sys!;
    } catch {
      // No rusage (killed).
    }
    fs.rmSync(rusageFile, { force: true });
  }
  return r;
}

/** A long-running process with its stderr collected (or written to a file). */
export interface Background {
  child: Deno.ChildProcess;
  startedAt: number;
  /** Everything it wrote so far (stdout and stderr), unless written to a file. */
  text(): string;
  /** Waits until the output matches; false on timeout or exit. */
  waitFor(what: RegExp, timeoutMs: number): Promise<boolean>;
  /** Whether it has exited. */
  exited(): boolean;
  /** SIGTERM (then SIGKILL) to it and its children; waits. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts a process in the background; it is ended by {@linkcode endAll} at the latest. */
export function background(
  cmd: string[],
  o: { env?: Record<string, string>; unsetEnv?: string[]; cwd?: string; logFile?: string } = {},
): Background {
  const child = new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    env: envFor(o),
    clearEnv: true,
    ...(o.cwd ? { cwd: o.cwd } : {}),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  live.add(child.pid);
  const startedAt = performance.now();
  let text = "";
  let exited = false;
  const dec = new TextDecoder();
  const file = o.logFile
    ? Deno.openSync(o.logFile, { write: true, create: true, append: true })
    : undefined;
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s) {
      if (file) file.writeSync(c);
      text += dec.decode(c, { stream: true });
      // Keep the in-memory copy bounded; matches are looked for in the tail.
      if (text.length > 4_000_000) text = text.slice(-1_000_000);
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  void child.status.then(() => {
    exited = true;
    live.delete(child.pid);
  });
  return {
    child,
    startedAt,
    text: () => text,
    async waitFor(what, timeoutMs) {
      const t0 = performance.now();
      while (performance.now() - t0 < timeoutMs) {
        if (what.test(text)) return true;
        if (exited) return what.test(text);
        await sleep(5);
      }
      return false;
    },
    exited: () => exited,
    async stop(graceMs = 10_000) {
      if (!exited) await endTree(child, graceMs);
      await child.status;
      await pumps.catch(() => {});
      file?.close();
      live.delete(child.pid);
    },
  };
}

/** Ends every process still running (cleanup on exit or interrupt). */
export function endAll(): void {
  for (const pid of live) {
    for (const p of [pid, ...descendants(pid)]) signal(p, "SIGKILL");
  }
  live.clear();
}

/** Resident set size now and at peak (MiB), and CPU seconds so far, from /proc. */
export function procUsage(
  pid: number,
): { rssMiB: number; hwmMiB: number; cpuS: number } | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? NaN);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const tick = 100; // USER_HZ on Linux
    // utime + stime, plus cutime + cstime of waited-for children (lsyncd's rsync runs).
    const cpuS =
      (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) /
      tick;
    return { rssMiB: kb("VmRSS") / 1024, hwmMiB: kb("VmHWM") / 1024, cpuS };
  } catch {
    return undefined;
  }
}

// ---- machine ----

async function firstLine(cmd: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(cmd[0]!, {
      args: cmd.slice(1),
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).output();
    const text = new TextDecoder().decode(out.stdout) || new TextDecoder().decode(out.stderr);
    return text.trim().split("\n")[0] ?? "";
  } catch {
    return "not installed";
  }
}

/** Facts about the machine and the tools, for the report. */
export async function machineInfo(): Promise<Record<string, string>> {
  const cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "?";
  let distro = "";
  try {
    distro = /PRETTY_NAME="([^"]*)"/.exec(fs.readFileSync("/etc/os-release", "utf8"))?.[1] ?? "";
  } catch {
    // Not Linux-like.
  }
  return {
    cpu: `${cpu} × ${os.cpus().length}`,
    memory: `${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    os: `${distro} (kernel ${os.release()})`,
    deno: Deno.version.deno,
    rclone: (await firstLine(["rclone", "version"])).replace(/^rclone\s+/, ""),
    rsync: (await firstLine(["rsync", "--version"])).replace(/^rsync\s+/, ""),
    lsyncd: (await firstLine(["lsyncd", "-version"])).replace(/^Version:\s*/, ""),
    openssh: await firstLine(["ssh", "-V"]),
    sqlite: await sqliteVersion(),
  };
}

async function sqliteVersion(): Promise<string> {
  const { DatabaseSync } = await import("node:sqlite");
  const db = new DatabaseSync(":memory:");
  const v = (db.prepare("SELECT sqlite_version() AS v").get() as { v: string }).v;
  db.close();
  return v;
}

/** The 1-minute load average (other work on the machine skews every figure). */
export function loadAverage(): number {
  return os.loadavg()[0] ?? NaN;
}
