/**
 * Processors: named functions that transform a file on its way to the
 * destinations. Each declares the extensions it handles; others pass through.
 * Only the file's name may change, never its directory; the source file is
 * never modified (processors write into their private `workDir`).
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { OptionSpec, OptionValues } from "../options.ts";
import type { ResultCache } from "./_result_cache.ts";

/** The file as it enters a processor. */
export interface ProcessFile {
  /** Path of the current content: the source file or a previous processor's output. */
  path: string;
  /** The current basename (a previous processor may have renamed it). */
  name: string;
  /** Absolute path of the source file (never write to it). */
  originalPath: string;
  /** Directory of the file relative to the source's scanPath (`""` at the top, `/`-separated). */
  relDir: string;
  /**
   * Source files whose URLs earlier processors of the chain embedded in the
   * content (see `ProcessResult.references`); empty when none did.
   */
  references?: readonly string[];
}

/** A file published next to the main output, e.g. `a.css.gz`. */
export interface ExtraOutput {
  /** Basename at the destination (same directory as the main file). */
  name: string;
  /** Path of the content, inside `workDir`. */
  path: string;
  /** Content-Encoding to send (`gzip`, `br`). */
  contentEncoding?: string;
  /** MIME type to send, e.g. the main file's type for a precompressed variant. */
  contentType?: string;
}

/** What a processor returns; omitted fields keep their value. */
export interface ProcessResult {
  /** New content path, inside `workDir`. */
  path?: string;
  /** New basename (no `/`). */
  name?: string;
  /** Content-Encoding of the main output, if it is encoded. */
  contentEncoding?: string;
  /** Extra files to publish next to the main one. */
  extras?: ExtraOutput[];
  /**
   * Absolute source paths this output depends on (e.g. the images and fonts
   * a stylesheet refers to): when one of them is synced or its URL changes,
   * the file is processed again.
   */
  references?: string[];
}

/** The source a file belongs to. */
export interface SourceInfo {
  /** The source's name in the configuration. */
  name: string;
  /** Absolute path of the folder the source watches. */
  scanPath: string;
  /** The web server's document root, when the source serves a site. */
  documentRoot?: string;
  /** URL path of `scanPath` below the document root (e.g. `/shop/`). */
  basePath?: string;
}

/** Everything a processor may use besides the file. */
export interface ProcessContext {
  /**
   * Private, empty directory for this run's outputs; removed after the
   * transfer. It exists unless the processor sets `createsWorkDir`.
   */
  workDir: string;
  /** The file's source. */
  source: SourceInfo;
  /** The server the chain runs for; set only when a processor in the chain is `differentPerServer`. */
  server?: string;
  /** This processor's options, defaults applied. */
  options: OptionValues;
  /** Aborted on shutdown. */
  signal: AbortSignal;
  /** Logger named after the processor. */
  log: Logger;
  /**
   * Public URL of another source file on `server` (or any server when the
   * chain is not per server), or undefined when it is not synced there yet.
   */
  lookupUrl(inputFile: string): string | undefined;
  /**
   * Whether a rule sends that source file to `server` (to any server when
   * the chain is not per server). False means it will never get a URL, so
   * waiting for it is pointless. Absent: unknown (assume it will).
   */
  willSync?(inputFile: string): boolean;
  /**
   * Whether that source file is queued or being synced to `server` (to any
   * server when the chain is not per server): it will get a URL unless its
   * sync fails. Absent: unknown (assume it is not).
   */
  isPending?(inputFile: string): boolean;
  /**
   * Cache of results by content, when the chain runs with one. Only for
   * processors whose output depends on nothing but the content, the name's
   * extension, their options and their engine.
   */
  cache?: ResultCache;
}

/** Context for {@linkcode ProcessorDef.setup}. */
export interface SetupContext {
  /** Options of this processor in one rule (setup runs once per distinct options). */
  options: OptionValues;
  log: Logger;
}

/** A processor type, registered with its option schema. */
export interface ProcessorDef {
  /** The name used in `<processor name="…">`, e.g. `filename.SpacesToUnderscores`. */
  name: string;
  /** Other accepted names. */
  aliases?: readonly string[];
  /** One line for help and the README. */
  summary: string;
  /** Lower-case extensions with the dot (`.css`); undefined means every file. */
  extensions?: readonly string[];
  /** The output depends on the destination server (runs once per server). */
  differentPerServer?: boolean;
  /**
   * The processor writes into `ctx.workDir` only through `writeOutput`
   * (`_util.ts`), which creates the directory, or not at all: the chain then
   * does not create it beforehand (most files are only renamed, and a
   * directory made and removed per file and step costs more than the
   * rename).
   */
  createsWorkDir?: true;
  /** Options, given as attributes of `<processor>`. */
  options?: readonly OptionSpec[];
  /**
   * Loads engines and checks external tools, once, before the first file.
   * Throws an Error with a clear message when the processor cannot work here.
   */
  setup?(ctx: SetupContext): Promise<void>;
  /**
   * Processes one file. Returns undefined to pass it through unchanged.
   * Throws {@linkcode RequeueError} to be tried again later, any other error
   * to fail this file alone.
   */
  process(file: ProcessFile, ctx: ProcessContext): Promise<ProcessResult | undefined>;
}

const registry = new Map<string, ProcessorDef>();

/** Registers a processor under its name and aliases. */
export function registerProcessor(def: ProcessorDef): void {
  registry.set(def.name, def);
  for (const a of def.aliases ?? []) registry.set(a, def);
}

/** Looks up a processor by name or alias. */
export function getProcessorDef(name: string): ProcessorDef | undefined {
  return registry.get(name);
}

/** Every registered processor, once each. */
export function processorDefs(): ProcessorDef[] {
  return [...new Set(registry.values())];
}

/** Whether `def` handles a file named `name`. */
export function handles(def: ProcessorDef, name: string): boolean {
  if (!def.extensions || def.extensions.length === 0) return true;
  const dot = name.lastIndexOf(".");
  if (dot <= 0) return false;
  return def.extensions.includes(name.slice(dot).toLowerCase());
}
