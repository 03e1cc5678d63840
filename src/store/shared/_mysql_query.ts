/**
 * How the MariaDB/MySQL shared store sends a statement on a pooled
 * connection: with a timeout, its result typed as rows or as the server's
 * OK packet (`mysql.ts`, and the modules that hold its SQL).
 *
 * @module
 */
import type mysql from "mysql2/promise";

/** A connection cut without a FIN (network loss) must not hang a call forever. */
export const QUERY_TIMEOUT_MS = 60_000;

/** A pooled connection of the store. */
export type Conn = mysql.PoolConnection;
/** A row as the driver returns it. */
// deno-lint-ignore no-explicit-any
export type Row = Record<string, any>;

/** Runs a statement that returns rows. */
export async function queryRows(c: Conn, sql: string, values?: unknown[]): Promise<Row[]> {
  const [rows] = await c.query({ sql, timeout: QUERY_TIMEOUT_MS }, values);
  return rows as Row[];
}

/** Runs a statement that changes rows; its OK packet (affected rows, insert id). */
export async function queryRun(
  c: Conn,
  sql: string,
  values?: unknown[],
): Promise<mysql.ResultSetHeader> {
  const [result] = await c.query({ sql, timeout: QUERY_TIMEOUT_MS }, values);
  return result as mysql.ResultSetHeader;
}
