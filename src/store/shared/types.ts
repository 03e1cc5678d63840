/**
 * The shared store: state that several fileconveyor nodes (web nodes of one
 * site) share through a database server the site already runs — PostgreSQL
 * or MariaDB/MySQL — or, for one machine and for tests, an SQLite file.
 *
 * Each node keeps its own embedded SQLite store (its source trees, its
 * durable queue, its outbox); the shared store holds only what the fleet
 * must agree on:
 * - `synced_files`: the record of what is synced where, with the original's
 *   columns (`input_file`, `transported_file_basename`, `url`, `server`) so a
 *   web app on any node finds every URL, plus the columns below;
 * - leases: which node is uploading a file to a destination right now;
 * - nodes: who is alive (heartbeat), with their queue sizes;
 * - server health and recent transfers, for `status` on any node.
 *
 * Every method is asynchronous (a network round trip) and may throw a
 * `StoreUnavailable` error when the database cannot be reached; callers
 * keep their work in the local store and try again later.
 *
 * @module
 */

/** One destination of one file: the key of a record and of a lease. */
export interface SharedKey {
  /** Absolute path of the source file (same meaning as the original's column). */
  input_file: string;
  server: string;
  /** Destination name inside the rule (the rule's label); "" when the rule has one destination. */
  dest: string;
}

/** What is synced of one file at one destination, as the fleet sees it. */
export interface SharedRecord extends SharedKey {
  transported_file_basename: string;
  url: string;
  remote_path: string;
  /**
   * Identity of the source content that was uploaded, e.g.
   * `size:mtime_ms:md5`; nodes watching one shared folder compare it to
   * decide that a file is already done.
   */
  fingerprint: string;
  /** The node that uploaded it. */
  node: string;
  /** ms since the epoch. */
  synced_at: number;
  /**
   * The stat of the source file whose content the fingerprint names, as the
   * uploading node saw it before and after reading it
   * (`size:mtime_ms:ctime_ms:ino`, see `pipeline/fleet_keys.ts`); "" when
   * unknown (published by an older node). A node watching the same shared
   * folder that sees this very stat, and a record not racy by the rule of
   * one node, takes the fingerprint without reading the file.
   */
  source_stat?: string;
}

/**
 * A file's stat as a claim may ask with it, for a file whose content was
 * not read: the claim is "done" when the record's `source_stat` is this
 * stat and the record was synced after `after` (see
 * {@linkcode SharedStore.claim}).
 */
export interface StatAsk {
  /** `size:mtime_ms:ctime_ms:ino` of the file (a record's `source_stat`); never "". */
  id: string;
  /**
   * ms since the epoch: a record synced at or before it is racy for this
   * stat (the later of the file's mtime and ctime, plus the racy margin).
   */
  after: number;
}

/** One item of {@linkcode SharedStore.claimMany}. */
export interface ClaimItem {
  key: SharedKey;
  fingerprint: string;
  stat?: StatAsk | undefined;
}

/** Result of {@linkcode SharedStore.claim}. */
export type Claim =
  /**
   * This node holds the lease until `until` (ms since the epoch): upload,
   * then publish. `record`: the record of the key as the claim saw it, of
   * other content than asked (a node that did not read the file compares it
   * then). `from`: the node whose lease this claim took over (it expired, or
   * its node went silent): that node may have uploaded the content before it
   * stopped, without publishing it, so the destination is worth a look
   * before uploading again.
   */
  | { kind: "mine"; until: number; record?: SharedRecord; from?: string }
  /** A record with the same fingerprint, or one that vouches for the stat asked, exists: nothing to upload. */
  | { kind: "done"; record: SharedRecord }
  /** Another live node holds the lease; ask again after `until`. */
  | { kind: "busy"; node: string; until: number };

/** A node of the fleet, as its last heartbeat described it. */
export interface NodeRow {
  node: string;
  started_at: number;
  heartbeat_at: number;
  queued: number;
  failed: number;
  version: string;
  /** The change-feed position the node had applied at its last heartbeat (0: none yet). */
  cursor: number;
}

/** One change of the shared record, for followers (each node's web DB). */
export interface RecordChange {
  /** Strictly increasing position in the change feed. */
  seq: number;
  key: SharedKey;
  /** The record now, or `undefined` when it was removed. */
  record?: SharedRecord;
}

/** Where the change feed stands. */
export interface FeedBounds {
  /** Every change up to this position was pruned (0: none). */
  pruned: number;
  /** The last committed position (every change up to it is committed). */
  head: number;
}

/** One page of {@linkcode SharedStore.records}. */
export interface RecordPage {
  records: SharedRecord[];
  /** Pass as `after` for the next page; the last page has fewer records than asked. */
  next: string;
}

