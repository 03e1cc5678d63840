/**
 * How the minifiers drive esbuild: the transform options for `target`,
 * `legalComments` and the ES5 detection of `target="auto"` (one esbuild
 * run per file). Runs wherever
 * the esbuild instance lives (the engine worker, see `_engine_worker.ts`).
 *
 * @module
 */
import * as acorn from "acorn";
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
 * Minifies for `target="auto"` in one esbuild run. Whether the file is
 * ES5 is decided by parsing it as ES5 ({@linkcode isEs5}), not by minifying
 * it twice and comparing: an ES5 file is minified for `es5`, so it stays
 * ES5 (no `{a}` shorthand, no template literals, no ES2015+ escapes);
 * any other file is modern and is minified for `esnext`, with the ES2020
 * shorthands it does not use switched off. Should esbuild still find
 * something to lower in a file parsed as ES5, the file counts as modern.
 */
async function minifyAuto(
  api: EsbuildApi,
  code: string,
  base: Esbuild.TransformOptions,
): Promise<Esbuild.TransformResult> {
  if (isEs5(code)) {
    const es5 = await api.transform(code, { ...base, target: "es5" }).catch((e) => {
      const errors = (e as { errors?: { text: string }[] }).errors ?? [];
      if (!errors.some((x) => /configured target environment/.test(x.text))) throw e;
      return undefined;
    });
    if (es5) return es5;
  }
  return await api.transform(code, { ...base, target: "esnext", supported: introducible(code) });
}

/**
 * Whether `code` is an ES5 script, or an ES5 module body with `import` and
 * `export` (which esbuild's `es5` target keeps as they are). A file that
 * does not parse (a syntax error) is not ES5: the `esnext` run then reports
 * the error. The parse stops at the first ES2015+ construct, so a modern
 * file costs little; an ES5 one costs a parse in JavaScript, a fraction of
 * an esbuild run.
 */
export function isEs5(code: string): boolean {
  const options = {
    ecmaVersion: 5,
    allowHashBang: true,
    allowReturnOutsideFunction: true,
  } as const;
  try {
    acorn.parse(code, { ...options, sourceType: "script" });
    return true;
  } catch {
    // Not a script: an ES5 body with import/export parses as a module (strict mode).
  }
  if (!/\b(import|export)\b/.test(code)) return false;
  try {
    acorn.parse(code, { ...options, sourceType: "module" });
    return true;
  } catch {
    return false;
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

/** A source file's text: UTF-8, or Latin-1 when it is not valid UTF-8. */
export function decodeSource(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return new TextDecoder("latin1").decode(bytes);
  }
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
