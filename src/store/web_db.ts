/**
 * The databases web applications read: `synced_files.db` (which URL serves
 * which file, the table the Drupal / Backdrop CDN module queries) and
 * `persistent_data.db` (the queue, for the module's status report), in the
 * original File Conveyor's layout.
 *
 * Contract:
 * - both are plain SQLite files in rollback-journal format that a reader
 *   with read access only (no write access to the file or its directory)
 *   opens at any time: while the daemon runs, after it stopped, after it
 *   was killed. Each is written whole under a temporary name in the same
 *   directory and renamed over the old one, so a reader sees one complete
 *   snapshot or the next, never a partial write, and holds no lock the
 *   daemon waits for;
 * - the content is a snapshot of the daemon's own database (the source of
 *   truth). `synced_files.db` is kept in a private staging copy
 *   (`synced_files.db.stage`, rebuilt at start) that takes only the files
 *   that changed; publishing copies it and renames the copy into place.
 *   `persistent_data.db` is rebuilt whole when the queue changed. Each is
 *   published at most about once a second, less often when that is slow
 *   (at most 1/20 of the time), and at stop. A crash loses nothing: the
 *   next start rebuilds. A `--once` start after a clean stop that published
 *   with the same keys keeps those files until a synced file changes
 *   ({@linkcode WebDb.assumePublished});
 * - each synced row appears once per key web applications ask for (see
 *   `keys`): the real absolute path first;
 * - with a group, both files are 0640 and their directories 0750, owned by
 *   that group; without one, 0600 (directories are left as they are, or
 *   created 0700).
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import type { Store } from "./store.ts";

/**
 * Runtime key: with which keys the last stop published the web databases
 * (written by their owner at stop; null or absent: not known to be current).
 * A close after synced rows changed unpublished removes it.
 */
export const WEB_PUBLISHED_KEY = "webdb-published";

/** Where and how the web databases are written. */
export interface WebDbOptions {
  syncedFilesDb: string;
  persistentDataDb: string;
  /** Group id given read access; undefined: owner only. */
  gid?: number;
  /** Every key a synced file is published under; the real path first. */
  keys(inputFile: string): string[];
  /**
   * Directories whose files may have keys besides their real path even when
   * their names need no percent-encoding; undefined: any file may.
   */
  aliased?(): string[];
  /**
   * The table or view of the daemon's database the rows come from:
   * `synced_files` (default) or, on a node of a fleet, `web_records` (this
   * node's records and the fleet's; see `fleet_local.ts`).
   */
  table?: "synced_files" | "web_records";
}

const SYNCED_SCHEMA = `
  CREATE TABLE synced_files(
    input_file TEXT NOT NULL,
    transported_file_basename TEXT NOT NULL,
    url TEXT NOT NULL,
    server TEXT NOT NULL,
    dest TEXT NOT NULL DEFAULT '',
    -- The real path when input_file is another key for the same file.
    real_file TEXT NOT NULL,
    synced_at INTEGER
  );
  CREATE UNIQUE INDEX file_unique_per_server ON synced_files(input_file, server, dest);
  CREATE INDEX synced_files_real ON synced_files(real_file);
`;

const PERSISTENT_SCHEMA = `
  CREATE TABLE pipeline_queue(id INTEGER PRIMARY KEY, input_file TEXT NOT NULL, server TEXT NOT NULL,
    event INTEGER NOT NULL);
  CREATE TABLE pipeline_list(id INTEGER PRIMARY KEY, input_file TEXT NOT NULL, server TEXT NOT NULL,
    event INTEGER NOT NULL);
  CREATE TABLE failed_files_list(id INTEGER PRIMARY KEY, input_file TEXT NOT NULL, server TEXT NOT NULL,
    event INTEGER NOT NULL);
`;

/** Sets a directory's access for the web databases. */
export function prepareWebDbDir(dir: string, gid: number | undefined): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (gid === undefined) return;
  fs.chownSync(dir, -1, gid);
  fs.chmodSync(dir, (fs.statSync(dir).mode & 0o7777 & ~0o027) | 0o750);
}

/** Writes the two web databases from a {@linkcode Store}. */
export class WebDb {
  readonly #store: Store;
  readonly #o: WebDbOptions;
  #stage: DatabaseSync | undefined;
  #queueSeen = "";
  #syncedNextAt = 0;
  #queueNextAt = 0;
  #prepared = false;

