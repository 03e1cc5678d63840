/**
 * Byte-level helpers for the image optimiser: format sniffing, PNG chunk
 * filtering and the EXIF orientation of PNG and JPEG files.
 *
 * @module
 */

/** Image formats the optimiser knows, detected from the first bytes. */
export type ImageFormat = "png" | "jpeg" | "gif";

/** Detects the format from the signature (the extension may lie). */
export function sniffImage(b: Uint8Array): ImageFormat | undefined {
  if (
    b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 &&
    b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a
  ) return "png";
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "jpeg";
  if (b.length >= 6 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x38) {
    return "gif";
  }
  return undefined;
}

/** One PNG chunk, as a view into the file's bytes. */
export interface PngChunk {
  type: string;
  /** Chunk data (without length, type and CRC). */
  data: Uint8Array;
  /** The whole chunk: length, type, data and CRC. */
  raw: Uint8Array;
}

/** Splits a PNG file into its chunks. Throws on a truncated file. */
export function pngChunks(b: Uint8Array): PngChunk[] {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: PngChunk[] = [];
  let i = 8;
  while (i + 12 <= b.length) {
    const len = view.getUint32(i);
    const end = i + 12 + len;
    if (end > b.length) throw new Error("Truncated PNG chunk");
    const type = String.fromCharCode(b[i + 4]!, b[i + 5]!, b[i + 6]!, b[i + 7]!);
    out.push({ type, data: b.subarray(i + 8, i + 8 + len), raw: b.subarray(i, end) });
    i = end;
    if (type === "IEND") break;
  }
  return out;
}

/** Whether a PNG is animated (APNG): it has an `acTL` chunk. */
export function isApng(chunks: readonly PngChunk[]): boolean {
  return chunks.some((c) => c.type === "acTL");
}

/**
 * Ancillary chunks kept when metadata is stripped: those that change how
 * the pixels look (colour management, transparency, significant bits) and
 * those of animated PNGs. Everything else ancillary — text (`tEXt`, `zTXt`,
 * `iTXt`), `tIME`, `pHYs`, `bKGD`, `hIST`, `sPLT`, `oFFs`, private chunks —
 * is metadata and goes. Critical chunks (upper-case first letter) always stay.
 */
const KEEP_WHEN_STRIPPING = new Set([
  "tRNS",
  "gAMA",
  "cHRM",
  "sRGB",
  "iCCP",
  "cICP",
  "mDCv",
  "cLLi",
  "sBIT",
  "acTL",
  "fcTL",
  "fdAT",
]);

/**
 * Removes metadata chunks from a PNG file. An `eXIf` chunk is kept when it
 * rotates or mirrors the image (orientation ≠ 1), since dropping it would
 * change how browsers show the picture.
 */
export function stripPngMetadata(b: Uint8Array, chunks = pngChunks(b)): Uint8Array {
  const kept = chunks.filter((c) => {
    const critical = c.type.charCodeAt(0) < 0x61; // upper case
    if (critical || KEEP_WHEN_STRIPPING.has(c.type)) return true;
    if (c.type === "eXIf") return (tiffOrientation(c.data) ?? 1) !== 1;
    return false;
  });
  if (kept.length === chunks.length) return b;
  const size = 8 + kept.reduce((n, c) => n + c.raw.length, 0);
  const out = new Uint8Array(size);
  out.set(b.subarray(0, 8));
  let o = 8;
  for (const c of kept) {
    out.set(c.raw, o);
    o += c.raw.length;
  }
  return out;
}

/** Names of the metadata chunks a PNG carries (for tests and logs). */
export function pngMetadataChunks(b: Uint8Array): string[] {
  return pngChunks(b).map((c) => c.type).filter((t) =>
    t.charCodeAt(0) >= 0x61 && !KEEP_WHEN_STRIPPING.has(t)
  );
}

/** The orientation tag (0x0112) of a TIFF/EXIF block, if present. */
export function tiffOrientation(t: Uint8Array): number | undefined {
  if (t.length < 8) return undefined;
  const le = t[0] === 0x49 && t[1] === 0x49;
  const be = t[0] === 0x4d && t[1] === 0x4d;
  if (!le && !be) return undefined;
  const view = new DataView(t.buffer, t.byteOffset, t.byteLength);
  const u16 = (o: number) => view.getUint16(o, le);
  const u32 = (o: number) => view.getUint32(o, le);
  const ifd = u32(4);
  if (ifd + 2 > t.length) return undefined;
  const n = u16(ifd);
  for (let k = 0; k < n; k++) {
    const e = ifd + 2 + k * 12;
    if (e + 12 > t.length) return undefined;
    if (u16(e) === 0x0112) return u16(e + 8);
  }
  return undefined;
}

/** The EXIF orientation of a JPEG file (APP1 "Exif" segment), if present. */
export function jpegOrientation(b: Uint8Array): number | undefined {
  let i = 2;
  while (i + 4 <= b.length) {
    if (b[i] !== 0xff) return undefined;
    const marker = b[i + 1]!;
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      i += 2;
      continue;
    }
    if (marker === 0xff) {
      i += 1;
      continue;
    }
    if (marker === 0xda || marker === 0xd9) return undefined; // image data: no more metadata
    const len = (b[i + 2]! << 8) | b[i + 3]!;
    if (
      marker === 0xe1 && len >= 8 && b[i + 4] === 0x45 && b[i + 5] === 0x78 && b[i + 6] === 0x69 &&
      b[i + 7] === 0x66 && b[i + 8] === 0 && b[i + 9] === 0
    ) {
      return tiffOrientation(b.subarray(i + 10, Math.min(b.length, i + 2 + len)));
    }
    i += 2 + len;
  }
  return undefined;
}
