/**
 * The scanner's directory listing and `lstat` of the listed entries. On
 * Linux (x86-64, arm64) with `--allow-ffi` it calls the C library:
 * `opendir`/`readdir` and `statx` relative to the open directory, about
 * half the CPU of `Deno.readDirSync` + `Deno.lstatSync` (which build an
 * object with four `Date`s per entry): the walk is most of a scan over an
 * unchanged tree. Elsewhere, and for any call that fails, Deno's own calls
 * answer: the same entries, the same values (mtime in milliseconds, ctime in
 * whole seconds, as Deno reports them) and the same errors.
 *
 * @module
 */
import { openLibc } from "../util/libc.ts";
import { lstatInfo, type StatLike, statLike } from "./_stat.ts";

/** A listed entry; the type is the directory's (`d_type`), never followed. */
export interface ListedEntry {
  readonly name: string;
  readonly isFile: boolean;
  readonly isDirectory: boolean;
  readonly isSymlink: boolean;
}

/** A directory being walked: its entries and the `lstat` of an entry by name. */
export interface OpenDir {
  readonly entries: readonly ListedEntry[];
  /** `lstat` of entry `name`: undefined when it is gone; other errors are thrown as `Deno.lstatSync` throws them. */
  lstat(name: string): StatLike | undefined;
  /** Releases the directory; call once, also after an error. */
  close(): void;
}

/**
 * Lists `dir` (without `.` and `..`, in the directory's order). Throws what
 * `Deno.readDirSync` throws when the directory cannot be read. `native:
 * false` uses Deno's calls even where the C library is available.
 */
export function openDir(dir: string, options: { native?: boolean } = {}): OpenDir {
  const c = options.native === false ? undefined : libc();
  if (c) {
    const d = c.s.opendir(c.path(dir));
    if (d !== null) {
      const listed = new NativeDir(c, d, dir);
      if (listed.complete) return listed;
      // The listing ended on an error: Deno's call reports it (or lists the directory).
      listed.close();
    }
  }
  return new DenoDir(dir);
}

/** Whether listings come from the C library (for tests and benchmarks). */
export function nativeListing(): boolean {
  return libc() !== undefined;
}

const prefixOf = (dir: string) => dir.endsWith("/") ? dir : dir + "/";

class DenoDir implements OpenDir {
  readonly entries: ListedEntry[];
  readonly #prefix: string;

  constructor(dir: string) {
    this.entries = [...Deno.readDirSync(dir)];
    this.#prefix = prefixOf(dir);
  }

  lstat(name: string): StatLike | undefined {
    const i = lstatInfo(this.#prefix + name);
    return i ? statLike(i) : undefined;
  }

  close(): void {}
}

/** The stat fields a scan compares, from `statx`. */
class Stat implements StatLike {
  constructor(
    readonly size: number,
    readonly mtimeMs: number,
    readonly ctimeMs: number,
    readonly ino: number,
    readonly file: boolean,
  ) {}

