/**
 * The one place where processors get their WebAssembly engines.
 *
 * Every WASM engine a processor uses is named in {@linkcode WASM_FILES} and
 * obtained through {@linkcode wasmBytes} (the engine pool compiles it and
 * hands the module to its workers) or {@linkcode loadWasm}. Nothing else in the code base reads
 * `.wasm` files, so the bundling step has exactly one seam to replace:
 *
 * - **From source** (`deno run mod.ts`), `wasmBytes(name)` resolves the npm
 *   file with `import.meta.resolve` (a `file:` URL inside `node_modules`) and
 *   reads it with `node:fs`.
 * - **From a single-file bundle**, the bundler embeds the bytes (for example
 *   as base64 in a generated module) and calls
 *   {@linkcode registerEmbeddedWasm} for each name *before* any processor's
 *   `setup` runs (importing the generated module first is enough). Embedded
 *   bytes always win over the file system.
 *
 * Modules are compiled once, lazily: only a rule that uses a minifier pays
 * for esbuild (14 MB, ~0.1 s compile) and only an image rule for oxipng.
 *
 * @example
 * ```ts
 * import { loadWasm } from "./_wasm.ts";
 * const module = await loadWasm("oxipng");
 * console.log(WebAssembly.Module.exports(module).length > 0);
 * ```
 *
 * @module
 */
import * as fs from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { VERSION } from "../version.ts";

/** The WASM engines processors use, with their npm file (`package/path`). */
export const WASM_FILES = {
  /** esbuild-wasm: CSS and JS minification (`minify.*`, `yui_compressor.*`, `google_closure_compiler.*`). */
  esbuild: "esbuild-wasm/esbuild.wasm",
  /** oxipng (squoosh build, single-threaded): lossless PNG optimisation (`image_optimizer.*`). */
  oxipng: "@jsquash/oxipng/codec/pkg/squoosh_oxipng_bg.wasm",
} as const;

/** Name of a WASM engine. */
export type WasmName = keyof typeof WASM_FILES;

type BytesSource = Uint8Array | (() => Uint8Array | Promise<Uint8Array>);

const embedded = new Map<WasmName, BytesSource>();
const compiled = new Map<WasmName, Promise<WebAssembly.Module>>();

/**
 * Registers embedded bytes for an engine (for single-file bundles). A
 * function is called lazily, the first time the engine is needed, so a
 * bundle can keep the (compressed) bytes unparsed until then.
 */
export function registerEmbeddedWasm(name: WasmName, bytes: BytesSource): void {
  embedded.set(name, bytes);
  compiled.delete(name);
}

/**
 * Returns the raw bytes of an engine, the embedded copy, else the npm file:
 * a fresh array on every call, which the caller owns.
 */
export async function wasmBytes(name: WasmName): Promise<Uint8Array> {
  const e = embedded.get(name);
  // A copy of fixed bytes: callers may hand theirs over (transfer) to a worker.
  if (e) return typeof e === "function" ? await e() : e.slice();
  const file = wasmFile(name);
  try {
    return new Uint8Array(await fs.readFile(file));
  } catch (err) {
    throw new Error(`Cannot read the WebAssembly file "${file}": ${(err as Error).message}`);
  }
}

/**
 * Checks that an engine's bytes can be had (embedded, or the npm file
 * exists) without reading them. Throws the error {@linkcode wasmBytes} would.
 */
export async function checkWasm(name: WasmName): Promise<void> {
  if (embedded.has(name)) return;
  const file = wasmFile(name);
  try {
    await fs.access(file);
  } catch (err) {
    throw new Error(`Cannot read the WebAssembly file "${file}": ${(err as Error).message}`);
  }
}

/**
 * A name for the exact build of an engine, for cache keys: the npm package
 * version from source, the fileconveyor version in a bundle.
 */
export function engineTag(name: WasmName): string {
  if (embedded.has(name)) return `${name}@fileconveyor-${VERSION}`;
  try {
    const m = /\/([^/]+@\d[^/]*)\//.exec(wasmFile(name).split("\\").join("/"));
    return m ? m[1]! : `${name}@fileconveyor-${VERSION}`;
  } catch {
    return `${name}@fileconveyor-${VERSION}`;
  }
}

function wasmFile(name: WasmName): string {
  const spec = WASM_FILES[name];
  try {
    return fileURLToPath(import.meta.resolve(spec));
  } catch (err) {
    throw new Error(
      `Cannot locate the WebAssembly file "${spec}" for ${name}: ${(err as Error).message}`,
    );
  }
}

/**
 * Returns the compiled module of an engine, compiling it on first use. The
 * promise is shared, so concurrent callers compile once.
 */
export function loadWasm(name: WasmName): Promise<WebAssembly.Module> {
  let p = compiled.get(name);
  if (!p) {
    p = wasmBytes(name).then((b) => WebAssembly.compile(b as Uint8Array<ArrayBuffer>));
    p.catch(() => compiled.delete(name));
    compiled.set(name, p);
  }
  return p;
}
