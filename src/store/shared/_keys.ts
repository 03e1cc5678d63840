/**
 * Helpers every shared store implementation uses: key identity and hashing,
 * batch de-duplication, and the claim decision from what a transaction read.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type {
  Claim,
  ClaimItem,
  NodeRow,
  SharedKey,
  SharedRecord,
  SharedServerHealth,
  StatAsk,
} from "./types.ts";

/** One string per key, for maps (the parts joined by NUL, which no path contains). */
export function keyId(key: SharedKey): string {
  return `${key.input_file}\0${key.server}\0${key.dest}`;
}

/**
 * SHA-256 (hex) of {@linkcode keyId}: the primary key of the PostgreSQL and
 * MariaDB tables, where an index on three long text columns would exceed the
 * engines' index length limits.
 */
export function keyHash(key: SharedKey): string {
  const id = keyId(key);
  let hash = hashes.get(id);
  if (hash === undefined) {
    hash = createHash("sha256").update(id).digest("hex");
    // A file's key is hashed at its claim, publish, renewals and release: kept for a while.
    if (hashes.size >= HASHES_KEPT) hashes.clear();
    hashes.set(id, hash);
  }
  return hash;
}

/** Key hashes remembered (a few files' worth of claims ahead and unpublished records). */
const HASHES_KEPT = 4096;
const hashes = new Map<string, string>();

/** A batch item with its id and hash. */
export interface KeyedItem {
  id: string;
  hash: string;
  key: SharedKey;
  fingerprint: string;
  /** The stat asked with ({@linkcode StatAsk}), if any. */
  stat?: StatAsk | undefined;
}

/**
 * The distinct items of a batch (the first fingerprint wins for a repeated
 * key), sorted by hash: every transaction locks rows in the same order, which
 * keeps concurrent batches from deadlocking each other.
 */
export function distinctItems(items: readonly ClaimItem[]): KeyedItem[] {
  const byId = new Map<string, KeyedItem>();
  for (const { key, fingerprint, stat } of items) {
    const id = keyId(key);
    if (byId.has(id)) continue;
    const k = { input_file: key.input_file, server: key.server, dest: key.dest };
    // An empty stat identity vouches for nothing (records of older nodes have "").
    const ask = stat && stat.id !== "" ? { id: stat.id, after: stat.after } : undefined;
    byId.set(id, { id, hash: keyHash(k), key: k, fingerprint, ...(ask ? { stat: ask } : {}) });
  }
  return [...byId.values()].sort((a, b) => (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0));
}

/** Distinct keys sorted by hash (see {@linkcode distinctItems}). */
export function distinctKeys(keys: readonly SharedKey[]): KeyedItem[] {
  return distinctItems(keys.map((key) => ({ key, fingerprint: "" })));
}

/**
 * Distinct records (the last one wins for a repeated key) sorted by hash,
 * with their hash.
 */
export function distinctRecords(
  records: readonly SharedRecord[],
): { hash: string; record: SharedRecord }[] {
  const byId = new Map<string, SharedRecord>();
  for (const r of records) byId.set(keyId(r), r);
  return [...byId.values()]
    .map((record) => ({ hash: keyHash(record), record }))
    .sort((a, b) => (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0));
}

/** A row of `synced_files` as a driver returns it (numbers may arrive as strings). */
export interface RecordRow {
  input_file: string;
  server: string;
  dest: string;
  transported_file_basename: string;
  url: string;
  remote_path: string;
  fingerprint: string;
  node: string;
  synced_at: number | string | bigint;
  source_stat?: string | null;
}

/** A {@linkcode SharedRecord} from a row. */
export function toRecord(row: RecordRow): SharedRecord {
  return {
    input_file: row.input_file,
    server: row.server,
    dest: row.dest,
    transported_file_basename: row.transported_file_basename,
    url: row.url,
    remote_path: row.remote_path,
    fingerprint: row.fingerprint,
    node: row.node,
    synced_at: Number(row.synced_at),
    source_stat: row.source_stat ?? "",
  };
}

