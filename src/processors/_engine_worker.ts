/**
 * The engine worker: runs the WebAssembly engines (esbuild for the
 * minifiers, oxipng for PNG) off the main thread, so the daemon's event
 * loop never waits for a large file and all engine memory goes away when
 * the pool terminates the worker (see `_engine_pool.ts`).
 *
 * Protocol (`_engine_protocol.ts`; one request at a time per worker): in,
 * an id, the task and, the first time this worker needs an engine, its
 * WebAssembly bytes (compiled here); out, the id and the result, or an error
 * message with esbuild's `errors` (text and location) when there are some.
 *
 * @module
 */
import * as esbuild from "esbuild-wasm/esm/browser.js";
import * as oxipng from "@jsquash/oxipng/codec/pkg/squoosh_oxipng.js";
import { minifyWith } from "./_esbuild_minify.ts";
import {
  type EngineMessage,
  engineOf,
  type EngineRequest,
  type EngineResponse,
  type EngineTask,
} from "./_engine_protocol.ts";

let esbuildReady: Promise<void> | undefined;
let oxipngReady: Promise<unknown> | undefined;

function load(task: EngineTask, wasm: Uint8Array | undefined): Promise<unknown> {
  if (engineOf(task) === "esbuild") {
    if (!esbuildReady) {
      if (!wasm) throw new Error("The esbuild engine was not sent to the worker");
      esbuildReady = WebAssembly.compile(wasm as Uint8Array<ArrayBuffer>).then((wasmModule) =>
        esbuild.initialize({ wasmModule, worker: false })
      );
    }
    return esbuildReady;
  }
  if (!oxipngReady) {
    if (!wasm) throw new Error("The oxipng engine was not sent to the worker");
    oxipngReady = WebAssembly.compile(wasm as Uint8Array<ArrayBuffer>).then((m) =>
      oxipng.default(m)
    );
  }
  return oxipngReady;
}

async function run(task: EngineTask): Promise<unknown> {
  switch (task.kind) {
    case "minify":
      return await minifyWith(esbuild, task.code, task.loader, task.options);
    case "png":
      return oxipng.optimise(task.bytes, task.level, false, false);
    case "raw":
      return oxipng.optimise_raw(
        new Uint8ClampedArray(task.rgba.buffer, task.rgba.byteOffset, task.rgba.byteLength),
        task.width,
        task.height,
        task.level,
        false,
        false,
      );
  }
}

/** Whether `err` leaves the engine unusable (the instance cannot be trusted afterwards). */
function isBroken(err: unknown, message: string): boolean {
  return err instanceof WebAssembly.RuntimeError ||
    /service (is no longer running|was stopped)|has already exited|out of memory|Memory\.grow/i
      .test(message);
}

/** The worker's global scope (typed here, so this file checks with the main program's lib). */
const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<EngineRequest>) => void) | null;
  postMessage(message: EngineResponse, transfer: Transferable[]): void;
};

scope.onmessage = async (e: MessageEvent<EngineRequest>) => {
  const { id, task, wasm } = e.data;
  let response: EngineResponse;
  try {
    await load(task, wasm);
    response = { id, ok: true, result: await run(task) };
  } catch (err) {
    const errors = (err as { errors?: EngineMessage[] })?.errors;
    const message = (err as Error)?.message ?? String(err);
    response = {
      id,
      ok: false,
      message,
      ...(isBroken(err, message) ? { broken: true } : {}),
      ...(Array.isArray(errors)
        ? {
          errors: errors.map((m) => ({
            text: String(m.text),
            location: m.location ? { line: m.location.line, column: m.location.column } : null,
          })),
        }
        : {}),
    };
  }
  const result = response.ok ? response.result : undefined;
  scope.postMessage(response, result instanceof Uint8Array ? [result.buffer as ArrayBuffer] : []);
};
