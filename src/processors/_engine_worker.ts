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
import { decodeSource, minifyWith } from "./_esbuild_minify.ts";
import {
  type EngineMessage,
  engineOf,
  type EngineRequest,
  type EngineResponse,
  type EngineTask,
  type MinifiedBytes,
  resultTransfer,
} from "./_engine_protocol.ts";

let esbuildReady: Promise<unknown> | undefined;
let oxipngReady: Promise<unknown> | undefined;

/**
 * Loads the task's engine: from the module another worker compiled, else
 * by compiling `wasm`. Resolves to the module when this call compiled it
 * (for the pool to hand to further workers).
 */
async function load(
  task: EngineTask,
  wasm: Uint8Array | undefined,
  module: WebAssembly.Module | undefined,
): Promise<WebAssembly.Module | undefined> {
  const esbuildTask = engineOf(task) === "esbuild";
  if (esbuildTask ? esbuildReady : oxipngReady) {
    await (esbuildTask ? esbuildReady : oxipngReady);
    return undefined;
  }
  if (!module && !wasm) throw new Error(`The ${engineOf(task)} engine was not sent to the worker`);
  const compiled = module ? undefined : WebAssembly.compile(wasm as Uint8Array<ArrayBuffer>);
  const ready: Promise<unknown> = (module ? Promise.resolve(module) : compiled!).then(
    (m): Promise<unknown> =>
      esbuildTask ? esbuild.initialize({ wasmModule: m, worker: false }) : oxipng.default(m),
  );
  if (esbuildTask) esbuildReady = ready;
  else oxipngReady = ready;
  await ready;
  return compiled ? await compiled : undefined;
}

async function run(task: EngineTask): Promise<unknown> {
  switch (task.kind) {
    case "minify":
      return await minifyWith(esbuild, task.code, task.loader, task.options);
    case "minifyBytes": {
      const out = await minifyWith(esbuild, decodeSource(task.bytes), task.loader, task.options);
      return { bytes: new TextEncoder().encode(out.code), warnings: out.warnings } as MinifiedBytes;
    }
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
  const { id, task, wasm, module } = e.data;
  let response: EngineResponse;
  try {
    const compiled = await load(task, wasm, module);
    response = { id, ok: true, result: await run(task), ...(compiled ? { compiled } : {}) };
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
  scope.postMessage(response, response.ok ? resultTransfer(response.result) : []);
};
