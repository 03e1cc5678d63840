/**
 * The `sftp` transport itself, with `npm:ssh2`: loaded by `sftp.ts` on the
 * first `create()`, so that only configurations with an SFTP server pay for
 * ssh2 (start-up time and memory). See `sftp.ts` for what it does.
 * Connections are opened in `connect.ts`, uploads written in `upload.ts`,
 * errors classified in `errors.ts`.
 *
 * @module
 */
// @ts-types="@types/ssh2"
import type ssh2 from "ssh2";
import { createHash } from "node:crypto";
import type * as fs from "node:fs/promises";
import * as path from "node:path";
import { ClassifiedError, errorMessage, SourceChanged } from "../../errors.ts";
import { addSecret } from "../../log.ts";
import { openRegular, readRegular, readRegularSync } from "../../util/regular_file.ts";
import { readRegularNative } from "../../util/_native_read.ts";
import type { Logger } from "../../log.ts";
import { type SftpOptions, TRANSFERS_PER_SESSION } from "../sftp.ts";
import { Pool } from "../pool.ts";
import { Semaphore } from "../../util/semaphore.ts";
import { isTempName, joinUrl, relativeToRoot, safeRemotePath, underRoot } from "../paths.ts";
import { uploadViaTemp } from "../temp_rename.ts";
import { callFailure, localReadFailure, maskSecrets } from "../_call_errors.ts";
import type {
  CallOptions,
  DirRemover,
  Lister,
  Mover,
  PutOptions,
  PutResult,
  RemoteStat,
  Stater,
  Transport,
  TransportContext,
} from "../transport.ts";
import { type Conn, type ConnectEnv, type Settings, settingsFrom } from "./connect.ts";
import { Sessions } from "./sessions.ts";
import {
  annotate,
  at,
  ConnectFailure,
  describe,
  errorKind,
  FAILURE,
  isBroken,
  NO_SUCH_FILE,
  OP_UNSUPPORTED,
  PERMISSION_DENIED,
  statusCode,
} from "./errors.ts";
import { BURST, largeTurn, request, SMALL_UPLOAD, uploadBytes, uploadStream } from "./upload.ts";

/** Files up to this size are read synchronously (see `put`). */
const SMALL = 64 * 1024;

class Sftp implements Transport, Stater, Lister, Mover, DirRemover {
  readonly #s: Settings;
  readonly #server: string;
  readonly #log: Logger;
  readonly #pool: Pool<Conn>;
  /** The SFTP sessions of the pool, several on one SSH connection. */
  readonly #sessions: Sessions;
  /**
   * Directories known to exist (full remote paths), for every connection:
   * cleared when a delete prunes directories or an upload finds one gone.
   */
  readonly #dirs = new Set<string>();
  /** Uploads above `SMALL_UPLOAD` bytes under way: at most one per session. */
  readonly #large: Semaphore;
  /** Directory checks under way, by full remote path. */
  readonly #making = new Map<string, Promise<void>>();
  readonly #secrets: string[];
  #nextId = 1;
  /** What opening a connection needs (see `connect.ts`). */
  readonly #env: ConnectEnv;

