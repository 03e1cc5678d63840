/**
 * The real engine worker, except that a minify task (text or bytes) whose code contains
 * `crash me` throws an uncaught error (the worker dies, as after an engine
 * abort), one containing `hang me` never answers, and one containing
 * `break me` reports an error that leaves the engine unusable. For the pool's
 * failure tests.
 *
 * @module
 */
import "../../src/processors/_engine_worker.ts";
import type { EngineRequest, EngineResponse } from "../../src/processors/_engine_protocol.ts";

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<EngineRequest>) => unknown) | null;
  postMessage(message: EngineResponse): void;
};
const real = scope.onmessage!;

/** The code of a minify task, text or bytes; "" for other tasks. */
function codeOf(task: EngineRequest["task"]): string {
  if (task.kind === "minify") return task.code;
  if (task.kind === "minifyBytes") return new TextDecoder().decode(task.bytes);
  return "";
}

scope.onmessage = (e: MessageEvent<EngineRequest>) => {
  const code = codeOf(e.data.task);
  if (code.includes("crash me")) {
    throw new Error("simulated engine crash");
  }
  if (code.includes("hang me")) return;
  if (code.includes("break me")) {
    scope.postMessage({ id: e.data.id, ok: false, message: "simulated trap", broken: true });
    return;
  }
  return real(e);
};
