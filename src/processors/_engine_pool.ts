/**
 * A small pool of engine workers (`_engine_worker.ts`) that run the
 * WebAssembly engines off the main thread.
 *
 * Contract:
 * - Workers start on demand, at most `maxWorkers` (default: 2, never more
 *   than the CPU cores), and each is terminated after `idleMs` without work
 *   (default 30 s). Each worker compiles the engines it needs from bytes
 *   handed over to it, so the main thread holds no engine code or memory:
 *   a daemon waiting for changes uses what it uses without processors.
 * - Memory is bounded by an estimate, not only by the number of jobs: every
 *   worker counts the engines it has loaded plus the largest job it has run
 *   (WebAssembly memory never shrinks), and a job starts only when the total
 *   stays within `memoryBudget` (default 256 MiB). An engine's compiled code
 *   is shared by every worker of the process that compiled the same bytes
 *   (V8 caches native modules per process), so only the first worker with
 *   an engine counts its full size; further ones count their own heap
 *   (two minifiers then fit the default budget and use both cores). Idle workers are
 *   terminated to make room; a job larger than the budget runs alone, and
 *   its worker is terminated right after.
 * - An engine is compiled once: the first worker compiles it from the
 *   bytes and hands the compiled module back; further workers get that
 *   module (the code is shared, not compiled again) for as long as a worker
 *   holds the engine or jobs wait, then the pool lets it go. A worker that
 *   is compiling an engine is the only one doing so: the next worker for
 *   that engine starts once the first has answered (measured: two esbuild
 *   workers starting together took the process from 168 to ~390 MiB in a
 *   few seconds).
 * - After an engine's compilation and after a large job the pool hands
 *   the freed memory back: the compiler's freed memory is ~50–90 MiB the
 *   C library would otherwise keep.
 * - Ended workers' freed memory is handed back to the system (when:
 *   `_engine_release.ts`; how: `src/util/release_memory.ts`): without it a process that has started
 *   and ended workers keeps 100–200 MiB it no longer uses.
 *   Until then an ended worker's estimate still counts against the budget,
 *   so a new worker does not load its engine while the old one's memory is
 *   still held (both at once would exceed the budget).
 * - A worker that crashes, or does not answer within `jobTimeoutMs`, is
 *   terminated; its job is tried once more on a fresh worker and then fails
 *   with a {@linkcode ClassifiedError} of kind `retry` naming the engine and
 *   the cause. Other jobs and the daemon carry on.
 * - Errors the engine reports (a syntax error) are not crashes: they reject
 *   the job with an `Error` whose `errors` lists esbuild's messages. An
 *   error that leaves the engine unusable (a WebAssembly trap, esbuild's
 *   service stopped) replaces the worker and tries the job once more; a
 *   second such error rejects the job with the engine's error (the input is
 *   the likely cause), not as a crash.
 *
 * From source, workers run `_engine_worker.ts`; a single-file bundle
 * registers the worker's own bundled source with
 * {@linkcode registerEmbeddedWorker} and workers start from it as a `data:`
 * URL (see `util/module_url.ts`: a compiled executable cannot start a worker
 * from a `blob:` URL).
 *
 * @module
 */
import * as os from "node:os";
import { ClassifiedError } from "../errors.ts";
import {
  type EngineMessage,
  type EngineName,
  engineOf,
  type EngineRequest,
  type EngineResponse,
  type EngineTask,
} from "./_engine_protocol.ts";
import { footprint, type Holding, jobEstimate, MiB } from "./_engine_estimates.ts";
import { wasmBytes } from "./_wasm.ts";
import { moduleDataUrl } from "../util/module_url.ts";
import { FreedMemory } from "./_engine_release.ts";

/** Settings of an {@linkcode EnginePool}. */
export interface EnginePoolOptions {
  /** Workers at most (default 2); never more than the CPU cores. */
  maxWorkers?: number;
  /** Milliseconds a worker may stay idle before it is terminated (default 30,000). */
  idleMs?: number;
  /** Estimated engine memory allowed at once, in bytes (default 256 MiB). */
  memoryBudget?: number;
  /** Milliseconds a job may take before its worker counts as hung (default 300,000). */
  jobTimeoutMs?: number;
  /** The worker module to run (tests inject a failing one); default: the engine worker. */
  workerUrl?: string | URL;
}

/** Counters, for tests and the benchmark. */
export interface EnginePoolStats {
  /** Workers started so far. */
  started: number;
  /** Workers terminated after their idle period. */
  idleStops: number;
  /** Workers that crashed or hung. */
  crashes: number;
  /** Workers alive now. */
  alive: number;
  /** Jobs run. */
  jobs: number;
  /** Engines compiled from their bytes (a worker given another's compiled module does not count). */
  compiles: number;
}

