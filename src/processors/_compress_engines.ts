/**
 * The compress processor's engines: gzip and brotli from `node:zlib`, and
 * content types from `mime-types` (with its database of types). Loaded on
 * the first compressed file (`loadModule`): every start of the CLI registers
 * the processor, few configurations use it.
 *
 * @module
 */
import * as zlib from "node:zlib";
import { promisify } from "node:util";
import mime from "mime-types";

/** `node:zlib`'s constants (brotli parameters). */
export const constants: typeof zlib.constants = zlib.constants;

/** Gzip-compresses `data`. */
export const gzip: (data: Uint8Array, o: zlib.ZlibOptions) => Promise<Uint8Array> = promisify(
  zlib.gzip,
);

/** Brotli-compresses `data`. */
export const brotli: (data: Uint8Array, o: zlib.BrotliOptions) => Promise<Uint8Array> = promisify(
  zlib.brotliCompress,
);

/** The `Content-Type` of a file name (with charset for text), or false when unknown. */
export function contentType(name: string): string | false {
  return mime.contentType(name);
}
