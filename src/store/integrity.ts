/**
 * The health of the state database: what a SQLite error means for the
 * daemon (a full disk waits, a damaged file stops), whether the file the
 * daemon has open is still the one at its path, and the messages that say
 * how to recover.
 *
 * @module
 */
import * as fs from "node:fs";
import { ClassifiedError } from "../errors.ts";

/**
 * What a database error means:
 * - `full`: the disk is full; writes work again once space returns;
 * - `busy`: another connection holds a lock; retrying works;
 * - `damaged`: the file is corrupt, not a database, unreadable or gone;
 *   retrying never helps;
 * - `other`: any other SQLite error (a bug, a constraint).
 */
export type StoreTrouble = "full" | "busy" | "damaged" | "other";

// Primary SQLite result codes (https://sqlite.org/rescode.html).
const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_READONLY = 8;
const SQLITE_IOERR = 10;
const SQLITE_CORRUPT = 11;
const SQLITE_FULL = 13;
const SQLITE_CANTOPEN = 14;
const SQLITE_NOTADB = 26;
/** SQLITE_READONLY_DBMOVED: the file was renamed or unlinked while open. */
const SQLITE_READONLY_DBMOVED = SQLITE_READONLY | (4 << 8);

/**
 * Classifies an error thrown by `node:sqlite`; `undefined` when it is not a
 * SQLite error. Uses the extended result code where SQLite reports one (some
 * errors raised while opening carry only a message).
 *
 * @example
 * ```ts
 * import { storeTrouble } from "./integrity.ts";
 * const e = Object.assign(new Error("database or disk is full"), {
 *   code: "ERR_SQLITE_ERROR",
 *   errcode: 13,
 * });
 * console.assert(storeTrouble(e) === "full");
 * ```
 */
export function storeTrouble(e: unknown): StoreTrouble | undefined {
  const err = e as { code?: unknown; errcode?: unknown; message?: unknown } | null;
  if (err?.code !== "ERR_SQLITE_ERROR") return undefined;
  const code = typeof err.errcode === "number" ? err.errcode : undefined;
  if (code !== undefined) {
    if (code === SQLITE_READONLY_DBMOVED) return "damaged";
    switch (code & 0xff) {
      case SQLITE_FULL:
        return "full";
      case SQLITE_BUSY:
      case SQLITE_LOCKED:
        return "busy";
      case SQLITE_CORRUPT:
      case SQLITE_NOTADB:
      case SQLITE_IOERR:
      case SQLITE_CANTOPEN:
        return "damaged";
      default:
        return "other";
    }
  }
  const message = String(err.message ?? "");
  if (/database or disk is full/i.test(message)) return "full";
  if (/not a database|malformed|disk I\/O error|unable to open/i.test(message)) return "damaged";
  if (/database is (locked|busy)/i.test(message)) return "busy";
  return "other";
}

/** The state database cannot be used: damaged, or deleted. The process stops (exit 1). */
export class StateError extends ClassifiedError {
  /** The database file. */
  readonly file: string;

  /**
   * @param file The database file.
   * @param message What is wrong and how to recover.
   * @param options Standard error options (`cause`).
   */
  constructor(file: string, message: string, options?: ErrorOptions) {
    super(message, "fatal", options);
    this.name = "StateError";
    this.file = file;
  }
}

/** How to rebuild the state: the same words in every message. */
export const REBUILD_HINT =
  "run `fileconveyor sync --rebuild-state --config <your config>`: it moves the old database aside, uploads every source file again and deletes from the destinations the files the sources no longer have";

/** The error for a database whose content SQLite rejects. */
export function damagedState(file: string, reason: string, cause?: unknown): StateError {
  return new StateError(
    file,
    `The state database "${file}" is damaged (${reason}); fileconveyor stops rather than sync from a wrong state. To recover, ${REBUILD_HINT}.`,
    cause === undefined ? undefined : { cause },
  );
}

/** The error for a database deleted after fileconveyor created it. */
export function lostState(file: string, detail: string): StateError {
  return new StateError(
    file,
    `The state database "${file}" ${detail}: what was synced where is lost, so files deleted from the sources meanwhile would stay at the destinations. To rebuild it, ${REBUILD_HINT}.`,
  );
}

/**
 * The identity (device and inode) of the database file the daemon opened:
 * SQLite keeps writing to an open file that was deleted or replaced, so the
 * daemon asks this guard, now and then, whether its state still exists.
 */
export class DbFileGuard {
  readonly #file: string;
  readonly #dev: number;
  readonly #ino: number;

  /** @param file The database file, open at the time of the call. */
  constructor(file: string) {
    this.#file = file;
    const st = fs.statSync(file);
    this.#dev = st.dev;
    this.#ino = st.ino;
  }

  /** `undefined` while the path is still the file opened; otherwise what happened to it. */
  check(): string | undefined {
    let st: fs.Stats;
    try {
      st = fs.statSync(this.#file);
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") return "was deleted while fileconveyor ran";
      return undefined; // An unreadable path is not proof of loss; SQLite errors report the rest.
    }
    if (st.dev !== this.#dev || st.ino !== this.#ino) {
      return "was replaced by another file while fileconveyor ran";
    }
    return undefined;
  }
}
