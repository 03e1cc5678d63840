/**
 * Opens the C library for FFI calls, when that is safe and allowed: on
 * Linux (glibc's `libc.so.6`), with the FFI permission already granted
 * (asked first: a dlopen without it would prompt on a terminal). Every
 * caller keeps a fallback through Deno's own calls for when it is not.
 *
 * @module
 */

/**
 * The C library with `symbols`, or null (another system or architecture,
 * no FFI permission, not glibc, or a symbol missing).
 */
export function openLibc<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
  arch: readonly string[] = ["x86_64", "aarch64"],
): Deno.DynamicLibrary<S> | null {
  if (Deno.build.os !== "linux" || !arch.includes(Deno.build.arch)) return null;
  if (typeof Deno.dlopen !== "function") return null;
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return null;
    return Deno.dlopen("libc.so.6", symbols);
  } catch {
    return null;
  }
}
