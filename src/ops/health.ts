/**
 * Liveness for `/healthz`: unhealthy when a source's watcher is dead or
 * missing (in watch mode), or when a server has been failing for longer
 * than the `healthFailAfter` setting.
 *
 * @module
 */
import { redact } from "../log.ts";
import type { Daemon } from "../pipeline/daemon.ts";

/** The health verdict and why. */
export interface Health {
  ok: boolean;
  /** One sentence per problem. */
  problems: string[];
  /** Watch mode per source (empty when not watching). */
  watchers: Record<string, string>;
  /** Servers failing right now, with the time they started failing. */
  failing: { server: string; since: number; error: string | null }[];
}

/** Watch modes that deliver changes. */
const WORKING_MODES = new Set(["native", "polling", "starting"]);

/**
 * Computes the health of a running daemon.
 *
 * @param watching whether the daemon watches its sources (not `--once`, not a dry run)
 */
export function healthOf(daemon: Daemon, watching: boolean, now = Date.now()): Health {
  const config = daemon.config;
  const problems: string[] = [];
  const watchers = Object.fromEntries(daemon.watchModes);
  if (watching) {
    for (const source of config.sources) {
      const mode = daemon.watchModes.get(source.name);
      if (!mode) problems.push(`Source "${source.name}" has no watcher`);
      else if (!WORKING_MODES.has(mode)) {
        problems.push(`Source "${source.name}" watcher is ${mode}`);
      }
    }
  }
  const failing: Health["failing"] = [];
  const limit = config.settings.healthFailAfter * 1000;
  const names = new Set(config.servers.map((s) => s.name));
  for (const row of daemon.store.serverRows()) {
    if (!names.has(row.server) || !row.failing_since) continue;
    const error = row.last_error ? redact(row.last_error) : null;
    failing.push({ server: row.server, since: row.failing_since, error });
    if (now - row.failing_since > limit) {
      problems.push(
        `Server "${row.server}" has been failing for ${
          Math.round((now - row.failing_since) / 1000)
        } s${error ? `: ${error}` : ""}`,
      );
    }
  }
  return { ok: problems.length === 0, problems, watchers, failing };
}