  constructor(store: Store, options: WebDbOptions) {
    this.#store = store;
    this.#o = options;
  }

  /** Creates the directories with their access, and removes temporary files a crash left. */
  #prepare(): void {
    for (const file of [this.#o.syncedFilesDb, this.#o.persistentDataDb]) {
      const dir = path.dirname(file);
      prepareWebDbDir(dir, this.#o.gid);
      const prefix = path.basename(file) + ".";
      for (const n of fs.readdirSync(dir)) {
        if (n.startsWith(prefix) && /^\d+\.tmp$/.test(n.slice(prefix.length))) {
          fs.rmSync(path.join(dir, n), { force: true });
        }
      }
    }
    this.#prepared = true;
  }

  /**
   * Publishes what changed since the last call. Unless `force`, each file
   * waits twenty times as long as its last update cost before the next
   * (see {@linkcode pause}).
   */
  refresh(force = false): void {
    if (!this.#prepared) this.#prepare();
    let t0 = performance.now();
    let c0 = cpuMs();
    const pending = this.#store.syncedChanged.size > 0 || !this.#stage;
    if (force || (t0 >= this.#syncedNextAt && pending)) {
      this.#updateSynced(force);
      const t1 = performance.now();
      const c1 = cpuMs();
      this.#syncedNextAt = t1 + pause(t1 - t0, c1 - c0);
      t0 = t1;
      c0 = c1;
    }
    if (force || t0 >= this.#queueNextAt) {
      const counts = JSON.stringify(this.#store.queueCounts());
      if (force || counts !== this.#queueSeen) {
        this.#writePersistent();
        this.#queueSeen = counts;
        const t1 = performance.now();
        this.#queueNextAt = t1 + pause(t1 - t0, cpuMs() - c0);
      }
    }
  }

  get #table(): string {
    return this.#o.table ?? "synced_files";
  }

  get #stageFile(): string {
    return this.#o.syncedFilesDb + ".stage";
  }

  /** Publishes the final state and removes the staging copy (the published files stay). */
  close(): void {
    try {
      this.refresh(true);
    } finally {
      this.#closeStage();
      fs.rmSync(this.#stageFile, { force: true });
    }
  }

  /** Rebuilds everything at the next refresh (the keys changed: a new configuration). */
  rebuild(): void {
    this.#assumed = false;
    this.#closeStage();
    this.#syncedNextAt = 0;
  }

  /**
   * Takes the published `synced_files.db` as current (the caller knows it
   * was published from this state with these keys): it is built and
   * published again only once a synced file changes or {@linkcode rebuild}
   * is called.
   */
  assumePublished(): void {
    this.#assumed = true;
  }

  /** The published synced_files.db matches the state; no staging copy was built since. */
  #assumed = false;

  /** Drops the staging copy: the next update rebuilds it from the daemon's database. */
  #closeStage(): void {
    try {
      this.#stage?.close();
    } catch {
      // Already closed.
    }
    this.#stage = undefined;
  }

  /** Brings the staging copy up to date (whole when new), then publishes it. */
  #updateSynced(force: boolean): void {
    if (this.#assumed && !this.#stage && this.#store.syncedChanged.size === 0) return;
    this.#assumed = false;
    let stage = this.#stage;
    const changed = this.#store.syncedChanged;
    this.#store.syncedChanged = new Set();
    try {
      if (!stage) {
        fs.rmSync(this.#stageFile, { force: true });
        fs.closeSync(fs.openSync(this.#stageFile, "w", 0o600));
        stage = new DatabaseSync(this.#stageFile);
        // Rebuilt at every start, never read by others: no journal, no syncs.
        stage.exec("PRAGMA journal_mode = OFF");
        stage.exec("PRAGMA synchronous = OFF");
        this.#build(stage);
        this.#stage = stage;
      } else if (changed.size > REBUILD_MIN && changed.size * 2 > rowCount(stage)) {
        // Most rows changed (an initial sync): building anew is one pass, not a delete and a
        // query per file.
        this.#closeStage();
        this.#updateSynced(force);
        return;
      } else if (changed.size > 0) {
        const drop = stage.prepare("DELETE FROM synced_files WHERE real_file = ?");
        const ins = insertStatement(stage);
        const get = this.#store.q(
          `SELECT input_file, transported_file_basename, url, server, dest, synced_at
           FROM ${this.#table} WHERE input_file = ? ORDER BY server, dest`,
        );
        stage.exec("BEGIN");
        try {
          for (const f of changed) {
            drop.run(f);
            this.#insertRows(ins, get.all(f) as unknown as SyncedWebRow[]);
          }
          stage.exec("COMMIT");
        } catch (e) {
          // SQLite may have rolled back already (a full disk): the cause is what gets reported.
          if (stage.isTransaction) stage.exec("ROLLBACK");
          throw e;
        }
      } else if (!force) {
        return;
      }
    } catch (e) {
      // Start over from the daemon's database next time.
      for (const f of changed) this.#store.syncedChanged.add(f);
      if (stage && stage !== this.#stage) stage.close();
      this.#closeStage();
      throw e;
    }
    this.#publish(this.#o.syncedFilesDb, (tmp) => fs.copyFileSync(this.#stageFile, tmp));
  }

  /**
   * Fills a new staging copy. With the daemon's database on disk, the rows
   * are copied inside SQLite under their real paths, and only the files that
   * may have other keys (see {@linkcode WebDbOptions.aliased}) go through
   * `keys`; a real path is then never hidden by another file's alias.
   */
  #build(stage: DatabaseSync): void {
    const file = this.#store.db.location();
    const ordered = `SELECT input_file, transported_file_basename, url, server, dest, synced_at
       FROM ${this.#table}`;
    if (!file || !attach(stage, file)) {
      // In memory, or ATTACH refused: every row goes through this process, real paths first
      // (as below: a real path is never hidden by another file's alias).
      const rows = () =>
        this.#store.q(`${ordered} ORDER BY input_file, server, dest`).iterate() as Iterable<
          SyncedWebRow
        >;
      stage.exec("BEGIN");
      stage.exec(SYNCED_SCHEMA);
      const ins = insertStatement(stage);
      this.#insertRows(ins, rows(), (f) => [f]);
      this.#insertRows(ins, rows());
      stage.exec("COMMIT");
      return;
    }
    try {
      stage.exec("BEGIN");
      stage.exec(SYNCED_SCHEMA);
      stage.exec(
        `INSERT OR IGNORE INTO main.synced_files(input_file, transported_file_basename, url, server,
           dest, real_file, synced_at)
         SELECT input_file, transported_file_basename, url, server, dest, input_file, synced_at
         FROM daemon.${this.#table} ORDER BY input_file, server, dest`,
      );
      const dirs = this.#o.aliased?.() ?? [""];
      const where = [
        `input_file GLOB '*[^A-Za-z0-9._~/-]*'`,
        ...dirs.map(() => "(input_file > ? AND input_file < ?)"),
      ].join(" OR ");
      const args = dirs.flatMap((d) => [d + "/", d + "0"]);
      this.#insertRows(
        insertStatement(stage),
        stage.prepare(
          `${ordered.replace(`FROM ${this.#table}`, `FROM daemon.${this.#table}`)} WHERE ${where}
           ORDER BY input_file, server, dest`,
        ).iterate(...args) as Iterable<SyncedWebRow>,
      );
      stage.exec("COMMIT");
    } catch (e) {
      if (stage.isTransaction) stage.exec("ROLLBACK");
      throw e;
    } finally {
      stage.exec("DETACH DATABASE daemon");
    }
  }

  /** Inserts each row under every key `keys` gives its file (all its keys by default). */
  #insertRows(
    ins: Inserter,
    rows: Iterable<SyncedWebRow>,
    keys: (file: string) => Iterable<string> = (f) => this.#o.keys(f),
  ): void {
    for (const r of rows) {
      for (const key of keys(r.input_file)) {
        ins.add(
          key,
          r.transported_file_basename,
          r.url,
          r.server,
          r.dest,
          r.input_file,
          r.synced_at,
        );
      }
    }
    ins.flush();
  }

  #writePersistent(): void {
    this.#publish(this.#o.persistentDataDb, (tmp) => {
      const db = new DatabaseSync(tmp);
      try {
        // Built once and never changed in place: no journal needed while building.
        db.exec("PRAGMA journal_mode = OFF");
        db.exec("PRAGMA synchronous = OFF");
        db.exec("BEGIN");
        db.exec(PERSISTENT_SCHEMA);
        // No error messages: they may name servers and accounts, and web readers need counts.
        const copy = (table: string, where: string) => {
          const ins = db.prepare(
            `INSERT INTO ${table}(input_file, server, event) VALUES (?, ?, ?)`,
          );
          const rows = this.#store.q(
            `SELECT input_file, server, event FROM queue WHERE ${where} ORDER BY id`,
          ).iterate() as Iterable<{ input_file: string; server: string; event: number }>;
          for (const r of rows) ins.run(r.input_file, r.server, r.event);
        };
        copy("pipeline_queue", "state = 'queued' AND running = 0");
        copy("pipeline_list", "running = 1");
        copy("failed_files_list", "state = 'failed' AND running = 0");
        db.exec("COMMIT");
      } finally {
        db.close();
      }
    });
  }

  /** Writes `file` under a temporary name with `write`, makes it durable, and renames it into place. */
  #publish(file: string, write: (tmp: string) => void): void {
    const tmp = `${file}.${Deno.pid}.tmp`;
    fs.rmSync(tmp, { force: true });
    try {
      write(tmp);
      const fd = fs.openSync(tmp, "r+");
      try {
        fs.fsyncSync(fd);
        if (this.#o.gid !== undefined) fs.fchownSync(fd, -1, this.#o.gid);
        fs.fchmodSync(fd, this.#o.gid === undefined ? 0o600 : 0o640);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, file);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e;
    }
  }
}

interface SyncedWebRow {
  input_file: string;
  transported_file_basename: string;
  url: string;
  server: string;
  dest: string;
  synced_at: number;
}

/**
 * The staging copy is rebuilt instead of updated row by row when more than
 * this many files changed and they are more than half of its rows.
 */
const REBUILD_MIN = 1000;

/**
 * Attaches the daemon's database to `stage` as `daemon`; false when SQLite
 * refuses. Deno allows ATTACH only to a process with every permission (`-A`):
 * with a list of permissions (the bundle's own line, a service unit that
 * grants only what it needs) the limit of attached databases is 0.
 */
function attach(stage: DatabaseSync, file: string): boolean {
  try {
    stage.prepare("ATTACH DATABASE ? AS daemon").run(file);
    return true;
  } catch {
    return false;
  }
}

/** Longest pause between two updates of a file, ms, however long the last one took. */
export const WEB_PAUSE_MAX = 10_000;

/**
 * The pause after an update that took `wallMs` (and `cpuMs` of the process's
 * CPU): twenty times its cost, so writing the files takes at most a twentieth
 * of the time. The cost is the smaller of both: a process stopped (SIGSTOP, a
 * suspended VM) or descheduled on a loaded machine during an update spent
 * wall time, not work, and must not put the next update off for minutes; and
 * never more than {@linkcode WEB_PAUSE_MAX}.
 */
export function pause(wallMs: number, cpuMs: number): number {
  return Math.min(WEB_PAUSE_MAX, 20 * Math.max(0, Math.min(wallMs, cpuMs)));
}

/** CPU milliseconds this process has used (all threads). */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function rowCount(db: DatabaseSync): number {
  return Number((db.prepare("SELECT COUNT(*) AS n FROM synced_files").get() as { n: number }).n);
}

/** Rows per INSERT statement: one statement call per row costs more than the row itself. */
const INSERT_CHUNK = 256;
const COLUMNS = 7;

/**
 * The staging copy's insert, in statements of up to {@linkcode INSERT_CHUNK}
 * rows. Rows go in in the order added; a key already present keeps its first
 * row (OR IGNORE), as with one statement per row.
 */
class Inserter {
  readonly #db: DatabaseSync;
  /** Prepared statements by row count. */
  readonly #stmts = new Map<number, StatementSync>();
  readonly #values: SQLInputValue[] = [];

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  add(...row: SQLInputValue[]): void {
    this.#values.push(...row);
    if (this.#values.length === INSERT_CHUNK * COLUMNS) this.flush();
  }

  flush(): void {
    const n = this.#values.length / COLUMNS;
    if (n === 0) return;
    let stmt = this.#stmts.get(n);
    if (!stmt) this.#stmts.set(n, stmt = this.#db.prepare(insertSql(n)));
    stmt.run(...this.#values);
    this.#values.length = 0;
  }
}

function insertSql(rows: number): string {
  return `INSERT OR IGNORE INTO synced_files(input_file, transported_file_basename, url, server, dest,
     real_file, synced_at) VALUES ${Array(rows).fill("(?, ?, ?, ?, ?, ?, ?)").join(", ")}`;
}

function insertStatement(db: DatabaseSync): Inserter {
  return new Inserter(db);
}
