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
 */
export class RequeueError extends Error {
  /** How long to wait before trying again, in milliseconds. */
  readonly delayMs: number;

  /**
   * @param message Why the file has to wait.
   * @param delayMs How long to wait before trying again.
   */
  constructor(message: string, delayMs = 2000) {
    super(message);
    this.name = "RequeueError";
    this.delayMs = delayMs;
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

/**
 * Classifies an error from the file system or the network by its code.
 * Errors already classified keep their kind.
 */
export function classify(err: unknown): ErrorKind {
  if (err instanceof ClassifiedError) return err.kind;
  const code = (err as { code?: string })?.code;
  switch (code) {
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
  if (err instanceof Deno.errors.PermissionDenied) return "fatal";
  if (err instanceof Deno.errors.ConnectionRefused) return "server";
  if (err instanceof Deno.errors.ConnectionReset) return "server";
  if (err instanceof Deno.errors.TimedOut) return "server";
  return "retry";
}
