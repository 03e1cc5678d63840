/**
 * Runs a rule's processor chain for one file, in declared order, inside a
 * private working directory. The source file is never written.
 *
 * Contract:
 * - processors run in the order of the rule; one whose extensions do not
 *   include the file's *current* name is skipped (a GIF renamed to `.png`
 *   is seen as a PNG by the processors after it);
 * - only the basename may change; each processor gets its own empty
 *   sub-directory of the run's `workDir` for outputs (created here, with
 *   any missing parent, unless the processor creates it when it writes:
 *   `createsWorkDir`);
 * - `references` of every processor are collected (deduplicated);
 * - extra outputs (e.g. `a.css.gz`) follow a later rename of the main file
 *   (`a.css` → `a_123.css` renames `a.css.gz` to `a_123.css.gz`);
 * - errors propagate: {@linkcode RequeueError} and {@linkcode ClassifiedError}
 *   unchanged, any other error wrapped in an `Error` naming the processor
 *   and the file (the original error is its `cause`).
 *
 * A processor definition may expose `resolve(options)` returning the
 * definition that actually runs (custom module processors do, once their
 * `setup` has loaded the module); its `extensions` and `differentPerServer`
 * are then the ones used here.
 *
 * @module
 */
import * as path from "node:path";
import { logger } from "../log.ts";
import type { ProcessorRef, Settings } from "../config/types.ts";
import { ClassifiedError, RequeueError } from "../errors.ts";
import type { OptionValues } from "../options.ts";
import { type ExtraOutput, handles, type ProcessorDef, type SourceInfo } from "./processor.ts";
import { resultCache } from "./_result_cache.ts";
import { configureEngines } from "./_engine_pool.ts";

/** One chain run. */
export interface ChainInput {
  /** Absolute path of the source file. */
  originalPath: string;
  /** Directory of the file relative to scanPath (`""` at the top). */
  relDir: string;
  /** Source basename. */
  name: string;
  source: SourceInfo;
  /** Set when the chain runs per server. */
  server?: string;
  processors: readonly ProcessorRef[];
  /**
   * Private directory for this run, empty or not yet made (made when a
   * processor needs it; the caller removes it afterwards).
   */
  workDir: string;
  signal: AbortSignal;
  lookupUrl(inputFile: string): string | undefined;
  /** See {@linkcode ProcessContext.willSync}. */
  willSync?(inputFile: string): boolean;
  /** See {@linkcode ProcessContext.isPending}. */
  isPending?(inputFile: string): boolean;
  /**
   * Directory for the cache of pure processor results (minifiers, image
   * optimisers), kept across runs. Default: the one given to
   * {@linkcode setupProcessors}, else no cache. It must not be inside
   * `workDir`, which the caller removes.
   */
  cacheDir?: string;
}

/** What a chain produced. */
export interface ChainOutput {
  /** Content to publish (the source file itself when nothing changed it). */
  path: string;
  /** Basename to publish under. */
  name: string;
  /** Whether `path` is the untouched source file. */
  unprocessed: boolean;
  contentEncoding?: string;
  extras: ExtraOutput[];
  /** Absolute source paths the output depends on (see `ProcessResult.references`). */
  references: string[];
}

/** The definition that runs for `ref` (see the module documentation on `resolve`). */
function effectiveDef(ref: ProcessorRef): ProcessorDef {
  const resolver = ref.def as ProcessorDef & {
    resolve?(options: OptionValues): ProcessorDef | undefined;
  };
  return resolver.resolve?.(ref.options) ?? ref.def;
}

/** Whether any processor of the chain makes output differ per server for a file named `name`. */
export function chainIsPerServer(processors: readonly ProcessorRef[], name: string): boolean {
  return processors.some((p) => {
    const def = effectiveDef(p);
    return def.differentPerServer === true && handles(def, name);
  });
}

const setupDone = new Map<string, Promise<void>>();

/** Daemon-wide processor settings for {@linkcode setupProcessors}. */
export interface ProcessorSetup {
  /** The engine settings of `<settings>`; the engine pool adopts them. */
  settings?: Pick<Settings, "engineWorkers" | "engineIdleTimeout" | "engineMemory">;
  /**
   * Cache directory for chains run without their own `cacheDir` (e.g.
   * `<dataDir>/processor-cache`; not inside the working directory, which is
   * emptied at start).
   */
  cacheDir?: string;
}

let defaultCacheDir: string | undefined;
let engineKey: string | undefined;

/**
 * Runs every processor's `setup` once per distinct options (lazy engines,
 * external tool checks). Returns problems, one per processor that cannot work.
 * `setup` also applies daemon-wide settings (engine pool, result cache).
 */
