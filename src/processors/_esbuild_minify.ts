/**
 * How the minifiers drive esbuild: the transform options for `target`,
 * `legalComments` and the ES5 detection of `target="auto"`. Runs wherever
 * the esbuild instance lives (the engine worker, see `_engine_worker.ts`).
 *
 * @module
 */
import type * as Esbuild from "esbuild-wasm/esm/browser.js";

/** The esbuild API (`esbuild-wasm/esm/browser.js`). */
export type EsbuildApi = typeof Esbuild;

/** CSS target used for `target="auto"`. */
export const AUTO_CSS_TARGET = ["chrome58", "edge16", "firefox57", "ie11", "safari11"];

/** Options of one minification. */
export interface MinifyOptions {
  target?: string;
  legalComments?: string;
  sourcefile?: string;
}

/** Result of one minification. */
export interface MinifyResult {
  code: string;
  warnings: string[];
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
  // esbuild repeats the source line in every error; an ES5 probe over a
  // minified modern file (one huge line) would carry that line hundreds of
  // times (hundreds of MB). The probes therefore read the file printed one
  // statement per line, which means the same.
  const probe = longestLine(code) > 1000
    ? (await api.transform(code, { ...base, minify: false, target: "esnext" })).code
    : code;
  // One run after the other: esbuild-wasm has a single thread, so running
  // them at once gains nothing and holds two syntax trees in its memory.
  const es5 = await api.transform(probe, { ...base, target: "es5" }).catch((e) => {
    const errors = (e as { errors?: { text: string }[] }).errors ?? [];
    if (!errors.some((x) => /configured target environment/.test(x.text))) throw e;
    return undefined;
  });
  const strict = es5 &&
    await api.transform(probe, {
      ...base,
      target: "esnext",
      supported: { ...modern, "object-extensions": false, "template-literal": false },
    }).catch(() => undefined);
  if (es5 && strict && strict.code === es5.code) return es5;
  return await api.transform(code, { ...base, target: "esnext", supported: modern });
}

/** Length of the longest line of `code`. */
function longestLine(code: string): number {
  let longest = 0, start = 0;
  for (;;) {
    const end = code.indexOf("\n", start);
    const len = (end < 0 ? code.length : end) - start;
    if (len > longest) longest = len;
    if (end < 0) return longest;
    start = end + 1;
  }
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

/**
 * A one-line description of an esbuild failure: the first three messages
 * with their line and column.
 */
export function describeEsbuildError(e: unknown): string {
  const errors = (e as { errors?: Esbuild.Message[] }).errors;
  if (!errors || errors.length === 0) return (e as Error).message ?? String(e);
  const first = errors.slice(0, 3).map((m) =>
    m.location ? `line ${m.location.line}:${m.location.column + 1}: ${m.text}` : m.text
  );
  const more = errors.length > 3 ? ` (and ${errors.length - 3} more)` : "";
  return first.join("; ") + more;
}

/** Minifies CSS or JS text with an initialised esbuild. */
export async function minifyWith(
  api: EsbuildApi,
  code: string,
  loader: "css" | "js",
  options: MinifyOptions = {},
): Promise<MinifyResult> {
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
