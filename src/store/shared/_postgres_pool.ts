/**
 * The connection pool of the PostgreSQL shared store: its settings from the
 * store URL (TLS included), and listeners so that a broken connection never
 * ends the process — the call that used it fails instead, and the pool opens
 * a new one.
 *
 * @module
 */
import pg from "pg";
import type { PostgresSharedOptions } from "./postgres.ts";
import type { ServerUrl } from "./url.ts";

/** A pool for node `node` of the store at `url`; it connects on first use. */
export function openPool(
  url: ServerUrl,
  node: string,
  options: Pick<PostgresSharedOptions, "poolSize" | "connectTimeoutMs">,
): pg.Pool {
  const config: pg.PoolConfig = {
    host: url.host,
    port: url.port,
    user: url.user,
    password: url.password,
    database: url.database,
    max: options.poolSize ?? 3,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    idleTimeoutMillis: 30_000,
    // A connection cut without a FIN (network loss) must not hang a call forever.
    query_timeout: 60_000,
    keepAlive: true,
    application_name: `fileconveyor ${node}`.slice(0, 63),
  };
  if (url.tls) {
    const tls: Record<string, unknown> = { rejectUnauthorized: url.tls.verifyChain };
    if (url.tls.ca !== undefined) tls.ca = url.tls.ca;
    if (!url.tls.verifyHost) tls.checkServerIdentity = () => undefined;
    config.ssl = tls;
  }
  const pool = new pg.Pool(config);
  // An idle connection that breaks (server restart) is dropped by the pool; without a
  // listener the 'error' event would crash the process.
  pool.on("error", () => {});
  // A connection that breaks while checked out fails its query (the call fails, is
  // classified, and the link backs off) and also emits 'error' on its client, where the
  // pool listens only while it is idle: without this listener that event ends the process,
  // whatever the socket's error (seen: `read ECONNRESET` when the server stopped mid-query).
  pool.on("connect", (client) => client.on("error", () => {}));
  return pool;
}
