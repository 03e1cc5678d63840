/**
 * fileconveyor: watch folders, process files, and sync them to CDNs and
 * servers. Imported, this module is the library API; run, it is the CLI.
 *
 * @example
 * ```ts
 * import { Daemon, loadConfig } from "./mod.ts";
 * const config = loadConfig("config.xml");
 * const daemon = await Daemon.open(config, { once: true });
 * await daemon.run();
 * ```
 *
 * @module
 */
import "./src/shim.ts";
import "./src/transports/mod.ts";
import "./src/processors/mod.ts";

export { loadConfig, parseConfig } from "./src/config/load.ts";
export type * from "./src/config/types.ts";
export { Daemon, type DaemonOptions, type RunSummary } from "./src/pipeline/daemon.ts";
export { ClassifiedError, ConfigError, type ErrorKind, RequeueError } from "./src/errors.ts";
export {
  getTransportDef,
  registerTransport,
  type Transport,
  type TransportDef,
} from "./src/transports/transport.ts";
export {
  type ExtraOutput,
  getProcessorDef,
  type ProcessContext,
  type ProcessFile,
  type ProcessorDef,
  type ProcessResult,
  registerProcessor,
  type SetupContext,
  type SourceInfo,
} from "./src/processors/processor.ts";
export type { OptionSpec, OptionValues } from "./src/options.ts";
export { VERSION } from "./src/version.ts";
export { main } from "./src/cli/main.ts";

if (import.meta.main) {
  const { main } = await import("./src/cli/main.ts");
  Deno.exit(await main(Deno.args));
}
