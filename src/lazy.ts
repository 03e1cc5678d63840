/**
 * Modules loaded on first use: the transports' clients, the shared-store
 * database drivers, the status server, the terminal display, the compress
 * and GIF engines, and the commands other than `sync`.
 *
 * Deno reads, parses and resolves (npm packages included) every module an
 * `import("./literal.ts")` names before the program starts, whether or not
 * it ever runs: at every start of the CLI those modules cost as much CPU as
 * the Node modules a restart needs. A specifier built at run time is not
 * seen, so {@linkcode loadModule} builds the module's URL from its name
 * here, and Deno loads the module (and what it imports) only when called.
 *
 * A bundle cannot follow such a specifier either: its generated entry
 * registers a loader with a literal `import()` for every name in
 * {@linkcode LAZY_MODULES} (`registerBundledModule`), so the bundle holds
 * them all and loads them from inside itself.
 *
 * @module
 */

/**
 * Every module loaded with {@linkcode loadModule}, as paths relative to
 * `src/`. A bundle contains exactly these beyond the static import graph.
 */
export const LAZY_MODULES = [
  "cli/status.ts",
  "cli/verify.ts",
  "ops/fleet_status.ts",
  "ops/http.ts",
  "ops/terminal.ts",
  "pipeline/rebuild.ts",
  "processors/_compress_engines.ts",
  "processors/_gif_reader.ts",
  "store/shared/mysql.ts",
  "store/shared/postgres.ts",
  "transports/_cf_impl.ts",
  "transports/cloudfiles/transport.ts",
  "transports/ftp/transport.ts",
  "transports/s3/transport.ts",
  "transports/sftp/transport.ts",
  "verify/verify.ts",
] as const;

/** The name of a module loaded on first use: its path relative to `src/`. */
export type LazyModule = typeof LAZY_MODULES[number];

const bundled = new Map<string, () => Promise<unknown>>();

/**
 * Registers how a bundle loads `name` from inside itself. Called by a
 * bundle's generated entry for every name in {@linkcode LAZY_MODULES}.
 */
export function registerBundledModule(name: LazyModule, load: () => Promise<unknown>): void {
  bundled.set(name, load);
}

/**
 * Loads the module `name` (a path relative to `src/`, listed in
 * {@linkcode LAZY_MODULES}); `T` is its type, `typeof import("…")`, which
 * the type checker follows and Deno's start does not.
 *
 * @throws {Error} in a bundle that lacks `name` (a build that missed it).
 *
 * @example
 * ```ts ignore
 * import { loadModule } from "../lazy.ts";
 * const { createSftp } = await loadModule<typeof import("./sftp/transport.ts")>(
 *   "transports/sftp/transport.ts",
 * );
 * ```
 */
export async function loadModule<T>(name: LazyModule): Promise<T> {
  const load = bundled.get(name);
  if (load) return await load() as T;
  if (bundled.size > 0) {
    throw new Error(`Cannot load module "${name}": this bundle does not contain it`);
  }
  return await import(new URL(name, import.meta.url).href) as T;
}
