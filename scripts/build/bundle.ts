/**
 * Builds `dist/fileconveyor.js`: the whole CLI, every npm dependency and
 * every WebAssembly engine in one self-contained JavaScript file that runs
 * with `deno run` from any directory, with an empty Deno cache and without
 * network access. `scripts/build/compile.ts` turns it into native executables.
 *
 * ```sh
 * deno task bundle                       # minified, brotli quality 9
 * deno task bundle --no-minify           # readable stack traces
 * deno task bundle --quality 11          # ~0.4 MB smaller, ~40 s slower (cached afterwards)
 * deno task bundle --if-stale            # no-op when the bundle is newer than its sources
 * ```
 *
 * How the WebAssembly engines get inside: `src/processors/_wasm.ts` names
 * every engine in `WASM_FILES` and lets a bundle register embedded bytes
 * with `registerEmbeddedWasm()`. This script reads each engine through the
 * same `wasmBytes()` a source run uses, compresses it with brotli, and
 * writes a generated module that holds it as a base64 string and registers
 * a lazy decoder for it. A generated entry imports `src/shim.ts` (globals
 * ssh2 needs), then that module, then runs the CLI, so the registration
 * happens before any processor is set up. Decoding (~60 ms for esbuild)
 * happens only when a rule uses the engine; start-up only pays for parsing
 * a string literal. The engines run in workers (`src/processors/_engine_pool.ts`);
 * the worker module is bundled on its own and embedded as a string the
 * pool starts from a blob URL. The modules the program loads on first use
 * (`src/lazy.ts`) are imported by a specifier built at run time, which no
 * bundler follows: a generated module registers a literal `import()` of
 * each. `deno bundle` then inlines everything into one ES module.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import * as zlib from "node:zlib";
import { WASM_FILES, wasmBytes, type WasmName } from "../../src/processors/_wasm.ts";
import { LAZY_MODULES } from "../../src/lazy.ts";

/** Root of the repository. */
export const ROOT: string = path.resolve(import.meta.dirname!, "..", "..");

/** Default output: the single-file bundle. */
export const BUNDLE_PATH: string = path.join(ROOT, "dist", "fileconveyor.js");

/**
 * Permissions the daemon runs with, as `deno run`/`deno compile` flags: the
 * bundle's shebang, the compiled executables and the bundle test all use
 * this one list.
 *
 * - read, write: unrestricted, because sources, destinations, the data
 *   directory and the config are all user-chosen paths; confine the process
 *   with the service manager instead (see `deploy/`).
 * - net: unrestricted, because servers are configured, and S3/CloudFront/
 *   Swift endpoints are resolved at run time.
 * - env: credentials (`AWS_*`, `${VAR}` references in the config), `HOME`,
 *   `PATH`, the log level.
 * - sys: `os.hostname()`, `os.release()` and friends (AWS SDK user agent,
 *   ssh2, the logger).
 * - run: external image tools (jpegtran, gifsicle), found on `PATH` or at a
 *   configured absolute path, so it cannot be narrowed to fixed names.
 * - ffi: only to load the system's OpenSSL (libssl) for FTPS servers that
 *   require data connections to resume the control connection's TLS
 *   session, which Deno's TLS cannot do (`src/transports/ftp/_libssl.ts`).
 *   No native add-on is loaded (ssh2 falls back to pure JS).
 * - not granted: import (no remote code is ever loaded: everything is in
 *   the bundle).
 * - `--no-prompt`: a daemon must fail, not wait for a terminal answer.
 */
export const PERMISSIONS: readonly string[] = [
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-env",
  "--allow-sys",
  "--allow-run",
  "--allow-ffi",
  "--no-prompt",
];

/** Options of {@linkcode buildBundle}. */
export interface BundleOptions {
  /** Output file; default {@linkcode BUNDLE_PATH}. */
  output?: string;
  /** Minify; default true. */
  minify?: boolean;
  /** Brotli quality 0–11 for the embedded engines; default 9. */
  quality?: number;
  /** Run the bundle once (`--version`, empty cache, no npm) after building; default true. */
  smokeTest?: boolean;
  /** Progress lines; default: to stderr. */
  log?: (line: string) => void;
}

