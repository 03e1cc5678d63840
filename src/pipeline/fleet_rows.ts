/**
 * How a fleet node turns a row of its own `synced_files` into the shared
 * record it publishes, and a record another node published into the row it
 * keeps locally. Pure: the caller reads and writes the stores.
 *
 * @module
 */
import type { SharedKey, SharedRecord } from "../store/shared/types.ts";
import type { SyncedRow } from "../store/store.ts";
import { fingerprint, statId } from "./fleet_keys.ts";

/** What a node knows of its own copy of a file when it takes another node's record for it. */
export interface AdoptedFile {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  /** MD5 of the source as this node has it (read, or vouched for by the record). */
  md5: string;
  chain: string;
  /** Whether a processor chain made the uploaded bytes (then they are not the source's). */
  processed: boolean;
}

/**
 * The local row for a file another node uploaded: the record's remote side
 * (name, URL, path, time) with this node's stat and source MD5, so this
 * node's next scan finds the file unchanged.
 */
export function adoptedRow(record: SharedRecord, local: AdoptedFile): SyncedRow {
  return {
    input_file: record.input_file,
    transported_file_basename: record.transported_file_basename,
    url: record.url,
    server: record.server,
    dest: record.dest,
    remote_path: record.remote_path,
    size: local.size,
    mtime_ms: local.mtimeMs,
    ctime_ms: local.ctimeMs,
    ino: local.ino,
    md5: local.processed ? null : local.md5,
    etag: null,
    chain: local.chain,
    extras: null,
    synced_at: record.synced_at,
    source_md5: local.md5,
  };
}

/**
 * The shared record for a row this node recorded. `uploaded`: the row was
 * written by an upload in this transaction, so its MD5 was taken between two
 * equal stats and its stat identity may vouch for the content to other nodes
 * (`vouchedMd5`); any other row publishes no stat identity.
 */
export function publishedRecord(
  key: SharedKey,
  row: SyncedRow,
  node: string,
  uploaded: boolean,
): SharedRecord {
  return {
    ...key,
    transported_file_basename: row.transported_file_basename,
    url: row.url,
    remote_path: row.remote_path,
    fingerprint: fingerprint(row.size ?? -1, row.mtime_ms ?? 0, row.source_md5 ?? ""),
    node,
    synced_at: row.synced_at,
    source_stat: uploaded && row.source_md5 && row.size != null && row.mtime_ms != null &&
        row.ctime_ms != null && row.ino != null
      ? statId({ size: row.size, mtimeMs: row.mtime_ms, ctimeMs: row.ctime_ms, ino: row.ino })
      : "",
  };
}
