/**
 * How the nodes of a fleet name what they share: the node itself, a job's
 * key in the shared store, and the fingerprint of a file's content that
 * nodes compare to tell whether another node's record is of the same
 * content.
 *
 * @module
 */
import type { SharedKey } from "../store/shared/types.ts";
import type { Job } from "../store/store.ts";

/** The node's name: the setting, or the host name. */
export function nodeName(setting: string | undefined): string {
  return setting ?? Deno.hostname();
}

/** The fingerprint of a file's content that nodes compare: `size:mtime_ms:md5`. */
export function fingerprint(size: number, mtimeMs: number, md5: string): string {
  return `${size}:${Math.trunc(mtimeMs)}:${md5}`;
}

/** The key of a job in the shared store. */
export function keyOf(job: Job, server: string): SharedKey {
  return { input_file: job.input_file, server, dest: job.dest };
}