/** A job estimated at this size or more is followed by a release of freed memory. */
const TRIM_AFTER_JOB = 16 * MiB;

let embeddedWorker: (() => string) | undefined;

/**
 * Registers the engine worker's bundled source (single-file bundles):
 * workers then start from it (a `data:` URL) instead of `_engine_worker.ts`.
 */
export function registerEmbeddedWorker(source: () => string): void {
  embeddedWorker = source;
}

let embeddedUrl: string | undefined;

function defaultWorkerUrl(): string | URL {
  if (embeddedWorker) {
    embeddedUrl ??= moduleDataUrl(embeddedWorker());
    return embeddedUrl;
  }
  return new URL("./_engine_worker.ts", import.meta.url);
}

interface Job {
  task: EngineTask;
  estimate: number;
  attempts: number;
  resolve(value: unknown): void;
  reject(error: unknown): void;
  signal?: AbortSignal;
}

interface Slot {
  worker: Worker;
  loaded: Set<EngineName>;
  /** Engines of `loaded` still being compiled (their first job has not answered yet). */
  compiling: Set<EngineName>;
  /** Largest job estimate this worker has run. */
  peakJob: number;
  job?: Job;
  jobId: number;
  idleTimer?: ReturnType<typeof setTimeout>;
  jobTimer?: ReturnType<typeof setTimeout>;
}

