/**
 * CSS and JavaScript minification with esbuild, compiled to WebAssembly and
 * run in-process (no native binary, no child process, no worker).
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
 *   no newer syntax than the file uses: an ES5 file stays ES5 (no `{a}`
 *   shorthand, no template literals), a modern file gets no `??`, `?.`,
 *   `||=` or `catch {}` unless it already uses them. For CSS, `auto` means browsers of 2017–2018
 *   (`chrome58,edge16,firefox57,ie11,safari11`), so colours are not turned
 *   into 8-digit hex and the like. Any other value is passed to esbuild's
 *   `target` (comma-separated, e.g. `es2020,safari14`).
 * - Non-ASCII characters are written as escapes (`charset=ascii`), so the
 *   output is correct whatever charset the file is served with; a file that
 *   is not valid UTF-8 is read as Latin-1.
 * - Legal comments (`/*! … *\/`, `@license`, `@preserve`) are kept.
 * - `*.min.js` and `*.min.css` pass through unless `skipMinified="false"`.
 * - A result that is not smaller than the input is not used.
 * - A syntax error fails that file alone with a {@linkcode ClassifiedError}
 *   of kind `fatal` naming the line and column; it is not retried until the
 *   file changes.
 *
 * The engine (14 MB of WASM) is loaded in `setup`, i.e. only when a rule
 * uses one of these processors; it is shared by all of them.
 *
 * @module
 */
import type * as Esbuild from "esbuild-wasm/esm/browser.js";
import type { OptionSpec, OptionValues } from "../options.ts";
import { isTrue } from "../options.ts";
import type { ProcessContext, ProcessFile, ProcessorDef } from "./processor.ts";
import { extOf, fatal, label, readInput, writeOutput } from "./_util.ts";
import { loadWasm } from "./_wasm.ts";

type EsbuildApi = typeof Esbuild;

let engine: Promise<EsbuildApi> | undefined;
let initMs: number | undefined;

/**
 * Loads and initialises esbuild-wasm once per process (in-process, no
 * worker). Later calls return the same instance.
 */
export function loadEsbuild(): Promise<EsbuildApi> {
  if (!engine) {
    engine = (async () => {
      const t0 = performance.now();
      const [api, wasmModule] = await Promise.all([
        import("esbuild-wasm/esm/browser.js") as Promise<EsbuildApi>,
        loadWasm("esbuild"),
      ]);
      await api.initialize({ wasmModule, worker: false });
      initMs = performance.now() - t0;
      return api;
    })();
    engine.catch(() => engine = undefined);
  }
  return engine;
}

/** Milliseconds the first {@linkcode loadEsbuild} took (compile + initialise), once loaded. */
export function esbuildInitMs(): number | undefined {
  return initMs;
}

/** CSS target used for `target="auto"`. */
export const AUTO_CSS_TARGET = ["chrome58", "edge16", "firefox57", "ie11", "safari11"];

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

function decodeText(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return new TextDecoder("latin1").decode(bytes);
  }
}

/**
 * Minifies for `target="auto"`. Two runs decide whether the file is ES5:
 * one for `es5`, one for `esnext` with the ES2015+ syntax esbuild's printer
 * may introduce switched off (`{a}` for `{a: a}`, template literals for
 * strings with newlines, and the ES2020 shorthands the file does not use).
 * Identical output means nothing needed lowering: the `es5` result is used,
 * so ES5 code stays ES5. Otherwise (or when esbuild cannot even lower the
 * file to ES5) the file is modern and is minified for `esnext`, with only
 * the ES2020 shorthands it does not use switched off.
 */