/** One embedded engine, as reported by {@linkcode buildBundle}. */
export interface EmbeddedEngine {
  name: WasmName;
  /** Size of the `.wasm` file. */
  bytes: number;
  /** Brotli-compressed size. */
  compressed: number;
  /** Size of the base64 text inside the bundle. */
  base64: number;
}

/** What {@linkcode buildBundle} produced. */
export interface BundleReport {
  output: string;
  /** Size of the bundle in bytes. */
  size: number;
  minified: boolean;
  engines: EmbeddedEngine[];
  /** Wall time of the whole build, milliseconds. */
  ms: number;
}

/**
 * Files whose change makes the bundle stale: the entry, everything under
 * `src/`, the import map and lock file (dependency versions, and with them
 * the WebAssembly files), and this script.
 */
export function bundleInputs(root: string = ROOT): string[] {
  const files = ["mod.ts", "deno.json", "deno.lock", "scripts/build/bundle.ts"]
    .map((f) => path.join(root, f))
    .filter((f) => fs.existsSync(f));
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) files.push(p);
    }
  };
  walk(path.join(root, "src"));
  return files;
}

/**
 * Returns why the bundle must be rebuilt (`"missing"`, or the first input
 * that is newer), or `undefined` when it is up to date.
 */
export function staleReason(bundle: string = BUNDLE_PATH, root: string = ROOT): string | undefined {
  let built: number;
  try {
    built = fs.statSync(bundle).mtimeMs;
  } catch {
    return "missing";
  }
  for (const f of bundleInputs(root)) {
    if (fs.statSync(f).mtimeMs > built) return `${path.relative(root, f)} is newer`;
  }
  return undefined;
}

/**
 * Builds the bundle unless it is newer than all its inputs, and returns its
 * path. Used by the bundle test and `scripts/build/compile.ts`, so a clean
 * checkout needs no separate build step.
 */
export async function ensureBundle(options: BundleOptions = {}): Promise<string> {
  const output = options.output ?? BUNDLE_PATH;
  const reason = staleReason(output);
  if (reason !== undefined) {
    (options.log ?? stderr)(`Building ${path.relative(ROOT, output)} (${reason})`);
    await buildBundle(options);
  }
  return output;
}

