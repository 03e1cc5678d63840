/**
 * The engine pool's memory estimates (see `_engine_pool.ts`): what a
 * worker's engine holds once loaded, what each further worker with the
 * same engine adds, what one job needs beyond its engine, and the total
 * for a set of workers. The figures are measured ones, given with each.
 *
 * @module
 */
import type { EngineName, EngineTask } from "./_engine_protocol.ts";

/** One mebibyte. */
export const MiB = 1024 * 1024;

/**
 * Estimated resident memory of a worker's engine once loaded and the
 * compiler's freed memory released (the pool does so after a compilation).
 * Measured: process RSS with an esbuild worker that has run one small job
 * grows by ~210 MiB, ~154 MiB after the release; with an oxipng one by ~15
 * MiB.
 */
export const ENGINE_BASE: Record<EngineName, number> = { esbuild: 160 * MiB, oxipng: 16 * MiB };

/**
 * Estimated resident memory of each further worker with an engine loaded:
 * the compiled module is handed over, not compiled again, so what remains
 * is the worker's isolate and the engine's own heap (measured: a second
 * esbuild worker that has run a small job adds 46 MiB, 25 MiB after the
 * release).
 */
export const ENGINE_MORE: Record<EngineName, number> = { esbuild: 32 * MiB, oxipng: 8 * MiB };

/** Estimated peak memory of one job beyond its engine's base. */
export function jobEstimate(task: EngineTask): number {
  switch (task.kind) {
    case "minify":
      // esbuild-wasm, one run per file, beyond what a loaded engine holds (measured: +3 MiB
      // for 0.26 MB, +41 for 1.21 MB, +66 for 1.12 MB, +82 for 1.74 MB).
      return Math.max(4 * MiB, task.code.length * 64 - 8 * MiB);
    case "minifyBytes":
      // The same, per byte (scripts and stylesheets are almost all ASCII).
      return Math.max(4 * MiB, task.bytes.length * 64 - 8 * MiB);
    case "png": {
      const pixels = pngPixels(task.bytes) ?? task.bytes.length * 4;
      return 8 * MiB + pixels * 24 + task.bytes.length * 4;
    }
    case "raw":
      return 8 * MiB + task.width * task.height * 24;
  }
}

/** Width × height from a PNG's IHDR, when it has one. */
function pngPixels(b: Uint8Array): number | undefined {
  if (b.length < 24) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return v.getUint32(16) * v.getUint32(20);
}

/** What a worker holds, for the memory estimate. */
export interface Holding {
  loaded: ReadonlySet<EngineName>;
  /** Largest job estimate it has run. */
  peakJob: number;
}

/**
 * Estimated engine memory of workers holding `holdings`: their largest jobs,
 * each loaded engine's full size once, and {@linkcode ENGINE_MORE} for every
 * further worker with the same engine (the compiled code is shared).
 */
export function footprint(holdings: readonly Holding[]): number {
  let sum = 0;
  const seen = new Set<EngineName>();
  for (const h of holdings) {
    sum += h.peakJob;
    for (const e of h.loaded) {
      sum += seen.has(e) ? ENGINE_MORE[e] : ENGINE_BASE[e];
      seen.add(e);
    }
  }
  return sum;
}
