/**
 * What a node of a fleet keeps locally about the shared store, in its own
 * database: the outbox (records uploaded here and not yet published to the
 * shared store, or removals not yet unpublished), the mirror of the shared
 * record (every node's files, for this node's web database) and the
 * change-feed cursor.
 *
 * Contract:
 * - an outbox entry is written in the transaction that records the upload
 *   or the delete locally, so a crash or a database outage between upload
 *   and publish publishes later (at least once; publishing is idempotent);
 * - a newer entry for the same key replaces an older one; {@linkcode
 *   FleetLocal.published} drops only the entries that were sent, so an entry
 *   written while a batch was in flight stays. The entries sent leave the
 *   outbox at once for {@linkcode FleetLocal.outbox} and {@linkcode
 *   FleetLocal.outboxSize}; their rows are deleted with the next outbox
 *   write (in the transaction that records an upload, so a busy node adds
 *   no commit of its own for them) or by {@linkcode FleetLocal.dropSent}. A
 *   crash before that publishes them again (idempotent), and so may a
 *   rollback of that delete (see {@linkcode FleetLocal.dropSent});
 * - what was sent is known by id: every entry up to a mark (below the
 *   oldest entry not yet sent, so the outbox is read by an id range, not by
 *   a list of ids), and the entries sent above it (batches acknowledged out
 *   of order). Ids only grow (AUTOINCREMENT): an entry written later is
 *   above the mark. The outbox is read outside transactions (what it reads
 *   must be committed, or a rolled-back id could come back as another entry);
 * - every row this node's `synced_files` loses (a delete, the old name of a
 *   move, an entry replaced by one of another type) queues its removal from
 *   the shared record in the same transaction, through a trigger of this
 *   connection: no code path that deletes a record can forget it;
 * - the mirror holds what the change feed said, keyed like `synced_files`;
 *   the view `web_records` joins both for the web database (a row this node
 *   recorded comes first). A record this node published is not mirrored
 *   while `synced_files` holds a row of its key (that row is what the web
 *   database shows): an older mirror row of the key is dropped instead. The
 *   change of a record this connection queued comes back through the feed
 *   and is passed over without a read (its row was written with it; a row
 *   deleted since has its removal queued). Any other record is mirrored:
 *   another node's, and this node's own when its row is missing (a data
 *   directory wiped, a row deleted since). The web
 *   database re-reads a file only when its mirror rows changed. When the
 *   feed was pruned past this node's cursor the mirror is replaced by a copy
 *   of the whole shared record, by the same rule
 *   ({@linkcode FleetLocal.beginRebuild} … {@linkcode FleetLocal.finishRebuild}).
 *
 * The tables are created when fleet mode first opens the database; a node
 * without a shared store never has them.
 *
 * @module
 */
import { keyId, type RecordRow, recordValues, toRecord } from "./shared/_keys.ts";
import { beginStaging, MIRROR_COLUMNS, replaceMirror, stagePage } from "./_fleet_mirror_copy.ts";
import type { RecordChange, SharedKey, SharedRecord } from "./shared/types.ts";
import type { DatabaseSync } from "node:sqlite";
import type { Job, Store, SyncedRow } from "./store.ts";

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS fleet_outbox(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    input_file TEXT NOT NULL, server TEXT NOT NULL, dest TEXT NOT NULL,
    -- JSON of the SharedRecord to publish; NULL: unpublish the key.
    record TEXT
  );
  CREATE UNIQUE INDEX IF NOT EXISTS fleet_outbox_key ON fleet_outbox(input_file, server, dest);
  CREATE TABLE IF NOT EXISTS fleet_records(
    input_file TEXT NOT NULL, server TEXT NOT NULL, dest TEXT NOT NULL,
    transported_file_basename TEXT NOT NULL, url TEXT NOT NULL, remote_path TEXT NOT NULL,
    fingerprint TEXT NOT NULL, node TEXT NOT NULL, synced_at INTEGER NOT NULL,
    source_stat TEXT NOT NULL DEFAULT '',
    PRIMARY KEY(input_file, server, dest)
  ) WITHOUT ROWID;
  CREATE VIEW IF NOT EXISTS web_records AS
    SELECT input_file, transported_file_basename, url, server, dest, synced_at FROM synced_files
    UNION ALL
    SELECT input_file, transported_file_basename, url, server, dest, synced_at FROM fleet_records;
