/**
 * A module's source as a `data:` URL, to start a Worker from code that is
 * not a file of its own (a single-file bundle embeds its workers' code).
 *
 * Not a `blob:` URL: an executable made by `deno compile` loads only the
 * modules it embeds and `data:` URLs, so a worker started from a `blob:`
 * URL fails there with "Module not found" (denoland/deno#18327, #23431).
 * A `data:` URL works there and under `deno run` alike, and names the same
 * code with the same URL at every start.
 *
 * @module
 */
import { Buffer } from "node:buffer";

/** `source` (JavaScript) as a `data:` URL. */
export function moduleDataUrl(source: string): string {
  return `data:application/javascript;base64,${Buffer.from(source, "utf8").toString("base64")}`;
}
