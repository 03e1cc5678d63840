/**
 * Opens the shared store a URL names: `sqlite:/abs/path.db`,
 * `postgres://…` / `postgresql://…` (PostgreSQL), `mysql://…` /
 * `mariadb://…` (MariaDB ≥ 10.6, MySQL ≥ 8).
 *
 * @module
 */
import { SqliteSharedStore } from "./sqlite.ts";
import type { SharedStore } from "./types.ts";
import { parseStoreUrl, redactStoreUrl } from "./url.ts";
import { loadModule } from "../../lazy.ts";

export { redactStoreUrl };
/** What a database error means for the shared store (see `_db_errors.ts`). */
export { classifyDbError } from "./_db_errors.ts";

/** Options of {@linkcode openSharedStore}. */
export interface OpenSharedOptions {
  /** The database password (from `${env:…}`/`${file:…}`); replaces the URL's. */
  password?: string;
  /** Connections in the pool of a database server (default 3). */
  poolSize?: number;
  /** How long connecting may take before the store counts as unavailable, ms (default 5,000). */
  connectTimeoutMs?: number;
  /** SQLite: how long a write waits for another process, ms (default 10,000). */
  busyTimeoutMs?: number;
}

/**
 * Opens the shared store at `url` for node `node`. Does not connect yet (the
 * first call does, and later calls reconnect after the server restarts);
 * call `migrate()` before anything else. Throws a `TypeError` naming the URL
 * without its password when the URL cannot be used.
 *
 * @example
 * ```ts ignore
 * import { openSharedStore } from "./open.ts";
 * const store = await openSharedStore("sqlite:/var/lib/fileconveyor/shared.db", "web1");
 * await store.migrate();
 * ```
 */
export async function openSharedStore(
  url: string,
  node: string,
  options: OpenSharedOptions = {},
): Promise<SharedStore> {
  const parsed = parseStoreUrl(url, options.password);
  if (!node) throw new TypeError("Cannot open the shared store: the node name is empty");
  switch (parsed.kind) {
    case "sqlite": {
      const opts = options.busyTimeoutMs === undefined
        ? {}
        : { busyTimeoutMs: options.busyTimeoutMs };
      return new SqliteSharedStore(parsed.file, node, opts);
    }
    case "postgres": {
      const { PostgresSharedStore } = await loadModule<typeof import("./postgres.ts")>(
        "store/shared/postgres.ts",
      );
      return new PostgresSharedStore(parsed, node, { ...options, shown: redactStoreUrl(url) });
    }
    case "mysql": {
      const { MysqlSharedStore } = await loadModule<typeof import("./mysql.ts")>(
        "store/shared/mysql.ts",
      );
      return new MysqlSharedStore(parsed, node, { ...options, shown: redactStoreUrl(url) });
    }
  }
}
