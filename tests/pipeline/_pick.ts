/**
 * What the pick tests look at after a run: the files a destination holds and
 * what the run left in its state database (read-only, so a test never
 * changes what it checks).
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";

/** The rows `sql` selects from the state database of data directory `data`. */
function rows<T>(data: string, sql: string): T[] {
  const db = new DatabaseSync(path.join(data, "fileconveyor.db"), { readOnly: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

/** The number `sql` selects as `n` (e.g. `SELECT COUNT(*) AS n FROM intents`). */
export function count(data: string, sql: string): number {
  return rows<{ n: number }>(data, sql)[0]!.n;
}

/** The remote paths of the intents left in the state database, sorted. */
export function intents(data: string): string[] {
  return rows<{ remote_path: string }>(data, "SELECT remote_path FROM intents ORDER BY remote_path")
    .map((r) => r.remote_path);
}

/** The files under `root`, relative to it, sorted. */
export function files(root: string): string[] {
  return (fs.readdirSync(root, { recursive: true, withFileTypes: true }) as fs.Dirent[])
    .filter((e) => e.isFile())
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)))
    .sort();
}
