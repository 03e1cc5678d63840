/**
 * FTP settings, the connection record, and protocol helpers: MLSx facts,
 * reply classes, the upload stream and the hardening of basic-ftp's
 * control connection.
 *
 * @module
 */
import { type Client, type FTPContext, FTPError, type TaskResolver } from "basic-ftp";
import { Buffer } from "node:buffer";
import type * as fs from "node:fs/promises";
import type { Socket } from "node:net";
import { Readable } from "node:stream";
import { ClassifiedError, classify, type ErrorKind, errorMessage } from "../../errors.ts";
import { type FtpOptions, normalizeCertFingerprint } from "../ftp.ts";
import type { TlsEngine } from "./_tls_resume.ts";
import { normalizeRoot } from "../paths.ts";

/** Bytes per read of the local file during an upload. */
export const CHUNK = 64 * 1024;

export type TlsMode = "none" | "explicit" | "implicit";

export interface Settings {
  host: string;
  port: number;
  username: string;
  password: string;
  root: string;
  url: string;
  tls: TlsMode;
  caPath?: string;
  fingerprint?: string;
  insecure: boolean;
}

export interface Conn {
  id: number;
  client: Client;
  /** Directories known to exist (full remote paths). */
  dirs: Set<string>;
  /** The server answers MLST (exact sizes and mtimes for one path). */
  mlst: boolean;
  /** The server answers SIZE. */
  size: boolean;
  /** The TLS the connection was opened with. */
  engine: TlsEngine;
}

/** Parses the facts of one MLST/MLSD line (`type=file;size=5;modify=…; name`). */
export function parseFacts(line: string): Map<string, string> {
  const facts = new Map<string, string>();
  const space = line.indexOf(" ");
  const factText = space >= 0 ? line.slice(0, space) : line;
  for (const f of factText.split(";")) {
    const eq = f.indexOf("=");
    if (eq > 0) facts.set(f.slice(0, eq).toLowerCase(), f.slice(eq + 1));
  }
  return facts;
}

/** `YYYYMMDDHHMMSS[.sss]` (UTC) to epoch milliseconds. */
export function parseMlsxTime(text: string | undefined): number | undefined {
  const m = text && /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d+))?$/.exec(text);
  if (!m) return undefined;
  const ms = m[7] ? Number(m[7].padEnd(3, "0").slice(0, 3)) : 0;
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, ms);
}

export { ConnectFailure } from "../_call_errors.ts";

/**
 * A reply that refuses one more session because of a limit (pure-ftpd
 * `421 5 users (the maximum) are already logged in`, vsftpd `421 There are
 * too many connected users`, ProFTPD MaxClients), not because of the login.
 */
export function isTooManyReply(err: unknown): boolean {
  return err instanceof FTPError && (err.code === 421 || err.code === 530) &&
    /too many|maximum|max(imum)? (number of )?(clients|users|connections)|already (logged|connected)|limit/i
      .test(err.message);
}

export function isPermission(err: unknown): boolean {
  return err instanceof FTPError && (err.code === 550 || err.code === 553) &&
    /permission|denied|not permitted|access/i.test(err.message);
}

/**
 * The whole file behind `fh`, from its start, as a stream for basic-ftp's
 * `uploadFrom`, which differs from `createReadStream("", { fd })` in two ways:
 *
 * - It reads through the handle and never closes it. A stream made from the
 *   descriptor closes it when a failed transfer destroys the stream, even
 *   with `autoClose: false`: the handle's own close then fails with EBADF
 *   (or closes a descriptor the number was reused for meanwhile), and a
 *   second attempt would read a closed or foreign file.
 * - Only the file's own read errors are errors of the stream. A failed
 *   transfer destroys its source with the data connection's error, and
 *   basic-ftp closes the control connection on any source error, before the
 *   server's reply (which says what went wrong) can be read.
 */
export function fileSource(fh: fs.FileHandle): Readable {
  let pos = 0;
  let readError: Error | undefined;
  return new Readable({
    highWaterMark: CHUNK,
    read() {
      const buf = Buffer.allocUnsafe(CHUNK);
      fh.read(buf, 0, CHUNK, pos).then(({ bytesRead }) => {
        if (bytesRead === 0) {
          this.push(null);
          return;
        }
        pos += bytesRead;
        this.push(buf.subarray(0, bytesRead));
      }, (err: Error) => {
        readError = err;
        this.destroy(err);
      });
    },
    destroy(err, callback) {
      callback(err !== null && err === readError ? err : null);
    },
  });
}

/** Per FTP context: where the running transfer wants to hear of a data connection error. */
export const dataErrorHandlers = new WeakMap<FTPContext, (err: Error) => void>();

