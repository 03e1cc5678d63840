/**
 * SFTP errors: the status codes, the failures of a connection, and the
 * description and class of an error for the messages the transport throws.
 *
 * @module
 */
import { ClassifiedError, classify, type ErrorKind, errorMessage } from "../../errors.ts";

// SFTP v3 status codes (draft-ietf-secsh-filexfer-02).
export const NO_SUCH_FILE = 2;
export const PERMISSION_DENIED = 3;
export const FAILURE = 4;
export const OP_UNSUPPORTED = 8;

export { ConnectFailure } from "../_call_errors.ts";

/** An error that means the connection itself is unusable. */
export class ConnectionError extends Error {
  readonly code: string;
  constructor(message: string, code = "ECONNRESET", options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectionError";
    this.code = code;
  }
}

export function statusCode(err: unknown): number | undefined {
  const c = (err as { code?: unknown })?.code;
  return typeof c === "number" ? c : undefined;
}

/**
 * Adds to an SFTP status error (the server says only "permission denied")
 * the request and remote path that failed, once: the innermost step is the
 * one that names the real cause.
 */
export function at<R>(p: Promise<R>, step: (code: number) => string): Promise<R> {
  return p.catch((err) => {
    throw annotate(err, step);
  });
}

/** See {@linkcode at}; returns `err`. */
export function annotate(err: unknown, step: (code: number) => string): unknown {
  const code = statusCode(err);
  if (code !== undefined && (err as { step?: string }).step === undefined) {
    Object.assign(err as object, { step: step(code) });
  }
  return err;
}

/** Request-level SFTP errors leave the connection usable; anything else does not. */
export function isBroken(err: unknown): boolean {
  if (err instanceof ClassifiedError) return err.cause !== undefined && isBroken(err.cause);
  return statusCode(err) === undefined || err instanceof ConnectionError;
}

export const STATUS_TEXT: Record<number, string> = {
  1: "end of file",
  2: "no such file or directory",
  3: "permission denied",
  4: "failure",
  5: "bad message",
  6: "no connection",
  7: "connection lost",
  8: "operation not supported",
};

/** What went wrong, in words: the SFTP status with the step that failed, or the message. */
export function describe(err: unknown): string {
  const code = statusCode(err);
  if (code !== undefined) {
    const text = STATUS_TEXT[code] ?? `status ${code}`;
    const msg = errorMessage(err);
    const detail = [(err as { step?: string }).step];
    if (msg && msg.toLowerCase() !== text) detail.push(msg);
    const d = detail.filter((x) => x).join("; ");
    return d ? `${text} (${d})` : text;
  }
  return errorMessage(err);
}

/** The class of an error (see `ErrorKind`). */
export function errorKind(err: unknown): ErrorKind {
  if (err instanceof ClassifiedError) return err.kind;
  // Cancelled by the caller (shutdown): nothing is wrong with the file or the server.
  if ((err as Error)?.name === "AbortError") return "retry";
  const code = statusCode(err);
  if (code === PERMISSION_DENIED) return "fatal";
  if (code !== undefined) return code === 6 || code === 7 ? "server" : "retry";
  // Local file errors (ENOENT, EACCES, …) carry a string code; ssh2's own
  // errors (closed channel, no response) mean the connection is gone.
  if (typeof (err as { code?: unknown })?.code === "string") return classify(err);
  return err instanceof Error && !(err instanceof ConnectionError) &&
      !(err as { level?: string }).level &&
      !/no response|not connected|channel|closed|timed out|socket/i.test(err.message)
    ? "retry"
    : "server";
}
