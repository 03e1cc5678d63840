/**
 * Messages between the engine pool (`_engine_pool.ts`) and the engine
 * worker (`_engine_worker.ts`).
 *
 * @module
 */
import type { MinifyOptions } from "./_esbuild_minify.ts";

/** A WebAssembly engine a worker runs. */
export type EngineName = "esbuild" | "oxipng";

/** A task for an engine. */
export type EngineTask =
  | { kind: "minify"; code: string; loader: "css" | "js"; options: MinifyOptions }
  /**
   * A file's bytes, minified into bytes ({@linkcode MinifiedBytes}): the
   * worker decodes and encodes, so the main thread never holds the file or
   * its result as a string (a large script's strings stay in the main
   * heap until a full collection).
   */
  | { kind: "minifyBytes"; bytes: Uint8Array; loader: "css" | "js"; options: MinifyOptions }
  | { kind: "png"; bytes: Uint8Array; level: number }
  | { kind: "raw"; rgba: Uint8Array; width: number; height: number; level: number };

/** The answer to a `minifyBytes` task: the output encoded as UTF-8, and esbuild's warnings. */
export interface MinifiedBytes {
  bytes: Uint8Array;
  warnings: string[];
}

/** Which engine a task needs. */
export function engineOf(task: EngineTask): EngineName {
  return task.kind === "minify" || task.kind === "minifyBytes" ? "esbuild" : "oxipng";
}

/**
 * The buffers a result hands over (transfers) instead of copying: a PNG's
 * bytes, or a minified file's.
 */
export function resultTransfer(result: unknown): ArrayBuffer[] {
  if (result instanceof Uint8Array) return [result.buffer as ArrayBuffer];
  const bytes = (result as { bytes?: unknown } | null | undefined)?.bytes;
  return bytes instanceof Uint8Array ? [bytes.buffer as ArrayBuffer] : [];
}

/** A request to a worker. The pool sends the next one only after the answer. */
export interface EngineRequest {
  id: number;
  task: EngineTask;
  /**
   * The engine's WebAssembly bytes, sent (transferred) with the first task
   * that needs it: the worker compiles them, so no compiled code stays in
   * the main thread once the worker is gone.
   */
  wasm?: Uint8Array;
  /**
   * The engine already compiled by another worker of the pool, sent
   * instead of `wasm`: the worker instantiates it without compiling (the
   * code is shared, not copied).
   */
  module?: WebAssembly.Module;
}

/** One esbuild message, reduced to what can cross a worker boundary. */
export interface EngineMessage {
  text: string;
  location?: { line: number; column: number } | null;
}

/** The worker's answer. */
export type EngineResponse =
  | {
    id: number;
    ok: true;
    result: unknown;
    /** The engine this worker compiled from `wasm` for this request, for the pool to share. */
    compiled?: WebAssembly.Module;
  }
  | {
    id: number;
    ok: false;
    message: string;
    errors?: EngineMessage[];
    /**
     * The engine itself is unusable after this error (a WebAssembly trap,
     * esbuild's service stopped, memory exhausted): the worker must be
     * replaced.
     */
    broken?: boolean;
  };
