/**
 * Wires the web application databases ({@linkcode WebDb}) to a daemon:
 * where they live, who may read them, and refreshing them without ever
 * stopping the daemon on a failure.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Config } from "../config/types.ts";
import type { Logger } from "../log.ts";
import type { Store } from "../store/store.ts";
import { WEB_PUBLISHED_KEY as PUBLISHED, WebDb } from "../store/web_db.ts";
import { groupId } from "../util/group.ts";
import { aliasedDirs, webKeys } from "./web_keys.ts";

/** The two files and the reading group, defaults applied. */
export function webDbPaths(
  config: Config,
  dataDir: string,
): { syncedFilesDb: string; persistentDataDb: string; gid?: number } {
  const s = config.settings;
  const syncedFilesDb = s.syncedFilesDb ?? path.join(dataDir, "synced_files.db");
  const persistentDataDb = s.persistentDataDb ??
    path.join(path.dirname(syncedFilesDb), "persistent_data.db");
  const gid = s.syncedFilesDbGroup ? groupId(s.syncedFilesDbGroup) : undefined;
  return { syncedFilesDb, persistentDataDb, ...(gid !== undefined ? { gid } : {}) };
}

/** Mode for the data directory: 0750 when a group reads web databases kept in it, else 0700. */
export function dataDirMode(config: Config, dataDir: string): number {
  const p = webDbPaths(config, dataDir);
  const inside = [p.syncedFilesDb, p.persistentDataDb].some((f) =>
    path.dirname(f) === path.resolve(dataDir)
  );
  return p.gid !== undefined && inside ? 0o750 : 0o700;
}

/** The web databases of a daemon; `config()` gives the configuration in effect (reloads). */
export class WebAccess {
  readonly #db: WebDb;
  readonly #log: Logger;
  readonly #enabled: boolean;
  readonly #config: () => Config;
  readonly #store: Store;
  readonly #dataDir: string;
  #keysOf: Config | undefined;
  #failing = false;

  /**
   * With `enabled` false (a dry run), nothing is ever written. `table`: where
   * the rows come from (`web_records` on a node of a fleet: every node's files).
   */
  constructor(
    config: () => Config,
    dataDir: string,
    store: Store,
    log: Logger,
    enabled = true,
    table: "synced_files" | "web_records" = "synced_files",
  ) {
    this.#log = log;
    this.#enabled = enabled;
    this.#config = config;
    this.#store = store;
    this.#dataDir = dataDir;
    this.#db = new WebDb(store, {
      ...webDbPaths(config(), dataDir),
      keys: (f) => webKeys(config(), f),
      aliased: () => aliasedDirs(config()),
      table,
    });
  }

  /** Publishes the final state (at stop), and records with which keys (see {@linkcode resume}). */
  close(): void {
    if (!this.#enabled) return;
    let published: string | null = null;
    try {
      this.#db.close();
      published = this.#signature();
    } catch (e) {
      this.#log.warn(`Cannot write the web application databases: ${(e as Error).message}`);
    }
    try {
      this.#store.setRuntime(PUBLISHED, published);
    } catch {
      // Not recorded: the next start publishes anew.
    }
  }

  /**
   * At the start of a run over a state that a clean stop left (see
   * `Store.closedCleanly`): when that stop published both files with the
   * same keys and they are still there, they stay as they are until a
   * synced file changes. Returns whether they did; otherwise call
   * {@linkcode refresh} with `force`.
   */
  resume(): boolean {
    if (!this.#enabled) return true;
    try {
      const p = webDbPaths(this.#config(), this.#dataDir);
      const current = this.#store.getRuntime<string | null>(PUBLISHED) === this.#signature() &&
        fs.existsSync(p.syncedFilesDb) && fs.existsSync(p.persistentDataDb);
      if (!current) return false;
      this.#store.setRuntime(PUBLISHED, null);
    } catch {
      return false;
    }
    this.#keysOf = this.#config();
    this.#db.assumePublished();
    return true;
  }

  /** What decides the published keys and where they are written. */
  #signature(): string {
    const config = this.#config();
    return JSON.stringify({
      file: config.file,
      paths: webDbPaths(config, this.#dataDir),
      sources: config.sources.map((
        s,
      ) => [s.scanPath, s.configuredPath, s.documentRoot, s.basePath]),
    });
  }

  /** Brings both files up to date (see {@linkcode WebDb.refresh}); logs failures once. */
  refresh(force = false): void {
    if (!this.#enabled) return;
    try {
      // A reloaded configuration may change the keys (sources, document roots): all rows again.
      const config = this.#config();
      if (this.#keysOf !== undefined && this.#keysOf !== config) this.#db.rebuild();
      this.#keysOf = config;
      this.#db.refresh(force);
      if (this.#failing) this.#log.info("The web application databases are written again");
      this.#failing = false;
    } catch (e) {
      if (!this.#failing) {
        this.#log.warn(
          `Cannot write the web application databases (will retry): ${(e as Error).message}`,
        );
      }
      this.#failing = true;
    }
  }
}
