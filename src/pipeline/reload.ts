/**
 * What a configuration reload changes: a pure comparison of the old and the
 * new configuration, which the daemon then applies.
 *
 * @module
 */
import type { Config, Server, Source } from "../config/types.ts";

/** What differs between two configurations, as far as a running daemon cares. */
export interface ConfigDiff {
  /** Settings that take effect only after a restart. */
  restartNeeded: string[];
  /** Servers whose live state must be replaced (changed or removed). */
  retiredServers: string[];
  /** Sources that are new or changed: their watchers restart and they are scanned. */
  freshSources: Source[];
  /** Settings of every watcher changed: all watchers restart. */
  watchChanged: boolean;
  /** The pid file moved. */
  pidFileChanged: boolean;
}

// Line numbers move with every edit of the file; they change nothing.
function json(v: unknown): string {
  return JSON.stringify(v, (k, x) => k === "line" ? undefined : x);
}

function same(a: unknown, b: unknown): boolean {
  return json(a) === json(b);
}

/**
 * Compares `old` and `next`. `live` are the servers the daemon runs now
 * (by name).
 *
 * @example
 * ```ts ignore
 * const d = diffConfig(old, next, daemonServers);
 * for (const name of d.retiredServers) restart(name);
 * ```
 */
export function diffConfig(
  old: Config,
  next: Config,
  live: ReadonlyMap<string, Server>,
): ConfigDiff {
  const restartNeeded = ([
    "maxFilesInPipeline",
    "maxSimultaneousProcessorChains",
    "maxSimultaneousTransporters",
    "rescanInterval",
    "syncedFilesDb",
    "persistentDataDb",
    "syncedFilesDbGroup",
  ] as const).filter((k) => old.settings[k] !== next.settings[k]);
  const sourcesChanged = !same(
    old.sources.map((x) => [x.name, x.scanPath]),
    next.sources.map((x) => [x.name, x.scanPath]),
  );
  // Changed servers get a new state (running jobs finish on the old one).
  const retiredServers: string[] = [];
  for (const [name, server] of live) {
    const now = next.servers.find((x) => x.name === name);
    if (
      now && same(now, server) && !sourcesChanged &&
      old.settings.defaultMaxConnections === next.settings.defaultMaxConnections
    ) continue;
    retiredServers.push(name);
  }
  const watchChanged = (["watchMode", "pollInterval", "settleDelay", "maxDelay"] as const).some(
    (k) => old.settings[k] !== next.settings[k],
  );
  const freshSources: Source[] = [];
  for (const source of next.sources) {
    const before = old.sources.find((x) => x.name === source.name);
    if (!before || !same(before, source)) freshSources.push(source);
  }
  return {
    restartNeeded,
    retiredServers,
    freshSources,
    watchChanged,
    pidFileChanged: next.settings.pidFile !== old.settings.pidFile,
  };
}