/** Builds the bundle; see the module documentation. */
export async function buildBundle(options: BundleOptions = {}): Promise<BundleReport> {
  const t0 = performance.now();
  const log = options.log ?? stderr;
  const output = path.resolve(options.output ?? BUNDLE_PATH);
  const minify = options.minify ?? true;
  const quality = options.quality ?? 9;
  if (!Number.isInteger(quality) || quality < 0 || quality > 11) {
    throw new RangeError(`Cannot use brotli quality "${quality}": expected an integer 0–11`);
  }
  const dist = path.join(ROOT, "dist");
  fs.mkdirSync(path.dirname(output), { recursive: true });
  // A private build directory, so concurrent builds (a test and a developer)
  // never read each other's half-written generated files.
  const buildRoot = path.join(dist, ".build");
  fs.mkdirSync(buildRoot, { recursive: true });
  const work = fs.mkdtempSync(path.join(buildRoot, `${process_id()}-`));
  try {
    const phases: string[] = [];
    let t = performance.now();
    const phase = (name: string) => {
      phases.push(`${name} ${((performance.now() - t) / 1000).toFixed(1)} s`);
      t = performance.now();
    };
    const engines = await embedEngines(work, path.join(dist, ".cache"), quality);
    phase("engines");
    await embedWorker(work, minify);
    phase("engine worker");
    writeLazyModules(work);
    const entry = writeEntry(work);
    const tmpOut = path.join(work, "fileconveyor.js");
    const args = ["bundle", "--platform=deno", "--external", "*.node", "-o", tmpOut];
    // Not --keep-names: with --minify it makes deno bundle 2.9.6 drop the
    // `createRequire` banner, and every CommonJS require() then fails.
    // Error classes set their `name` explicitly, so nothing needs it.
    if (minify) args.push("--minify");
    args.push(entry);
    await run(Deno.execPath(), args, { cwd: ROOT, what: "deno bundle" });
    asciiOnly(tmpOut);
    phase("deno bundle");
    if (options.smokeTest ?? true) {
      await smokeTest(tmpOut);
      phase("smoke test");
    }
    // Replace atomically (readers never see half a file), also across file systems.
    const staged = `${output}.${process_id()}.tmp`;
    fs.copyFileSync(tmpOut, staged);
    // Executable, so its `#!/usr/bin/env -S deno run …` line works.
    if (Deno.build.os !== "windows") fs.chmodSync(staged, 0o755);
    // Dated when the build started: a source saved during the build makes it stale.
    const started = new Date(Date.now() - (performance.now() - t0));
    fs.utimesSync(staged, started, started);
    fs.renameSync(staged, output);
    const report: BundleReport = {
      output,
      size: fs.statSync(output).size,
      minified: minify,
      engines,
      ms: Math.round(performance.now() - t0),
    };
    const secs = (report.ms / 1000).toFixed(1);
    const embedded = engines.map((e) => `${e.name} ${mb(e.bytes)} → ${mb(e.base64)}`).join(", ");
    log(
      `Wrote ${path.relative(ROOT, output)}: ${mb(report.size)}${minify ? " (minified)" : ""} ` +
        `in ${secs} s (${phases.join(", ")}); embedded ${embedded}`,
    );
    return report;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Reads, compresses (cached by content hash and quality in `cacheDir`) and
 * writes `embedded_wasm.js` into `work`.
 */
async function embedEngines(
  work: string,
  cacheDir: string,
  quality: number,
): Promise<EmbeddedEngine[]> {
  fs.mkdirSync(cacheDir, { recursive: true });
  const names = Object.keys(WASM_FILES) as WasmName[];
  const engines: EmbeddedEngine[] = [];
  const wasmModule = relImport(work, path.join(ROOT, "src", "processors", "_wasm.ts"));
  const lines = [
    "// Generated by scripts/build/bundle.ts: the WebAssembly engines, brotli-compressed, base64.",
    "// Each is decoded on first use only (a rule that minifies or optimises images). The",
    "// text sits in a function V8 compiles lazily: until it is called, the literal exists",
    "// only in the script source, not as a heap string nor in the code cache (~25 MB less RSS).",
    'import { Buffer } from "node:buffer";',
    'import { brotliDecompressSync } from "node:zlib";',
    `import { registerEmbeddedWasm } from ${JSON.stringify(wasmModule)};`,
    "",
    "function decoder(name, text, size) {",
    "  return () => {",
    '    const b = brotliDecompressSync(Buffer.from(text(), "base64"));',
    "    if (b.length !== size) {",
    "      throw new Error(",
    '        `Embedded WebAssembly engine "${name}" is damaged: ${b.length} bytes, expected ${size}`,',
    "      );",
    "    }",
    "    return new Uint8Array(b.buffer, b.byteOffset, b.length);",
    "  };",
    "}",
    "",
  ];
  let installed = false;
  for (const name of names) {
    let raw: Uint8Array;
    try {
      raw = await wasmBytes(name);
    } catch (e) {
      if (installed) throw e;
      // A clean checkout has no node_modules yet: install the npm packages
      // deno.json names (offline when the Deno cache has them), then retry.
      await run(Deno.execPath(), ["install", "--quiet"], { cwd: ROOT, what: "deno install" });
      installed = true;
      raw = await wasmBytes(name);
    }
    const hash = crypto.createHash("sha256").update(raw).digest("hex").slice(0, 24);
    const cached = path.join(cacheDir, `${name}-${hash}-q${quality}.br`);
    let compressed: Uint8Array;
    if (fs.existsSync(cached)) {
      compressed = fs.readFileSync(cached);
    } else {
      compressed = zlib.brotliCompressSync(raw, {
        params: {
          [zlib.constants.BROTLI_PARAM_QUALITY]: quality,
          [zlib.constants.BROTLI_PARAM_SIZE_HINT]: raw.length,
        },
      });
      const tmp = `${cached}.${process_id()}.tmp`;
      fs.writeFileSync(tmp, compressed);
      fs.renameSync(tmp, cached);
    }
    const text = Buffer.from(compressed).toString("base64");
    lines.push(
      `registerEmbeddedWasm(${JSON.stringify(name)}, decoder(${
        JSON.stringify(name)
      }, function () { return "${text}"; }, ${raw.length}));`,
    );
    engines.push({ name, bytes: raw.length, compressed: compressed.length, base64: text.length });
  }
  fs.writeFileSync(path.join(work, "embedded_wasm.js"), lines.join("\n") + "\n");
  return engines;
}

/**
 * Bundles the engine worker (`src/processors/_engine_worker.ts`, with
 * esbuild-wasm's and oxipng's JavaScript) on its own and writes
 * `embedded_worker.js` into `work`: a module that registers the worker's
 * source, so the pool starts workers from a blob URL. A worker cannot be
 * started from a module inside the single file, and a bundle has no
 * `src/` next to it.
 */
async function embedWorker(work: string, minify: boolean): Promise<void> {
  const out = path.join(work, "engine_worker.js");
  const args = ["bundle", "--platform=deno", "-o", out];
  if (minify) args.push("--minify");
  args.push(path.join(ROOT, "src", "processors", "_engine_worker.ts"));
  await run(Deno.execPath(), args, { cwd: ROOT, what: "deno bundle (engine worker)" });
  const code = fs.readFileSync(out, "utf8");
  const pool = relImport(work, path.join(ROOT, "src", "processors", "_engine_pool.ts"));
  fs.writeFileSync(
    path.join(work, "embedded_worker.js"),
    [
      "// Generated by scripts/build/bundle.ts: the engine worker's own bundle, started from a blob URL.",
      `import { registerEmbeddedWorker } from ${JSON.stringify(pool)};`,
      `registerEmbeddedWorker(function () { return ${JSON.stringify(code)}; });`,
      "",
    ].join("\n"),
  );
}

/**
 * Writes `lazy_modules.js` into `work`: a module that registers, for every
 * module the program loads on first use (`LAZY_MODULES` in `src/lazy.ts`),
 * a loader with a literal `import()`, so `deno bundle` puts each of them
 * (and the npm packages they import) into the bundle.
 */
function writeLazyModules(work: string): void {
  const lazy = relImport(work, path.join(ROOT, "src", "lazy.ts"));
  const lines = [
    "// Generated by scripts/build/bundle.ts: the modules loaded on first use, inside the bundle.",
    `import { registerBundledModule } from ${JSON.stringify(lazy)};`,
  ];
  for (const name of LAZY_MODULES) {
    const target = JSON.stringify(relImport(work, path.join(ROOT, "src", name)));
    lines.push(`registerBundledModule(${JSON.stringify(name)}, () => import(${target}));`);
  }
  fs.writeFileSync(path.join(work, "lazy_modules.js"), lines.join("\n") + "\n");
}

/** Writes the bundle entry into `work` and returns its path. */
function writeEntry(work: string): string {
  const entry = path.join(work, "entry.ts");
  const src = (f: string) => JSON.stringify(relImport(work, path.join(ROOT, "src", f)));
  fs.writeFileSync(
    entry,
    [
      `#!/usr/bin/env -S deno run ${PERMISSIONS.join(" ")}`,
      "// Generated by scripts/build/bundle.ts: the entry of dist/fileconveyor.js.",
      `import ${src("shim.ts")};`,
      'import "./embedded_wasm.js";',
      'import "./embedded_worker.js";',
      'import "./lazy_modules.js";',
      `import { main } from ${src("cli/main.ts")};`,
      "Deno.exit(await main(Deno.args));",
      "",
    ].join("\n"),
  );
  return entry;
}

/**
 * Escapes the non-ASCII characters esbuild leaves in comments (legal
 * comments it keeps, e.g. a doc comment that mentions `@license`). One
 * character above U+00FF makes V8 hold the whole multi-megabyte source as
 * UTF-16: twice the memory, for the life of the process. Code is already
 * ASCII (esbuild escapes strings, templates and regular expressions), and
 * in comments `\uXXXX` is just text.
 */
function asciiOnly(file: string): void {
  const text = fs.readFileSync(file, "utf8");
  if (!/[\u0080-\uffff]/.test(text)) return;
  const escaped = text.replace(
    /[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  fs.writeFileSync(file, escaped);
}

/**
 * Runs the fresh bundle the way users do: from an empty directory, with an
 * empty Deno cache, npm and remote imports off, and the daemon's permissions.
 */
async function smokeTest(bundle: string): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fc-bundle-smoke-"));
  try {
    fs.copyFileSync(bundle, path.join(dir, "fileconveyor.js"));
    fs.mkdirSync(path.join(dir, "deno-dir"));
    const out = await run(Deno.execPath(), [
      "run",
      ...isolatedRunFlags(),
      ...PERMISSIONS,
      "fileconveyor.js",
      "--version",
    ], { cwd: dir, env: { DENO_DIR: path.join(dir, "deno-dir") }, what: "the bundle (--version)" });
    if (!/\d+\.\d+\.\d+/.test(out)) {
      throw new Error(`The bundle printed no version: ${JSON.stringify(out)}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `deno run` flags that make a run prove the bundle is self-contained: no
 * config discovery, no npm resolution, no remote modules, no downloads.
 */
export function isolatedRunFlags(): string[] {
  return ["--no-config", "--no-npm", "--no-remote", "--cached-only", "--no-lock"];
}

/** The Deno cache directory in use (`$DENO_DIR`, or Deno's default), as `deno info` reports it. */
export async function denoCacheDir(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout)).denoDir as string;
}

/** A relative import specifier from `dir` to `file`. */
function relImport(dir: string, file: string): string {
  const rel = path.relative(dir, file).split(path.sep).join("/");
  return rel.startsWith(".") ? rel : `./${rel}`;
}

function process_id(): string {
  return `${Deno.pid}-${crypto.randomBytes(3).toString("hex")}`;
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

const encoder = new TextEncoder();

function stderr(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

/** Runs a command; returns stdout, throws with its output on failure. */
async function run(
  cmd: string,
  args: string[],
  opts: { cwd: string; env?: Record<string, string>; what: string },
): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    env: { NO_COLOR: "1", ...opts.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const stdout = dec.decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `Cannot run ${opts.what} (exit ${out.code}):\n${stdout}${dec.decode(out.stderr)}`.trimEnd(),
    );
  }
  return stdout;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "no-minify": { type: "boolean", default: false },
      quality: { type: "string", default: "9" },
      output: { type: "string", short: "o" },
      "if-stale": { type: "boolean", default: false },
      "no-smoke-test": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    stderr(
      "Usage: deno task bundle [--no-minify] [--quality 0-11] [-o FILE] [--if-stale] [--no-smoke-test]",
    );
    Deno.exit(0);
  }
  const options: BundleOptions = {
    minify: !values["no-minify"],
    quality: Number(values.quality),
    smokeTest: !values["no-smoke-test"],
    ...(values.output ? { output: path.resolve(values.output) } : {}),
  };
  try {
    if (values["if-stale"]) {
      const out = await ensureBundle(options);
      stderr(`${path.relative(ROOT, out)} is up to date`);
    } else {
      await buildBundle(options);
    }
  } catch (e) {
    stderr(`Cannot build the bundle: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exit(1);
  }
}
