/**
 * Runs a rule's processor chain for one file, in declared order, inside a
 * private working directory. The source file is never written.
 *
 * @module
 */
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { logger } from "../log.ts";
import type { ProcessorRef } from "../config/types.ts";
import { type ExtraOutput, handles, type SourceInfo } from "./processor.ts";

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
  /** Empty private directory for this run (the caller removes it afterwards). */
  workDir: string;
  signal: AbortSignal;
  lookupUrl(inputFile: string): string | undefined;
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
}

/** Whether any processor of the chain makes output differ per server for a file named `name`. */
export function chainIsPerServer(processors: readonly ProcessorRef[], name: string): boolean {
  return processors.some((p) => p.def.differentPerServer && handles(p.def, name));
}

const setupDone = new Map<string, Promise<void>>();

/**
 * Runs every processor's `setup` once per distinct options (lazy engines,
 * external tool checks). Returns problems, one per processor that cannot work.
 */
export async function setupProcessors(refs: readonly ProcessorRef[]): Promise<string[]> {
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
      problems.push(`Processor "${ref.name}" cannot run: ${(e as Error).message}`);
    }
  }
  return problems;
}

/** Runs the chain. Processor errors propagate (RequeueError included). */
export async function runChain(input: ChainInput): Promise<ChainOutput> {
  let current = input.originalPath;
  let name = input.name;
  let contentEncoding: string | undefined;
  const extras: ExtraOutput[] = [];
  await setupProcessors(input.processors).then((problems) => {
    if (problems.length > 0) throw new Error(problems.join("; "));
  });
  for (const [i, ref] of input.processors.entries()) {
    input.signal.throwIfAborted();
    if (!handles(ref.def, name)) continue;
    const workDir = path.join(input.workDir, String(i));
    await fs.mkdir(workDir, { recursive: true });
    const result = await ref.def.process(
      { path: current, name, originalPath: input.originalPath, relDir: input.relDir },
      {
        workDir,
        source: input.source,
        ...(input.server !== undefined ? { server: input.server } : {}),
        options: ref.options,
        signal: input.signal,
        log: logger(`processor:${ref.def.name}`),
        lookupUrl: input.lookupUrl,
      },
    );
    if (!result) continue;
    if (result.name !== undefined) {
      if (
        result.name.includes("/") || result.name === "" || result.name === "." ||
        result.name === ".."
      ) {
        throw new Error(
          `Processor "${ref.name}" returned an invalid name ${JSON.stringify(result.name)}`,
        );
      }
      name = result.name;
    }
    if (result.path !== undefined) current = result.path;
    if (result.contentEncoding !== undefined) contentEncoding = result.contentEncoding;
    if (result.extras) extras.push(...result.extras);
  }
  return {
    path: current,
    name,
    unprocessed: current === input.originalPath,
    ...(contentEncoding ? { contentEncoding } : {}),
    extras,
  };
}
