/**
 * Gives memory that threads have freed back to the operating system.
 *
 * Why: a worker thread (an engine worker, see
 * `src/processors/_engine_pool.ts`) allocates through the C library's
 * per-thread arenas (V8's compiler zones, the isolate's own structures).
 * When the worker ends, glibc keeps those arenas' free pages mapped, so a
 * process that has started and ended a few workers stays 100–200 MiB
 * larger than it needs to be (measured: two esbuild workers ended, 290 →
 * 172 MiB resident; after `malloc_trim(0)`, 128 MiB), and every restart
 * adds to it.
 *
 * Contract: {@linkcode releaseFreedMemory} asks glibc (`malloc_trim(0)`)
 * to return free pages of every arena; it never frees memory in use. On
 * other systems, other C libraries, or without `--allow-ffi` it does
 * nothing. It never throws. It costs a walk over the arenas (about a
 * millisecond): call it after a thread has ended, not per file.
 *
 * @module
 */
import { openLibc } from "./libc.ts";

const SYMBOLS = {
  malloc_trim: { parameters: ["usize"], result: "i32" },
} as const;

let trim: ((pad: number | bigint) => number) | null | undefined;

function load(): ((pad: number | bigint) => number) | null {
  // Any architecture: malloc_trim takes one integer. Not glibc: nothing to do.
  const lib = openLibc(SYMBOLS, [Deno.build.arch]);
  return lib ? (pad) => lib.symbols.malloc_trim(BigInt(pad)) : null;
}

/**
 * Returns free memory of the C library's arenas to the system; true when
 * the call was made (see the module documentation).
 *
 * @example
 * ```ts
 * import { releaseFreedMemory } from "./release_memory.ts";
 * releaseFreedMemory();
 * ```
 */
export function releaseFreedMemory(): boolean {
  if (trim === undefined) trim = load();
  if (!trim) return false;
  try {
    trim(0);
    return true;
  } catch {
    return false;
  }
}
