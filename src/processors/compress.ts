/**
 * `compress.*`: precompressed variants for servers and CDNs that serve
 * `a.css.gz` / `a.css.br` next to `a.css` (nginx `gzip_static`,
 * `brotli_static`, many object stores behind a CDN).
 *
 * - `compress.Gzip` → `name.gz` (gzip level 9), `compress.Brotli` →
 *   `name.br` (quality 11), `compress.Both` → both.
 * - Each variant is an extra output with `Content-Encoding` (`gzip`, `br`)
 *   and the *original's* `Content-Type`.
 * - Only files whose extension is in `extensions` (default: text types) and
 *   at least `minSize` bytes (default 1024); a variant that is not smaller
 *   than the file is not published.
 * - `inplace="true"` (Gzip or Brotli only): the main output itself is
 *   replaced by the compressed bytes and sent with `Content-Encoding`, under
 *   its original name — how S3 + CloudFront serve compressed files. Every
 *   client must then accept that encoding.
 *
 * Put it last in the chain: the variants are made from the content at this
 * point, so a later processor that changes the content would leave them
 * stale (a later rename is followed: `runChain` renames the variants too).
 *
 * @module
 */
import { loadModule } from "../lazy.ts";
import type { OptionSpec } from "../options.ts";
import { isTrue } from "../options.ts";
import type {
  ExtraOutput,
  ProcessContext,
  ProcessFile,
  ProcessorDef,
  ProcessResult,
} from "./processor.ts";
import { extensionIn, label, parseExtensions, readInput, writeOutput } from "./_util.ts";

type Engines = typeof import("./_compress_engines.ts");

/** The engines, loaded on the first compressed file (see `_compress_engines.ts`). */
let engines: Promise<Engines> | undefined;

function loadEngines(): Promise<Engines> {
  engines ??= loadModule<Engines>("processors/_compress_engines.ts");
  return engines;
}

/** Extensions compressed by default: text formats that compress well. */
export const DEFAULT_COMPRESS_EXTENSIONS = [
  "css",
  "js",
  "mjs",
  "cjs",
  "map",
  "json",
  "webmanifest",
  "svg",
  "html",
  "htm",
  "xml",
  "rss",
  "atom",
  "txt",
  "md",
  "csv",
  "ics",
  "vtt",
  "wasm",
  "ttf",
  "otf",
  "eot",
  "ico",
];

type Encoding = "gzip" | "br";

const SUFFIX: Record<Encoding, string> = { gzip: ".gz", br: ".br" };

async function encode(data: Uint8Array, encoding: Encoding): Promise<Uint8Array> {
  const { constants, gzip, brotli } = await loadEngines();
  if (encoding === "gzip") return new Uint8Array(await gzip(data, { level: 9 }));
  return new Uint8Array(
    await brotli(data, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: 11,
        [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
      },
    }),
  );
}

const OPTIONS: readonly OptionSpec[] = [
  {
    name: "extensions",
    help: "Extensions to compress, separated by ':' or ','.",
    default: DEFAULT_COMPRESS_EXTENSIONS.join(":"),
  },
  {
    name: "minSize",
    help: "Smallest file (bytes) worth compressing.",
    type: "integer",
    min: 0,
    default: "1024",
  },
  {
    name: "inplace",
    help:
      "Replace the file itself by its compressed form (sent with Content-Encoding) instead of adding a variant.",
    type: "boolean",
    default: "false",
  },
];

async function compressFile(
  file: ProcessFile,
  ctx: ProcessContext,
  encodings: readonly Encoding[],
) {
  if (!extensionIn(file.name, parseExtensions(ctx.options.extensions))) return undefined;
  const input = await readInput(file);
  if (input.length < Number(ctx.options.minSize ?? "1024")) return undefined;
  const contentType = (await loadEngines()).contentType(file.name) || undefined;
  if (isTrue(ctx.options.inplace)) {
    const encoding = encodings[0]!;
    const out = await encode(input, encoding);
    if (out.length >= input.length) return undefined;
    const result: ProcessResult = {
      path: await writeOutput(ctx, file.name, out),
      contentEncoding: encoding,
    };
    return result;
  }
  const extras: ExtraOutput[] = [];
  for (const encoding of encodings) {
    const out = await encode(input, encoding);
    if (out.length >= input.length) {
      ctx.log.debug(`${label(file)}: ${encoding} is not smaller; no variant`);
      continue;
    }
    const name = file.name + SUFFIX[encoding];
    extras.push({
      name,
      path: await writeOutput(ctx, name, out),
      contentEncoding: encoding,
      ...(contentType ? { contentType } : {}),
    });
  }
  return extras.length > 0 ? { extras } : undefined;
}

function compressor(name: string, encodings: readonly Encoding[], summary: string): ProcessorDef {
  return {
    name,
    summary,
    createsWorkDir: true,
    options: OPTIONS,
    // deno-lint-ignore require-await
    async setup(ctx) {
      if (encodings.length > 1 && isTrue(ctx.options.inplace)) {
        throw new Error(
          `inplace="true" needs a single encoding: use compress.Gzip or compress.Brotli`,
        );
      }
    },
    process: (file, ctx) => compressFile(file, ctx, encodings),
  };
}

/** `compress.Gzip`. */
export const gzipCompressor: ProcessorDef = compressor(
  "compress.Gzip",
  ["gzip"],
  'Adds a gzip-compressed variant (name.gz), or compresses in place with inplace="true".',
);

/** `compress.Brotli`. */
export const brotliCompressor: ProcessorDef = compressor(
  "compress.Brotli",
  ["br"],
  'Adds a Brotli-compressed variant (name.br), or compresses in place with inplace="true".',
);

/** `compress.Both`. */
export const bothCompressor: ProcessorDef = compressor(
  "compress.Both",
  ["gzip", "br"],
  "Adds gzip and Brotli variants (name.gz, name.br).",
);
