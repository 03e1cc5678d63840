/**
 * CSS and JavaScript minification with esbuild, compiled to WebAssembly and
 * run on the engine pool's workers (`_engine_pool.ts`; no native binary, no
 * child process): the event loop never waits for a large file, and the
 * engine's memory is given back once the pool has been idle for a while.
 *
 * Names:
 * - `yui_compressor.YUICompressor` (`.css`, `.js`) and
 *   `google_closure_compiler.GoogleClosureCompiler` (`.js`): the original
 *   names, so old configurations run unchanged (no Java, no jars).
 * - `minify.CSS`, `minify.JS` (`.js`, `.mjs`, `.cjs`) and `minify.All`.
 *
 * Behaviour:
 * - The output means the same as the input: esbuild only minifies
 *   (whitespace, identifiers of local scopes, syntax shortening). Top-level
 *   names of classic scripts stay, so globals other scripts use still exist.
 * - `target="auto"` (default) for JavaScript: nothing is lowered (esbuild's
 *   lowering injects helper variables such as `var j=Object.defineProperty`
 *   into the global scope of a classic script) and the minifier introduces
 *   no newer syntax than the file uses: an ES5 file (one that parses as
 *   ES5) is minified for `es5` and stays ES5 (no `{a}` shorthand, no
 *   template literals), a modern file gets no `??`, `?.`, `||=` or
 *   `catch {}` unless it already uses them; one esbuild run per file. For
 *   CSS, `auto` means browsers of 2017–2018
 *   (`chrome58,edge16,firefox57,ie11,safari11`), so colours are not turned
 *   into 8-digit hex and the like. Any other value is passed to esbuild's
 *   `target` (comma-separated, e.g. `es2020,safari14`).
 * - Non-ASCII characters are written as escapes (`charset=ascii`), so the
 *   output is correct whatever charset the file is served with; a file that
 *   is not valid UTF-8 is read as Latin-1.
 * - Legal comments (`/*! … *\/`, `@license`, `@preserve`) are kept.
 * - `*.min.js` and `*.min.css` pass through unless `skipMinified="false"`.
 * - A result that is not smaller than the input is not used.
 * - Content a minifier of this process has just produced with the same
 *   settings is not minified again (a second esbuild pass over its own
 *   output gains nothing worth a run): the original sample chain, which
 *   runs YUI then Closure over every script, minifies each script once.
 * - A syntax error fails that file alone with a {@linkcode ClassifiedError}
 *   of kind `fatal` naming the line and column; it is not retried until the
 *   file changes.
 *
 * The engine (14 MB of WASM) is compiled only when a file needs it; `setup`
 * only checks that it is there. Results are cached by content (see
 * `_result_cache.ts`) when the chain runs with a cache directory.
 *
 * @module
 */
import type { OptionSpec, OptionValues } from "../options.ts";
import { ClassifiedError } from "../errors.ts";
import { isTrue } from "../options.ts";
import type { ProcessContext, ProcessFile, ProcessorDef } from "./processor.ts";
import { extOf, fatal, label, readInput, writeOutput } from "./_util.ts";
import { checkWasm, engineTag } from "./_wasm.ts";
import { enginePool } from "./_engine_pool.ts";
import type { MinifiedBytes } from "./_engine_protocol.ts";
import { ResultCache } from "./_result_cache.ts";
import {
  AUTO_CSS_TARGET,
  describeEsbuildError,
  type MinifyOptions,
  type MinifyResult,
} from "./_esbuild_minify.ts";

export { AUTO_CSS_TARGET };

const MINIFY_OPTIONS: readonly OptionSpec[] = [
  {
    name: "target",
    help:
      'esbuild target list (e.g. "es2020,safari14"; lowers newer syntax), or "auto": no lowering and no syntax the file does not use; CSS for 2017 browsers.',
    default: "auto",
  },
  {
    name: "skipMinified",
    help: "Pass *.min.js and *.min.css files through unchanged.",
    type: "boolean",
    default: "true",
  },
  {
    name: "legalComments",
    help: "What to do with /*! … */ and @license comments.",
    type: "enum",
    values: ["inline", "eof", "none"],
    default: "inline",
  },
];

const JS_EXTENSIONS = [".js", ".mjs", ".cjs"];

/**
 * Minifies CSS or JS text on the engine pool (off the main thread).
 * Exported for the benchmark and tests.
 */
export function minifyText(
  code: string,
  loader: "css" | "js",
  options: MinifyOptions = {},
  signal?: AbortSignal,
): Promise<MinifyResult> {
  return enginePool().run<MinifyResult>(
    { kind: "minify", code, loader, options },
    signal ? { signal } : {},
  );
}

/**
 * Minifies a file's bytes on the engine pool into UTF-8 bytes: the worker
 * decodes the input (UTF-8, else Latin-1) and encodes the output, so the
 * main thread holds neither as a string.
 */
function minifyBytes(
  bytes: Uint8Array,
  loader: "css" | "js",
  options: MinifyOptions,
  signal: AbortSignal,
): Promise<MinifiedBytes> {
  // A view of a larger buffer would send the whole buffer: send the file's bytes only.
  const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? bytes
    : bytes.slice();
  return enginePool().run<MinifiedBytes>(
    { kind: "minifyBytes", bytes: own, loader, options },
    { signal },
  );
}

/** Cache tags of minified results. */
const NO_GAIN = 0, MINIFIED = 1;

/**
 * Keys (content and settings, as for the cache) whose minification this
 * process knows gains nothing: its own outputs and inputs found not to get
 * smaller. Newest last; bounded, the oldest go first. Only hashes are kept.
 */
