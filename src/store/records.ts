/**
 * The record of what is synced where (`synced_files`), the intents written
 * before remote changes, and the dependencies between files (stylesheets
 * embedding other files' URLs).
 *
 * @module
 */
import { retire } from "./retired.ts";
import { SourceState } from "./source_state.ts";
import type { IntentRow, SyncedRow } from "./types.ts";

/** The synced-record part of {@linkcode Store}. */
export class SyncedRecords extends SourceState {
  /** Removes the queued delete of `inputFile` at a destination (after a server-side move). */
  dropQueued(inputFile: string, server: string, dest: string): void {
    this.q("DELETE FROM queue WHERE input_file = ? AND server = ? AND dest = ? AND running = 0")
      .run(
        inputFile,
        server,
        dest,
      );
  }

  // ---- synced files ----

  getSynced(inputFile: string, server: string, dest: string): SyncedRow | undefined {
    return this.q("SELECT * FROM synced_files WHERE input_file = ? AND server = ? AND dest = ?")
      .get(
        inputFile,
        server,
        dest,
      ) as SyncedRow | undefined;
  }

  syncedFor(inputFile: string): SyncedRow[] {
    return this.q("SELECT * FROM synced_files WHERE input_file = ? ORDER BY server, dest").all(
      inputFile,
    ) as unknown as SyncedRow[];
  }

  /** URL of a synced file on `server` (first destination), or on any server. */
  urlFor(inputFile: string, server?: string): string | undefined {
    const r = server
      ? this.q(
        "SELECT url FROM synced_files WHERE input_file = ? AND server = ? ORDER BY dest LIMIT 1",
      ).get(
        inputFile,
        server,
      )
      : this.q("SELECT url FROM synced_files WHERE input_file = ? ORDER BY server, dest LIMIT 1")
        .get(inputFile);
    return (r as { url: string } | undefined)?.url;
  }

  putSynced(row: SyncedRow): void {
    this.syncedChanged.add(row.input_file);
    this.q(
      `INSERT INTO synced_files(input_file, transported_file_basename, url, server, dest, remote_path, size,
         mtime_ms, ctime_ms, ino, md5, etag, chain, extras, synced_at, source_md5)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(input_file, server, dest) DO UPDATE SET
         transported_file_basename = excluded.transported_file_basename, url = excluded.url,
         remote_path = excluded.remote_path, size = excluded.size, mtime_ms = excluded.mtime_ms,
         ctime_ms = excluded.ctime_ms, ino = excluded.ino, md5 = excluded.md5, etag = excluded.etag,
         chain = excluded.chain, extras = excluded.extras, synced_at = excluded.synced_at,
         source_md5 = excluded.source_md5`,
    ).run(
      row.input_file,
      row.transported_file_basename,
      row.url,
      row.server,
      row.dest,
      row.remote_path,
      row.size,
      row.mtime_ms,
      row.ctime_ms,
      row.ino,
      row.md5,
      row.etag,
      row.chain,
      row.extras,
      row.synced_at,
      row.source_md5 ?? null,
    );
  }

  /** Records a server-side move, and drops the intent the move announced. */
  recordMove(from: SyncedRow, row: SyncedRow): void {
    this.tx(() => {
      this.deleteSynced(from.input_file, from.server, from.dest);
      this.dropQueued(from.input_file, from.server, from.dest);
      this.putSynced(row);
      this.dropIntent(row.server, row.remote_path);
    });
  }

  confirmSynced(
    inputFile: string,
    server: string,
    dest: string,
    at: number,
    sourceMd5: string,
  ): void {
    this.q(
      `UPDATE synced_files SET synced_at = ?, source_md5 = ?
       WHERE input_file = ? AND server = ? AND dest = ?`,
    ).run(at, sourceMd5, inputFile, server, dest);
  }

  retire(server: string, remotePaths: readonly string[], dueAt: number, inputFile: string): void {
    retire(this, server, remotePaths, dueAt, inputFile);
  }

  recordDeleted(inputFile: string, server: string, dest: string): void {
    this.tx(() => {
      this.deleteSynced(inputFile, server, dest);
      this.setDeps(inputFile, server, dest, []);
    });
  }

  syncedAtPaths(server: string, remotePaths: readonly string[]): SyncedRow[] {
    const get = this.q("SELECT * FROM synced_files WHERE server = ? AND remote_path = ?");
    return remotePaths.flatMap((p) => get.all(server, p) as unknown as SyncedRow[]);
  }

  syncedBelow(server: string, remotePath: string): SyncedRow[] {
    return this.q(
      "SELECT * FROM synced_files WHERE server = ? AND remote_path > ? AND remote_path < ?",
    ).all(server, remotePath + "/", remotePath + "0") as unknown as SyncedRow[];
  }

