/**
 * Registers every built-in processor. Import this module once before
 * loading a configuration (`import "./src/processors/mod.ts"`).
 *
 * | name | extensions | what it does |
 * |---|---|---|
 * | `filename.SpacesToUnderscores`, `filename.SpacesToDashes` | all | rename only |
 * | `unique_filename.Mtime`, `.MD5`, `.ContentHash` | all | name + `_<mtime/hash>` |
 * | `yui_compressor.YUICompressor` | css, js | minify (esbuild-wasm) |
 * | `google_closure_compiler.GoogleClosureCompiler` | js | minify (esbuild-wasm) |
 * | `minify.CSS`, `minify.JS`, `minify.All` | css / js, mjs, cjs | minify (esbuild-wasm) |
 * | `image_optimizer.Max`, `.KeepMetadata`, `.KeepFilename`, `.KeepMetadataAndFilename` | png, jpg, jpeg, jpe, gif | lossless (oxipng WASM, jpegtran, gifsicle) |
 * | `link_updater.CSSURLUpdater` | css | rewrite `url()`/`@import` per server |
 * | `compress.Gzip`, `compress.Brotli`, `compress.Both` | text types (option) | `.gz` / `.br` variants or in place |
 * | `command` | option | run a program |
 * | `custom` (alias `module`) | from the module | a user's module |
 *
 * @module
 */
import { registerProcessor } from "./processor.ts";
import { spacesToDashes, spacesToUnderscores } from "./filename.ts";
import { contentHash, md5, mtime } from "./unique_filename.ts";
import { closureCompiler, minifyAll, minifyCss, minifyJs, yuiCompressor } from "./minify.ts";
import { keepFilename, keepMetadata, keepMetadataAndFilename, max } from "./image_optimizer.ts";
import { cssUrlUpdater } from "./link_updater.ts";
import { bothCompressor, brotliCompressor, gzipCompressor } from "./compress.ts";
import { command } from "./command.ts";
import { custom } from "./custom.ts";

/** Every built-in processor definition, in documentation order. */
export const BUILTIN_PROCESSORS = [
  spacesToUnderscores,
  spacesToDashes,
  mtime,
  md5,
  contentHash,
  yuiCompressor,
  closureCompiler,
  minifyCss,
  minifyJs,
  minifyAll,
  max,
  keepMetadata,
  keepFilename,
  keepMetadataAndFilename,
  cssUrlUpdater,
  gzipCompressor,
  brotliCompressor,
  bothCompressor,
  command,
  custom,
] as const;

for (const def of BUILTIN_PROCESSORS) registerProcessor(def);