/**
 * Makes basic-ftp's handling of failed transfers safe on one context:
 *
 * - A task settles once. When a transfer fails, basic-ftp's data stream
 *   pipeline reports the failure once more a few ticks later, through the
 *   failed task's resolver, whose rejection untracks "the current task": by
 *   then the next command (the DELE of the temp file) is running, so its
 *   reply is dropped, and with the task its timeout, so it waits forever.
 *   Every response handler gets a resolver that acts only once.
 * - A data connection error does not close the control connection at once.
 *   basic-ftp closes the whole client on any data socket error; but a
 *   server that refuses a transfer (550 permission denied, 553 bad name,
 *   425) often resets the data connection it had accepted or still had
 *   queued, and on a busy machine that reset can overtake the refusal on the
 *   control connection: closing then loses the reply, and the refusal of one
 *   file is reported as a broken server ("read ECONNRESET (data socket)").
 *   So the error goes to the running transfer (`Ftp.#transfer`), which waits
 *   briefly for the reply; without a transfer, the client is closed as
 *   before. (This replaces basic-ftp's `_setupDefaultErrorHandlers` for data
 *   sockets; with a basic-ftp version that lacks it, nothing changes.)
 */
export function hardenContext(ftp: FTPContext): void {
  const handle = ftp.handle.bind(ftp);
  ftp.handle = (command, responseHandler) => {
    let settled = false;
    const once: TaskResolver = {
      resolve(value) {
        if (settled) return;
        settled = true;
        task?.resolve(value);
      },
      reject(err) {
        if (settled) return;
        settled = true;
        task?.reject(err);
      },
    };
    let task: TaskResolver | undefined;
    return handle(command, (res, resolver) => {
      task = resolver;
      if (!settled) responseHandler(res, once);
    });
  };

  const ctx = ftp as unknown as {
    _setupDefaultErrorHandlers?: (socket: Socket, identifier: string) => void;
  };
  const defaults = ctx._setupDefaultErrorHandlers;
  if (typeof defaults !== "function") return;
  ctx._setupDefaultErrorHandlers = (socket, identifier) => {
    if (identifier !== "data socket") return defaults.call(ftp, socket, identifier);
    let failed = false;
    socket.on("error", (err: Error) => {
      if (failed) return;
      failed = true;
      err.message += " (data socket)";
      socket.destroy();
      const handler = dataErrorHandlers.get(ftp);
      if (handler) handler(err);
      else ftp.closeWithError(err);
    });
    socket.once("timeout", () => {
      socket.destroy();
      ftp.closeWithError(new Error("Timeout (data socket)"));
    });
  };
}

/** An FTP reply on one line, or the error's message. */
export function describe(err: unknown): string {
  if (err instanceof FTPError) return err.message.replace(/\s+/g, " ").trim();
  return errorMessage(err);
}

/** The class of an error (see `ErrorKind`). */
export function errorKind(err: unknown): ErrorKind {
  if (err instanceof ClassifiedError) return err.kind;
  // Cancelled by the caller (shutdown): nothing is wrong with the file or the server.
  if ((err as Error)?.name === "AbortError") return "retry";
  if (err instanceof FTPError) {
    const c = err.code;
    if (isPermission(err)) return "fatal";
    if (c === 421 || c === 530 || c === 332 || c === 552) return "server";
    if (c === 501 || c === 553) return "fatal"; // the server refuses this name
    return "retry";
  }
  if (typeof (err as { code?: unknown })?.code === "string") {
    const k = classify(err);
    // Local file errors keep their class; TLS and socket errors are the server's.
    return k === "retry" && !(err as { syscall?: string }).syscall ? "server" : k;
  }
  // basic-ftp's own errors: timeouts, closed connections, unexpected replies.
  return "server";
}

/** What a connection needs, from the settings `ftp.ts` has validated. */
export function settingsFrom(v: FtpOptions): Settings {
  const tls = v.tls as TlsMode;
  const root = normalizeRoot(v.path);
  const fp = v.tls_fingerprint !== undefined && v.tls_fingerprint.trim() !== ""
    ? normalizeCertFingerprint(v.tls_fingerprint)
    : undefined;
  const ca = v.ca !== undefined && v.ca.trim() !== "" ? v.ca.trim() : undefined;
  return {
    host: v.host.trim(),
    port: v.port ?? (tls === "implicit" ? 990 : 21),
    username: v.username,
    password: v.password,
    root,
    url: v.url.trim(),
    tls,
    ...(ca !== undefined ? { caPath: ca } : {}),
    ...(fp !== undefined ? { fingerprint: fp } : {}),
    insecure: v.insecure_skip_verify,
  };
}
