/**
 * `unique_filename.*`: make the published name change whenever the file
 * changes, so CDNs and browsers can cache it forever.
 *
 * - `unique_filename.Mtime`: `name_<int mtime of the ORIGINAL file>.ext`
 *   (`logo.gif` → `logo_1240668971.gif`), as the original.
 * - `unique_filename.MD5`: `name_<md5 hex of the ORIGINAL file>.ext`, as the
 *   original.
 * - `unique_filename.ContentHash`: `name_<hash of the content entering this
 *   processor>.ext`. Unlike the two above it changes when an earlier
 *   processor's output changes although the source did not, e.g. a
 *   stylesheet whose image URLs `link_updater.CSSURLUpdater` rewrote. In a
 *   per-server chain each server may therefore get its own name.
 *
 * Only the name changes; the content is not copied. The extension is the
 * last one (`a.min.js` → `a.min_<x>.js`); a name without one gets the
 * suffix at the end.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import * as fs from "node:fs/promises";
import type { ProcessFile, ProcessorDef } from "./processor.ts";
import { splitName } from "./_util.ts";

function withSuffix(name: string, suffix: string): string {
  const { stem, ext } = splitName(name);
  return `${stem}_${suffix}${ext}`;
}

async function hashFile(p: string, algorithm: string, signal: AbortSignal): Promise<string> {
  const h = createHash(algorithm);
  for await (const chunk of createReadStream(p, { signal })) h.update(chunk as Uint8Array);
  return h.digest("hex");
}

/** `unique_filename.Mtime`. */
export const mtime: ProcessorDef = {
  name: "unique_filename.Mtime",
  summary: "Appends the source file's modification time (whole seconds) to the name.",
  async process(file: ProcessFile) {
    const st = await fs.stat(file.originalPath);
    return { name: withSuffix(file.name, String(Math.floor(st.mtimeMs / 1000))) };
  },
};

/** `unique_filename.MD5`. */
export const md5: ProcessorDef = {
  name: "unique_filename.MD5",
  summary: "Appends the MD5 (hex) of the source file to the name.",
  async process(file, ctx) {
    return { name: withSuffix(file.name, await hashFile(file.originalPath, "md5", ctx.signal)) };
  },
};

/** `unique_filename.ContentHash`. */
export const contentHash: ProcessorDef = {
  name: "unique_filename.ContentHash",
  summary:
    "Appends a hash of the processed content to the name (changes when any earlier step's output changes).",
  options: [
    {
      name: "algorithm",
      help: "Hash function.",
      type: "enum",
      values: ["md5", "sha1", "sha256"],
      default: "sha256",
    },
    {
      name: "length",
      help: "Number of hex digits kept.",
      type: "integer",
      min: 6,
      max: 64,
      default: "16",
    },
  ],
  async process(file, ctx) {
    const algorithm = (ctx.options.algorithm ?? "sha256").toLowerCase();
    const length = Number(ctx.options.length ?? "16");
    const hex = await hashFile(file.path, algorithm, ctx.signal);
    return { name: withSuffix(file.name, hex.slice(0, length)) };
  },
};