/** Runs engine tasks on on-demand workers; see the module documentation. */
export class EnginePool {
  readonly #maxWorkers: number;
  readonly #idleMs: number;
  readonly #budget: number;
  readonly #jobTimeoutMs: number;
  readonly #workerUrl: string | URL | undefined;
  readonly #slots: Slot[] = [];
  readonly #queue: Job[] = [];
  #nextId = 1;
  #retired = false;
  /**
   * Releases of freed memory; counts stopped workers' estimates until theirs
   * is given back, so a new worker does not compile its engine while the old
   * one's memory is still held.
   */
  readonly #freed = new FreedMemory(() => this.#pump());
  /**
   * Engines compiled by a worker, handed to further workers instead of the
   * bytes (no second compilation: measured, a worker that compiles the
   * esbuild engine again adds ~64 MiB and 0.1–5 s of CPU; one given the
   * module adds ~11 MiB at once). Kept while a worker holds the engine:
   * once none does and no job waits, dropping the module lets the code go
   * (with jobs waiting, the next worker takes it).
   */
  readonly #modules = new Map<EngineName, WebAssembly.Module>();
  /** The idle worker chosen for the first queued job when room was made for it. */
  #chosen: Slot | undefined;
  readonly #stats: EnginePoolStats = {
    started: 0,
    idleStops: 0,
    crashes: 0,
    alive: 0,
    jobs: 0,
    compiles: 0,
  };

  constructor(options: EnginePoolOptions = {}) {
    const cores = typeof os.availableParallelism === "function"
      ? os.availableParallelism()
      : os.cpus().length;
    this.#maxWorkers = Math.max(1, Math.min(options.maxWorkers ?? 2, cores));
    this.#idleMs = options.idleMs ?? 30_000;
    this.#budget = options.memoryBudget ?? 256 * MiB;
    this.#jobTimeoutMs = options.jobTimeoutMs ?? 300_000;
    this.#workerUrl = options.workerUrl;
  }

  /** Counters since the pool was made. */
  get stats(): EnginePoolStats {
    return { ...this.#stats, alive: this.#slots.length };
  }

  /**
   * Runs `task` on a worker and returns its result. Rejects with the
   * engine's error, or with a `retry` {@linkcode ClassifiedError} when the
   * worker crashed twice on it.
   */
  run<T>(task: EngineTask, options: { signal?: AbortSignal } = {}): Promise<T> {
    options.signal?.throwIfAborted();
    return new Promise<T>((resolve, reject) => {
      const job: Job = {
        task,
        estimate: jobEstimate(task),
        attempts: 0,
        resolve: resolve as (v: unknown) => void,
        reject,
        ...(options.signal ? { signal: options.signal } : {}),
      };
      this.#queue.push(job);
      this.#pump();
    });
  }

  /**
   * Lets the pool wind down: jobs already given still run, and every worker
   * is terminated as soon as it has nothing left to do.
   */
  retire(): void {
    this.#retired = true;
    for (const slot of this.#slots.filter((s) => !s.job)) this.#stop(slot);
  }

  /** Terminates every worker; queued jobs are rejected. */
  close(): void {
    for (const job of this.#queue.splice(0)) {
      job.reject(new Error("The engine pool was closed"));
    }
    for (const slot of [...this.#slots]) {
      slot.job?.reject(new Error("The engine pool was closed"));
      slot.job = undefined;
      this.#stop(slot);
    }
    // Closing ends the pool's use (shutdown, tests): nothing is left scheduled.
    this.#freed.stop();
    this.#modules.clear();
  }

  /** Estimated engine memory of every worker, with `slot` replaced by `next`, and of stopped ones. */
  #projected(slot: Slot | undefined, next: Holding): number {
    return footprint([...this.#slots.filter((s) => s !== slot), next]) + this.#freed.draining;
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      const job = this.#queue[0]!;
      if (job.signal?.aborted) {
        this.#queue.shift();
        this.#chosen = undefined;
        job.reject(job.signal.reason);
        continue;
      }
      const engine = engineOf(job.task);
      const idle = this.#slots.filter((s) => !s.job);
      // Prefer a worker that has the engine already; the one chosen before room was made for
      // this job; a fresh one next; any idle one last.
      let slot: Slot | undefined = idle.find((s) => s.loaded.has(engine));
      if (!slot && this.#chosen && idle.includes(this.#chosen)) slot = this.#chosen;
      if (!slot && this.#slots.length >= this.#maxWorkers) slot = idle[0];
      const engines = new Set(slot?.loaded ?? []);
      engines.add(engine);
      const need = { loaded: engines, peakJob: Math.max(slot?.peakJob ?? 0, job.estimate) };
      if (this.#projected(slot, need) > this.#budget) {
        // Make room: drop an idle worker that is not the chosen one.
        const spare = idle.find((s) => s !== slot);
        if (spare) {
          // The choice stays: with one worker fewer, a fresh one would be preferred next time
          // and the chosen one stopped to make room for it (both engines' workers gone).
          this.#chosen = slot;
          this.#stop(spare);
          continue;
        }
        if (this.#slots.some((s) => s.job)) return;
        // Stopped workers' memory is still held: wait for its release (then the pool pumps).
        if (this.#freed.draining > 0) {
          this.#freed.wakeAfterRelease();
          return;
        }
        // Nothing else runs or is held: the job runs alone, whatever its size.
      }
      if (!slot) {
        if (this.#slots.length >= this.#maxWorkers) return;
        // One worker compiles an engine at a time: a second one started meanwhile would
        // compile it too (V8 shares the code only once it is compiled), doubling the
        // compiler's transient memory; it starts once the first has answered.
        if (this.#slots.some((s) => s.compiling.has(engine))) return;
        slot = this.#start();
      }
      this.#queue.shift();
      this.#chosen = undefined;
      this.#dispatch(slot, job);
    }
    // No job waits and no worker holds an engine: the modules kept for the next worker go.
    if (this.#slots.length === 0) {
      for (const engine of [...this.#modules.keys()]) this.#dropModule(engine);
    }
  }

  /**
   * Lets a compiled engine go: its code lives until this thread's wrapper
   * of the module is collected, so the next release collects first.
   */
  #dropModule(engine: EngineName): void {
    if (!this.#modules.delete(engine)) return;
    this.#freed.dropped();
  }

  #start(): Slot {
    const worker = new Worker(this.#workerUrl ?? defaultWorkerUrl(), { type: "module" });
    const slot: Slot = { worker, loaded: new Set(), compiling: new Set(), peakJob: 0, jobId: 0 };
    worker.onmessage = (e: MessageEvent<EngineResponse>) => this.#answer(slot, e.data);
    worker.onerror = (e: ErrorEvent) => {
      // Handled here: an error event left alone would end the whole process.
      e.preventDefault();
      this.#crash(slot, e.message || "uncaught error");
    };
    worker.onmessageerror = () => this.#crash(slot, "a message could not be read");
    this.#slots.push(slot);
    this.#stats.started++;
    return slot;
  }

  #stop(slot: Slot): void {
    if (this.#chosen === slot) this.#chosen = undefined;
    clearTimeout(slot.idleTimer);
    clearTimeout(slot.jobTimer);
    slot.worker.terminate();
    const i = this.#slots.indexOf(slot);
    if (i >= 0) {
      const before = footprint(this.#slots);
      this.#slots.splice(i, 1);
      this.#freed.ended(before - footprint(this.#slots));
    }
    // Jobs waiting (a worker stopped to make room, or after a job larger than the budget):
    // the next worker takes the module. Otherwise a module no worker holds is let go.
    if (this.#queue.length === 0) {
      for (const engine of slot.loaded) {
        if (!this.#slots.some((s) => s.loaded.has(engine))) this.#dropModule(engine);
      }
    }
    this.#freed.later();
  }

  #dispatch(slot: Slot, job: Job): void {
    clearTimeout(slot.idleTimer);
    slot.idleTimer = undefined;
    slot.job = job;
    slot.peakJob = Math.max(slot.peakJob, job.estimate);
    job.attempts++;
    const id = this.#nextId++;
    slot.jobId = id;
    const engine = engineOf(job.task);
    const first = !slot.loaded.has(engine);
    slot.loaded.add(engine);
    const module = first ? this.#modules.get(engine) : undefined;
    if (first && !module) slot.compiling.add(engine);
    const send = (wasm?: Uint8Array) => {
      if (slot.job !== job || slot.jobId !== id) return;
      const request: EngineRequest = {
        id,
        task: job.task,
        ...(wasm ? { wasm } : {}),
        ...(module ? { module } : {}),
      };
      slot.worker.postMessage(request, wasm ? [wasm.buffer as ArrayBuffer] : []);
      slot.jobTimer = setTimeout(
        () => this.#crash(slot, `no answer within ${Math.round(this.#jobTimeoutMs / 1000)} s`),
        this.#jobTimeoutMs,
      );
    };
    if (!first || module) {
      send();
      return;
    }
    // Read for each new worker and handed over: the main thread keeps no copy.
    wasmBytes(engine).then(
      (b) => send(b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : b.slice()),
      (e) => {
        if (slot.job !== job) return;
        slot.job = undefined;
        slot.loaded.delete(engine);
        slot.compiling.delete(engine);
        job.reject(e);
        this.#idle(slot);
        this.#pump();
      },
    );
  }

  #answer(slot: Slot, response: EngineResponse): void {
    const job = slot.job;
    if (!job || response.id !== slot.jobId) return;
    clearTimeout(slot.jobTimer);
    if (response.ok && response.compiled) {
      this.#stats.compiles++;
      this.#modules.set(engineOf(job.task), response.compiled);
    }
    // An engine's compilation, and a large job, leave freed memory the C library keeps.
    if (slot.compiling.delete(engineOf(job.task)) || job.estimate >= TRIM_AFTER_JOB) {
      this.#freed.soon();
    }
    if (!response.ok && response.broken) {
      // The engine failed in a way that leaves it unusable: a fresh worker tries again once;
      // failing there too, the error is the input's, reported as the engine's error.
      this.#crash(slot, response.message, engineError(response.message, response.errors));
      return;
    }
    slot.job = undefined;
    this.#stats.jobs++;
    if (response.ok) job.resolve(response.result);
    else job.reject(engineError(response.message, response.errors));
    // A worker that grew beyond the budget running a job alone gives its memory back at once.
    if (footprint([slot]) > this.#budget) this.#stop(slot);
    else this.#idle(slot);
    this.#pump();
  }

  #crash(slot: Slot, why: string, reported?: Error): void {
    const job = slot.job;
    slot.job = undefined;
    this.#stats.crashes++;
    this.#stop(slot);
    if (job) {
      if (job.attempts < 2 && !job.signal?.aborted) {
        this.#queue.unshift(job);
      } else if (reported) {
        job.reject(reported);
      } else {
        const engine = engineOf(job.task);
        job.reject(
          new ClassifiedError(
            `The ${engine} engine worker failed ${job.attempts} times on this file: ${why}`,
            "retry",
          ),
        );
      }
    }
    this.#pump();
  }

  #idle(slot: Slot): void {
    clearTimeout(slot.idleTimer);
    if (this.#retired && this.#queue.length === 0) {
      this.#stop(slot);
      return;
    }
    const timer = setTimeout(() => {
      if (slot.job) return;
      this.#stats.idleStops++;
      this.#stop(slot);
    }, this.#idleMs);
    // A waiting timer alone does not keep the process alive.
    Deno.unrefTimer(timer as unknown as number);
    slot.idleTimer = timer;
  }
}

/** An Error carrying esbuild-style `errors`, as the engine reported them. */
function engineError(message: string, errors: EngineMessage[] | undefined): Error {
  const e = new Error(message) as Error & { errors?: EngineMessage[] };
  if (errors) e.errors = errors;
  return e;
}

let shared: EnginePool | undefined;
let sharedOptions: EnginePoolOptions = {};

/**
 * Changes the settings of the shared pool every processor uses. The current
 * workers finish their jobs and are replaced by ones with the new settings.
 */
export function configureEngines(options: EnginePoolOptions): void {
  sharedOptions = { ...sharedOptions, ...options };
  shared?.retire();
  shared = undefined;
}

/** The shared pool every processor uses. */
export function enginePool(): EnginePool {
  shared ??= new EnginePool(sharedOptions);
  return shared;
}

/** Terminates the shared pool's workers (shutdown and tests). */
export function stopEngines(): void {
  shared?.close();
  shared = undefined;
}
