/**
 * `unique_filename.*`: make the published name change whenever the file
 * changes, so CDNs and browsers can cache it forever.
 *
 * - `unique_filename.Mtime`: `name_<int mtime of the ORIGINAL file>.ext`
 *   (`logo.gif` → `logo_1240668971.gif`), as the original.
 * - `unique_filename.MD5`: `name_<md5 hex of the ORIGINAL file>.ext`, as the
 *   original.
 *
 * Both are cache-safe for files whose content embeds other files' URLs (a
 * stylesheet after `link_updater.CSSURLUpdater`): when an earlier processor
 * reported references, Mtime appends 8 hex digits of the MD5 of the content
 * entering it (`style_1240668971_0f3a9c1e.css`) and MD5 hashes that content
 * instead of the source. A referenced image that changes thus gives the
 * stylesheet a new name, and a cached copy of the old stylesheet keeps
 * pointing at the old image (kept for `keepReplaced` seconds).
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
import { openRegular } from "../util/regular_file.ts";
import * as fs from "node:fs/promises";
import type { ProcessFile, ProcessorDef } from "./processor.ts";
import { splitName } from "./_util.ts";

function withSuffix(name: string, suffix: string): string {
  const { stem, ext } = splitName(name);
  return `${stem}_${suffix}${ext}`;
}

async function hashFile(p: string, algorithm: string, signal: AbortSignal): Promise<string> {
  const h = createHash(algorithm);
  const fh = await openRegular(p);
  for await (const chunk of fh.createReadStream({ signal })) h.update(chunk as Uint8Array);
  return h.digest("hex");
}

/** Whether the content holds URLs of other files, so it changes when they do. */
function embedsUrls(file: ProcessFile): boolean {
  return (file.references?.length ?? 0) > 0 && file.path !== file.originalPath;
}

/** `unique_filename.Mtime`. */
export const mtime: ProcessorDef = {
  name: "unique_filename.Mtime",
  createsWorkDir: true,
  summary:
    "Appends the source file's modification time (whole seconds) to the name; plus a content hash when it embeds other files' URLs.",
  async process(file: ProcessFile, ctx) {
    const st = await fs.stat(file.originalPath);
    let suffix = String(Math.floor(st.mtimeMs / 1000));
    if (embedsUrls(file)) {
      suffix += "_" + (await hashFile(file.path, "md5", ctx.signal)).slice(0, 8);
    }
    return { name: withSuffix(file.name, suffix) };
  },
};

/** `unique_filename.MD5`. */
export const md5: ProcessorDef = {
  name: "unique_filename.MD5",
  createsWorkDir: true,
  summary:
    "Appends the MD5 (hex) of the source file to the name; of the processed content when it embeds other files' URLs.",
  async process(file, ctx) {
    const hashed = embedsUrls(file) ? file.path : file.originalPath;
    return { name: withSuffix(file.name, await hashFile(hashed, "md5", ctx.signal)) };
  },
};

/** `unique_filename.ContentHash`. */
export const contentHash: ProcessorDef = {
  name: "unique_filename.ContentHash",
  createsWorkDir: true,
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