/**
 * Whether a record vouches for the stat asked: same stat identity, synced
 * after the stat's racy bound (see {@linkcode StatAsk}). The claim
 * statements of every backend evaluate this same rule (with the bound
 * rounded down: `synced_at` is an integer there, and for an integer n,
 * n > x exactly when n > floor(x)).
 */
export function statVouches(
  record: { source_stat?: string | undefined; synced_at: number },
  stat: StatAsk | undefined,
): boolean {
  return !!stat && stat.id !== "" && record.source_stat === stat.id &&
    record.synced_at > stat.after;
}

/** Whether a claim of `item` is "done" with `record`: same fingerprint, or a vouched stat. */
export function isDone(
  item: { fingerprint: string; stat?: StatAsk | undefined },
  record: SharedRecord | undefined,
): record is SharedRecord {
  return !!record && (record.fingerprint === item.fingerprint || statVouches(record, item.stat));
}

/**
 * The claim of one item, from what its transaction saw after taking the
 * leases it could: the record now (if any), and the lease now.
 */
export function decideClaim(
  item: { fingerprint: string; stat?: StatAsk | undefined },
  record: SharedRecord | undefined,
  lease: { node: string; until: number } | undefined,
  me: string,
  from?: string,
): Claim {
  if (isDone(item, record)) return { kind: "done", record };
  if (lease && lease.node !== me) return { kind: "busy", node: lease.node, until: lease.until };
  if (!lease) throw new Error("A claimed lease row is missing after the claim");
  return mineClaim(lease.until, record, from);
}

/**
 * A "mine" answer with only the parts that apply: `record` when the key has
 * one, `from` when the lease was taken over from another node.
 */
export function mineClaim(
  until: number,
  record: SharedRecord | undefined,
  from: string | undefined,
): Claim {
  return {
    kind: "mine",
    until,
    ...(record ? { record } : {}),
    ...(from !== undefined ? { from } : {}),
  };
}

/**
 * The released mark of a lease (see `SharedStore.releaseDead`): expired, its
 * node kept. A claim takes it over as any expired lease; renewing it fails.
 */
export const RELEASED_UNTIL = 0;

/**
 * The ended mark of a lease on PostgreSQL: its node published the key (or
 * gave the lease back). The row stays, so that a claim of a key published
 * after the claim's snapshot always meets a row (see `postgres.ts`). A
 * claim takes it as any expired lease, without naming its node (`from`).
 */
export const ENDED_UNTIL = -1;

/** The claims of a batch in the caller's order, from the claims by key id. */
export function inOrder(
  items: readonly { key: SharedKey }[],
  byId: Map<string, Claim>,
): Claim[] {
  return items.map(({ key }) => {
    const c = byId.get(keyId(key));
    if (!c) throw new Error(`No claim for "${key.input_file}" on server "${key.server}"`);
    return c;
  });
}

/** A row of `fc_nodes` as a driver returns it (numbers may come as strings or bigints). */
export function toNodeRow(row: Record<string, unknown>): NodeRow {
  return {
    node: String(row.node),
    started_at: Number(row.started_at),
    heartbeat_at: Number(row.heartbeat_at),
    queued: Number(row.queued),
    failed: Number(row.failed),
    version: String(row.version),
    cursor: Number(row.feed_cursor ?? 0),
  };
}

/** A record's values in the order of the record columns (`RECORD_COLUMNS_SQL`). */
export function recordValues(r: SharedRecord): [
  string,
  string,
  string,
  string,
  string,
  string,
  string,
  string,
  number,
  string,
] {
  return [
    r.input_file,
    r.server,
    r.dest,
    r.transported_file_basename,
    r.url,
    r.remote_path,
    r.fingerprint,
    r.node,
    r.synced_at,
    r.source_stat ?? "",
  ];
}

/** A row of `fc_server_health` as a driver returns it (numbers may come as strings). */
export function toServerHealth(row: Record<string, unknown>): SharedServerHealth {
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    server: String(row.server),
    node: String(row.node),
    failing_since: num(row.failing_since),
    last_error: (row.last_error as string | null | undefined) ?? null,
    last_ok: num(row.last_ok),
    updated_at: Number(row.updated_at),
  };
}
