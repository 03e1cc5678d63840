/**
 * `image_optimizer.*`: lossless image optimisation. Pixels never change.
 *
 * | processor | metadata | GIF → PNG |
 * |---|---|---|
 * | `image_optimizer.Max` | stripped | yes |
 * | `image_optimizer.KeepMetadata` | kept | yes (as the original) |
 * | `image_optimizer.KeepFilename` | stripped | no |
 * | `image_optimizer.KeepMetadataAndFilename` | kept | no |
 *
 * Per format (detected from the bytes, not the extension):
 * - **PNG**: oxipng (WebAssembly, on the engine pool's workers, see
 *   `_engine_pool.ts`) at `level` (default 2).
 *   Stripping removes text, time, `pHYs`, `bKGD` and private chunks but
 *   keeps what changes the look: colour management (`iCCP`, `sRGB`, `gAMA`,
 *   `cHRM`, `cICP`), `tRNS`, `sBIT`, and `eXIf` when it rotates the image.
 *   Animated PNGs pass through.
 * - **JPEG**: `jpegtran -optimize` (+ `-progressive` from 10 KB, the
 *   original's threshold), `-copy all` to keep metadata, else `-copy icc`
 *   (the colour profile stays; `-copy none` where jpegtran is too old for
 *   `icc`). A JPEG whose EXIF orientation rotates it keeps all its metadata,
 *   since stripping would show it sideways.
 * - **GIF**, static, when renaming is allowed: decoded (omggif) and written
 *   as PNG by oxipng; used only when smaller, and the name becomes `.png`.
 *   Otherwise (animated, renaming not allowed, or PNG not smaller):
 *   `gifsicle -O3` (plus `--no-comments --no-names` when stripping).
 * - The result is used only when it is smaller than the input.
 *
 * External tools: `jpegtran` (Debian `libjpeg-turbo-progs`) and `gifsicle`
 * (Debian `gifsicle`) are looked up in `setup`. A missing `jpegtran` fails
 * setup (so the daemon refuses to start with a clear message) unless
 * `missingTools="warn"`, in which case JPEG files pass through unchanged
 * with one warning at start-up. A missing `gifsicle` only warns: static
 * GIFs are still converted to PNG without it; other GIFs pass through.
 *
 * An image an engine cannot read (corrupt, truncated, unusual) passes
 * through unchanged with a warning: optimising is an improvement, never a
 * reason to hold a file back.
 *
 * @module
 */
import type { OptionSpec, OptionValues } from "../options.ts";
import type { Logger } from "../log.ts";
import type { ProcessContext, ProcessFile, ProcessorDef, ProcessResult } from "./processor.ts";
import { findTool, label, readInput, runTool, splitName, tail, writeOutput } from "./_util.ts";
import {
  isApng,
  jpegOrientation,
  pngChunks,
  sniffImage,
  stripPngMetadata,
} from "./_image_formats.ts";
import { checkWasm, engineTag } from "./_wasm.ts";
import { enginePool } from "./_engine_pool.ts";
import { ResultCache } from "./_result_cache.ts";
import { ClassifiedError } from "../errors.ts";
import { loadModule } from "../lazy.ts";

/** Runs oxipng on the engine pool (off the main thread). */
function oxipng(
  task:
    | { kind: "png"; bytes: Uint8Array; level: number }
    | { kind: "raw"; rgba: Uint8Array; width: number; height: number; level: number },
  signal: AbortSignal,
): Promise<Uint8Array> {
  return enginePool().run<Uint8Array>(task, { signal });
}

/** JPEGs from this size on are written progressive (the original's rule). */
export const PROGRESSIVE_MIN_BYTES = 10 * 1024;

