/**
 * `symlink_or_copy`: a local folder. Unprocessed files (still inside a
 * source tree) become symlinks to the original; processed files are copied.
 * Every write is atomic: a temp name in the same directory, then rename.
 * Made for origin-pull CDNs and local processing.
 *
 * @module
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { closeSync, createWriteStream, readSync } from "node:fs";
import process from "node:process";
import { pipeline } from "node:stream/promises";
import { openRegular, openRegularSync } from "../util/regular_file.ts";
import { readRegularNative } from "../util/_native_read.ts";
import { ClassifiedError, classify, errorMessage, SourceChanged } from "../errors.ts";
import { md5File } from "../util/hash.ts";
import { isTempName, joinUrl, safeRemotePath, tempName } from "./paths.ts";
import {
  type CallOptions,
  type Lister,
  type Mover,
  type PutOptions,
  type PutResult,
  registerTransport,
  type RemoteStat,
  type Stater,
  type StatOptions,
  type Transport,
  type TransportContext,
} from "./transport.ts";
import { type OptionSpec, type OptionValues, parseSettings } from "../options.ts";

const OPTIONS = [
  {
    name: "location",
    required: true,
    type: "path",
    help: "Destination folder (created if missing)",
  },
  { name: "url", required: true, type: "string", help: "Public base URL of that folder" },
  {
    name: "symlinkWithin",
    type: "string",
    help:
      "Extra colon-separated folders whose files may be symlinked (every scanPath is included automatically)",
  },
  { name: "copy", type: "boolean", default: "false", help: "Always copy, never symlink" },
] as const satisfies readonly OptionSpec[];

class SymlinkOrCopy implements Transport, Stater, Lister, Mover {
  readonly #root: string;
  readonly #url: string;
  readonly #within: readonly string[];
  readonly #server: string;
  readonly #alwaysCopy: boolean;
  /** Directories known to exist (cleared when a delete removes directories). */
  readonly #dirs = new Set<string>();

  constructor(values: OptionValues, ctx: TransportContext) {
    const settings = parseSettings(OPTIONS, values);
    this.#root = path.resolve(settings.location);
    this.#url = settings.url;
    const extra = (settings.symlinkWithin ?? "").split(":").filter(Boolean);
    this.#within = [...ctx.sourceRoots, ...extra];
    this.#server = ctx.serverName;
    this.#alwaysCopy = settings.copy;
  }

  #abs(remotePath: string): string {
    const p = path.join(this.#root, safeRemotePath(remotePath));
    if (!p.startsWith(this.#root + path.sep)) {
      throw new ClassifiedError(`Unsafe remote path ${JSON.stringify(remotePath)}`, "fatal");
    }
    return p;
  }

  #fail(action: string, remotePath: string, err: unknown): never {
    if (err instanceof ClassifiedError) throw err;
    const code = (err as { code?: string }).code;
    const kind = code === "ENOSPC" || code === "EROFS" || code === "EDQUOT"
      ? "server"
      : classify(err);
    throw new ClassifiedError(
      `Cannot ${action} "${remotePath}" ${
        action === "upload" ? "to" : "on"
      } server "${this.#server}": ${withCode(errorMessage(err), code)}`,
      kind,
      { cause: err },
    );
  }

  #linkable(localPath: string): boolean {
    if (this.#alwaysCopy) return false;
    return this.#within.some((r) => localPath.startsWith(r.endsWith(path.sep) ? r : r + path.sep));
  }

  async put(localPath: string, remotePath: string, options: PutOptions): Promise<PutResult> {
    const dst = this.#abs(remotePath);
    const dir = path.dirname(dst);
    // A missing folder (removed behind the daemon's back, or emptied and pruned by a delete
    // running at the same time, which can happen again between mkdir and write) is created
    // again, a few times.
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#putOnce(localPath, dst, dir, remotePath, options);
      } catch (err) {
        if (attempt >= 4 || !isMissingDir(err)) this.#fail("upload", remotePath, err);
        this.#dirs.delete(dir);
      }
    }
  }

  async #putOnce(
    localPath: string,
    dst: string,
    dir: string,
    remotePath: string,
    options: PutOptions,
  ): Promise<PutResult> {
    const tmp = path.join(dir, tempName(path.basename(dst)));
    // Small files with synchronous calls: each async call is a hop to a thread and back,
    // which costs more than the work itself (a few microseconds on a local disk).
    const small = options.size <= SMALL_FILE;
    try {
      if (!this.#dirs.has(dir)) {
        if (small) Deno.mkdirSync(dir, { recursive: true });
        else await fs.mkdir(dir, { recursive: true });
        this.#dirs.add(dir);
      }
      let md5: string | undefined;
      let copied: number;
      if (options.unprocessed && this.#linkable(localPath)) {
        if (small) replacing(tmp, () => Deno.symlinkSync(localPath, tmp));
        else await fs.symlink(localPath, tmp);
        copied = options.size;
      } else if (small) {
        // Read once: the copy and its MD5 (which the pipeline then need not compute).
        const { data, mode } = readSmall(localPath, options.size);
        // createNew: never write through a leftover temp symlink (to a source file). The mode
        // the process's umask gives a new file anyway needs no chmod of its own.
        const write = mode === CREATED_MODE ? { createNew: true } : { mode, createNew: true };
        replacing(tmp, () => Deno.writeFileSync(tmp, data, write));
        md5 = createHash("md5").update(data).digest("hex");
        copied = data.byteLength;
      } else {
        // A leftover temp file (or symlink) of an interrupted upload goes first: never written through.
        await fs.rm(tmp, { force: true });
        copied = await copyRegular(localPath, tmp);
      }
      if (copied !== options.size) {
        throw new SourceChanged(
          `Cannot upload "${remotePath}" to server "${this.#server}": the local file changed ` +
            `while copying (copied ${copied} bytes, expected ${options.size})`,
        );
      }
      options.signal.throwIfAborted();
      try {
        if (small) Deno.renameSync(tmp, dst);
        else await fs.rename(tmp, dst);
      } catch (err) {
        // An empty directory where the file goes (left by a file replaced by a directory
        // and back, while its last file's delete is under way) holds nothing: replace it.
        if (!(await fs.rmdir(dst).then(() => true, () => false))) throw err;
        await fs.rename(tmp, dst);
      }
      return { size: options.size, ...(md5 ? { md5 } : {}) };
    } catch (err) {
      await fs.rm(tmp, { force: true }).catch(() => {});
      throw err;
    }
  }

  async delete(remotePath: string, _options: CallOptions): Promise<void> {
    const dst = this.#abs(remotePath);
    try {
      await fs.rm(dst, { force: true });
    } catch (err) {
      // A file where a parent directory was (a directory replaced by a file): nothing below.
      if ((err as { code?: string }).code === "ENOTDIR") return;
      // A directory there now (the file was replaced by one): the file is gone already.
      if ((await fs.lstat(dst).catch(() => undefined))?.isDirectory()) return;
      this.#fail("delete", remotePath, err);
    }
    await this.#pruneParents(dst);
  }

  async move(from: string, to: string, _options: CallOptions): Promise<void> {
    const src = this.#abs(from);
    const dst = this.#abs(to);
    // A symlink points at the old source path: the caller must link the new one instead.
    if ((await fs.lstat(src).catch(() => undefined))?.isSymbolicLink()) {
      throw new ClassifiedError(
        `Cannot move symlink "${from}" on server "${this.#server}": link the new path instead`,
        "retry",
      );
    }
    try {
      await fs.mkdir(path.dirname(dst), { recursive: true });
      await fs.rename(src, dst);
    } catch (err) {
      this.#fail("move", from, err);
    }
    await this.#pruneParents(src);
  }

  /**
   * Removes the directories that deleting or moving away `file` left empty,
   * innermost first, up to (not including) the root. rmdir refuses a
   * directory that holds anything, so directories with other files stay; a
   * directory that is gone already is passed over.
   */
  async #pruneParents(file: string): Promise<void> {
    let dir = path.dirname(file);
    while (dir.startsWith(this.#root + path.sep)) {
      try {
        await fs.rmdir(dir);
        this.#dirs.clear();
      } catch (err) {
        // A directory removed already (by hand, or by another delete) may have left its parent
        // empty: go on up. Anything else (not empty, not ours to remove) ends the pruning.
        if ((err as { code?: string }).code !== "ENOENT") break;
      }
      dir = path.dirname(dir);
    }
  }

  async stat(remotePath: string, options: StatOptions): Promise<RemoteStat | null> {
    const abs = this.#abs(remotePath);
    try {
      const st = await fs.stat(abs);
      // A link's MD5 is its target's: the content a reader of the folder gets.
      const md5 = options.md5 && st.isFile()
        ? { md5: await md5File(abs, options.signal, st.size) }
        : {};
      return { size: st.size, mtimeMs: st.mtimeMs, ...md5 };
    } catch (err) {
      if ((err as { code?: string }).code === "ENOENT") return null;
      this.#fail("stat", remotePath, err);
    }
  }

  async *list(prefix: string, _options: CallOptions): AsyncIterable<{ path: string } & RemoteStat> {
    const base = prefix ? this.#abs(prefix) : this.#root;
    const stack = [base];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      let entries;
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch {
        continue;
      }
      for (const e of entries) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) stack.push(p);
        else {
          const st = await fs.stat(p).catch(() => undefined);
          const rel = path.relative(this.#root, p).split(path.sep).join("/");
          if (isTempName(e.name)) continue;
          yield { path: rel, size: st?.size ?? -1, ...(st ? { mtimeMs: st.mtimeMs } : {}) };
        }
      }
    }
  }

  url(remotePath: string): string {
    return joinUrl(this.#url, remotePath);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Runs `create` (which fails when `p` exists); a leftover at `p` is removed first. */
function replacing(p: string, create: () => void): void {
  try {
    create();
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    Deno.removeSync(p);
    create();
  }
}

/** Files up to this size are copied with synchronous calls. */
const SMALL_FILE = 256 * 1024;

/** The permission bits of a file created without a mode (0666 less the umask). */
const CREATED_MODE = 0o666 & ~process.umask();

/**
 * Reads a whole (small) file and its permission bits. Reads at most
 * `expected` + 1 bytes: a file that grew is a size mismatch, found without
 * reading on (bounded even while something keeps appending). Stops once it
 * has `expected` bytes, without a read that finds the end: a file that
 * changed size after the job's stat is found by the check that follows the
 * transfer (its size and time against that stat).
 */
function readSmall(p: string, expected: number): { data: Uint8Array; mode: number } {
  // The C library's calls where they answer (a fraction of node:fs's cost per file); node:fs
  // otherwise, and for every failure, so errors and refusals are reported as before.
  const native = readRegularNative(p, expected);
  if (native) return native;
  const { fd, stat } = openRegularSync(p);
  try {
    const data = new Uint8Array(expected + 1);
    let n = 0;
    while (n < data.length) {
      const r = readSync(fd, data, n, data.length - n, null);
      if (r === 0) break;
      n += r;
      if (n === expected) break;
    }
    return { data: data.subarray(0, n), mode: stat.mode & 0o7777 };
  } finally {
    closeSync(fd);
  }
}

/** Copies a (large) regular file to a new file `to`; returns the bytes written. */
async function copyRegular(from: string, to: string): Promise<number> {
  const src = await openRegular(from);
  let n = 0;
  const counted = src.createReadStream();
  counted.on("data", (c) => (n += (c as Uint8Array).length));
  await pipeline(counted, createWriteStream(to, { flags: "wx" }));
  return n;
}

registerTransport({
  name: "symlink_or_copy",
  aliases: ["none", "local"],
  summary:
    "A local folder: symlinks to unprocessed files, copies of processed ones (origin-pull CDNs)",
  options: OPTIONS,
  // A small file is copied (or linked) synchronously in well under a millisecond: a pick and
  // a record commit per slot's worth of files would cost more than the copies.
  pickPerSlot: 8,
  storedMd5: true,
  create(settings, ctx) {
    return Promise.resolve(new SymlinkOrCopy(settings, ctx));
  },
});

/** Adds the error code (EISDIR, ENOSPC, …) when the message does not name it. */
function withCode(message: string, code: string | undefined): string {
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

/** A write that failed because a folder on its path is gone. */
function isMissingDir(err: unknown): boolean {
  if (err instanceof ClassifiedError) return false;
  const e = err as { code?: string; name?: string };
  return e.code === "ENOENT" || e.name === "NotFound";
}
