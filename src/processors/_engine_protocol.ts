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
  | { kind: "png"; bytes: Uint8Array; level: number }
  | { kind: "raw"; rgba: Uint8Array; width: number; height: number; level: number };

/** Which engine a task needs. */
export function engineOf(task: EngineTask): EngineName {
  return task.kind === "minify" ? "esbuild" : "oxipng";
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
}

/** One esbuild message, reduced to what can cross a worker boundary. */
export interface EngineMessage {
  text: string;
  location?: { line: number; column: number } | null;
}

/** The worker's answer. */
export type EngineResponse =
  | { id: number; ok: true; result: unknown }
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
