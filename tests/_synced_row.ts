/**
 * A local store's synced-file row for tests, so each test states only the
 * fields it is about.
 *
 * @module
 */
import * as path from "node:path";
import type { SyncedRow } from "../src/store/store.ts";

/**
 * The row of `file` uploaded to server `cdn` under its base name, with
 * `overrides` applied. Size, times and inode are 1; hashes, chain and
 * extras are unknown (null).
 *
 * @example
 * ```ts ignore
 * store.putSynced(syncedRow("/src/a.css", { server: "s3", url: "https://x/a.css" }));
 * ```
 */
export function syncedRow(file: string, overrides: Partial<SyncedRow> = {}): SyncedRow {
  const base = path.basename(file);
  return {
    input_file: file,
    transported_file_basename: base,
    url: `https://cdn.example/${base}`,
    server: "cdn",
    dest: "",
    remote_path: base,
    size: 1,
    mtime_ms: 1,
    ctime_ms: 1,
    ino: 1,
    md5: null,
    etag: null,
    chain: null,
    extras: null,
    synced_at: 1,
    ...overrides,
  };
}
