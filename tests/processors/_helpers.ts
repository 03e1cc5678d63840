/**
 * Helpers for processor tests: the fixture site, processor references with
 * defaults applied, a chain runner with a fake `lookupUrl`, and pixel
 * decoders (PNG: fast-png, GIF: omggif, JPEG: djpeg).
 *
 * @module
 */
import "../../src/processors/mod.ts";
// @ts-types="@types/omggif"
import { GifReader } from "omggif";
import { decode as decodePng } from "fast-png";
import { Buffer } from "node:buffer";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { ProcessorRef } from "../../src/config/types.ts";
import { checkOptions } from "../../src/options.ts";
import { type ChainOutput, runChain } from "../../src/processors/chain.ts";
import { getProcessorDef, type SourceInfo } from "../../src/processors/processor.ts";

/** The fixture document root. */
export const SITE = fs.realpathSync(path.resolve(import.meta.dirname!, "..", "testdata", "site"));
/** The fixture source's scanPath (served under the basePath `/shop/`). */
export const SHOP = path.join(SITE, "shop");

/** The fixture source: documentRoot = site, basePath = /shop/ (physical). */
export const SHOP_SOURCE: SourceInfo = {
  name: "shop",
  scanPath: SHOP,
  documentRoot: SITE,
  basePath: "/shop/",
};

/** A processor reference as the config loader would build it. */
export function ref(name: string, raw: Record<string, string> = {}): ProcessorRef {
  const def = getProcessorDef(name);
  if (!def) throw new Error(`No processor "${name}"`);
  const { values, problems } = checkOptions(def.options ?? [], raw);
  if (problems.length > 0) throw new Error(problems.map((p) => p.message).join("; "));
  return { name, def, options: values };
}

/** A fresh temporary directory, removed by the returned function. */
export function tempDir(prefix = "fc-proc-"): { dir: string; cleanup: () => void } {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Fake `lookupUrl`: every existing file of the site is "synced" at `base + path relative to SITE`. */
export function cdnLookup(base = "https://cdn.example.com/", except: readonly string[] = []) {
  return (file: string): string | undefined => {
    if (except.includes(file)) return undefined;
    if (!file.startsWith(SITE + path.sep)) return undefined;
    return base + path.relative(SITE, file).split(path.sep).map(encodeURIComponent).join("/");
  };
}

/** Options of {@linkcode run}. */
export interface RunOptions {
  source?: SourceInfo;
  server?: string;
  lookupUrl?: (file: string) => string | undefined;
  workDir?: string;
}

/** Runs `processors` on `file` (absolute) with a fresh work directory; returns the output and its bytes. */
export async function run(
  processors: ProcessorRef | ProcessorRef[],
  file: string,
  options: RunOptions = {},
): Promise<ChainOutput & { bytes: Uint8Array; workDir: string }> {
  const source = options.source ?? SHOP_SOURCE;
  const workDir = options.workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "fc-chain-"));
  const rel = path.relative(source.scanPath, path.dirname(file)).split(path.sep).join("/");
  const out = await runChain({
    originalPath: file,
    relDir: rel,
    name: path.basename(file),
    source,
    ...(options.server ? { server: options.server } : {}),
    processors: Array.isArray(processors) ? processors : [processors],
    workDir,
    signal: new AbortController().signal,
    lookupUrl: options.lookupUrl ?? cdnLookup(),
  });
  return { ...out, bytes: new Uint8Array(fs.readFileSync(out.path)), workDir };
}