  constructor(s: Settings, ctx: TransportContext) {
    this.#s = s;
    this.#server = ctx.serverName;
    this.#log = ctx.log;
    this.#secrets = [s.password, s.passphrase].filter((x): x is string => !!x);
    this.#env = {
      s,
      server: ctx.serverName,
      log: ctx.log,
      timeoutMs: ctx.timeoutMs,
      scrub: (text) => this.#scrub(text),
      nextId: () => this.#nextId++,
    };
    const sessions = Math.max(1, ctx.maxConnections);
    this.#large = new Semaphore(sessions);
    this.#sessions = new Sessions(this.#env, {
      maxSessions: sessions,
      lanesPerSession: TRANSFERS_PER_SESSION,
    });
    // The pool lends lanes: several uploads share a session (see `sessions.ts`).
    this.#pool = new Pool<Conn>({
      max: sessions * TRANSFERS_PER_SESSION,
      create: (signal) => this.#sessions.open(signal),
      destroy: (c) => this.#sessions.close(c),
      isAlive: (c) => c.alive,
      idleTimeoutMs: 60_000,
      holdsFailure: (err) => err instanceof ClassifiedError && err.kind === "auth",
      isTooMany: (err) => err instanceof ConnectFailure && err.tooMany,
      onShrink: (size, err) =>
        this.#tooMany(Math.ceil(size / TRANSFERS_PER_SESSION), ctx.maxConnections, err),
    });
    if (s.insecure) {
      this.#log.warn(
        `Host key checking is DISABLED for server "${this.#server}" (insecure_skip_host_key_check): ` +
          "anyone who can intercept the connection can read the credentials and change the files. " +
          "Set host_key_fingerprint or use known_hosts instead",
      );
    }
  }

  #shrinkLogged = false;

  /** Says once per run that the server refused more connections, and what to change. */
  #tooMany(size: number, configured: number, err: unknown): void {
    const reason = err instanceof ConnectFailure ? err.reason : errorMessage(err);
    const text = `Server "${this.#server}" (${this.#s.host}:${this.#s.port}) refused more than ` +
      `${size} connection${size === 1 ? "" : "s"} at once (${reason}); using ${size} instead ` +
      `of ${configured} for this run. Set maxConnections="${size}" (or lower) on this server, ` +
      "or raise the server's limit (sshd MaxSessions/MaxStartups, per-user login limits)";
    if (this.#shrinkLogged) this.#log.debug(text);
    else this.#log.warn(text);
    this.#shrinkLogged = true;
  }

  // -- errors ---------------------------------------------------------------

  #scrub(text: string): string {
    return maskSecrets(text, this.#secrets);
  }

  #fail(action: string, prep: string, rel: string, err: unknown): never {
    throw callFailure(err, { action, prep, rel, server: this.#server }, {
      describe,
      kind: errorKind,
      scrub: (text) => this.#scrub(text),
    });
  }
  /** One SFTP request with a timeout; a timeout kills the connection. */
  #req<R>(
    conn: Conn,
    fn: (cb: (err: Error | undefined | null, res?: R) => void) => void,
  ): Promise<R> {
    return request(conn, fn);
  }

  #use<R>(signal: AbortSignal, fn: (conn: Conn) => Promise<R>, retryStale = true): Promise<R> {
    return this.#pool.use(fn, { signal, isBroken, retryStale });
  }

  // -- paths ----------------------------------------------------------------

  #full(rel: string): string {
    return underRoot(this.#s.root, rel);
  }

  #rel(full: string): string {
    return relativeToRoot(this.#s.root, full);
  }

  /** Makes sure `dir` exists; uploads into one new directory share one check. */
  #ensureDir(conn: Conn, dir: string): Promise<void> {
    if (dir === "" || dir === "." || dir === "/" || this.#dirs.has(dir)) return Promise.resolve();
    let p = this.#making.get(dir);
    if (!p) {
      p = this.#makeDir(conn, dir).finally(() => this.#making.delete(dir));
      this.#making.set(dir, p);
    }
    return p;
  }

  async #makeDir(conn: Conn, dir: string): Promise<void> {
    try {
      const st = await this.#req<ssh2.Stats>(conn, (cb) => conn.sftp.stat(dir, cb));
      if (!st.isDirectory()) {
        throw Object.assign(new Error(`"${dir}" exists and is not a directory`), { code: FAILURE });
      }
      this.#dirs.add(dir);
      return;
    } catch (err) {
      if (statusCode(err) !== NO_SUCH_FILE) throw err;
    }
    await this.#ensureDir(conn, path.posix.dirname(dir));
    try {
      await at(
        this.#req(conn, (cb) => conn.sftp.mkdir(dir, cb)),
        (code) =>
          code === PERMISSION_DENIED
            ? `cannot create directory "${dir}": "${path.posix.dirname(dir)}" is not writable`
            : `cannot create directory "${dir}"`,
      );
    } catch (err) {
      // Another connection may have created it meanwhile.
      const st = await this.#req<ssh2.Stats>(conn, (cb) => conn.sftp.stat(dir, cb)).catch(() =>
        undefined
      );
      if (!st?.isDirectory()) throw err;
    }
    this.#dirs.add(dir);
  }

  /**
   * After fileconveyor deleted or moved away the file at `rel`: removes the
   * directories that this left empty, innermost first, never the root.
   * RMDIR refuses a directory that holds anything, so a directory with other
   * files (or one a user emptied otherwise) is left alone: only directories
   * whose last file fileconveyor itself removed go. A directory that is gone
   * already is passed over; other errors stop the walk.
   */
  async #pruneParents(conn: Conn, rel: string): Promise<void> {
    for (
      let d = path.posix.dirname(rel);
      d !== "." && d !== "/" && d !== "";
      d = path.posix.dirname(d)
    ) {
      try {
        await this.#req(conn, (cb) => conn.sftp.rmdir(this.#full(d), cb));
      } catch (err) {
        // Removed already (by hand, or by another delete): its parent may be empty now.
        if (statusCode(err) === NO_SUCH_FILE) continue;
        return;
      }
      // An upload already past its directory check re-creates it on "no such file".
      this.#dirs.clear();
    }
  }

  /** Renames `from` over `to` atomically where the server can. */
  async #rename(conn: Conn, from: string, to: string): Promise<void> {
    if (conn.session.posixRename) {
      try {
        await this.#req(conn, (cb) => conn.sftp.ext_openssh_rename(from, to, cb));
        return;
      } catch (err) {
        const unsupported = statusCode(err) === OP_UNSUPPORTED ||
          /does not support/i.test(errorMessage(err));
        if (!unsupported) throw err;
        conn.session.posixRename = false;
        this.#log.info(
          `Server "${this.#server}" lacks posix-rename@openssh.com: replacing files by remove + rename (not atomic)`,
        );
      }
    }
    try {
      await this.#req(conn, (cb) => conn.sftp.rename(from, to, cb));
    } catch (err) {
      if (statusCode(err) === undefined) throw err;
      // SFTP v3 rename refuses to overwrite: remove the target, then rename.
      await this.#req(conn, (cb) => conn.sftp.unlink(to, cb)).catch(() => {});
      await this.#req(conn, (cb) => conn.sftp.rename(from, to, cb));
    }
  }

  // -- Transport --------------------------------------------------------------

  async put(localPath: string, remotePath: string, options: PutOptions): Promise<PutResult> {
    const rel = safeRemotePath(remotePath);
    const full = this.#full(rel);
    const started = performance.now();
    // Files above SMALL_UPLOAD are read (or streamed) by as many uploads at once as there
    // are sessions, one per session (see `largeTurn`): memory stays what one upload per
    // session took.
    if (options.size <= SMALL_UPLOAD) return this.#put(localPath, rel, full, started, options);
    try {
      await this.#large.acquire(options.signal);
    } catch (err) {
      return this.#fail("upload", "to", rel, err);
    }
    try {
      return await this.#put(localPath, rel, full, started, options);
    } finally {
      this.#large.release();
    }
  }

  async #put(
    localPath: string,
    rel: string,
    full: string,
    started: number,
    options: PutOptions,
  ): Promise<PutResult> {
    let fh: fs.FileHandle | undefined;
    let data: Uint8Array | undefined;
    try {
      // Read or opened before any network work: a local problem is not the connection's.
      // A small file is read synchronously: an asynchronous read costs a hand-over to
      // another thread (and a wake-up on a busy machine) worth more than the read itself.
      // Both reads refuse anything but a regular file without blocking on a FIFO.
      // The C library's calls where they answer (a fraction of node:fs's cost per file).
      if (options.size <= SMALL) {
        data = (readRegularNative(localPath, options.size) ?? readRegularSync(localPath)).data;
      } else if (options.size <= BURST) data = await readRegular(localPath);
      else fh = await openRegular(localPath);
    } catch (err) {
      throw localReadFailure(err, { rel, server: this.#server, localPath });
    }
    try {
      const upload = (conn: Conn) =>
        uploadViaTemp(full, options.signal, {
          ensureDir: (dir) => this.#ensureDir(conn, dir),
          write: async (tmp): Promise<{ sent: number; stored?: number }> =>
            data
              ? { sent: data.length, stored: await uploadBytes(conn, data, tmp) }
              : { sent: await uploadStream(conn, fh!, tmp, options.signal) },
          dirGone: (err) => statusCode(err) === NO_SUCH_FILE,
          forgetDirs: () => this.#dirs.clear(),
          verify: async (tmp, { sent, stored }) => {
            if (sent !== options.size) {
              throw new SourceChanged(
                `Cannot upload "${rel}" to server "${this.#server}": the local file changed ` +
                  `during the upload (read ${sent} bytes, expected ${options.size})`,
              );
            }
            if (stored !== sent) {
              // Asked again after the close was answered (a server that answered the burst's
              // stat before the close, or an upload that was streamed and not stat'ed yet).
              stored = (await this.#req<ssh2.Stats>(conn, (cb) => conn.sftp.stat(tmp, cb))).size;
            }
            if (stored !== sent) {
              throw new ClassifiedError(
                `Cannot upload "${rel}" to server "${this.#server}": the server stored ${stored} ` +
                  `bytes, expected ${sent}`,
                "retry",
              );
            }
            return sent;
          },
          rename: (tmp, target) =>
            at(this.#rename(conn, tmp, target), () => `cannot rename "${tmp}" to "${target}"`),
          removeTemp: async (tmp) => {
            if (conn.alive) await this.#req(conn, (cb) => conn.sftp.unlink(tmp, cb));
          },
        });
      const size = await this.#use(
        options.signal,
        (conn) => options.size <= SMALL_UPLOAD ? upload(conn) : largeTurn(conn, () => upload(conn)),
      );
      this.#log.debug(`Uploaded "${rel}"`, {
        bytes: size,
        ms: Math.round(performance.now() - started),
      });
      // The hash of the bytes sent, so the pipeline need not read the file again.
      return data && options.md5 === undefined
        ? { size, md5: createHash("md5").update(data).digest("hex") }
        : { size };
    } catch (err) {
      return this.#fail("upload", "to", rel, err);
    } finally {
      await fh?.close();
    }
  }

  async delete(remotePath: string, options: CallOptions): Promise<void> {
    const rel = safeRemotePath(remotePath);
    try {
      await this.#use(options.signal, async (conn) => {
        const full = this.#full(rel);
        try {
          await this.#req(conn, (cb) => conn.sftp.unlink(full, cb));
        } catch (err) {
          if (statusCode(err) !== NO_SUCH_FILE) {
            throw annotate(
              err,
              (code) =>
                code === PERMISSION_DENIED
                  ? `cannot delete "${full}": "${path.posix.dirname(full)}" is not writable`
                  : `cannot delete "${full}"`,
            );
          }
        }
        // Also when the file was gone already: the folders it was in may be empty now.
        await this.#pruneParents(conn, rel);
      });
    } catch (err) {
      this.#fail("delete", "from", rel, err);
    }
  }

  async removeDir(remotePath: string, options: CallOptions): Promise<void> {
    const rel = safeRemotePath(remotePath);
    try {
      await this.#use(options.signal, async (conn) => {
        try {
          await this.#req(conn, (cb) => conn.sftp.rmdir(this.#full(rel), cb));
        } catch (err) {
          if (statusCode(err) !== NO_SUCH_FILE) throw err;
        }
      });
    } catch (err) {
      this.#fail("delete", "from", rel, err);
    }
  }

  async move(from: string, to: string, options: CallOptions): Promise<void> {
    const a = safeRemotePath(from);
    const b = safeRemotePath(to);
    try {
      await this.#use(options.signal, async (conn) => {
        const dst = this.#full(b);
        await this.#ensureDir(conn, path.posix.dirname(dst));
        const src = this.#full(a);
        await at(this.#rename(conn, src, dst), () => `cannot rename "${src}" to "${dst}"`);
        await this.#pruneParents(conn, a);
      });
    } catch (err) {
      this.#fail("move", `to "${b}" on`, a, err);
    }
  }

  async stat(remotePath: string, options: CallOptions): Promise<RemoteStat | null> {
    const rel = safeRemotePath(remotePath);
    try {
      return await this.#use(options.signal, async (conn) => {
        try {
          const st = await this.#req<ssh2.Stats>(conn, (cb) => conn.sftp.stat(this.#full(rel), cb));
          if (st.isDirectory()) return null;
          return { size: st.size, mtimeMs: st.mtime * 1000 };
        } catch (err) {
          if (statusCode(err) === NO_SUCH_FILE) return null;
          throw err;
        }
      });
    } catch (err) {
      this.#fail("stat", "on", rel, err);
    }
  }

  async *list(prefix: string, options: CallOptions): AsyncIterable<{ path: string } & RemoteStat> {
    const base = prefix.replace(/^\/+|\/+$/g, "") === ""
      ? (this.#s.root === "" ? "." : this.#s.root)
      : this.#full(safeRemotePath(prefix));
    const stack = [base];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      let entries: ssh2.FileEntryWithStats[];
      try {
        entries = await this.#use(options.signal, async (conn) => {
          try {
            return await this.#req<ssh2.FileEntryWithStats[]>(
              conn,
              (cb) => conn.sftp.readdir(dir, cb),
            );
          } catch (err) {
            if (statusCode(err) === NO_SUCH_FILE) return [];
            throw err;
          }
        });
      } catch (err) {
        this.#fail("list", "on", dir === "." ? "" : this.#rel(dir), err);
      }
      for (const e of entries) {
        if (e.filename === "." || e.filename === ".." || isTempName(e.filename)) continue;
        const full = dir === "."
          ? e.filename
          : dir === "/"
          ? "/" + e.filename
          : `${dir}/${e.filename}`;
        let attrs = e.attrs;
        if (attrs.isSymbolicLink()) {
          const st = await this.#use(
            options.signal,
            (conn) => this.#req<ssh2.Stats>(conn, (cb) => conn.sftp.stat(full, cb)),
          ).catch(() => undefined);
          if (!st) continue;
          attrs = st;
        }
        if (attrs.isDirectory()) stack.push(full);
        else if (attrs.isFile()) {
          yield { path: this.#rel(full), size: attrs.size, mtimeMs: attrs.mtime * 1000 };
        }
      }
    }
  }

  url(remotePath: string): string {
    return joinUrl(this.#s.url, safeRemotePath(remotePath));
  }

  async close(): Promise<void> {
    await this.#pool.close();
    await this.#sessions.closeAll();
  }
}

/** Creates the transport from settings `sftp.ts` has validated. */
export function createSftp(settings: SftpOptions, ctx: TransportContext): Transport {
  const s = settingsFrom(settings);
  if (s.password) addSecret(s.password);
  if (s.passphrase) addSecret(s.passphrase);
  return new Sftp(s, ctx);
}
