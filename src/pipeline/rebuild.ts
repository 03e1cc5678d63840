/**
 * `sync --rebuild-state`: a new state database from the sources and the
 * destinations, for a data directory whose database was deleted or damaged.
 *
 * The old database (if any) is moved aside; every source file is uploaded
 * once more (the new state knows of no earlier upload); then the verify
 * engine lists each destination and
 * deletes what no source file accounts for — the files deleted from the
 * sources while the state was missing. Destinations that cannot be listed
 * are named: files deleted meanwhile may remain there.
 *
 * @module
 */
import type { Config } from "../config/types.ts";
import { verify } from "../verify/verify.ts";
import { logger } from "../log.ts";
import { Daemon, type RunSummary } from "./daemon.ts";

/** What a rebuild did. */
export interface RebuildResult {
  /** The sync pass. */
  summary: RunSummary;
  /** Stopped (SIGTERM) before the destinations were cleaned up. */
  stopped: boolean;
  /** Remote files deleted because no source file accounts for them. */
  orphansDeleted: number;
  /** Servers whose files could not be listed (left as they are). */
  unlisted: string[];
  /** Differences verify still reports (failed files, errors). */
  problems: number;
}

/** Options for {@linkcode rebuildState}. */
export interface RebuildOptions {
  dataDir?: string;
  approveDeletes?: boolean;
  /** Called with the daemon of the sync pass (to connect signals); returns its clean-up. */
  attach?: (daemon: Daemon) => () => void;
}

/** Rebuilds the state of `config`'s data directory; see the module documentation. */
export async function rebuildState(
  config: Config,
  options: RebuildOptions = {},
): Promise<RebuildResult> {
  const log = logger("rebuild");
  const daemon = await Daemon.open(config, {
    once: true,
    rebuildState: true,
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    ...(options.approveDeletes ? { approveDeletes: true } : {}),
  });
  const info = daemon.store.stateInfo();
  log.info(
    info.previous
      ? `Rebuilding the state; the old database was moved to "${info.previous}"`
      : "Rebuilding the state from the sources and the destinations",
  );
  const detach = options.attach?.(daemon) ?? (() => {});
  let summary: RunSummary;
  try {
    summary = await daemon.run();
  } finally {
    detach();
  }
  const result: RebuildResult = {
    summary,
    stopped: daemon.signal.aborted,
    orphansDeleted: 0,
    unlisted: [],
    problems: 0,
  };
  if (result.stopped) return result;
  const report = await verify(config, {
    repair: true,
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
  });
  result.orphansDeleted = report.repaired.deleted;
  for (const s of report.servers) {
    if (!s.capabilities.list) result.unlisted.push(s.name);
    result.problems += s.problems.filter((p) => p.repaired !== "deleted").length;
  }
  log.info(
    `State rebuilt: ${summary.synced} synced, ${summary.skipped} unchanged, ${result.orphansDeleted} files the sources no longer have deleted from the destinations`,
  );
  if (result.unlisted.length > 0) {
    log.warn(
      `Cannot list the files of server(s) ${
        result.unlisted.map((n) => `"${n}"`).join(", ")
      }: files deleted from the sources while the state was missing may remain there`,
    );
  }
  return result;
}