const ownOutputs = new Set<string>();
const OWN_OUTPUTS_MAX = 4096;

function rememberOwnOutput(key: string): void {
  ownOutputs.delete(key);
  ownOutputs.add(key);
  if (ownOutputs.size > OWN_OUTPUTS_MAX) ownOutputs.delete(ownOutputs.values().next().value!);
}

/**
 * Output files this process's minifiers wrote, with the settings they were
 * minified with: a later minifier of the same chain with the same settings
 * passes such a file through without reading and hashing it again. The
 * files live in the chain's private working directory and are never
 * changed after they are written. Bounded like {@linkcode ownOutputs}.
 */
const ownOutputFiles = new Map<string, string>();

function rememberOwnOutputFile(file: string, settings: string): void {
  ownOutputFiles.delete(file);
  ownOutputFiles.set(file, settings);
  if (ownOutputFiles.size > OWN_OUTPUTS_MAX) {
    ownOutputFiles.delete(ownOutputFiles.keys().next().value!);
  }
}

function isMinifiedName(name: string): boolean {
  return /\.min\.(c|m)?(js|css)$/i.test(name);
}

async function minifyFile(
  file: ProcessFile,
  ctx: ProcessContext,
  allowed: readonly string[],
) {
  const ext = extOf(file.name);
  if (!allowed.includes(ext)) return undefined;
  if (isTrue(ctx.options.skipMinified ?? "true") && isMinifiedName(file.name)) return undefined;
  const loader = ext === ".css" ? "css" : "js";
  const options: MinifyOptions = {
    ...(ctx.options.target !== undefined ? { target: ctx.options.target } : {}),
    ...(ctx.options.legalComments !== undefined
      ? { legalComments: ctx.options.legalComments }
      : {}),
  };
  // The output depends on the bytes, the loader, the options and the engine only.
  const settings = ["minify", loader, JSON.stringify(options), engineTag("esbuild")];
  const settingsKey = settings.join("\0");
  if (ownOutputFiles.get(file.path) === settingsKey) return undefined;
  const input = await readInput(file);
  const key = ResultCache.key([input, ...settings]);
  if (ownOutputs.has(key)) return undefined;
  const hit = ctx.cache ? await ctx.cache.get(key) : undefined;
  if (hit) {
    if (hit.tag !== MINIFIED) return undefined;
    rememberOwnOutput(ResultCache.key([hit.bytes, ...settings]));
    const cached = await writeOutput(ctx, file.name, hit.bytes);
    rememberOwnOutputFile(cached, settingsKey);
    return { path: cached };
  }
  let out: MinifiedBytes;
  try {
    out = await minifyBytes(input, loader, { ...options, sourcefile: file.name }, ctx.signal);
  } catch (e) {
    // A worker that crashed is not the file's fault: the error stays retryable.
    if (e instanceof ClassifiedError || ctx.signal.aborted) {
      throw e instanceof ClassifiedError
        ? new ClassifiedError(`Cannot minify ${label(file)}: ${e.message}`, e.kind, { cause: e })
        : e;
    }
    throw fatal(`Cannot minify ${label(file)}: ${describeEsbuildError(e)}`, e);
  }
  for (const w of out.warnings) ctx.log.debug(`${label(file)}: ${w}`);
  const bytes = out.bytes;
  if (bytes.length >= input.length) {
    ctx.log.debug(`${label(file)}: minified output is not smaller; kept as is`);
    await ctx.cache?.put(key, NO_GAIN);
    rememberOwnOutput(key);
    return undefined;
  }
  await ctx.cache?.put(key, MINIFIED, bytes);
  rememberOwnOutput(ResultCache.key([bytes, ...settings]));
  const written = await writeOutput(ctx, file.name, bytes);
  rememberOwnOutputFile(written, settingsKey);
  return { path: written };
}

function minifier(
  name: string,
  extensions: readonly string[],
  summary: string,
  aliases?: readonly string[],
): ProcessorDef {
  return {
    name,
    ...(aliases ? { aliases } : {}),
    summary,
    extensions,
    createsWorkDir: true,
    options: MINIFY_OPTIONS,
    async setup(_ctx: { options: OptionValues }) {
      await checkWasm("esbuild");
    },
    process: (file, ctx) => minifyFile(file, ctx, extensions),
  };
}

/** `yui_compressor.YUICompressor`: CSS and JS (the original name). */
export const yuiCompressor: ProcessorDef = minifier(
  "yui_compressor.YUICompressor",
  [".css", ".js"],
  "Minifies CSS and JavaScript (esbuild, in-process; replaces the YUI Compressor jar).",
);

/** `google_closure_compiler.GoogleClosureCompiler`: JS (the original name). */
export const closureCompiler: ProcessorDef = minifier(
  "google_closure_compiler.GoogleClosureCompiler",
  [".js"],
  "Minifies JavaScript (esbuild, in-process; replaces the Closure Compiler jar).",
);

/** `minify.CSS`. */
export const minifyCss: ProcessorDef = minifier(
  "minify.CSS",
  [".css"],
  "Minifies CSS (esbuild, in-process).",
);

/** `minify.JS`. */
export const minifyJs: ProcessorDef = minifier(
  "minify.JS",
  JS_EXTENSIONS,
  "Minifies JavaScript (esbuild, in-process).",
);

/** `minify.All`. */
export const minifyAll: ProcessorDef = minifier(
  "minify.All",
  [".css", ...JS_EXTENSIONS],
  "Minifies CSS and JavaScript (esbuild, in-process).",
);
