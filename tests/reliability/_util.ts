/**
 * Helpers shared by the fault and security tests: quick/full mode, process
 * memory, running the CLI without root's file-permission override, mounts,
 * and tree checks. The TCP proxy that takes a server away is in
 * `tests/_proxy.ts`.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ENTRY, sleep } from "../_harness.ts";

/** `FC_FULL=1` runs the long soaks; the default is a quick mode for `deno task test`. */
export const FULL = Deno.env.get("FC_FULL") === "1";

/** Picks the quick or the full value. */
export function mode<T>(quick: T, full: T): T {
  return FULL ? full : quick;
}

/**
 * Runs as root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH: file modes
 * then apply to root too (chmod 000 means unreadable), while root's own
 * files (the Deno cache) stay readable. Prefix for a command line.
 */
export const NO_DAC = [
  "setpriv",
  "--bounding-set=-dac_override,-dac_read_search",
  "--inh-caps=-dac_override,-dac_read_search",
];

/** Options for {@linkcode run}. */
export interface RunOptions {
  env?: Record<string, string>;
  /** Command prefix, e.g. {@linkcode NO_DAC}. */
  prefix?: string[];
  /** Kills the process after this many milliseconds. */
  timeoutMs?: number;
  cwd?: string;
}

/** Runs the CLI to completion (optionally wrapped); returns code and output. */
export async function run(
  args: string[],
  options: RunOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const cmd = [...(options.prefix ?? []), Deno.execPath(), "run", "-A", ENTRY, ...args];
  const child = new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    env: { NO_COLOR: "1", ...options.env },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    ...(options.cwd ? { cwd: options.cwd } : {}),
  }).spawn();
  let timer: ReturnType<typeof setTimeout> | undefined;
  if (options.timeoutMs) {
    timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Gone.
      }
    }, options.timeoutMs);
  }
  const out = await child.output();
  if (timer !== undefined) clearTimeout(timer);
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A daemon subprocess started with arbitrary wrapping (see harness `spawn` for the plain case). */
export interface Proc {
  child: Deno.ChildProcess;
  pid: number;
  log(): string;
  waitFor(what: string | RegExp, timeoutMs?: number): Promise<void>;
  stop(): Promise<number>;
  kill(): Promise<void>;
  /** Resolves with the exit code. */
  exited: Promise<number>;
}

/** Starts the CLI in the background. */
export function start(args: string[], options: RunOptions = {}): Proc {
  const cmd = [...(options.prefix ?? []), Deno.execPath(), "run", "-A", ENTRY, ...args];
  const child = new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    env: { NO_COLOR: "1", ...options.env },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    ...(options.cwd ? { cwd: options.cwd } : {}),
  }).spawn();
  let text = "";
  const dec = new TextDecoder();
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s) text += dec.decode(c, { stream: true });
  };
  const done = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const exited = child.status.then(async (s) => {
    await done;
    return s.code;
  });
  return {
    child,
    pid: child.pid,
    exited,
    log: () => text,
    async waitFor(what, timeoutMs = 30_000) {
      const t0 = Date.now();
      while (Date.now() - t0 < timeoutMs) {
        if (typeof what === "string" ? text.includes(what) : what.test(text)) return;
        await sleep(25);
      }
      throw new Error(`Timed out waiting for ${what}; log:\n${text.slice(-5000)}`);
    },
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Gone.
      }
      return await exited;
    },
    async kill() {
      try {
        child.kill("SIGKILL");
      } catch {
        // Gone.
      }
      await exited;
    },
  };
}

/** Resident memory of a process in KiB: current (VmRSS) and peak (VmHWM). */
export function memory(pid: number): { rss: number; peak: number } | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const get = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(s)?.[1] ?? NaN);
    return { rss: get("VmRSS"), peak: get("VmHWM") };
  } catch {
    return undefined;
  }
}

/** Every file below `root` whose name is a transfer temp name. */
export function tempFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.name.startsWith(".fctmp-")) out.push(path.relative(root, p));
      if (e.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

/** `diff -r` of two trees; returns its output ("" when identical). */
export async function diffR(a: string, b: string): Promise<string> {
  const out = await new Deno.Command("diff", {
    args: ["-r", a, b],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const dec = new TextDecoder();
  return out.code === 0 ? "" : (dec.decode(out.stdout) + dec.decode(out.stderr)).slice(0, 4000);
}

/** Runs a command; throws with its output when it fails. */
export async function sh(
  cmd: string,
  args: string[],
  env?: Record<string, string>,
): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
    ...(env ? { env } : {}),
  }).output();
  const dec = new TextDecoder();
  if (out.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (${out.code}): ${dec.decode(out.stderr)}${
        dec.decode(out.stdout)
      }`,
    );
  }
  return dec.decode(out.stdout);
}

/** `PRAGMA integrity_check` of a database file (opened read-only). */
export async function integrityCheck(dbFile: string): Promise<string> {
  const { DatabaseSync } = await import("node:sqlite");
  const db = new DatabaseSync(dbFile, { readOnly: true });
  try {
    const rows = db.prepare("PRAGMA integrity_check").all() as { integrity_check: string }[];
    return rows.map((r) => r.integrity_check).join("; ");
  } finally {
    db.close();
  }
}

/** Fills the file system of `dir` with a ballast file up to ENOSPC; returns its path. */
export function fill(dir: string): string {
  const p = path.join(dir, "ballast");
  const fd = fs.openSync(p, "w");
  const chunk = new Uint8Array(64 * 1024);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (e) {
    if ((e as { code?: string }).code !== "ENOSPC") throw e;
  } finally {
    fs.closeSync(fd);
  }
  return p;
}

/** Mounts a tmpfs of `size` (e.g. "2m") at `dir` (created). Root only. */
export async function mountTmpfs(dir: string, size: string): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  await sh("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0755`, "tmpfs", dir]);
}

/** Unmounts `dir` (lazily when busy). */
export async function unmount(dir: string): Promise<void> {
  try {
    await sh("umount", [dir]);
  } catch {
    await sh("umount", ["-l", dir]);
  }
}

/** Waits until `fn` returns a truthy value; returns it. */
export async function until<T>(
  fn: () => T | Promise<T>,
  timeoutMs: number,
  what: string,
  intervalMs = 100,
): Promise<NonNullable<T>> {
  const t0 = Date.now();
  let last: unknown;
  while (Date.now() - t0 < timeoutMs) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (e) {
      last = e;
    }
    await sleep(intervalMs);
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what} (last: ${String(last)})`);
}

/** Random integer in [lo, hi]. */
export function rand(lo: number, hi: number): number {
  return lo + Math.floor(Math.random() * (hi - lo + 1));
}

/** Random bytes (crypto.getRandomValues is limited to 64 KiB per call). */
export function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
  return b;
}

/**
 * Logs a measured figure so it is easy to find in the test output; also
 * appends it to `$FC_FIGURES_DIR/fc-figures.log` when that is set.
 */
export function figure(name: string, value: unknown): void {
  const line = `FIGURE ${name}: ${typeof value === "string" ? value : JSON.stringify(value)}\n`;
  Deno.stderr.writeSync(new TextEncoder().encode(line));
  const dir = Deno.env.get("FC_FIGURES_DIR");
  if (!dir) return;
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.appendFileSync(path.join(dir, "fc-figures.log"), line);
  } catch {
    // Best effort.
  }
}
