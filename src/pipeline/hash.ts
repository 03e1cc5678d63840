/**
 * Streaming MD5 of a file.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";

/** MD5 (hex) of a file, read as a stream. */
export async function md5File(p: string, signal?: AbortSignal): Promise<string> {
  const h = createHash("md5");
  const stream = createReadStream(p, signal ? { signal } : {});
  for await (const chunk of stream) h.update(chunk as Uint8Array);
  return h.digest("hex");
}

/** Short stable hash of a value (chain signatures). */
export function signature(value: unknown): string {
  return createHash("sha1").update(JSON.stringify(value)).digest("hex").slice(0, 16);
}
