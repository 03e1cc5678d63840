/**
 * Retired remote files: versions that were replaced (a new unique name) or
 * whose source was deleted, kept on the server until a due time so pages,
 * stylesheets and caches that still refer to them keep working. Durable:
 * a restart, or a crash, forgets none.
 *
 * @module
 */
import type { Store } from "./store.ts";

/** One retired remote file. */
export interface RetiredRow {
  server: string;
  remote_path: string;
  input_file: string;
  due_at: number;
}

/**
 * Schedules the deletion of `remotePaths` on `server` at `dueAt` (epoch
 * ms). A path already scheduled keeps the later of the two times. Call
 * inside the transaction that records what replaced them.
 */
export function retire(
  store: Pick<Store, "q">,
  server: string,
  remotePaths: readonly string[],
  dueAt: number,
  inputFile: string,
): void {
  const ins = store.q(
    `INSERT INTO retired(server, remote_path, input_file, due_at) VALUES (?, ?, ?, ?)
     ON CONFLICT(server, remote_path) DO UPDATE SET due_at = MAX(due_at, excluded.due_at),
       input_file = excluded.input_file`,
  );
  for (const p of remotePaths) ins.run(server, p, inputFile, dueAt);
}

/** Retired files due at `now`, oldest first. */
export function dueRetired(store: Store, now: number, limit = 200): RetiredRow[] {
  return store.q("SELECT * FROM retired WHERE due_at <= ? ORDER BY due_at LIMIT ?").all(
    now,
    limit,
  ) as unknown as RetiredRow[];
}

/**
 * Every retired file (`verify` must not call them orphans). Empty for a
 * database opened read-only before the daemon added the table.
 */
export function allRetired(store: Store): RetiredRow[] {
  const has = store.q("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'retired'")
    .get();
  if (!has) return [];
  return store.q("SELECT * FROM retired ORDER BY server, due_at").all() as unknown as RetiredRow[];
}

/**
 * Whether `remotePath` on `server` must stay, and why: a record points at it
 * (it was written again: no longer retired), or an upload to it has started
 * (wait: the upload may still end without writing there).
 */
export function retiredInUse(
  store: Store,
  server: string,
  remotePath: string,
): "recorded" | "uploading" | undefined {
  if (store.remotePathInUse(server, remotePath)) return "recorded";
  const intent = store.q("SELECT 1 FROM intents WHERE server = ? AND remote_path = ? LIMIT 1")
    .get(server, remotePath);
  return intent !== undefined ? "uploading" : undefined;
}

/**
 * The file whose upload (an intent) or record points at `remotePath` on
 * `server`, if any: after a retired version was deleted there, that file's
 * copy may have gone with it.
 */
export function retiredOwner(
  store: Store,
  server: string,
  remotePath: string,
): { input_file: string; dest: string } | undefined {
  return (store.q(
    "SELECT input_file, dest FROM synced_files WHERE server = ? AND remote_path = ? LIMIT 1",
  ).get(server, remotePath) ??
    store.q(
      `SELECT input_file, dest FROM intents
       WHERE server = ? AND remote_path = ? AND input_file != '' LIMIT 1`,
    ).get(server, remotePath)) as { input_file: string; dest: string } | undefined;
}

/** Forgets a retired file (deleted, or written again). */
export function dropRetired(store: Store, server: string, remotePath: string): void {
  store.q("DELETE FROM retired WHERE server = ? AND remote_path = ?").run(server, remotePath);
}