/** Health of one server as the fleet last saw it. */
export interface SharedServerHealth {
  server: string;
  node: string;
  failing_since: number | null;
  last_error: string | null;
  last_ok: number | null;
  updated_at: number;
}

/** The contract every shared store implementation satisfies (see the conformance suite). */
export interface SharedStore {
  readonly kind: "sqlite" | "postgres" | "mysql";
  /** This daemon's node name. */
  readonly node: string;
  /** Creates or migrates the schema (versioned, under one migration lock); idempotent. */
  migrate(): Promise<void>;
  /**
   * Records that this node is alive, with its queue sizes and the change-feed
   * position it applied (`cursor`; omitted: the last one reported stays, 0 for
   * a new node). Cursors decide how far {@linkcode SharedStore.pruneChanges} may go.
   */
  heartbeat(
    info: { queued: number; failed: number; now: number; version: string; cursor?: number },
  ): Promise<void>;
  /** Every node that ever sent a heartbeat, newest first. */
  nodes(): Promise<NodeRow[]>;
  /**
   * Claims the upload of `key` for this node. "done" when the record holds
   * `fingerprint` already, or when `stat` is given, the record's
   * `source_stat` equals `stat.id` and its `synced_at` is after
   * `stat.after` (the rule of one node's own record: `vouchedMd5` in
   * `pipeline/fleet_keys.ts`); a "done" claim takes no lease and drops this
   * node's lease on the key. "busy" when another node's lease is still live;
   * otherwise takes (or renews, or takes over an expired) lease of `leaseMs`:
   * "mine", with the record of the key when there is one.
   * Claiming is atomic: of several nodes claiming at once exactly one gets "mine".
   */
  claim(
    key: SharedKey,
    fingerprint: string,
    now: number,
    leaseMs: number,
    stat?: StatAsk,
  ): Promise<Claim>;
  /**
   * {@linkcode SharedStore.claim} for a batch, in one transaction (one or a
   * few round trips instead of one per file). Returns one claim per item, in
   * the order given; an item repeated in the batch gets the same answer.
   */
  claimMany(items: readonly ClaimItem[], now: number, leaseMs: number): Promise<Claim[]>;
  /**
   * Extends this node's lease; false when the lease was lost (taken over,
   * or released by `releaseDead` while this node was silent).
   */
  renew(key: SharedKey, now: number, leaseMs: number): Promise<boolean>;
  /** Drops this node's lease on `key` (after a failed upload). */
  release(key: SharedKey): Promise<void>;
  /**
   * Releases the leases of nodes silent for `deadAfterMs`; returns how many.
   * A released lease stays as an expired one of its node (not deleted), so
   * the claim that takes it over names that node (`from`).
   */
  releaseDead(now: number, deadAfterMs: number): Promise<number>;
  /**
   * Upserts records (idempotent: publishing the same record twice leaves one
   * row) and drops this node's leases on their keys, in one transaction.
   */
  publish(records: readonly SharedRecord[]): Promise<void>;
  /** Removes records (after their remote delete); idempotent. */
  unpublish(keys: readonly SharedKey[]): Promise<void>;
  /** One record, or undefined. */
  get(key: SharedKey): Promise<SharedRecord | undefined>;
  /** The URL of a file (any destination, or `server`'s). */
  urlFor(inputFile: string, server?: string): Promise<string | undefined>;
  /** Changes of the record after `cursor` (0: from the start), oldest first, at most `limit`. */
  changesSince(cursor: number, limit: number): Promise<RecordChange[]>;
  /** The feed's bounds: a follower whose cursor is below `pruned` missed changes. */
  feed(): Promise<FeedBounds>;
  /**
   * Deletes the changes every node has applied: those up to the lowest
   * cursor of the nodes heard from within `retentionMs` (a node silent longer
   * holds nothing back). The newest change always stays, so a follower whose
   * cursor fell behind the pruned range sees a gap before the first change
   * it reads. Raises `pruned`; returns how many changes went. Idempotent;
   * several nodes may prune at once.
   */
  pruneChanges(now: number, retentionMs: number): Promise<number>;
  /**
   * Every record, a page at a time in a stable order (`after`: "" for the
   * first page, then the previous page's `next`). For a follower that must
   * start over: read {@linkcode SharedStore.feed} first, then every page, and
   * follow the feed from its `head`.
   */
  records(after: string, limit: number): Promise<RecordPage>;
  /** Notes a server's health as this node sees it. */
  putServerHealth(row: SharedServerHealth): Promise<void>;
  serverHealth(): Promise<SharedServerHealth[]>;
  close(): Promise<void>;
}
