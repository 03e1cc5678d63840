/**
 * Hashes of files and values.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { openRegular, readRegularSync } from "./regular_file.ts";

/** Files up to this size are read synchronously in one call: a thread hop costs more. */
const SYNC_READ = 256 * 1024;

/** Files up to this size are read in one asynchronous call; larger ones in bounded chunks. */
const ONE_READ = 4 * 1024 * 1024;

/** Chunk size of the bounded read. */
const CHUNK = 1024 * 1024;

/**
 * MD5 (hex) of a file. `sizeHint` saves a stat when the caller knows the
 * size. Memory stays bounded for big files.
 *
 * @example
 * ```ts
 * import { md5File } from "./hash.ts";
 * const p = await Deno.makeTempFile();
 * await Deno.writeTextFile(p, "abc");
 * await md5File(p); // "900150983cd24fb0d6963f7d28e17f72"
 * ```
 */
export async function md5File(p: string, signal?: AbortSignal, sizeHint?: number): Promise<string> {
  signal?.throwIfAborted();
  const h = createHash("md5");
  if (sizeHint !== undefined && sizeHint <= SYNC_READ) {
    return h.update(readRegularSync(p).data).digest("hex");
  }
  const fh = await openRegular(p);
  try {
    if ((sizeHint ?? (await fh.stat()).size) <= ONE_READ) {
      return h.update(new Uint8Array(await fh.readFile(signal ? { signal } : {}))).digest("hex");
    }
    const buf = Buffer.allocUnsafe(CHUNK);
    let pos = 0;
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return h.digest("hex");
  } finally {
    await fh.close();
  }
}

/** Short stable hash of a value (chain signatures). */
export function signature(value: unknown): string {
  return createHash("sha1").update(JSON.stringify(value)).digest("hex").slice(0, 16);
}