async function minifyAuto(
  api: EsbuildApi,
  code: string,
  base: Esbuild.TransformOptions,
): Promise<Esbuild.TransformResult> {
  const modern = introducible(code);
  // Both runs at once: esbuild-wasm's per-call latency overlaps.
  const [es5, strict] = await Promise.all([
    api.transform(code, { ...base, target: "es5" }).catch((e) => {
      const errors = (e as { errors?: { text: string }[] }).errors ?? [];
      if (!errors.some((x) => /configured target environment/.test(x.text))) throw e;
      return undefined;
    }),
    api.transform(code, {
      ...base,
      target: "esnext",
      supported: { ...modern, "object-extensions": false, "template-literal": false },
    }).catch(() => undefined),
  ]);
  if (es5 && strict && strict.code === es5.code) return es5;
  return await api.transform(code, { ...base, target: "esnext", supported: modern });
}

/**
 * The syntax esbuild's minifier may introduce on its own (`x != null ? x : y`
 * → `x ?? y`, `catch (e) {}` → `catch {}`, …), each allowed only when the
 * source already uses it. A textual test is enough: a false positive (the
 * token inside a string) only allows the feature, which is what any other
 * minifier would do for a file already using it.
 */
function introducible(code: string): Record<string, boolean> {
  return {
    "nullish-coalescing": code.includes("??"),
    "optional-chain": code.includes("?."),
    "logical-assignment": /(\|\||&&|\?\?)=/.test(code),
    "optional-catch-binding": /\bcatch\s*\{/.test(code),
  };
}

function describe(e: unknown): string {
  const errors = (e as { errors?: Esbuild.Message[] }).errors;
  if (!errors || errors.length === 0) return (e as Error).message ?? String(e);
  const first = errors.slice(0, 3).map((m) =>
    m.location ? `line ${m.location.line}:${m.location.column + 1}: ${m.text}` : m.text
  );
  const more = errors.length > 3 ? ` (and ${errors.length - 3} more)` : "";
  return first.join("; ") + more;
}

/** Minifies CSS or JS text. Exported for the benchmark and tests. */
export async function minifyText(
  code: string,
  loader: "css" | "js",
  options: { target?: string; legalComments?: string; sourcefile?: string } = {},
): Promise<{ code: string; warnings: string[] }> {
  const api = await loadEsbuild();
  const target = (options.target ?? "auto").trim();
  const base: Esbuild.TransformOptions = {
    loader,
    minify: true,
    charset: "ascii",
    legalComments: (options.legalComments ?? "inline") as "inline" | "eof" | "none",
    sourcefile: options.sourcefile ?? (loader === "css" ? "input.css" : "input.js"),
    logLevel: "silent",
  };
  let result: Esbuild.TransformResult;
  if (target !== "auto") {
    result = await api.transform(code, { ...base, target: target.split(/[\s,]+/).filter(Boolean) });
  } else if (loader === "css") {
    result = await api.transform(code, { ...base, target: AUTO_CSS_TARGET });
  } else {
    result = await minifyAuto(api, code, base);
  }
  return {
    code: result.code,
    warnings: result.warnings.map((w) =>
      w.location ? `line ${w.location.line}:${w.location.column + 1}: ${w.text}` : w.text
    ),
  };
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
  const input = await readInput(file);
  let out: Awaited<ReturnType<typeof minifyText>>;
  try {
    out = await minifyText(decodeText(input), loader, {
      ...(ctx.options.target !== undefined ? { target: ctx.options.target } : {}),
      ...(ctx.options.legalComments !== undefined
        ? { legalComments: ctx.options.legalComments }
        : {}),
      sourcefile: file.name,
    });
  } catch (e) {
    throw fatal(`Cannot minify ${label(file)}: ${describe(e)}`, e);
  }
  for (const w of out.warnings) ctx.log.debug(`${label(file)}: ${w}`);
  const bytes = new TextEncoder().encode(out.code);
  if (bytes.length >= input.length) {
    ctx.log.debug(`${label(file)}: minified output is not smaller; kept as is`);
    return undefined;
  }
  return { path: await writeOutput(ctx, file.name, bytes) };
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
    options: MINIFY_OPTIONS,
    async setup(_ctx: { options: OptionValues }) {
      await loadEsbuild();
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
