/**
 * How the nodes of a fleet name what they share: the node itself, a job's
 * key in the shared store, and the fingerprint of a file's content that
 * nodes compare to tell whether another node's record is of the same
 * content; and when a node may take another node's fingerprint of a file
 * on a shared folder without reading the file — from its mirror of the
 * record ({@linkcode vouchedMd5}), or from the claim itself, which asks
 * with the file's stat ({@linkcode statAsk}) when its content was not read
 * ({@linkcode unreadFingerprint}).
 *
 * @module
 */
import { statVouches } from "../store/shared/_keys.ts";
import type { SharedKey, StatAsk } from "../store/shared/types.ts";
import type { Job } from "../store/store.ts";
import { RACY_MS } from "../watch/_stat.ts";
import type { Fingerprint } from "./plan.ts";

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

/** A file's stat identity as records share it: `size:mtime_ms:ctime_ms:ino`. */
export function statId(stat: Fingerprint): string {
  return `${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}:${stat.ino}`;
}

/**
 * What a claim asks with for a file whose content this node did not read:
 * its stat identity and racy bound, so the shared store answers "done" when
 * a record vouches for the file as {@linkcode vouchedMd5} would. Undefined
 * for a job a watcher saw written (`force` not 0): its content is compared.
 */
export function statAsk(stat: Fingerprint, force: number): StatAsk | undefined {
  if (force !== 0) return undefined;
  return { id: statId(stat), after: Math.max(stat.mtimeMs, stat.ctimeMs) + RACY_MS };
}

/**
 * The fingerprint a claim asks with when the file's MD5 is not known: no
 * record holds it (five parts; a record's has three), so only the stat asked
 * with ({@linkcode statAsk}) can make the claim "done"; it names the whole
 * stat, so an answer claimed ahead serves only the file as it was then.
 */
export function unreadFingerprint(stat: Fingerprint): string {
  return `${statId(stat)}:unread`;
}

/**
 * Whether another node's record may be of this file's content although it
 * names another stat (an identical copy on another machine): its
 * fingerprint names the same size and mtime. Only reading the file tells.
 */
export function mayBeCopy(record: { fingerprint: string }, stat: Fingerprint): boolean {
  return record.fingerprint.startsWith(`${stat.size}:${Math.trunc(stat.mtimeMs)}:`);
}

/**
 * The MD5 of a file's content that another node's record of it vouches
 * for, or undefined when the file must be read. The rule is the one a
 * single node applies to its own record (rsync's quick check, with git's
 * "racily clean"): the record's stat, taken before and after the uploading
 * node read the file, equals the stat here (same shared mount: same inode
 * and change time), the job was found by a scan (`force` 0: a watcher that
 * saw a write makes a single node compare content too), and the file's
 * mtime and ctime were more than {@linkcode RACY_MS} older than the record
 * (a rewrite within the same clock tick keeps size, mtime and ctime).
 */
export function vouchedMd5(
  record: { fingerprint: string; source_stat?: string | undefined; synced_at: number },
  stat: Fingerprint,
  force: number,
): string | undefined {
  // The rule the shared store applies to a claim asked with the stat (`statVouches`).
  if (!statVouches(record, statAsk(stat, force))) return undefined;
  const head = `${stat.size}:${Math.trunc(stat.mtimeMs)}:`;
  if (!record.fingerprint.startsWith(head)) return undefined;
  const md5 = record.fingerprint.slice(head.length);
  return /^[0-9a-f]{32}$/.test(md5) ? md5 : undefined;
}
