/**
 * Custom processors written by users, loaded from a module file.
 *
 * @module
 */
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import type { OptionValues } from "../options.ts";
import type {
  ProcessContext,
  ProcessFile,
  ProcessorDef,
  ProcessResult,
  SetupContext,
} from "./processor.ts";
import { handles } from "./processor.ts";
import { parseExtensions } from "./_util.ts";

/**
 * What a custom processor module exports as `default`: an object shaped like
 * a built-in processor, or just its `process` function.
 *
 * ```xml
 * <processorChain>
 *   <processor name="custom" module="./processors/banner.ts" args="© Example Ltd"/>
 * </processorChain>
 * ```
 *
 * `module` is resolved relative to the configuration file. `args` is free
 * text handed to the module as `ctx.options.args` (parse it as you like);
 * `extensions` (`css:js`) overrides the module's own list.
 *
 * ```ts
 * // processors/banner.ts: prepends a comment to stylesheets and scripts.
 * import * as fs from "node:fs/promises";
 * import * as path from "node:path";
 *
 * export default {
 *   name: "banner",
 *   extensions: [".css", ".js"],
 *   // Optional, once before the first file; throw to refuse to start.
 *   async setup(ctx) {},
 *   async process(file, ctx) {
 *     const text = await fs.readFile(file.path, "utf8");
 *     const out = path.join(ctx.workDir, file.name); // write only inside ctx.workDir
 *     await fs.writeFile(out, `/* ${ctx.options.args ?? ""} *\/\n${text}`);
 *     return { path: out }; // or undefined: unchanged; `name` renames (no "/")
 *   },
 * };
 * ```
 *
 * The `file` and `ctx` arguments are those of built-in processors
 * (`src/processors/processor.ts`): `file.path` (current content), `file.name`
 * (current basename), `file.originalPath` (the source: never write to it),
 * `file.relDir`; `ctx.workDir`, `ctx.source`, `ctx.server`, `ctx.options`,
 * `ctx.signal`, `ctx.log`, `ctx.lookupUrl(absPath)`. The result may set
 * `path`, `name`, `contentEncoding`, `extras` and `references`. Throwing
 * fails the file (it is retried with backoff); an error with
 * `kind = "fatal"` is not retried until the file changes. Set
 * `differentPerServer: true` when the output depends on `ctx.server`.
 *
 * Running from source (`deno run`), the module may be TypeScript or
 * JavaScript and may import npm packages with `npm:` specifiers. In the
 * single-file bundle / compiled binary only plain JavaScript modules work:
 * they are loaded with a dynamic `import()` of their `file:` URL and must
 * be self-contained (no bare imports the binary cannot resolve).
 */
export interface CustomProcessorModule {
  /** Name used in log messages (default: the module's file name). */
  name?: string;
  /** Lower-case extensions with the dot; undefined means every file. */
  extensions?: readonly string[];
  /** The output depends on the destination server. */
  differentPerServer?: boolean;
  /** Called once before the first file. */
  setup?(ctx: SetupContext): Promise<void> | void;
  /** Processes one file; undefined means unchanged. */
  process(
    file: ProcessFile,
    ctx: ProcessContext,
  ): Promise<ProcessResult | undefined> | ProcessResult | undefined;
}

const loaded = new Map<string, Promise<ProcessorDef>>();
const ready = new Map<string, ProcessorDef>();

function keyOf(options: OptionValues): string {
  return `${options.module ?? ""}\0${options.extensions ?? ""}`;
}

/**
 * Loads a custom processor module and returns it as a processor definition.
 * Cached per module path and `extensions` option.
 */
export function loadCustomProcessor(options: OptionValues): Promise<ProcessorDef> {
  const key = keyOf(options);
  let p = loaded.get(key);
  if (!p) {
    p = (async () => {
      const file = options.module;
      if (!file) throw new Error('a custom processor needs module="path/to/module.ts"');
      let mod: { default?: unknown };
      try {
        mod = await import(pathToFileURL(path.resolve(file)).href);
      } catch (e) {
        throw new Error(`Cannot load processor module "${file}": ${(e as Error).message}`);
      }
      const exported = mod.default;
      const impl: Partial<CustomProcessorModule> = typeof exported === "function"
        ? { process: exported as CustomProcessorModule["process"] }
        : (exported ?? {}) as Partial<CustomProcessorModule>;
      if (typeof impl.process !== "function") {
        throw new Error(
          `Processor module "${file}" must export default an object with a process(file, ctx) function, or that function`,
        );
      }
      const extensions = parseExtensions(options.extensions) ??
        impl.extensions?.map((e) => e.toLowerCase());
      const process = impl.process.bind(impl);
      const def: ProcessorDef = {
        name: impl.name ?? path.basename(file),
        summary: `Custom processor from ${file}`,
        ...(extensions ? { extensions } : {}),
        ...(impl.differentPerServer ? { differentPerServer: true } : {}),
        ...(impl.setup
          ? { setup: async (ctx: SetupContext) => await impl.setup!.call(impl, ctx) }
          : {}),
        process: async (f, ctx) => (await process(f, ctx)) ?? undefined,
      };
      return def;
    })();
    p.then((def) => ready.set(key, def), () => loaded.delete(key));
    loaded.set(key, p);
  }
  return p;
}

/**
 * The generic processor behind `<processor name="custom" module="…">`.
 * Its `resolve(options)` returns the loaded module's definition once
 * `setup` has run, which `runChain` and `chainIsPerServer` use for the
 * module's own `extensions` and `differentPerServer`.
 */
export const custom: ProcessorDef & { resolve(options: OptionValues): ProcessorDef | undefined } = {
  name: "custom",
  aliases: ["module"],
  summary: 'Runs a processor from your own module (module="./my_processor.ts").',
  options: [
    {
      name: "module",
      help: "Path of the module (relative to the configuration file).",
      type: "path",
      required: true,
    },
    { name: "args", help: "Free text passed to the module as ctx.options.args." },
    {
      name: "extensions",
      help: "Extensions to run on (overrides the module's list), separated by ':' or ','.",
    },
  ],
  async setup(ctx) {
    const def = await loadCustomProcessor(ctx.options);
    await def.setup?.(ctx);
  },
  resolve(options) {
    return ready.get(keyOf(options));
  },
  async process(file, ctx) {
    const def = await loadCustomProcessor(ctx.options);
    if (!handles(def, file.name)) return undefined;
    return await def.process(file, ctx);
  },
};
