/**
 * Helpers for end-to-end tests: temporary source and destination trees, a
 * config writer, the CLI as a subprocess, and tree comparison.
 *
 * @module
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/** Absolute path of mod.ts (the CLI entry). */
export const ENTRY = path.resolve(import.meta.dirname!, "..", "mod.ts");

/** A temporary workspace: `src/`, `dst/`, `data/` and a config path. */
export interface Workspace {
  root: string;
  src: string;
  dst: string;
  data: string;
  config: string;
  cleanup(): void;
}

/** Creates a workspace in a fresh temp directory. */
export function workspace(prefix = "fc-e2e-"): Workspace {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
  const ws = {
    root,
    src: path.join(root, "src"),
    dst: path.join(root, "dst"),
    data: path.join(root, "data"),
    config: path.join(root, "config.xml"),
    cleanup: () => fs.rmSync(root, { recursive: true, force: true }),
  };
  fs.mkdirSync(ws.src);
  fs.mkdirSync(ws.dst);
  return ws;
}

/** Options for {@linkcode localConfig}. */
export interface LocalConfigOptions {
  /** Extra `<settings>` children, e.g. `{ rescanInterval: "1" }`. */
  settings?: Record<string, string>;
  /** Rule body (filter, processorChain); destinations are added. */
  ruleBody?: string;
  /** Always copy instead of symlinking (to compare content). */
  copy?: boolean;
  /** `ignoredDirs` attribute of `<sources>`. */
  ignoredDirs?: string;
  /** Attributes of the rule besides for/label. */
  ruleAttrs?: string;
  /** More `<server>` elements (XML) beside "local". */
  servers?: string;
  /** More `<destination>` elements (XML) of the rule beside "local". */
  destinations?: string;
}

/** Writes a config that syncs `ws.src` to `ws.dst` with symlink_or_copy. */
export function localConfig(ws: Workspace, options: LocalConfigOptions = {}): string {
  const settings = { dataDir: ws.data, settleDelay: "20", ...options.settings };
  const xml = `<?xml version="1.0" encoding="UTF-8"?>
<config>
  <sources ignoredDirs="${options.ignoredDirs ?? ""}">
    <source name="site" scanPath="${ws.src}" />
  </sources>
  <servers>
    <server name="local" transporter="symlink_or_copy">
      <location>${ws.dst}</location>
      <url>http://cdn.test/</url>
      <copy>${options.copy === false ? "false" : "true"}</copy>
    </server>
    ${options.servers ?? ""}
  </servers>
  <rules>
    <rule for="site" label="all" ${options.ruleAttrs ?? ""}>
      ${options.ruleBody ?? ""}
      <destinations><destination server="local" />${options.destinations ?? ""}</destinations>
    </rule>
  </rules>
  <settings>
${Object.entries(settings).map(([k, v]) => `    <${k}>${v}</${k}>`).join("\n")}
  </settings>
</config>
`;
  fs.writeFileSync(ws.config, xml);
  return ws.config;
}

/** Result of a CLI run. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion. */
export async function cli(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ENTRY, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A daemon running as a subprocess. */
export interface Running {
  child: Deno.ChildProcess;
  /** Everything written to stderr so far. */
  log(): string;
  /** Waits until the log contains `text`. */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
  /** SIGTERM and wait; returns the exit code. */
  stop(): Promise<number>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
}

/** Starts `fileconveyor sync` in the background. */
export function spawn(args: string[], env: Record<string, string> = {}): Running {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ENTRY, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  let text = "";
  const dec = new TextDecoder();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) text += dec.decode(chunk, { stream: true });
  };
  const done = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const status = child.status;
  return {
    child,
    log: () => text,
    async waitFor(what, timeoutMs = 20_000) {
      const t0 = Date.now();
      while (Date.now() - t0 < timeoutMs) {
        if (typeof what === "string" ? text.includes(what) : what.test(text)) return;
        await sleep(20);
      }
      throw new Error(`Timed out waiting for ${what}; log:\n${text.slice(-4000)}`);
    },
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      const s = await status;
      await done;
      return s.code;
    },
    async kill() {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await status;
      await done;
    },
  };
}

/** Sleeps `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Lists every file below `root` with its content (relative paths, `/`-separated). */
export function tree(root: string, opts: { skipTemp?: boolean } = {}): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // Removed while we looked (the daemon deletes empty directories).
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else {
        if (opts.skipTemp !== false && e.name.startsWith(".fctmp-")) {
          out.set(path.relative(root, p), "<TEMP FILE>");
          continue;
        }
        let content: string;
        try {
          content = fs.readFileSync(p, "latin1");
        } catch {
          content = "<unreadable>";
        }
        out.set(path.relative(root, p).split(path.sep).join("/"), content);
      }
    }
  };
  if (fs.existsSync(root)) walk(root);
  return out;
}

/** Describes the differences between two trees, or returns "" when they are equal. */
export function diffTrees(a: Map<string, string>, b: Map<string, string>): string {
  const lines: string[] = [];
  for (const [k, v] of a) {
    if (!b.has(k)) lines.push(`only in source: ${k}`);
    else if (b.get(k) !== v) lines.push(`differs: ${k}`);
  }
  for (const k of b.keys()) if (!a.has(k)) lines.push(`only in destination: ${k}`);
  return lines.slice(0, 30).join("\n") + (lines.length > 30 ? `\n… ${lines.length - 30} more` : "");
}

/** Waits until `check` returns "" (trees equal) or times out with the last difference. */
export async function eventually(
  check: () => string,
  timeoutMs = 20_000,
  what = "condition",
): Promise<void> {
  const t0 = Date.now();
  let last = "";
  while (Date.now() - t0 < timeoutMs) {
    last = check();
    if (last === "") return;
    await sleep(50);
  }
  throw new Error(`Timed out waiting for ${what}:\n${last}`);
}

/** Writes a file, creating parent directories. */
export function write(p: string, content: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
}
