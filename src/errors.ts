/**
 * Error classes shared by every stage. Errors are classified by what the
 * caller should do about them, not by where they come from (rclone's habit).
 *
 * @module
 */

/** What the pipeline does with a failed operation. */
export type ErrorKind =
  /** Transient trouble with this one file: retry it with backoff. */
  | "retry"
  /** The file itself cannot be handled (bad content, permission): retry only on change or on request. */
  | "fatal"
  /** The server is unreachable or overloaded: back off the whole server. */
  | "server"
  /**
   * The server will not work until someone fixes the configuration (wrong
   * password or key, host key or certificate mismatch, no permission on the
   * root): pause the whole server at once, never retry per file (each retry
   * would be one more failed login, and a burst of them locks the user out
   * through fail2ban and the like).
   */
  | "auth";

/** An error that carries its {@linkcode ErrorKind}. */
export class ClassifiedError extends Error {
  /** What the pipeline should do about this error. */
  readonly kind: ErrorKind;

  /**
   * @param message Sentence-case message naming the action and quoting values.
   * @param kind What the pipeline should do about it.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, kind: ErrorKind, options?: ErrorOptions) {
    super(message, options);
    this.name = "ClassifiedError";
    this.kind = kind;
  }
}

/**
 * Thrown by a processor that cannot run yet (for example a stylesheet whose
 * images are not synced yet). The file goes back to the queue without
 * counting as a failure.
 *
 * With `waitsFor`, the file waits for those source files to be synced to
 * the same server: the pipeline runs it again as soon as one of them is
 * recorded there, and after `delayMs` at the latest.
 */
export class RequeueError extends Error {
  /** How long to wait before trying again, in milliseconds. */
  readonly delayMs: number;
  /** Source files whose sync ends the wait (absolute paths). */
  readonly waitsFor: readonly string[];

  /**
   * @param message Why the file has to wait.
   * @param delayMs How long to wait before trying again.
   * @param waitsFor Source files whose sync ends the wait.
   */
  constructor(message: string, delayMs = 2000, waitsFor: readonly string[] = []) {
    super(message);
    this.name = "RequeueError";
    this.delayMs = delayMs;
    this.waitsFor = waitsFor;
  }
}

/**
 * The source file changed while it was read for a transfer (its size or
 * stat no longer match what the job planned with). Not a failure of the file
 * or the server: the job goes back to the queue and plans again from a fresh
 * stat, after a wait that doubles with each requeue (from 50 ms up to 5 s),
 * so a file that is still being written is not read over and over. A
 * `ClassifiedError` (kind "retry") so that every transport's error wrapping
 * passes it on; the pipeline finds it in the `cause` chain
 * ({@linkcode SourceChanged.in}).
 */
export class SourceChanged extends ClassifiedError {
  constructor(message: string) {
    super(message, "retry");
    this.name = "SourceChanged";
  }

  /** The SourceChanged in `err`'s cause chain, if any. */
  static in(err: unknown): SourceChanged | undefined {
    for (const e of causes(err)) if (e instanceof SourceChanged) return e;
    return undefined;
  }

  /** The wait before the `requeues`+1-th attempt, ms. */
  static delayAfter(requeues: number): number {
    return Math.min(50 * 2 ** Math.min(requeues, 10), 5_000);
  }
}

/** One problem found in a configuration file. */
export interface ConfigIssue {
  /** 1-based line number, when known. */
  line?: number;
  /** Element path, e.g. `config/servers/server[@name="cdn"]/host`. */
  path: string;
  /** What is wrong. */
  message: string;
}

/** A configuration that cannot be used; carries every problem found. */
export class ConfigError extends Error {
  /** Every problem found, in file order. */
  readonly issues: ConfigIssue[];
  /** The file the problems were found in. */
  readonly file: string;