`;

/**
 * A temporary trigger (this connection only: a node without a shared store
 * never queues anything): a local record removed is a removal to publish.
 * The one writer of the outbox outside {@linkcode FleetLocal}, so it marks
 * the outbox touched itself (see {@linkcode FleetLocal.outboxSize}).
 */
const UNPUBLISH_TRIGGER = `
  CREATE TEMP TRIGGER IF NOT EXISTS fleet_unpublish_removed AFTER DELETE ON main.synced_files
  BEGIN
    DELETE FROM fleet_outbox
      WHERE input_file = old.input_file AND server = old.server AND dest = old.dest;
    INSERT INTO fleet_outbox(input_file, server, dest, record)
      VALUES (old.input_file, old.server, old.dest, NULL);
    SELECT fleet_outbox_touched();
  END;
`;

/**
 * Records the change feed brought that {@linkcode FleetLocal.mirroredStat}
 * keeps in memory (the most recent ones).
 */
export const RECENT_RECORDS_MAX = 65_536;

/** What a mirrored record says of its source file (see {@linkcode FleetLocal.mirroredStat}). */
export interface MirroredStat {
  fingerprint: string;
  source_stat: string;
  synced_at: number;
}

/** Per connection: the count of writes to its outbox (its triggers call the function counting). */
const outboxWrites = new WeakMap<DatabaseSync, { n: number }>();

/** One outbox entry. */
export interface OutboxEntry {
  id: number;
  key: SharedKey;
  /** The record to publish; undefined: unpublish. */
  record?: SharedRecord;
}

/** The fleet's local tables of one node's database. */
export class FleetLocal {
  readonly #store: Store;
  /** This node's name: the records it published are not mirrored over its own rows. */
  readonly #node: string;
  /**
   * Writes to the outbox through this connection: counted by each statement
   * of this class that writes it, and by the unpublish trigger.
   */
  readonly #writes: { n: number };
  /** The outbox's size when last counted, and the writes seen then. */
  #size: { n: number; writes: number } | undefined;
  /** Every entry with an id up to this was sent (see the module doc). */
  #sentTo = 0;
  /** Ids above {@linkcode #sentTo} of entries sent (a batch acknowledged before an older one). */
  #sent: number[] = [];
  /** Rows up to this id were deleted (unless that delete was rolled back). */
  #droppedTo = 0;
  /** What the feed brought recently, by key id, oldest first (see {@linkcode mirroredStat}). */
  readonly #recent = new Map<string, MirroredStat>();
  /**
   * The records this connection queued for publishing whose change has not
   * come back through the feed yet, by key id, oldest first: what each said
   * (see {@linkcode echoOf}). When one comes back as the key's record, the
   * local row it was queued with is known to be there, so the change is
   * passed over without a read.
   */
  readonly #echoes = new Map<string, string>();
  /** Whether the mirror may hold a row: false only while it is known to be empty. */
  #mirrorUsed: boolean;

  /** Creates the tables when missing (the store must be writable); `node`: this node's name. */
  constructor(store: Store, node: string) {
    this.#store = store;
    this.#node = node;
    store.db.exec(SCHEMA);
    // A mirror made before records carried the source's stat gains the column (empty: unknown).
    const cols = store.db.prepare("PRAGMA table_info(fleet_records)").all() as { name: string }[];
    if (!cols.some((c) => c.name === "source_stat")) {
      store.db.exec("ALTER TABLE fleet_records ADD COLUMN source_stat TEXT NOT NULL DEFAULT ''");
    }
    let writes = outboxWrites.get(store.db);
    if (!writes) {
      const w = { n: 0 };
      store.db.function("fleet_outbox_touched", () => {
        w.n++;
        return null;
      });
      outboxWrites.set(store.db, w);
      writes = w;
    }
    this.#writes = writes;
    store.db.exec(UNPUBLISH_TRIGGER);
    this.#mirrorUsed = store.q("SELECT 1 FROM fleet_records LIMIT 1").get() !== undefined;
  }

  /**
   * Queues `record` for publishing (call in the transaction that records it
   * locally, with the row `record` was made from).
   */
  queuePublish(record: SharedRecord): void {
    this.#queue(record, JSON.stringify(record));
    keepRecent(this.#echoes, keyId(record), echoOf(record));
  }

  /** Queues the removal of `key` from the shared record (in the transaction of the local delete). */
  queueUnpublish(key: SharedKey): void {
    this.#queue(key, null);
  }

  #queue(key: SharedKey, record: string | null): void {
    this.dropSent();
    // REPLACE deletes the key's older entry and inserts a row with a new id (AUTOINCREMENT never
    // reuses one): an entry being published right now is not mistaken for this one.
    this.#store.q(
      "INSERT OR REPLACE INTO fleet_outbox(input_file, server, dest, record) VALUES (?, ?, ?, ?)",
    ).run(key.input_file, key.server, key.dest, record);
    this.#writes.n++;
  }

  /**
   * Once per data directory and node name: queues every file this node has
   * recorded, so records made before the node joined a fleet (or under
   * another name) reach the shared store. Returns how many were queued.
   */
  seedFromLocal(node: string): number {
    if (this.#store.getRuntime<string>("fleetSeeded") === node) return 0;
    return this.#store.tx(() => {
      const r = this.#store.q(
        `INSERT OR REPLACE INTO fleet_outbox(input_file, server, dest, record)
         SELECT input_file, server, dest, json_object(
           'input_file', input_file, 'server', server, 'dest', dest,
           'transported_file_basename', transported_file_basename, 'url', url,
           'remote_path', remote_path,
           'fingerprint', COALESCE(size, -1) || ':' || CAST(COALESCE(mtime_ms, 0) AS INTEGER) ||
             ':' || COALESCE(source_md5, ''),
           'node', ?, 'synced_at', synced_at)
         FROM synced_files ORDER BY input_file`,
      ).run(node);
      this.#writes.n++;
      this.#store.setRuntime("fleetSeeded", node);
      return Number(r.changes);
    });
  }

  /** `WHERE` clause and arguments of the entries not yet sent. */
  #unsent(): [string, (number | string)[]] {
    return this.#sent.length === 0
      ? ["id > ?", [this.#sentTo]]
      : ["id > ? AND id NOT IN (SELECT value FROM json_each(?))", [
        this.#sentTo,
        JSON.stringify(this.#sent),
      ]];
  }

  /** The oldest `limit` entries not yet sent (call outside a transaction, see the module doc). */
  outbox(limit: number): OutboxEntry[] {
    const [where, args] = this.#unsent();
    const rows = this.#store.q(
      `SELECT id, input_file, server, dest, record FROM fleet_outbox
       WHERE ${where} ORDER BY id LIMIT ?`,
    ).all(...args, limit) as unknown as {
      id: number;
      input_file: string;
      server: string;
      dest: string;
      record: string | null;
    }[];
    return rows.map((r) => ({
      id: r.id,
      key: { input_file: r.input_file, server: r.server, dest: r.dest },
      ...(r.record !== null ? { record: JSON.parse(r.record) as SharedRecord } : {}),
    }));
  }

  /**
   * Entries waiting (not yet sent). Counted again only after the outbox was
   * written or entries were sent: a count taken inside a transaction is not
   * kept (a rollback undoes writes without a trigger).
   */
  outboxSize(): number {
    if (this.#size?.writes === this.#writes.n) return this.#size.n;
    const [where, args] = this.#unsent();
    const n = Number(
      (this.#store.q(`SELECT COUNT(*) AS n FROM fleet_outbox WHERE ${where}`).get(...args) as {
        n: number;
      }).n,
    );
    if (!this.#store.db.isTransaction) this.#size = { n, writes: this.#writes.n };
    return n;
  }

  /**
   * The entries sent were taken by the shared store: they leave the outbox
   * (by id: an entry replaced meanwhile has a new id and stays). Their rows
   * go with the next outbox write or {@linkcode dropSent}.
   */
  published(entries: readonly OutboxEntry[]): void {
    if (entries.length === 0) return;
    for (const e of entries) if (e.id > this.#sentTo) this.#sent.push(e.id);
    this.#writes.n++;
    // The mark moves up to the oldest entry still waiting (or the newest sent, when none waits).
    const [where, args] = this.#unsent();
    const oldest = (this.#store.q(`SELECT MIN(id) AS id FROM fleet_outbox WHERE ${where}`)
      .get(...args) as { id: number | null }).id;
    const top = oldest === null ? Math.max(this.#sentTo, ...this.#sent) : oldest - 1;
    if (top > this.#sentTo) {
      this.#sentTo = top;
      this.#sent = this.#sent.filter((id) => id > top);
    }
  }

  /**
   * Deletes the rows of the entries sent, in one statement (in the caller's
   * transaction, if any). Undone by a rollback, the ones below the mark stay
   * out of the outbox and are deleted once the mark moves again; the others
   * are sent again.
   */
  dropSent(): void {
    if (this.#sentTo === this.#droppedTo && this.#sent.length === 0) return;
    const [where, args] = this.#sent.length === 0
      ? ["id <= ?", [this.#sentTo]]
      : ["id <= ? OR id IN (SELECT value FROM json_each(?))", [
        this.#sentTo,
        JSON.stringify(this.#sent),
      ]];
    this.#store.q(`DELETE FROM fleet_outbox WHERE ${where}`).run(...args);
    this.#writes.n++;
    this.#droppedTo = this.#sentTo;
    // Above the mark, an entry is not known as sent once deleted: a rollback sends it again.
    this.#sent = [];
  }

  /**
   * Records files other nodes uploaded and completes their queued jobs
   * without running them, in one transaction: each `row` is written, and its
   * job deleted, only when the job is still the one given (same id and
   * generation: an event merged into it since keeps it), queued, ready at
   * `now` and not running, and its file has no record and no intent at the
   * job's destination, nor a record there with its inode and size (a
   * rename's old name). Returns the jobs settled; the others are left as
   * they are (they run). See `pipeline/fleet_settle.ts`.
   */
  settleAdopted(items: readonly { job: Job; row: SyncedRow }[], now: number): Job[] {
    if (items.length === 0) return [];
    const take = this.#store.q(
      `DELETE FROM queue WHERE id = ? AND gen = ? AND running = 0 AND state = 'queued'
         AND ready_at <= ?
         AND NOT EXISTS (SELECT 1 FROM synced_files s WHERE s.input_file = queue.input_file
           AND s.server = queue.server AND s.dest = queue.dest)
         AND NOT EXISTS (SELECT 1 FROM intents i WHERE i.input_file = queue.input_file
           AND i.server = queue.server AND i.dest = queue.dest)
         AND NOT EXISTS (SELECT 1 FROM synced_files s WHERE s.server = queue.server
           AND s.dest = queue.dest AND s.ino = ? AND s.size = ?)`,
    );
    return this.#store.tx(() => {
      const settled: Job[] = [];
      for (const { job, row } of items) {
        if (Number(take.run(job.id, job.gen, now, row.ino, row.size).changes) === 0) continue;
        this.#store.putSynced(row);
        settled.push(job);
      }
      return settled;
    });
  }

  /**
   * Applies the change feed to the mirror and moves the cursor, in one
   * transaction (see the module doc: this node's own records are not
   * mirrored over its rows); marks for the web database the files whose
   * mirror rows changed.
   */
  applyChanges(changes: readonly RecordChange[], cursor: number): void {
    const put = this.#store.q(
      `INSERT INTO fleet_records(${MIRROR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(input_file, server, dest) DO UPDATE SET
         transported_file_basename = excluded.transported_file_basename, url = excluded.url,
         remote_path = excluded.remote_path, fingerprint = excluded.fingerprint,
         node = excluded.node, synced_at = excluded.synced_at,
         source_stat = excluded.source_stat`,
    );
    const drop = this.#store.q(
      "DELETE FROM fleet_records WHERE input_file = ? AND server = ? AND dest = ?",
    );
    const recorded = this.#store.q(
      "SELECT 1 FROM synced_files WHERE input_file = ? AND server = ? AND dest = ?",
    );
    const own: boolean[] = [];
    let used = this.#mirrorUsed;
    this.#store.tx(() => {
      for (const c of changes) {
        const r = c.record;
        const { input_file, server, dest } = c.key;
        const mine = r !== undefined && r.node === this.#node &&
          (this.#isEcho(c.key, r) || recorded.get(input_file, server, dest) !== undefined);
        own.push(mine);
        if (r && !mine) {
          put.run(...recordValues(r));
          used = true;
        } else if (!used || drop.run(input_file, server, dest).changes === 0) continue;
        this.#store.syncedChanged.add(input_file);
      }
      this.#store.setRuntime("fleetCursor", cursor);
    });
    this.#mirrorUsed = used;
    // Only once committed: what the memory says, the mirror holds.
    changes.forEach((c, i) => this.#remember(c.key, own[i] ? undefined : c.record));
  }

  /**
   * Whether `r`, the record of `key` now, is the one this connection queued
   * for publishing last (that entry is then forgotten: its echo came).
   */
  #isEcho(key: SharedKey, r: SharedRecord): boolean {
    const id = keyId(key);
    if (this.#echoes.get(id) !== echoOf(r)) return false;
    this.#echoes.delete(id);
    return true;
  }

  /** Keeps (or forgets, when removed) what a change says of its key's source file. */
  #remember(key: SharedKey, r: SharedRecord | undefined): void {
    const id = keyId(key);
    if (!r) {
      this.#recent.delete(id);
      return;
    }
    keepRecent(this.#recent, id, {
      fingerprint: r.fingerprint,
      source_stat: r.source_stat ?? "",
      synced_at: r.synced_at,
    });
  }

  /** Starts replacing the mirror: an empty staging copy (of this connection only). */
  beginRebuild(): void {
    // What memory holds may be older than the copy: it goes (a miss only costs a read).
    this.#recent.clear();
    this.#echoes.clear();
    beginStaging(this.#store);
  }

  /** Adds a page of the shared record to the staging copy. */
  rebuildPage(records: readonly SharedRecord[]): void {
    stagePage(this.#store, records);
  }

  /**
   * Replaces the mirror by the staging copy (without this node's own
   * records over its rows, as {@linkcode applyChanges}) and sets the
   * cursor, in one transaction; the web database re-reads the files whose
   * rows differ. Returns how many records differed.
   */
  finishRebuild(cursor: number): number {
    const changed = replaceMirror(this.#store, this.#node, cursor);
    this.#mirrorUsed = true;
    return changed;
  }

  /** The change-feed position applied so far (0: nothing yet). */
  cursor(): number {
    return this.#store.getRuntime<number>("fleetCursor") ?? 0;
  }

  /**
   * Whether the mirror holds a record pointing at `remotePath` on `server`:
   * another node's, or this node's own whose row is missing here.
   */
  mirrorUses(server: string, remotePath: string): boolean {
    return this.#store.q(
      "SELECT 1 FROM fleet_records WHERE server = ? AND remote_path = ? LIMIT 1",
    ).get(server, remotePath) !== undefined;
  }

  /**
   * What the mirror holds of `key`'s source file (another node's record, or
   * this node's own while its row is missing: see the module doc), when
   * the change feed brought it since this connection opened, among the
   * {@linkcode RECENT_RECORDS_MAX} most recent: answered from memory, for
   * every file a node looks at. Undefined also when the mirror may hold it
   * (older): the caller then reads the file, as without a record.
   */
  mirroredStat(key: SharedKey): MirroredStat | undefined {
    return this.#recent.get(keyId(key));
  }

  /** The record the mirror holds of `key` (see {@linkcode mirroredStat} for which it holds). */
  mirrorRecord(key: SharedKey): SharedRecord | undefined {
    const row = this.#store.q(
      `SELECT ${MIRROR_COLUMNS} FROM fleet_records WHERE input_file = ? AND server = ? AND dest = ?`,
    ).get(key.input_file, key.server, key.dest) as RecordRow | undefined;
    return row && toRecord(row);
  }

  /** How many files of the fleet the mirror knows. */
  mirrored(): number {
    return Number(
      (this.#store.q("SELECT COUNT(*) AS n FROM fleet_records").get() as { n: number }).n,
    );
  }
}

/**
 * What tells a record this node queued from another of the same key: its
 * time and content (a record of this node with both is that one).
 */
function echoOf(r: SharedRecord): string {
  return `${r.synced_at}:${r.fingerprint}`;
}

/**
 * Sets `id` in `map` as its newest entry, and drops the oldest beyond
 * {@linkcode RECENT_RECORDS_MAX} (a Map keeps insertion order).
 */
function keepRecent<V>(map: Map<string, V>, id: string, value: V): void {
  map.delete(id);
  map.set(id, value);
  if (map.size > RECENT_RECORDS_MAX) map.delete(map.keys().next().value!);
}
