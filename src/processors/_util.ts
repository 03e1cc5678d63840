/**
 * Helpers shared by the processors: name splitting, option lists, writing
 * outputs into the work directory, and running external tools.
 *
 * @module
 */
import * as fs from "node:fs/promises";
import { readRegular } from "../util/regular_file.ts";
import * as path from "node:path";
import { ClassifiedError } from "../errors.ts";
import type { ProcessContext, ProcessFile } from "./processor.ts";

/**
 * Splits a basename into stem and extension like Python's `os.path.splitext`
 * (the original's helper): `a.min.js` → `a.min` + `.js`; `.htaccess` has no
 * extension; `README` has none either.
 */
export function splitName(name: string): { stem: string; ext: string } {
  const dot = name.lastIndexOf(".");
  if (dot <= 0) return { stem: name, ext: "" };
  // Leading dots belong to the stem (`..foo` has no extension, like splitext).
  if (/^\.+$/.test(name.slice(0, dot))) return { stem: name, ext: "" };
  return { stem: name.slice(0, dot), ext: name.slice(dot) };
}

/** Lower-case extension with the dot, or `""`. */
export function extOf(name: string): string {
  return splitName(name).ext.toLowerCase();
}

/**
 * Parses an extension list option: `css:js`, `css,js`, `.css .js` → `[".css", ".js"]`.
 * An empty value means no restriction (undefined).
 */
export function parseExtensions(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const list = value.split(/[\s,:;]+/).map((s) => s.trim().toLowerCase()).filter((s) => s !== "")
    .map((s) => s.startsWith(".") ? s : "." + s);
  return list.length > 0 ? list : undefined;
}

/** Whether `name`'s extension is in `list` (undefined list: every name). */
export function extensionIn(name: string, list: readonly string[] | undefined): boolean {
  if (!list) return true;
  const lower = name.toLowerCase();
  // Compare on the suffix so multi-dot entries like `.min.js` work too.
  return list.some((e) => lower.endsWith(e) && lower.length > e.length);
}

/**
 * Writes `data` as `name` into the processor's work directory (created
 * when missing, private to the user) and returns its path.
 *
 * The directory is created only when the write finds it missing (the chain
 * creates it before the step), and `Deno.writeFile` is one operation off
 * the main thread: `node:fs`'s recursive `mkdir` and `writeFile` cost
 * several, each with its own work on the main thread, for every output.
 */
export async function writeOutput(
  ctx: ProcessContext,
  name: string,
  data: Uint8Array | string,
): Promise<string> {
  const out = path.join(ctx.workDir, name);
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  try {
    await Deno.writeFile(out, bytes);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    await Deno.mkdir(ctx.workDir, { recursive: true, mode: 0o700 });
    await Deno.writeFile(out, bytes);
  }
  return out;
}

/** Reads the current content of a file. */
export async function readInput(file: ProcessFile): Promise<Uint8Array> {
  return await readRegular(file.path);
}

/** Quotes a file name for messages: `"css/a.css"`. */
export function label(file: ProcessFile): string {
  return JSON.stringify(file.relDir ? `${file.relDir}/${file.name}` : file.name);
}

/** Result of {@linkcode runTool}. */
export interface ToolResult {
  code: number;
  stdout: Uint8Array;
  stderr: string;
  timedOut: boolean;
}

/**
 * Runs an external program without a shell. The program is killed when
 * `signal` aborts or after `timeoutMs`.
 */
export async function runTool(
  cmd: string,
  args: readonly string[],
  options: {
    signal?: AbortSignal;
    timeoutMs?: number;
    stdin?: Uint8Array;
    cwd?: string;
  } = {},
): Promise<ToolResult> {
  const timeout = new AbortController();
  const timer = options.timeoutMs !== undefined
    ? setTimeout(() => timeout.abort(), options.timeoutMs)
    : undefined;
  const signal = options.signal
    ? AbortSignal.any([options.signal, timeout.signal])
    : timeout.signal;
  try {
    const child = new Deno.Command(cmd, {
      args: [...args],
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      signal,
      ...(options.cwd ? { cwd: options.cwd } : {}),
    }).spawn();
    // Feed stdin while reading stdout: a tool that writes more than a pipe
    // buffer before it has read all its input would otherwise deadlock.
    const feeding = options.stdin
      ? (async () => {
        const w = child.stdin.getWriter();
        // A tool that exits without reading its input closes the pipe: not our error.
        await w.write(options.stdin).catch(() => {});
        await w.close().catch(() => {});
      })()
      : Promise.resolve();
    const [out] = await Promise.all([child.output(), feeding]);
    return {
      code: out.code,
      stdout: out.stdout,
      stderr: new TextDecoder().decode(out.stderr),
      timedOut: timeout.signal.aborted && !options.signal?.aborted,
    };
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

const toolCache = new Map<string, Promise<string | undefined>>();

/**
 * Finds an executable on `PATH` (or checks an absolute path). Returns its
 * path, or undefined when it is not installed. Cached per name.
 */
export function findTool(name: string): Promise<string | undefined> {
  let p = toolCache.get(name);
  if (!p) {
    p = (async () => {
      const candidates = name.includes("/")
        ? [name]
        : (Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin").split(path.delimiter)
          .filter((d) => d !== "").map((d) => path.join(d, name));
      for (const c of candidates) {
        try {
          const st = await fs.stat(c);
          if (st.isFile() && (st.mode & 0o111) !== 0) return c;
        } catch {
          // not here
        }
      }
      return undefined;
    })();
    toolCache.set(name, p);
  }
  return p;
}

/** Forgets cached tool look-ups (tests that change `PATH`). */
export function resetToolCache(): void {
  toolCache.clear();
}

/** The last `max` characters of a tool's error output, trimmed, for messages. */
export function tail(text: string, max = 600): string {
  const t = text.trim();
  return t.length > max ? "…" + t.slice(t.length - max) : t;
}

/** A fatal processing error about one file. */
export function fatal(message: string, cause?: unknown): ClassifiedError {
  return new ClassifiedError(message, "fatal", cause === undefined ? undefined : { cause });
}