  deleteSynced(inputFile: string, server: string, dest: string): void {
    this.syncedChanged.add(inputFile);
    this.q("DELETE FROM synced_files WHERE input_file = ? AND server = ? AND dest = ?").run(
      inputFile,
      server,
      dest,
    );
  }

  /** Whether any synced row on `server` points at `remotePath`. */
  remotePathInUse(server: string, remotePath: string): boolean {
    return this.q("SELECT 1 FROM synced_files WHERE server = ? AND remote_path = ? LIMIT 1").get(
      server,
      remotePath,
    ) !== undefined;
  }

  syncedCounts(): { server: string; n: number; last: number | null }[] {
    return this.q(
      "SELECT server, COUNT(*) AS n, MAX(synced_at) AS last FROM synced_files GROUP BY server ORDER BY server",
    ).all() as unknown as { server: string; n: number; last: number | null }[];
  }

  // ---- intents ----

  addIntent(server: string, remotePath: string, now: number, inputFile = "", dest = ""): void {
    this.q(
      `INSERT INTO intents(server, remote_path, input_file, dest, created_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT(server, remote_path) DO UPDATE SET input_file = excluded.input_file, dest = excluded.dest`,
    ).run(server, remotePath, inputFile, dest, now);
    // Written again: no longer a retired version waiting for deletion.
    this.q("DELETE FROM retired WHERE server = ? AND remote_path = ?").run(server, remotePath);
  }

  /**
   * Writes the intent of an upload about to start unless one is there
   * already (whose upload may have written the path: it is left as it is);
   * true when this call wrote it. A retired version at the path stays retired:
   * the janitor waits while the intent lasts, and deletes it after all when
   * the job ends without writing there (the file vanished before its upload).
   */
  claimIntent(
    server: string,
    remotePath: string,
    now: number,
    inputFile: string,
    dest: string,
  ): boolean {
    const added = this.q(
      `INSERT INTO intents(server, remote_path, input_file, dest, created_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT(server, remote_path) DO NOTHING`,
    ).run(server, remotePath, inputFile, dest, now);
    return Number(added.changes) > 0;
  }

  /** Intents of one file at one destination. */
  intentsFor(inputFile: string, server: string, dest: string): string[] {
    return (this.q(
      "SELECT remote_path FROM intents WHERE input_file = ? AND server = ? AND dest = ?",
    ).all(
      inputFile,
      server,
      dest,
    ) as { remote_path: string }[]).map((r) => r.remote_path);
  }

  dropIntent(server: string, remotePath: string): void {
    this.q("DELETE FROM intents WHERE server = ? AND remote_path = ?").run(server, remotePath);
  }

  /**
   * Every intent of `server`: remote paths whose upload or deletion may not
   * have finished, with the file and destination written for (`input_file`
   * is empty on rows older than that column).
   */
  intents(server: string): IntentRow[] {
    return this.q("SELECT remote_path, input_file, dest FROM intents WHERE server = ?").all(
      server,
    ) as unknown as IntentRow[];
  }

  // ---- dependencies (stylesheets embedding other files' URLs) ----

  /**
   * False while the deps table is known to be empty: only this connection
   * writes it (the daemon holds the data directory's lock), so most syncs,
   * which record no references, skip a query per uploaded file. Once true it
   * stays true (a rolled-back write leaves it true, which only costs the query).
   */
  #anyDeps: boolean | undefined;

  setDeps(dependent: string, server: string, dest: string, refs: readonly string[]): void {
    if (refs.length > 0) this.#anyDeps = true;
    this.q("DELETE FROM deps WHERE dependent = ? AND server = ? AND dest = ?").run(
      dependent,
      server,
      dest,
    );
    const ins = this.q(
      "INSERT OR IGNORE INTO deps(dependent, server, dest, ref) VALUES (?, ?, ?, ?)",
    );
    for (const r of refs) ins.run(dependent, server, dest, r);
  }

  /** Adds references of `dependent` (a wait for them), keeping those recorded before. */
  addDeps(dependent: string, server: string, dest: string, refs: readonly string[]): void {
    if (refs.length === 0) return;
    this.#anyDeps = true;
    const ins = this.q(
      "INSERT OR IGNORE INTO deps(dependent, server, dest, ref) VALUES (?, ?, ?, ?)",
    );
    for (const r of refs) ins.run(dependent, server, dest, r);
  }

  dependents(ref: string, server: string): { dependent: string; dest: string }[] {
    this.#anyDeps ??= this.q("SELECT 1 FROM deps LIMIT 1").get() !== undefined;
    if (!this.#anyDeps) return [];
    return this.q("SELECT dependent, dest FROM deps WHERE ref = ? AND server = ?").all(
      ref,
      server,
    ) as unknown as {
      dependent: string;
      dest: string;
    }[];
  }
}