  /**
   * @param file The configuration file.
   * @param issues Every problem found.
   */
  constructor(file: string, issues: ConfigIssue[]) {
    super(formatIssues(file, issues));
    this.name = "ConfigError";
    this.file = file;
    this.issues = issues;
  }
}

function formatIssues(file: string, issues: ConfigIssue[]): string {
  const lines = issues.map((i) => `${file}:${i.line ?? "?"}: ${i.path}: ${i.message}`);
  const n = issues.length;
  return `Invalid configuration "${file}" (${n} problem${n === 1 ? "" : "s"}):\n${
    lines.join("\n")
  }`;
}

/** Returns the message of any thrown value. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** How many causes {@linkcode causes} follows at most (a guard against cycles). */
const MAX_CAUSES = 16;

/**
 * An error and its `cause` chain, outermost first. Stops at a cycle or
 * after a bounded depth.
 *
 * @example
 * ```ts
 * import { causes } from "./errors.ts";
 * const inner = new Error("inner");
 * [...causes(new Error("outer", { cause: inner }))].length; // 2
 * ```
 */
export function* causes(err: unknown): Generator<unknown> {
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (e !== undefined && e !== null && !seen.has(e) && seen.size < MAX_CAUSES) {
    seen.add(e);
    yield e;
    e = (e as { cause?: unknown }).cause;
  }
}

function codeOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function kindOfOne(e: unknown): ErrorKind | undefined {
  if (e instanceof ClassifiedError) return e.kind;
  switch (codeOf(e)) {
    case "ECONNREFUSED":
    case "ECONNRESET":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "ETIMEDOUT":
    case "EPIPE":
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "server";
    case "EACCES":
    case "EPERM":
    case "EISDIR":
    case "ELOOP":
    case "ENAMETOOLONG":
      return "fatal";
  }
  if (e instanceof Deno.errors.PermissionDenied) return "fatal";
  if (e instanceof Deno.errors.ConnectionRefused) return "server";
  if (e instanceof Deno.errors.ConnectionReset) return "server";
  if (e instanceof Deno.errors.TimedOut) return "server";
  return undefined;
}

/**
 * Classifies an error from the file system or the network by its code.
 * The first error of the `cause` chain that says something decides: an
 * already classified error keeps its kind, so a wrapper keeps what it wraps
 * unless it classifies itself. Unknown errors are retried.
 *
 * @example
 * ```ts
 * import { classify } from "./errors.ts";
 * const refused = Object.assign(new Error("connect"), { code: "ECONNREFUSED" });
 * classify(new Error("Cannot upload", { cause: refused })); // "server"
 * ```
 */
export function classify(err: unknown): ErrorKind {
  for (const e of causes(err)) {
    const kind = kindOfOne(e);
    if (kind) return kind;
  }
  return "retry";
}

/** SQLite primary result codes (the low byte of an extended code). */
export const SQLITE = {
  /** The database file is locked by another connection. */
  BUSY: 5,
  /** A table is locked. */
  LOCKED: 6,
  /** Attempt to write a read-only database. */
  READONLY: 8,
  /** A disk I/O error. */
  IOERR: 10,
  /** The database file is malformed. */
  CORRUPT: 11,
  /** The database or the disk is full. */
  FULL: 13,
  /** The database file cannot be opened. */
  CANTOPEN: 14,
  /** A constraint was violated. */
  CONSTRAINT: 19,
} as const;

/**
 * Whether an error, or one of its causes, comes from SQLite (`node:sqlite`
 * marks its errors with the code `ERR_SQLITE_ERROR`).
 *
 * @example
 * ```ts
 * import { DatabaseSync } from "node:sqlite";
 * import { isSqliteError } from "./errors.ts";
 * try {
 *   new DatabaseSync(":memory:").exec("SELEC 1");
 * } catch (e) {
 *   isSqliteError(e); // true
 * }
 * ```
 */
export function isSqliteError(err: unknown): boolean {
  for (const e of causes(err)) if (codeOf(e) === "ERR_SQLITE_ERROR") return true;
  return false;
}

/**
 * The SQLite primary result code of an error or one of its causes
 * ({@linkcode SQLITE}), when `node:sqlite` reports one: statements carry
 * the extended code in `errcode`; errors of `exec()` carry none.
 */
export function sqliteCode(err: unknown): number | undefined {
  for (const e of causes(err)) {
    if (codeOf(e) !== "ERR_SQLITE_ERROR") continue;
    const errcode = (e as { errcode?: unknown }).errcode;
    if (typeof errcode === "number") return errcode & 0xff;
  }
  return undefined;
}

/**
 * Whether an error says the disk (or the database) is full: SQLite's
 * `SQLITE_FULL`, or a file system error `ENOSPC`/`EDQUOT`, anywhere in the
 * `cause` chain.
 */
export function isNoSpace(err: unknown): boolean {
  if (sqliteCode(err) === SQLITE.FULL) return true;
  for (const e of causes(err)) {
    const code = codeOf(e);
    if (code === "ENOSPC" || code === "EDQUOT") return true;
  }
  return false;
}

/**
 * The shared store's database cannot be reached right now (connection
 * refused, reset or timed out; the server starting up, restarting or
 * shutting down). Kind `"server"`: callers keep their work locally and try
 * again later. The message names the store by its URL without the password.
 *
 * @example
 * ```ts
 * import { classify, StoreUnavailable } from "./errors.ts";
 * classify(new StoreUnavailable("Cannot reach the shared store \"postgres://fc@db/fc\"")); // "server"
 * ```
 */
export class StoreUnavailable extends ClassifiedError {
  /**
   * @param message Sentence-case message naming the store (never its password).
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, "server", options);
    this.name = "StoreUnavailable";
  }
}
