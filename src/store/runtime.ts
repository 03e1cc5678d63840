/**
 * The daemon's runtime state: source deletions after sync, the delete
 * guard, server health, the transfer log and runtime values.
 *
 * @module
 */
import { Queue } from "./queue.ts";
import type { ServerRow } from "./types.ts";

/** The runtime part of {@linkcode Store}. */
export class RuntimeState extends Queue {
  // ---- source deletions after sync ----

  scheduleSourceDeletion(path: string, at: number): void {
    this.q("INSERT OR REPLACE INTO source_deletions(path, delete_at) VALUES (?, ?)").run(path, at);
  }

  unscheduleSourceDeletion(path: string): void {
    this.q("DELETE FROM source_deletions WHERE path = ?").run(path);
  }

  dueSourceDeletions(now: number, limit = 100): string[] {
    return (this.q("SELECT path FROM source_deletions WHERE delete_at <= ? LIMIT ?").all(
      now,
      limit,
    ) as {
      path: string;
    }[]).map((r) => r.path);
  }

  // ---- delete guard ----

  guardFor(
    source: string,
  ): { pending: number; known: number; since: number; approved: number } | undefined {
    return this.q("SELECT pending, known, since, approved FROM guard WHERE source = ?").get(
      source,
    ) as
      | { pending: number; known: number; since: number; approved: number }
      | undefined;
  }

  holdDeletes(source: string, pending: number, known: number, now: number): void {
    this.q(
      `INSERT INTO guard(source, pending, known, since) VALUES (?, ?, ?, ?)
       ON CONFLICT(source) DO UPDATE SET pending = excluded.pending, known = excluded.known`,
    ).run(source, pending, known, now);
  }

  approveDeletes(source?: string): number {
    return Number(
      (source
        ? this.q("UPDATE guard SET approved = 1 WHERE source = ?").run(source)
        : this.q("UPDATE guard SET approved = 1").run()).changes,
    );
  }

  clearGuard(source: string): void {
    this.q("DELETE FROM guard WHERE source = ?").run(source);
  }

  guards(): { source: string; pending: number; known: number; since: number; approved: number }[] {
    return this.q("SELECT * FROM guard ORDER BY source").all() as unknown as {
      source: string;
      pending: number;
      known: number;
      since: number;
      approved: number;
    }[];
  }

  // ---- servers, transfers, runtime ----

  serverOk(server: string, bytes: number, now: number): void {
    this.q(
      `INSERT INTO servers(server, last_ok, synced_bytes, synced_count) VALUES (?, ?, ?, 1)
       ON CONFLICT(server) DO UPDATE SET last_ok = excluded.last_ok, failing_since = NULL, blocked_until = NULL,
         synced_bytes = synced_bytes + excluded.synced_bytes, synced_count = synced_count + 1`,
    ).run(server, now, bytes);
  }

  serverFailed(server: string, message: string, blockedUntil: number | null, now: number): void {
    this.q(
      `INSERT INTO servers(server, failing_since, last_error, blocked_until, retries) VALUES (?, ?, ?, ?, 1)
       ON CONFLICT(server) DO UPDATE SET failing_since = COALESCE(failing_since, excluded.failing_since),
         last_error = excluded.last_error, blocked_until = excluded.blocked_until, retries = retries + 1`,
    ).run(server, now, message, blockedUntil);
  }

  serverRows(): ServerRow[] {
    return this.q("SELECT * FROM servers ORDER BY server").all() as unknown as ServerRow[];
  }

  addTransfer(
    t: {
      server: string;
      input_file: string;
      remote_path: string;
      event: number;
      bytes: number;
      ms: number;
      lag_ms: number;
    },
    now: number,
  ): void {
    this.q(
      "INSERT INTO transfers(at, server, input_file, remote_path, event, bytes, ms, lag_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    ).run(now, t.server, t.input_file, t.remote_path, t.event, t.bytes, t.ms, t.lag_ms);
  }

  /** Keeps the transfer log bounded (last hour, at most `max` rows). */
  pruneTransfers(now: number, max = 20_000): void {
    this.q("DELETE FROM transfers WHERE at < ?").run(now - 3_600_000);
    this.q("DELETE FROM transfers WHERE id <= (SELECT MAX(id) FROM transfers) - ?").run(max);
  }

  recentTransfers(limit = 50): {
    at: number;
    server: string;
    input_file: string;
    remote_path: string;
    event: number;
    bytes: number;
    ms: number;
    lag_ms: number;
  }[] {
    return this.q("SELECT * FROM transfers ORDER BY id DESC LIMIT ?").all(limit) as unknown as {
      at: number;
      server: string;
      input_file: string;
      remote_path: string;
      event: number;
      bytes: number;
      ms: number;
      lag_ms: number;
    }[];
  }

  setRuntime(key: string, value: unknown): void {
    this.q("INSERT OR REPLACE INTO runtime(key, value) VALUES (?, ?)").run(
      key,
      JSON.stringify(value),
    );
  }

  getRuntime<T>(key: string): T | undefined {
    const r = this.q("SELECT value FROM runtime WHERE key = ?").get(key) as
      | { value: string }
      | undefined;
    return r ? JSON.parse(r.value) as T : undefined;
  }
}
