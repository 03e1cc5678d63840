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
import * as v8 from "node:v8";
import * as vm from "node:vm";
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

let gc: (() => void) | null | undefined;

function loadGc(): (() => void) | null {
  try {
    // Node's documented way to reach V8's collector without a start-up flag.
    v8.setFlagsFromString("--expose-gc");
    const f: unknown = vm.runInNewContext("gc");
    return typeof f === "function" ? f as () => void : null;
  } catch {
    return null;
  }
}

/**
 * Runs a full garbage collection of the calling thread's heap, so objects
 * that hold native memory outside it are freed now rather than at some
 * later collection: a `WebAssembly.Module` the thread has dropped keeps
 * the engine's compiled code (tens of MiB, all the workers' compiled
 * functions) until its wrapper is collected, and a daemon that has gone
 * idle allocates too little for V8 to collect soon (measured: a sync
 * through the sample chain left the idle process ~45 MiB larger). Does
 * nothing where the collector cannot be reached; never throws. Costs one
 * full collection: call it when work has ended, not per file.
 */
export function collectGarbage(): boolean {
  if (gc === undefined) gc = loadGc();
  if (!gc) return false;
  try {
    gc();
    return true;
  } catch {
    return false;
  }
}
