/**
 * The errors the connection-based transports (ftp, sftp) throw from a call:
 * one message form, `Cannot <action> "<path>" <prep> server "<name>": <why>`,
 * a failed connection's reason in place of the call's own error, secrets
 * masked, and the protocol's own description and class of what went wrong.
 *
 * @module
 */
import { ClassifiedError, classify, type ErrorKind, errorMessage } from "../errors.ts";

/**
 * A connection could not be opened; `reason` is the text after the server
 * name. `kind` is "auth" when only a configuration change can fix it.
 */
export class ConnectFailure extends ClassifiedError {
  readonly reason: string;
  /** The server refused one more session (a limit, not the login). */
  tooMany = false;
  constructor(
    server: string,
    reason: string,
    options?: ErrorOptions,
    kind: "server" | "auth" = "server",
  ) {
    super(`Cannot connect to server "${server}": ${reason}`, kind, options);
    this.reason = reason;
  }
}

/** One call of a transport: what it did, to which path, on which server. */
export interface Call {
  /** The verb: `upload`, `delete`, `move`, `stat`, `list`. */
  action: string;
  /** The words between the path and the server: `to`, `from`, `on`, `to "b" on`. */
  prep: string;
  /** The remote path, relative to the server's root. */
  rel: string;
  /** The server's name. */
  server: string;
}

/** How a protocol words and classes its own errors. */
export interface ErrorWords {
  /** What went wrong, in words. */
  describe(err: unknown): string;
  /** The class of the error (see `ErrorKind`). */
  kind(err: unknown): ErrorKind;
  /** Masks the server's secrets (passwords echoed in replies). */
  scrub(text: string): string;
}

/** The start of every message about `call`: `Cannot upload "a.css" to server "cdn"`. */
export function callHeader(call: Call): string {
  return `Cannot ${call.action} "${call.rel}" ${call.prep} server "${call.server}"`;
}

/**
 * The error a failed call throws. A connection that could not be opened
 * gives its reason and class; an error that already names the server is
 * returned as it is (it was made for this call); anything else is described
 * by the protocol, with the secrets masked.
 */
export function callFailure(err: unknown, call: Call, words: ErrorWords): ClassifiedError {
  if (err instanceof ConnectFailure) {
    return new ClassifiedError(`${callHeader(call)}: ${err.reason}`, err.kind, { cause: err });
  }
  if (err instanceof ClassifiedError && err.message.includes(`server "${call.server}"`)) {
    return err;
  }
  return new ClassifiedError(
    words.scrub(`${callHeader(call)}: ${words.describe(err)}`),
    words.kind(err),
    { cause: err },
  );
}

/** An upload whose local file could not be read or opened (before any network work). */
export function localReadFailure(
  err: unknown,
  upload: { rel: string; server: string; localPath: string },
): ClassifiedError {
  const call = { action: "upload", prep: "to", rel: upload.rel, server: upload.server };
  return new ClassifiedError(
    `${callHeader(call)}: cannot read local file "${upload.localPath}": ${errorMessage(err)}`,
    classify(err),
    { cause: err },
  );
}

/** `text` with every non-empty secret replaced by `***`. */
export function maskSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length > 0) out = out.split(s).join("***");
  return out;
}