const OPTIONS: readonly OptionSpec[] = [
  {
    name: "level",
    help: "oxipng optimisation level (1–6).",
    type: "integer",
    min: 1,
    max: 6,
    default: "2",
  },
  {
    name: "missingTools",
    help: 'When jpegtran is missing: "fail" at start-up, or "warn" and pass JPEGs through.',
    type: "enum",
    values: ["fail", "warn"],
    default: "fail",
  },
  {
    name: "jpegtran",
    help: "jpegtran executable (name on PATH or absolute path).",
    default: "jpegtran",
  },
  {
    name: "gifsicle",
    help: "gifsicle executable (name on PATH or absolute path).",
    default: "gifsicle",
  },
  {
    name: "timeout",
    help: "Seconds an external tool may run for one file.",
    type: "integer",
    min: 1,
    default: "60",
  },
];

interface Tools {
  jpegtran?: string;
  jpegtranIcc: boolean;
  gifsicle?: string;
}

const toolsByOptions = new Map<string, Promise<Tools>>();

/** The apt hint for each external tool. */
export const TOOL_PACKAGES: Record<string, string> = {
  jpegtran: "libjpeg-turbo-progs",
  gifsicle: "gifsicle",
};

function detectTools(options: OptionValues, log: Logger, processor: string): Promise<Tools> {
  const key = JSON.stringify([options.jpegtran, options.gifsicle, options.missingTools]);
  let p = toolsByOptions.get(key);
  if (!p) {
    p = (async () => {
      const jpegtran = await findTool(options.jpegtran ?? "jpegtran");
      const gifsicle = await findTool(options.gifsicle ?? "gifsicle");
      if (!jpegtran) {
        const msg = `${processor} needs \`${options.jpegtran ?? "jpegtran"}\` for JPEG files: ` +
          `apt-get install ${TOOL_PACKAGES.jpegtran} (or set missingTools="warn" to publish JPEGs unoptimised)`;
        if ((options.missingTools ?? "fail") === "fail") throw new Error(msg);
        log.warn(msg.replace(/ \(or set.*$/, "") + "; JPEG files pass through unchanged");
      }
      if (!gifsicle) {
        log.warn(
          `${processor} uses \`${
            options.gifsicle ?? "gifsicle"
          }\` for animated GIFs: apt-get install ` +
            `${TOOL_PACKAGES.gifsicle}; until then they pass through unchanged`,
        );
      }
      let jpegtranIcc = false;
      if (jpegtran) {
        const help = await runTool(jpegtran, ["-help"], { timeoutMs: 10_000 }).catch(() =>
          undefined
        );
        jpegtranIcc = help !== undefined &&
          /-copy icc/.test(help.stderr + new TextDecoder().decode(help.stdout));
      }
      return { ...(jpegtran ? { jpegtran } : {}), jpegtranIcc, ...(gifsicle ? { gifsicle } : {}) };
    })();
    p.catch(() => toolsByOptions.delete(key));
    toolsByOptions.set(key, p);
  }
  return p;
}

interface Mode {
  keepMetadata: boolean;
  allowRename: boolean;
}

async function optimisePng(
  input: Uint8Array,
  mode: Mode,
  level: number,
  signal: AbortSignal,
): Promise<Uint8Array | undefined> {
  const chunks = pngChunks(input);
  if (isApng(chunks)) return undefined;
  const source = mode.keepMetadata ? input : stripPngMetadata(input, chunks);
  // A copy goes to the worker: `source` may be `input` itself.
  const out = await oxipng({ kind: "png", bytes: source.slice(), level }, signal);
  // oxipng returns its input when it finds nothing better; stripping alone may still win.
  return out.length <= source.length ? out : source;
}

async function optimiseJpeg(
  file: ProcessFile,
  input: Uint8Array,
  mode: Mode,
  tools: Tools,
  ctx: ProcessContext,
): Promise<Uint8Array | undefined> {
  if (!tools.jpegtran) return undefined;
  let copy = mode.keepMetadata ? "all" : tools.jpegtranIcc ? "icc" : "none";
  if (copy !== "all" && (jpegOrientation(input) ?? 1) !== 1) {
    ctx.log.debug(`${label(file)}: EXIF orientation rotates the image; metadata kept`);
    copy = "all";
  }
  const args = ["-copy", copy, "-optimize"];
  if (input.length >= PROGRESSIVE_MIN_BYTES) args.push("-progressive");
  const r = await runTool(tools.jpegtran, args, {
    stdin: input,
    signal: ctx.signal,
    timeoutMs: Number(ctx.options.timeout ?? "60") * 1000,
  });
  if (r.code !== 0 || r.stdout.length === 0) {
    ctx.log.warn(
      `${label(file)}: jpegtran failed (exit ${r.code}${
        r.timedOut ? ", timed out" : ""
      }); published unoptimised`,
      {
        stderr: tail(r.stderr, 300),
      },
    );
    return undefined;
  }
  return r.stdout;
}

async function gifsicle(
  file: ProcessFile,
  input: Uint8Array,
  mode: Mode,
  tools: Tools,
  ctx: ProcessContext,
): Promise<Uint8Array | undefined> {
  if (!tools.gifsicle) return undefined;
  const args = ["-O3", ...(mode.keepMetadata ? [] : ["--no-comments", "--no-names"])];
  const r = await runTool(tools.gifsicle, args, {
    stdin: input,
    signal: ctx.signal,
    timeoutMs: Number(ctx.options.timeout ?? "60") * 1000,
  });
  if (r.code !== 0 || r.stdout.length === 0) {
    ctx.log.warn(
      `${label(file)}: gifsicle failed (exit ${r.code}${
        r.timedOut ? ", timed out" : ""
      }); published unoptimised`,
      {
        stderr: tail(r.stderr, 300),
      },
    );
    return undefined;
  }
  return r.stdout;
}

/** Decodes a single-frame GIF to RGBA, or undefined for an animated one. */
export async function decodeStaticGif(
  input: Uint8Array,
): Promise<{ width: number; height: number; rgba: Uint8Array } | undefined> {
  const { GifReader } = await loadModule<typeof import("./_gif_reader.ts")>(
    "processors/_gif_reader.ts",
  );
  const reader = new GifReader(input);
  if (reader.numFrames() !== 1) return undefined;
  const rgba = new Uint8Array(reader.width * reader.height * 4);
  reader.decodeAndBlitFrameRGBA(0, rgba);
  return { width: reader.width, height: reader.height, rgba };
}

async function gifToPng(
  input: Uint8Array,
  level: number,
  signal: AbortSignal,
): Promise<Uint8Array | undefined> {
  const img = await decodeStaticGif(input);
  if (!img) return undefined;
  return await oxipng(
    { kind: "raw", rgba: img.rgba, width: img.width, height: img.height, level },
    signal,
  );
}

/** Cache tags: nothing better; smaller, same name; smaller, renamed to `.png`. */
const NO_GAIN = 0, SMALLER = 1, AS_PNG = 2;

async function optimiseImage(
  file: ProcessFile,
  ctx: ProcessContext,
  mode: Mode,
  processor: string,
) {
  const input = await readInput(file);
  const format = sniffImage(input);
  if (!format) {
    ctx.log.debug(`${label(file)}: not a PNG, JPEG or GIF; passed through`);
    return undefined;
  }
  const level = Number(ctx.options.level ?? "2");
  const tools = await detectTools(ctx.options, ctx.log, processor);
  // The result depends on the bytes, the mode, the options, oxipng and the tools found.
  const key = ctx.cache &&
    ResultCache.key([
      input,
      processor,
      JSON.stringify(ctx.options),
      JSON.stringify(tools),
      engineTag("oxipng"),
    ]);
  const hit = key ? await ctx.cache!.get(key) : undefined;
  if (hit) {
    if (hit.tag === NO_GAIN) return undefined;
    const cachedName = hit.tag === AS_PNG ? splitName(file.name).stem + ".png" : file.name;
    const result: ProcessResult = { path: await writeOutput(ctx, cachedName, hit.bytes) };
    if (cachedName !== file.name) result.name = cachedName;
    return result;
  }
  let out: Uint8Array | undefined;
  let name = file.name;
  // Only a result every step reached without a failure is worth remembering.
  let definitive = true;
  try {
    if (format === "png") out = await optimisePng(input, mode, level, ctx.signal);
    else if (format === "jpeg") {
      out = await optimiseJpeg(file, input, mode, tools, ctx);
      definitive &&= out !== undefined;
    } else {
      if (mode.allowRename) {
        const png = await gifToPng(input, level, ctx.signal);
        if (png && png.length < input.length) {
          out = png;
          name = splitName(file.name).stem + ".png";
        }
      }
      if (!out) {
        out = await gifsicle(file, input, mode, tools, ctx);
        definitive &&= out !== undefined;
      }
    }
  } catch (e) {
    if (ctx.signal.aborted) throw e;
    // A worker that crashed is not the image's fault: try again later.
    if (e instanceof ClassifiedError) {
      throw new ClassifiedError(
        `Cannot optimise ${label(file)}: ${e.message}`,
        e.kind,
        { cause: e },
      );
    }
    ctx.log.warn(
      `${label(file)}: cannot optimise ${format.toUpperCase()}: ${
        (e as Error).message
      }; published unoptimised`,
    );
    return undefined;
  }
  if (!out || out.length >= input.length) {
    ctx.log.debug(`${label(file)}: no gain; kept as is`, { bytes: input.length });
    if (key && definitive) await ctx.cache!.put(key, NO_GAIN);
    return undefined;
  }
  if (key && definitive) await ctx.cache!.put(key, name !== file.name ? AS_PNG : SMALLER, out);
  ctx.log.debug(`${label(file)}: ${input.length} → ${out.length} bytes`);
  const result: ProcessResult = { path: await writeOutput(ctx, name, out) };
  if (name !== file.name) result.name = name;
  return result;
}

function imageOptimizer(name: string, mode: Mode, summary: string): ProcessorDef {
  return {
    name,
    summary,
    extensions: [".png", ".jpg", ".jpeg", ".jpe", ".gif"],
    createsWorkDir: true,
    options: OPTIONS,
    async setup(ctx) {
      await Promise.all([checkWasm("oxipng"), detectTools(ctx.options, ctx.log, name)]);
    },
    process: (file, ctx) => optimiseImage(file, ctx, mode, name),
  };
}

/** `image_optimizer.Max`: strip metadata, GIF → PNG allowed. */
export const max: ProcessorDef = imageOptimizer(
  "image_optimizer.Max",
  { keepMetadata: false, allowRename: true },
  "Lossless PNG/JPEG/GIF optimisation; strips metadata; static GIFs become PNG when smaller.",
);

/** `image_optimizer.KeepMetadata`. */
export const keepMetadata: ProcessorDef = imageOptimizer(
  "image_optimizer.KeepMetadata",
  { keepMetadata: true, allowRename: true },
  "Lossless PNG/JPEG/GIF optimisation; keeps metadata; static GIFs become PNG when smaller.",
);

/** `image_optimizer.KeepFilename`. */
export const keepFilename: ProcessorDef = imageOptimizer(
  "image_optimizer.KeepFilename",
  { keepMetadata: false, allowRename: false },
  "Lossless PNG/JPEG/GIF optimisation; strips metadata; never renames.",
);

/** `image_optimizer.KeepMetadataAndFilename`. */
export const keepMetadataAndFilename: ProcessorDef = imageOptimizer(
  "image_optimizer.KeepMetadataAndFilename",
  { keepMetadata: true, allowRename: false },
  "Lossless PNG/JPEG/GIF optimisation; keeps metadata; never renames.",
);
