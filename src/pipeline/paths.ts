/**
 * Where a configuration keeps its state.
 *
 * @module
 */
import * as path from "node:path";
import type { Config } from "../config/types.ts";

/** The data directory: `--data-dir`, else `<settings><dataDir>`, else `fileconveyor-data` next to the config. */
export function dataDirFor(config: Config, override?: string): string {
  if (override) return path.resolve(override);
  if (config.settings.dataDir) return config.settings.dataDir;
  return path.join(path.dirname(config.file), "fileconveyor-data");
}

/** The working directory for processor output. */
export function workDirFor(config: Config, dataDir: string): string {
  return config.settings.workingDir ?? path.join(dataDir, "work");
}
