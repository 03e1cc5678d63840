/**
 * Content types of uploads, guessed from the remote name. Its own module so
 * that mime-types (and its database of types) is loaded with the transports
 * that send a Content-Type, not by every start of the CLI.
 *
 * @module
 */
import mime from "mime-types";
import type { PutOptions } from "./transport.ts";

/**
 * Content-Type for an upload: the pipeline's value; else guessed from the
 * remote name (text types get `; charset=utf-8`), ignoring a `.gz`/`.br`/
 * `.zst` suffix when a Content-Encoding is given (a precompressed variant
 * has the original's type); else `application/octet-stream`.
 *
 * @example
 * ```ts
 * import { contentTypeFor } from "./_content_type.ts";
 * contentTypeFor("css/a.css", {}); // "text/css; charset=utf-8"
 * contentTypeFor("css/a.css.gz", { contentEncoding: "gzip" }); // "text/css; charset=utf-8"
 * ```
 */
export function contentTypeFor(
  remotePath: string,
  options: Pick<PutOptions, "contentType" | "contentEncoding">,
): string {
  if (options.contentType) return options.contentType;
  let base = remotePath.slice(remotePath.lastIndexOf("/") + 1);
  if (options.contentEncoding) base = base.replace(/\.(gz|br|zst)$/i, "");
  const dot = base.lastIndexOf(".");
  const ext = dot >= 0 ? base.slice(dot).toLowerCase() : "";
  let type = TYPES.get(ext);
  if (type === undefined) {
    type = (ext && mime.contentType(ext)) || "application/octet-stream";
    if (TYPES.size < 1000) TYPES.set(ext, type);
  }
  return type;
}

/** Content types by extension, as looked up (the lookup costs more than the upload's signing). */
const TYPES = new Map<string, string>();
