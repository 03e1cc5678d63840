/**
 * The upload flow of the file-system-like network transports (sftp, ftp):
 * write to a temp name in the target's directory, check what was stored,
 * then rename the temp file over the target, so that readers see the old
 * content or the new, never a part. The protocol work is the transport's;
 * the order, the one retry and the clean-up are here.
 *
 * @module
 */
import * as path from "node:path";
import { tempName } from "./paths.ts";

/** The protocol steps of one upload, on one connection. */
export interface TempRenameSteps<W> {
  /** Makes sure `dir` exists (a transport may answer from its cache). */
  ensureDir(dir: string): Promise<void>;
  /** Writes the whole content to `tmp`; what it returns goes to `verify`. */
  write(tmp: string): Promise<W>;
  /**
   * Whether a failed write means that the directory is gone (removed behind
   * the transport's back, or pruned by a delete since it was checked).
   * Asked before `forgetDirs`.
   */
  dirGone(err: unknown): boolean;
  /** Forgets the directories the transport knows to exist. */
  forgetDirs(): void;
  /** Checks what the server stored at `tmp` (throws when wrong); returns the size. */
  verify(tmp: string, written: W): Promise<number>;
  /** Renames `tmp` over `target`, replacing it. */
  rename(tmp: string, target: string): Promise<void>;
  /** Removes `tmp` after a failure, where the connection still can; errors are ignored. */
  removeTemp(tmp: string): Promise<void>;
}

/**
 * Uploads to `target` (a full remote path) through a temp name next to it.
 * A write that finds the directory gone re-creates it and is tried once
 * more. Any failure removes the temp file and is thrown as it came; an
 * aborted `signal` stops the upload before the rename. Returns the size
 * `verify` reported.
 *
 * @example
 * ```ts ignore
 * const size = await uploadViaTemp("site/a.css", signal, {
 *   ensureDir: (dir) => mkdirp(dir),
 *   write: (tmp) => send(localFile, tmp),
 *   dirGone: (err) => isNoSuchFile(err),
 *   forgetDirs: () => knownDirs.clear(),
 *   verify: (tmp, sent) => statSize(tmp).then((n) => check(n, sent)),
 *   rename: (tmp, target) => renameOver(tmp, target),
 *   removeTemp: (tmp) => remove(tmp),
 * });
 * ```
 */
export async function uploadViaTemp<W>(
  target: string,
  signal: AbortSignal,
  steps: TempRenameSteps<W>,
): Promise<number> {
  const dir = path.posix.dirname(target);
  const tmp = tempName(target);
  try {
    await steps.ensureDir(dir);
    let written: W;
    try {
      written = await steps.write(tmp);
    } catch (err) {
      if (!steps.dirGone(err)) throw err;
      steps.forgetDirs();
      await steps.ensureDir(dir);
      written = await steps.write(tmp);
    }
    const size = await steps.verify(tmp, written);
    signal.throwIfAborted();
    await steps.rename(tmp, target);
    return size;
  } catch (err) {
    await steps.removeTemp(tmp).catch(() => {});
    throw err;
  }
}