/** RGBA pixels of an image. */
export interface Rgba {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Decodes a PNG (any colour type and depth ≤ 8) to 8-bit RGBA. */
export function pngToRgba(bytes: Uint8Array): Rgba {
  const img = decodePng(bytes);
  const { width, height, channels, depth } = img;
  const src = img.data;
  const out = new Uint8Array(width * height * 4);
  const scale = (v: number) =>
    depth === 16
      ? v >> 8
      : depth < 8 && !img.palette
      ? Math.round(v * 255 / ((1 << depth) - 1))
      : v;
  const trns = (img as { transparency?: number[] }).transparency;
  for (let i = 0; i < width * height; i++) {
    let r: number, g: number, b: number, a = 255;
    if (img.palette) {
      // Indices below 8 bits are packed, most significant bits first, rows padded to a byte.
      let idx = src[i]!;
      if (depth < 8) {
        const x = i % width, y = Math.floor(i / width);
        const bit = x * depth;
        const byte = src[y * Math.ceil(width * depth / 8) + (bit >> 3)]!;
        idx = (byte >> (8 - depth - (bit & 7))) & ((1 << depth) - 1);
      }
      const entry = img.palette[idx]!;
      [r, g, b] = entry as [number, number, number];
      a = entry.length > 3 ? entry[3]! : 255;
    } else if (channels === 1 || channels === 2) {
      r = g = b = scale(src[i * channels]!);
      if (channels === 2) a = scale(src[i * 2 + 1]!);
      else if (trns && src[i] === trns[0]) a = 0;
    } else {
      r = scale(src[i * channels]!);
      g = scale(src[i * channels + 1]!);
      b = scale(src[i * channels + 2]!);
      if (channels === 4) a = scale(src[i * 4 + 3]!);
      else if (
        trns && src[i * 3] === trns[0] && src[i * 3 + 1] === trns[1] && src[i * 3 + 2] === trns[2]
      ) a = 0;
    }
    out.set([r, g, b, a], i * 4);
  }
  return { width, height, data: out };
}

/**
 * Decodes every frame of a GIF as a browser shows it: composited on the
 * canvas with each frame's disposal method. Fully transparent pixels are
 * normalised to 0,0,0,0.
 */
export function gifFrames(bytes: Uint8Array): Rgba[] {
  const reader = new GifReader(bytes);
  const { width, height } = reader;
  const canvas = new Uint8Array(width * height * 4);
  const frames: Rgba[] = [];
  for (let f = 0; f < reader.numFrames(); f++) {
    const info = reader.frameInfo(f);
    const before = canvas.slice();
    reader.decodeAndBlitFrameRGBA(f, canvas);
    const shown = canvas.slice();
    for (let i = 0; i < shown.length; i += 4) if (shown[i + 3] === 0) shown.set([0, 0, 0, 0], i);
    frames.push({ width, height, data: shown });
    if (info.disposal === 2) {
      for (let y = info.y; y < info.y + info.height; y++) {
        canvas.fill(0, (y * width + info.x) * 4, (y * width + info.x + info.width) * 4);
      }
    } else if (info.disposal === 3) canvas.set(before);
  }
  return frames;
}

/** RGBA with fully transparent pixels normalised (their colour is invisible). */
export function normaliseAlpha(img: Rgba): Rgba {
  const data = img.data.slice();
  for (let i = 0; i < data.length; i += 4) if (data[i + 3] === 0) data.set([0, 0, 0, 0], i);
  return { ...img, data };
}

/** Decodes a JPEG with libjpeg-turbo's `djpeg` (PPM/PGM bytes). */
export function djpeg(bytes: Uint8Array): Uint8Array {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fc-djpeg-"));
  try {
    const f = path.join(dir, "in.jpg");
    fs.writeFileSync(f, bytes);
    const out = new Deno.Command("djpeg", { args: ["-pnm", f], stdout: "piped", stderr: "piped" })
      .outputSync();
    if (out.code !== 0) throw new Error(`djpeg failed: ${new TextDecoder().decode(out.stderr)}`);
    return out.stdout;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Whether a JPEG has an APP1 Exif segment. */
export function jpegHasExif(bytes: Uint8Array): boolean {
  return Buffer.from(bytes).includes(Buffer.from("Exif\0\0", "latin1"));
}

/** Whether a JPEG is progressive (SOF2 marker). */
export function jpegIsProgressive(bytes: Uint8Array): boolean {
  for (let i = 2; i + 3 < bytes.length;) {
    if (bytes[i] !== 0xff) return false;
    const m = bytes[i + 1]!;
    if (m === 0xc2) return true;
    if (m === 0xc0 || m === 0xc1 || m === 0xda) return false;
    i += 2 + ((bytes[i + 2]! << 8) | bytes[i + 3]!);
  }
  return false;
}