export async function setupProcessors(
  refs: readonly ProcessorRef[],
  setup: ProcessorSetup = {},
): Promise<string[]> {
  if (setup.cacheDir !== undefined) defaultCacheDir = setup.cacheDir;
  if (setup.settings) {
    const engines = {
      maxWorkers: setup.settings.engineWorkers,
      idleMs: setup.settings.engineIdleTimeout * 1000,
      memoryBudget: setup.settings.engineMemory * 1024 * 1024,
    };
    const key = JSON.stringify(engines);
    if (key !== engineKey) {
      engineKey = key;
      configureEngines(engines);
    }
  }
  const problems: string[] = [];
  for (const ref of refs) {
    if (!ref.def.setup) continue;
    const key = ref.def.name + JSON.stringify(ref.options);
    let p = setupDone.get(key);
    if (!p) {
      p = ref.def.setup({ options: ref.options, log: logger(`processor:${ref.def.name}`) });
      setupDone.set(key, p);
    }
    try {
      await p;
    } catch (e) {
      setupDone.delete(key);
      const problem = `Processor "${ref.name}" cannot run: ${(e as Error).message}`;
      if (!problems.includes(problem)) problems.push(problem);
    }
  }
  return problems;
}

function validName(name: string): boolean {
  return name !== "" && name !== "." && name !== ".." && !name.includes("/") &&
    !name.includes("\0");
}

/** Runs the chain. Processor errors propagate (RequeueError included). */
export async function runChain(input: ChainInput): Promise<ChainOutput> {
  let current = input.originalPath;
  let name = input.name;
  let contentEncoding: string | undefined;
  let extras: ExtraOutput[] = [];
  const references = new Set<string>();
  const cacheDir = input.cacheDir ?? defaultCacheDir;
  const cache = cacheDir !== undefined ? resultCache(cacheDir) : undefined;
  await setupProcessors(input.processors).then((problems) => {
    if (problems.length > 0) throw new Error(problems.join("; "));
  });
  for (const [i, ref] of input.processors.entries()) {
    input.signal.throwIfAborted();
    const def = effectiveDef(ref);
    if (!handles(def, name)) continue;
    const workDir = path.join(input.workDir, String(i));
    // One operation (`node:fs`'s recursive mkdir stats each level first).
    if (!def.createsWorkDir) await Deno.mkdir(workDir, { recursive: true, mode: 0o700 });
    const log = logger(`processor:${ref.def.name}`);
    const t0 = performance.now();
    let result;
    try {
      result = await def.process(
        {
          path: current,
          name,
          originalPath: input.originalPath,
          relDir: input.relDir,
          references: [...references],
        },
        {
          workDir,
          source: input.source,
          ...(input.server !== undefined ? { server: input.server } : {}),
          options: ref.options,
          signal: input.signal,
          log,
          lookupUrl: input.lookupUrl,
          ...(input.willSync ? { willSync: input.willSync } : {}),
          ...(input.isPending ? { isPending: input.isPending } : {}),
          ...(cache ? { cache } : {}),
        },
      );
    } catch (e) {
      if (e instanceof RequeueError || e instanceof ClassifiedError || input.signal.aborted) {
        throw e;
      }
      const where = input.relDir ? `${input.relDir}/${name}` : name;
      throw new Error(
        `Processor "${ref.name}" failed on "${where}": ${(e as Error)?.message ?? e}`,
        {
          cause: e,
        },
      );
    }
    if (log.debugEnabled) {
      log.debug(
        `"${name}": ${result ? "processed" : "unchanged"} in ${
          (performance.now() - t0).toFixed(1)
        } ms`,
      );
    }
    if (!result) continue;
    for (const r of result.references ?? []) references.add(r);
    if (result.name !== undefined && result.name !== name) {
      if (!validName(result.name)) {
        throw new Error(
          `Processor "${ref.name}" returned an invalid name ${JSON.stringify(result.name)}`,
        );
      }
      const old = name;
      name = result.name;
      // Variants named after the main file follow its new name.
      extras = extras.map((x) =>
        x.name.startsWith(old) ? { ...x, name: name + x.name.slice(old.length) } : x
      );
    }
    if (result.path !== undefined) current = result.path;
    if (result.contentEncoding !== undefined) contentEncoding = result.contentEncoding;
    if (result.extras) {
      for (const x of result.extras) {
        if (!validName(x.name)) {
          throw new Error(
            `Processor "${ref.name}" returned an invalid extra name ${JSON.stringify(x.name)}`,
          );
        }
      }
      extras.push(...result.extras);
    }
  }
  return {
    path: current,
    name,
    unprocessed: current === input.originalPath,
    ...(contentEncoding ? { contentEncoding } : {}),
    extras,
    references: [...references],
  };
}