  isFile(): boolean {
    return this.file;
  }
}

// d_type values (dirent.h) and st_mode's file type bits (stat.h).
const DT_DIR = 4;
const DT_REG = 8;
const DT_LNK = 10;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
/** `struct dirent` on 64-bit Linux: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name. */
const D_TYPE = 18;
const D_NAME = 19;
const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_FDCWD = -100;
/** STATX_TYPE | STATX_MODE | STATX_INO | STATX_SIZE | STATX_MTIME | STATX_CTIME. */
const STATX_WANTED = 0x1 | 0x2 | 0x100 | 0x200 | 0x40 | 0x80;

const SYMBOLS = {
  opendir: { parameters: ["buffer"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  closedir: { parameters: ["pointer"], result: "i32" },
  dirfd: { parameters: ["pointer"], result: "i32" },
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

interface Libc {
  s: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
  /** `text` as a NUL-terminated C string (in a shared buffer: valid until the next call). */
  path(text: string): Uint8Array<ArrayBuffer>;
  /** `statx` of `name` relative to directory `fd`, no symlink followed; false when the call failed. */
  statx(fd: number, name: string): boolean;
  /** The last `statx` result's fields. */
  view: DataView;
  /** This thread's `errno`: `readdir` tells the end of a listing from an error only through it. */
  errno: Int32Array;
}

let loaded: Libc | null | undefined;

function libc(): Libc | undefined {
  if (loaded === undefined) loaded = load();
  return loaded ?? undefined;
}

function load(): Libc | null {
  const lib = openLibc(SYMBOLS);
  if (!lib) return null; // Not glibc (or too old for statx): Deno's calls answer.
  const encoder = new TextEncoder();
  const buf = new Uint8Array(16 * 1024);
  const out = new Uint8Array(256);
  const c: Libc = {
    s: lib.symbols,
    path(text) {
      // UTF-8 takes at most 3 bytes per UTF-16 unit; longer paths fail and Deno's calls answer.
      if (text.length * 3 >= buf.length) return encoder.encode("\0");
      const n = encoder.encodeInto(text, buf).written;
      buf[n] = 0;
      return buf;
    },
    statx(fd, name) {
      return c.s.statx(fd, c.path(name), AT_SYMLINK_NOFOLLOW, STATX_WANTED, out) === 0;
    },
    view: new DataView(out.buffer),
    errno: new Int32Array(0),
  };
  // The structure layouts are the ABI's; a check against Deno's own answers keeps a surprise
  // (another C library under that name) from reaching the scan.
  try {
    const at = lib.symbols.__errno_location();
    if (at === null) throw new Error("no errno");
    c.errno = new Int32Array(Deno.UnsafePointerView.getArrayBuffer(at, 4));
    if (!agrees(c, "/")) throw new Error("mismatch");
  } catch {
    lib.close();
    return null;
  }
  return c;
}

/** Whether the C library lists `dir` and stats its entries as Deno does. */
function agrees(c: Libc, dir: string): boolean {
  const mine = new NativeDir(c, c.s.opendir(c.path(dir)), dir);
  try {
    if (!mine.complete) return false;
    const theirs = new Map([...Deno.readDirSync(dir)].map((e) => [e.name, e]));
    if (theirs.size !== mine.entries.length) return false;
    for (const e of mine.entries) {
      const t = theirs.get(e.name);
      if (!t || t.isFile !== e.isFile || t.isDirectory !== e.isDirectory) return false;
      if (t.isSymlink !== e.isSymlink) return false;
    }
    const st = Deno.lstatSync(dir);
    if (!c.statx(AT_FDCWD, dir)) return false;
    const s = read(c.view);
    return s !== undefined && s.ino === st.ino && s.mtimeMs === st.mtime?.getTime() &&
      s.ctimeMs === st.ctime?.getTime() && !s.file;
  } finally {
    mine.close();
  }
}

const u64 = (v: DataView, at: number) =>
  v.getUint32(at, true) + v.getUint32(at + 4, true) * 0x1_0000_0000;

/** The fields of a `struct statx`; undefined for times before 1970 (Deno's conversion decides). */
function read(v: DataView): Stat | undefined {
  const mtimeSec = v.getUint32(0x70, true) + v.getInt32(0x74, true) * 0x1_0000_0000;
  const ctimeSec = v.getUint32(0x60, true) + v.getInt32(0x64, true) * 0x1_0000_0000;
  if (mtimeSec < 0 || ctimeSec < 0) return undefined;
  const mode = v.getUint16(0x1c, true);
  return new Stat(
    u64(v, 0x28),
    mtimeSec * 1000 + Math.floor(v.getUint32(0x78, true) / 1e6),
    ctimeSec * 1000,
    u64(v, 0x20),
    (mode & S_IFMT) === S_IFREG,
  );
}

class NativeDir implements OpenDir {
  readonly entries: ListedEntry[] = [];
  /** Whether the listing ended at the end of the directory, not on an error. */
  readonly complete: boolean;
  readonly #c: Libc;
  #d: Deno.PointerValue;
  readonly #fd: number;
  readonly #prefix: string;

  constructor(c: Libc, d: Deno.PointerValue, dir: string) {
    this.#c = c;
    this.#d = d;
    this.#prefix = prefixOf(dir);
    this.#fd = d === null ? AT_FDCWD : c.s.dirfd(d);
    if (d === null) throw new Error(`Cannot open "${dir}"`);
    const View = Deno.UnsafePointerView;
    c.errno[0] = 0;
    for (let e = c.s.readdir(d); e !== null; e = c.s.readdir(d)) {
      // d_type is the byte before the name, 0 only when unknown (DT_UNKNOWN): one read gives both.
      // Names that are not UTF-8 are decoded lossily (with U+FFFD), as Deno's listing does.
      const typed = View.getCString(e, D_TYPE);
      const name = typed.length > 0 ? typed.slice(1) : View.getCString(e, D_NAME);
      if (name === "." || name === "..") continue;
      const type = typed.length > 0 ? typed.charCodeAt(0) : this.#typeOf(name);
      this.entries.push({
        name,
        isFile: type === DT_REG,
        isDirectory: type === DT_DIR,
        isSymlink: type === DT_LNK,
      });
    }
    this.complete = c.errno[0] === 0;
  }

  /** The type of an entry the file system does not report in its listing (keeps `errno`). */
  #typeOf(name: string): number {
    const c = this.#c;
    let mode: number;
    if (c.statx(this.#fd, name)) mode = c.view.getUint16(0x1c, true) & S_IFMT;
    else {
      const i = lstatInfo(this.#prefix + name);
      mode = i?.isFile ? S_IFREG : i?.isDirectory ? S_IFDIR : i?.isSymlink ? S_IFLNK : 0;
    }
    c.errno[0] = 0; // A failed stat here is not an error of the listing.
    return mode === S_IFREG ? DT_REG : mode === S_IFDIR ? DT_DIR : mode === S_IFLNK ? DT_LNK : -1;
  }

  lstat(name: string): StatLike | undefined {
    const c = this.#c;
    if (c.statx(this.#fd, name)) {
      const s = read(c.view);
      if (s) return s;
    }
    // Failed (gone, not permitted, …) or unusual: Deno's call gives the answer and the error.
    const i = lstatInfo(this.#prefix + name);
    return i ? statLike(i) : undefined;
  }

  close(): void {
    if (this.#d === null) return;
    this.#c.s.closedir(this.#d);
    this.#d = null;
  }
}
