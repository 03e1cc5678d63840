/**
 * Reading a small regular file through the C library (Linux x86-64 and
 * arm64, with `--allow-ffi`): `open` (with `O_NONBLOCK`, so a FIFO swapped
 * in never blocks), `statx` of the open descriptor (refusing anything that
 * is not a regular file), `read`, `close`. Each is a plain call where
 * `node:fs` builds objects (its `fstat` result costs more than the call);
 * for the many small files of an initial sync that was half the copy.
 *
 * Contract: {@linkcode readRegularNative} answers only when every call
 * succeeded on a regular file; otherwise (no FFI, an error of any call, not
 * a regular file, a path the C string cannot hold) it returns undefined and
 * has left nothing open, and the caller reads through `node:fs`, which gives
 * the proper answer or error.
 *
 * @module
 */

import { openLibc } from "./libc.ts";

const SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

// fcntl.h and stat.h on Linux x86-64 and arm64 (the same values on both).
const O_RDONLY = 0;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const AT_EMPTY_PATH = 0x1000;
/** STATX_TYPE | STATX_MODE. */
const STATX_WANTED = 0x1 | 0x2;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
/** `struct statx` offset of stx_mode (u16). */
const STX_MODE = 0x1c;

interface Libc {
  s: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
  path: Uint8Array<ArrayBuffer>;
  empty: Uint8Array<ArrayBuffer>;
  stx: Uint8Array<ArrayBuffer>;
  view: DataView;
  encoder: TextEncoder;
}

let loaded: Libc | null | undefined;

function libc(): Libc | undefined {
  if (loaded === undefined) loaded = load();
  return loaded ?? undefined;
}

function load(): Libc | null {
  const lib = openLibc(SYMBOLS);
  if (!lib) return null;
  const stx = new Uint8Array(256);
  const c: Libc = {
    s: lib.symbols,
    path: new Uint8Array(16 * 1024),
    empty: new Uint8Array(1),
    stx,
    view: new DataView(stx.buffer),
    encoder: new TextEncoder(),
  };
  // The layouts are the ABI's; a check against Deno's own answer keeps a surprise (another C
  // library under that name) from reaching a copy.
  try {
    const probe = Deno.makeTempFileSync();
    try {
      Deno.writeFileSync(probe, new Uint8Array([1, 2, 3]));
      const r = readWith(c, probe, 3);
      if (!r || r.data.length !== 3 || r.data[2] !== 3) throw new Error("mismatch");
      if (r.mode !== (Deno.statSync(probe).mode! & 0o7777)) throw new Error("mismatch");
    } finally {
      Deno.removeSync(probe);
    }
  } catch {
    lib.close();
    return null;
  }
  return c;
}

/**
 * Reads regular file `p` from its start, and its permission bits; undefined
 * when the C library cannot answer (see the module's contract). Reads at
 * most `expected` + 1 bytes and stops once it has `expected`, without a read
 * that finds the end (a file that grew past `expected` is found by the
 * caller from the length; one that changed after its stat, by the check
 * that follows the transfer).
 */
export function readRegularNative(
  p: string,
  expected: number,
): { data: Uint8Array; mode: number } | undefined {
  const c = libc();
  return c ? readWith(c, p, expected) : undefined;
}

function readWith(
  c: Libc,
  p: string,
  expected: number,
): { data: Uint8Array; mode: number } | undefined {
  if (!cString(c, p, c.path)) return undefined;
  const fd = c.s.open(c.path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return undefined;
  try {
    if (c.s.statx(fd, c.empty, AT_EMPTY_PATH, STATX_WANTED, c.stx) !== 0) return undefined;
    const mode = c.view.getUint16(STX_MODE, true);
    if ((mode & S_IFMT) !== S_IFREG) return undefined;
    const max = expected + 1;
    const data = new Uint8Array(max);
    let got = 0;
    while (got < max) {
      const r = Number(c.s.read(fd, got === 0 ? data : data.subarray(got), BigInt(max - got)));
      if (r < 0) return undefined;
      if (r === 0) break;
      got += r;
      if (got === expected) break;
    }
    return { data: data.subarray(0, got), mode: mode & 0o7777 };
  } finally {
    c.s.close(fd);
  }
}

/** Puts `p` into `buf` as a NUL-terminated C string; false when it cannot be one. */
function cString(c: Libc, p: string, buf: Uint8Array): boolean {
  // UTF-8 takes at most 3 bytes per UTF-16 unit; a NUL would end the C string early.
  if (p.length * 3 >= buf.length || p.includes("\0")) return false;
  const n = c.encoder.encodeInto(p, buf).written;
  buf[n] = 0;
  return true;
}
