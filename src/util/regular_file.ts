/**
 * Opening a source file for reading without ever blocking on a FIFO.
 *
 * A source path is checked for its type before it is read, but something
 * else can swap a named pipe (or a device) in between the check and the
 * open; a plain open of a FIFO blocks until a writer appears, forever. Every
 * read of a source file in the pipeline — hashing, the local copy, the
 * processors' input, the uploads — opens through this module: with
 * `O_NONBLOCK` (an open that returns at once for a FIFO and changes nothing
 * for a regular file), then `fstat` of the open handle, refusing anything
 * that is not a regular file, and reading through that same handle, so the
 * type checked is the type read.
 *
 * @module
 */
import * as fs from "node:fs";
import { ClassifiedError } from "../errors.ts";

const FLAGS = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK;

/** The error for a path that holds no regular file now; retried (the next attempt sees the type). */
function notRegular(p: string, st: fs.Stats): ClassifiedError {
  const what = st.isFIFO()
    ? "a FIFO"
    : st.isSocket()
    ? "a socket"
    : st.isDirectory()
    ? "a directory"
    : st.isCharacterDevice() || st.isBlockDevice()
    ? "a device"
    : "not a regular file";
  return new ClassifiedError(`Cannot read "${p}": it is ${what} now`, "retry");
}

/**
 * Opens `p` for reading; returns the file descriptor and the handle's stat.
 * Never blocks on a FIFO.
 *
 * @throws {ClassifiedError} (retry) when `p` is not a regular file.
 *
 * @example
 * ```ts
 * import * as fs from "node:fs";
 * import { openRegularSync } from "./regular_file.ts";
 * const p = Deno.makeTempFileSync();
 * const { fd, stat } = openRegularSync(p);
 * fs.closeSync(fd);
 * stat.size; // 0
 * ```
 */
export function openRegularSync(p: string): { fd: number; stat: fs.Stats } {
  const fd = fs.openSync(p, FLAGS);
  let stat: fs.Stats;
  try {
    stat = fs.fstatSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  if (!stat.isFile()) {
    fs.closeSync(fd);
    throw notRegular(p, stat);
  }
  return { fd, stat };
}

/**
 * Opens `p` for reading as a `FileHandle`; never blocks on a FIFO.
 *
 * @throws {ClassifiedError} (retry) when `p` is not a regular file.
 *
 * @example
 * ```ts
 * import { openRegular } from "./regular_file.ts";
 * const p = await Deno.makeTempFile();
 * const fh = await openRegular(p);
 * await fh.close();
 * ```
 */
export async function openRegular(p: string): Promise<fs.promises.FileHandle> {
  const fh = await fs.promises.open(p, FLAGS);
  let stat: fs.Stats;
  try {
    stat = await fh.stat();
  } catch (e) {
    await fh.close();
    throw e;
  }
  if (!stat.isFile()) {
    await fh.close();
    throw notRegular(p, stat);
  }
  return fh;
}

/**
 * Reads a regular file synchronously: its bytes (at most `max`, default the
 * whole file as the open handle reports it) and its permission bits.
 *
 * @example
 * ```ts
 * import { readRegularSync } from "./regular_file.ts";
 * const p = Deno.makeTempFileSync();
 * Deno.writeTextFileSync(p, "abc");
 * readRegularSync(p).data.length; // 3
 * ```
 */
export function readRegularSync(p: string, max?: number): { data: Uint8Array; mode: number } {
  const { fd, stat } = openRegularSync(p);
  try {
    const data = new Uint8Array(max ?? stat.size);
    let n = 0;
    while (n < data.length) {
      const r = fs.readSync(fd, data, n, data.length - n, null);
      if (r === 0) break;
      n += r;
    }
    return { data: data.subarray(0, n), mode: stat.mode & 0o7777 };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Reads a whole regular file.
 *
 * @example
 * ```ts
 * import { readRegular } from "./regular_file.ts";
 * const p = await Deno.makeTempFile();
 * await Deno.writeTextFile(p, "abc");
 * (await readRegular(p)).length; // 3
 * ```
 */
export async function readRegular(p: string): Promise<Uint8Array> {
  const fh = await openRegular(p);
  try {
    return new Uint8Array(await fh.readFile());
  } finally {
    await fh.close();
  }
}
