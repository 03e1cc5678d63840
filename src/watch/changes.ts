/**
 * Change detection: the batch a scan fills, the store row of a stat'ed
 * path, and the comparison of a regular file with its stored row.
 *
 * @module
 */
import * as path from "node:path";
import type { Source } from "../config/types.ts";
import { CREATED, type FileEvent, MODIFIED } from "../store/events.ts";
import type { FileRow } from "../store/store.ts";
import { isRacy, type StatLike } from "./_stat.ts";
import { relPath as relativePath } from "./source_files.ts";

/** One change found in a source tree. */
export interface FsChange {
  source: Source;
  /** Absolute path. */
  path: string;
  /** Path relative to the source's scanPath, `/`-separated. */
  rel: string;
  event: FileEvent;
  /** Size for created/modified files. */
  size?: number;
  /** The stat looked unchanged but a watcher saw a write: compare content. */
  verify?: boolean;
}

/** Receives changes in batches; must store `puts`/`removes` and queue `changes` in one transaction. */
export type ChangeSink = (batch: Batch) => void;

/** One atomic unit of scan results. */
export interface Batch {
  puts: FileRow[];
  /** Paths to forget, with everything below them. */
  removes: string[];
  changes: FsChange[];
}

/** Rows and changes per batch handed to the sink. */
export const BATCH = 500;

/** The state of one scan: the source, the batch being filled, counters. */
export interface Walk {
  source: Source;
  batch: Batch;
  /** Collected deletes when the guard must see them all before applying. */
  deferred?: { removes: string[]; changes: FsChange[] };
  files: number;
  dirs: number;
  changes: number;
  sinceYield: number;
  /** Milliseconds spent listing directories (entries and their types, no stats). */
  listMs?: number;
  /** Milliseconds spent reading the directories' stored rows. */
  storedMs?: number;
  /** Directories known to be stored (or put in this batch): {@linkcode Scanner.scanPaths}. */
  knownDirs?: Set<string>;
  /** Paths found unsyncable in this walk, with the reason. */
  found: Map<string, string>;
  /** A walk of part of the source: names elsewhere that share an inode are not visited. */
  partial?: boolean;
  /**
   * A periodic sweep: racily clean rows are left as they are (their content
   * is compared by the next full scan), so a sweep reads no file and writes
   * nothing where the stat is unchanged.
   */
  sweep?: boolean;
  /**
   * Ends the walk at its next pause once aborted (a sweep when the daemon
   * stops): what it committed stays, the rest is found by the next walk.
   */
  signal?: AbortSignal;
}

/** The store row for a file or directory as just stat'ed. */
export function fileRow(source: Source, p: string, st: StatLike, isDir: boolean): FileRow {
  return {
    path: p,
    dir: path.dirname(p),
    source: source.name,
    is_dir: isDir ? 1 : 0,
    size: isDir ? 0 : st.size,
    mtime_ms: isDir ? 0 : st.mtimeMs,
    ctime_ms: isDir ? 0 : st.ctimeMs,
    ino: isDir ? 0 : st.ino,
    recorded_ms: Date.now(),
  };
}

/** `p` relative to the source's scanPath, `/`-separated. */
export function relPath(source: Source, p: string): string {
  return relativePath(source.scanPath, p);
}

/**
 * Compares one regular file with its stored row: created, modified (stat
 * differs), or to be compared by content (a write was seen, or the stored
 * stat is racy: see {@linkcode RACY_MS}). A racy row is recorded again, so
 * it stops being racy once the file is older than its record. `replaced`
 * records the stored directory a file replaces.
 */
export function compareFile(
  w: Walk,
  p: string,
  rel: string,
  st: StatLike,
  old: FileRow | undefined,
  written: boolean,
  replaced: (w: Walk, row: FileRow) => void,
): void {
  const source = w.source;
  // The row is built only when it is stored: most files of a scan are unchanged.
  if (!old || old.is_dir) {
    if (old) replaced(w, old);
    w.batch.puts.push(fileRow(source, p, st, false));
    w.batch.changes.push({ source, path: p, rel, event: CREATED, size: st.size });
  } else if (
    old.size !== st.size || old.mtime_ms !== st.mtimeMs || old.ctime_ms !== st.ctimeMs ||
    old.ino !== st.ino
  ) {
    w.batch.puts.push(fileRow(source, p, st, false));
    w.batch.changes.push({ source, path: p, rel, event: MODIFIED, size: st.size });
  } else if (isRacy(old) && !w.sweep) {
    w.batch.puts.push(fileRow(source, p, st, false));
    w.batch.changes.push({ source, path: p, rel, event: MODIFIED, size: st.size, verify: true });
  } else if (written) {
    w.batch.changes.push({ source, path: p, rel, event: MODIFIED, size: st.size, verify: true });
  }
}
