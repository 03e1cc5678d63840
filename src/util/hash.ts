/**
 * Streaming MD5 of a file.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";

/** MD5 (hex) of a file; `sizeHint` saves a stat when the caller knows the size. */
export async function md5File(p: string, signal?: AbortSignal, sizeHint?: number): Promise<string> {
  const h = createHash("md5");
  // Small files in one read: a stream costs more than the hashing.
  const size = sizeHint ?? (await Deno.stat(p)).size;
  if (size < 4 * 1024 * 1024) {
    return h.update(await Deno.readFile(p, signal ? { signal } : {})).digest("hex");
  }
  const stream = createReadStream(p, signal ? { signal } : {});
  for await (const chunk of stream) h.update(chunk as Uint8Array);
  return h.digest("hex");
}

/** Short stable hash of a value (chain signatures). */
export function signature(value: unknown): string {
  return createHash("sha1").update(JSON.stringify(value)).digest("hex").slice(0, 16);
}
