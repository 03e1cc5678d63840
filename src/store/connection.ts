/**
 * The connection to one data directory's database: opening, the checks of
 * the database file, prepared statements and transactions. The parts of
 * {@linkcode Store} build on it.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { recordCleanClose } from "./clean_close.ts";
import { checkDatabase, databaseFile, type OpenOptions, openState, walPages } from "./db.ts";
import { DbFileGuard } from "./integrity.ts";
import { WEB_PUBLISHED_KEY } from "./web_db.ts";

/** The database of one data directory: connection, file checks, statements, transactions. */
export class StoreConnection {
  /**
   * The connection. Internal to `src/store/`: code elsewhere asks
   * {@linkcode Store} methods or the read model (`read_model.ts`); nothing outside this folder uses it.
   */
  readonly db: DatabaseSync;
  /** The database file. */
  readonly file: string;
  readonly #stmts = new Map<string, StatementSync>();
  readonly #guard: DbFileGuard;
  readonly #dataDir: string;
  readonly #readOnly: boolean;
  #depth = 0;
  /**
   * Input files whose `synced_files` rows changed (or were written in a
   * transaction that may have rolled back) since a copy of them last took
   * this set; copies re-read those rows.
   */
  syncedChanged: Set<string> = new Set();
  /**
   * The file was opened exactly as the last clean close left it (see
   * `clean_close.ts`): what that close published from it still holds.
   */
  readonly closedCleanly: boolean;

  constructor(dataDir: string, options: OpenOptions = {}) {
    this.file = databaseFile(dataDir);
    this.#dataDir = dataDir;
    this.#readOnly = !!options.readOnly;
    const opened = openState(dataDir, options);
    this.db = opened.db;
    this.#checkedAt = opened.verifiedAt;
    this.closedCleanly = opened.trusted;
    this.#guard = new DbFileGuard(this.file);
  }

  /**
   * `undefined` while the database file at its path is the one this store
   * opened; otherwise what happened to it (deleted, replaced): SQLite keeps
   * writing to the open file, so nothing else would notice.
   */
  lost(): string | undefined {
    return this.#guard.check();
  }

  /**
   * Throws a `StateError` when the database file is damaged (see
   * `checkDatabase`). The check reads the whole file and blocks meanwhile
   * (about 1 s per 50 MB): a large database is checked at most every 10
   * minutes, a small one at every call.
   */
  checkFile(now: number = Date.now()): void {
    let size = 0;
    try {
      size = fs.statSync(this.file).size;
    } catch {
      // Gone: the next heartbeat reports it.
    }
    if (size > 8 * 1024 * 1024 && now - this.#checkedAt < 600_000) return;
    try {
      checkDatabase(path.dirname(this.file));
    } catch (e) {
      this.#damaged = true;
      throw e;
    }
    this.#checkedAt = now;
  }

  /**
   * When the file was last fully checked: at this open, or before the clean
   * close that let this open trust it (`clean_close.ts`).
   */
  #checkedAt: number;
  /** A check failed: the close must not vouch for the file. */
  #damaged = false;

  /** When this state was created, and whether it replaced a lost or damaged one. */
  stateInfo(): { createdAt: number | null; rebuiltAt: number | null; previous: string | null } {
    const rows = this.q("SELECT key, value FROM meta").all() as { key: string; value: string }[];
    const get = (k: string) => rows.find((r) => r.key === k)?.value;
    const num = (v: string | undefined) => (v ? Number(v) : null);
    return {
      createdAt: num(get("created_at")),
      rebuiltAt: num(get("rebuilt_at")),
      previous: get("previous") ?? null,
    };
  }

  /**
   * Moves what the WAL holds into the database file and truncates the WAL:
   * frees space when the disk is full (best effort, `false` when it could not). The next
   * automatic checkpoints follow the space left now (see {@linkcode walPages}).
   */
  checkpoint(): boolean {
    try {
      this.db.exec(`PRAGMA wal_autocheckpoint = ${walPages(path.dirname(this.file))}`);
      const r = this.db.prepare("PRAGMA wal_checkpoint(TRUNCATE)").get() as { busy: number };
      return r.busy === 0;
    } catch {
      return false;
    }
  }

  /** Prepares (once) and returns a statement. Internal to `src/store/`, like {@linkcode Store.db}. */
  q(sql: string): StatementSync {
    let s = this.#stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.#stmts.set(sql, s);
    }
    return s;
  }

  /** Runs `fn` in one IMMEDIATE transaction. */
  tx<T>(fn: () => T): T {
    // Nested calls become savepoints, so callers compose freely.
    if (this.#depth > 0) {
      const name = `sp${this.#depth}`;
      this.#depth++;
      this.db.exec(`SAVEPOINT ${name}`);
      try {
        const out = fn();
        this.db.exec(`RELEASE ${name}`);
        return out;
      } catch (e) {
        try {
          this.db.exec(`ROLLBACK TO ${name}`);
          this.db.exec(`RELEASE ${name}`);
        } catch {
          // The outer transaction is gone (e.g. disk full); it reports the error.
        }
        throw e;
      } finally {
        this.#depth--;
      }
    }
    this.db.exec("BEGIN IMMEDIATE");
    this.#depth++;
    try {
      const out = fn();
      this.db.exec("COMMIT");
      return out;
    } catch (e) {
      this.#rollback();
      throw e;
    } finally {
      this.#depth--;
    }
  }

  /**
   * Runs `fn`, which only reads, in one read transaction (joining an open
   * transaction if there is one): one snapshot and one lock for all its
   * statements. Each statement outside a transaction is a transaction of its
   * own, taking and dropping the WAL read lock, which costs several times
   * what a small indexed read costs inside one.
   */
  read<T>(fn: () => T): T {
    if (this.#depth > 0) return fn();
    this.db.exec("BEGIN");
    this.#depth++;
    let out: T;
    try {
      out = fn();
    } catch (e) {
      this.#rollback();
      throw e;
    } finally {
      this.#depth--;
    }
    this.db.exec("COMMIT");
    return out;
  }

  /**
   * Ends the open (outermost) transaction without its writes, best effort:
   * it may be gone already (SQLite rolls back by itself on some errors, e.g.
   * a full disk), and the caller reports the error that got it here.
   */
  #rollback(): void {
    try {
      this.db.exec("ROLLBACK");
    } catch {
      // Gone already.
    }
  }

  /**
   * Closes the connection. A read-write connection that closes cleanly (and
   * is the last one, so SQLite folded the WAL into the file) records that,
   * which spares the next open its integrity check; `clean: false` (the run
   * ended on a damaged or lost state) records nothing.
   */
  close(options: { clean?: boolean } = {}): void {
    let clean = options.clean !== false && !this.#damaged && !this.#readOnly;
    if (this.syncedChanged.size > 0 && !this.#readOnly) {
      // Synced rows changed that no web database took: what was published is not current.
      try {
        this.db.prepare("DELETE FROM runtime WHERE key = ?").run(WEB_PUBLISHED_KEY);
      } catch {
        clean = false; // Not recorded: the next open must not take anything as current.
      }
    }
    this.#stmts.clear();
    try {
      this.db.close();
    } catch {
      // Already closed.
      return;
    }
    if (clean && this.#guard.check() === undefined) {
      recordCleanClose(this.#dataDir, this.file, this.#checkedAt);
    }
  }
}
