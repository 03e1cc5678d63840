/**
 * The `ftp` transport itself, with `npm:basic-ftp`: loaded by `ftp.ts` on
 * the first `create()`, so that only configurations with an FTP server pay
 * for basic-ftp. See `ftp.ts` for what it does. Connections are in
 * `connection.ts`, protocol helpers and settings in `protocol.ts`.
 *
 * @module
 */
import { type FileInfo, FileType, FTPError, type FTPResponse } from "basic-ftp";
import type * as fs from "node:fs/promises";
import * as path from "node:path";
import { ClassifiedError, SourceChanged } from "../../errors.ts";
import { addSecret } from "../../log.ts";
import { openRegular } from "../../util/regular_file.ts";
import type { FtpOptions } from "../ftp.ts";
import { isTempName, joinUrl, relativeToRoot, safeRemotePath, underRoot } from "../paths.ts";
import { uploadViaTemp } from "../temp_rename.ts";
import { localReadFailure } from "../_call_errors.ts";
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
import { FtpConnection } from "./connection.ts";
import {
  type Conn,
  fileSource,
  isPermission,
  parseFacts,
  parseMlsxTime,
  settingsFrom,
} from "./protocol.ts";

class Ftp extends FtpConnection implements Transport, Stater, Lister, Mover, DirRemover {
  // -- paths ----------------------------------------------------------------

  #full(rel: string): string {
    return underRoot(this.settings.root, rel);
  }

  #rel(full: string): string {
    return relativeToRoot(this.settings.root, full);
  }

  #checkName(action: string, prep: string, rel: string): void {
    if (/[\r\n]/.test(rel)) {
      throw new ClassifiedError(
        `Cannot ${action} "${rel}" ${prep} server "${this.server}": FTP cannot transfer names containing line breaks`,
        "fatal",
      );
    }
  }

  /** Size, mtime and type of one remote path; null when missing. */
  async #statPath(
    conn: Conn,
    full: string,
  ): Promise<{ size: number; mtimeMs?: number; dir: boolean } | null> {
    const c = conn.client;
    if (conn.mlst) {
      let res: FTPResponse;
      try {
        res = await c.send("MLST " + await c.protectWhitespace(full));
      } catch (err) {
        if (err instanceof FTPError && err.code === 550 && !isPermission(err)) return null;
        throw err;
      }
      const line = res.message.split(/\r?\n/).map((l) => l.trim()).find((l) =>
        /(^|;)type=/i.test(l)
      );
      if (line) {
        const facts = parseFacts(line.replace(/^\d{3}[- ]/, ""));
        const type = (facts.get("type") ?? "").toLowerCase();
        const dir = type === "dir" || type === "cdir" || type === "pdir";
        const mtimeMs = parseMlsxTime(facts.get("modify"));
        return {
          size: Number(facts.get("size") ?? (dir ? 0 : -1)),
          dir,
          ...(mtimeMs !== undefined ? { mtimeMs } : {}),
        };
      }
    }
    try {
      const size = await c.size(full);
      let mtimeMs: number | undefined;
      try {
        mtimeMs = (await c.lastMod(full)).getTime();
      } catch {
        // MDTM is optional.
      }
      return { size, dir: false, ...(mtimeMs !== undefined ? { mtimeMs } : {}) };
    } catch (err) {
      // SIZE answers 550 for a missing file (and for a directory on most servers).
      if (err instanceof FTPError && err.code === 550 && !isPermission(err)) return null;
      throw err;
    }
  }

  async #ensureDir(conn: Conn, dir: string): Promise<void> {
    if (dir === "" || dir === "." || dir === "/" || conn.dirs.has(dir)) return;
    if (conn.mlst) {
      const st = await this.#statPath(conn, dir);
      if (st?.dir) {
        conn.dirs.add(dir);
        return;
      }
    }
    await this.#ensureDir(conn, path.posix.dirname(dir));
    try {
      await conn.client.send("MKD " + await conn.client.protectWhitespace(dir));
    } catch (err) {
      // 550 also means "exists"; without MLST we learn the truth from the upload.
      if (!(err instanceof FTPError)) throw err;
      if (conn.mlst) {
        const st = await this.#statPath(conn, dir).catch(() => null);
        if (!st?.dir) throw err;
      }
    }
    conn.dirs.add(dir);
  }

  /**
   * After fileconveyor deleted or moved away the file at `rel`: removes the
   * directories that this left empty, innermost first, never the root.
   * RMD refuses a directory that holds anything, so a directory with other
   * files is left alone: only directories whose last file fileconveyor itself
   * removed go. A directory that is gone already is passed over; other errors
   * stop the walk.
   */
  async #pruneParents(conn: Conn, rel: string): Promise<void> {
    for (
      let d = path.posix.dirname(rel);
      d !== "." && d !== "/" && d !== "";
      d = path.posix.dirname(d)
    ) {
      try {
        await conn.client.send("RMD " + await conn.client.protectWhitespace(this.#full(d)));
      } catch (err) {
        if (!(err instanceof FTPError)) throw err;
        // Removed already (by hand, or by another delete): its parent may be empty now. Servers
        // answer 550 for a missing directory and for one not empty alike; the text tells.
        if (/no such file|not found|does not exist/i.test(err.message)) continue;
        return; // not empty, or not allowed
      }
      // Other connections still cache it; their uploads re-create it when refused.
      conn.dirs.clear();
    }
  }

  async #rename(conn: Conn, from: string, to: string): Promise<void> {
    try {
      await conn.client.rename(from, to);
    } catch (err) {
      if (!(err instanceof FTPError) || err.code < 500) throw err;
      // Some servers refuse to rename over an existing file: remove it, then rename.
      const exists = await this.#statPath(conn, to).catch(() => null);
      if (!exists) throw err;
      await conn.client.remove(to);
      await conn.client.rename(from, to);
    }
  }

  // -- Transport --------------------------------------------------------------

  async put(localPath: string, remotePath: string, options: PutOptions): Promise<PutResult> {
    const rel = safeRemotePath(remotePath);
    this.#checkName("upload", "to", rel);
    const full = this.#full(rel);
    const dir = path.posix.dirname(full);
    const started = performance.now();
    let fh: fs.FileHandle;
    try {
      // Opened before any network work: a local problem is not the connection's.
      fh = await openRegular(localPath);
    } catch (err) {
      throw localReadFailure(err, { rel, server: this.server, localPath });
    }
    try {
      const size = await this.use(options.signal, (conn) =>
        uploadViaTemp(full, options.signal, {
          ensureDir: (dir) => this.#ensureDir(conn, dir),
          write: (tmp) => this.transfer(conn, () => conn.client.uploadFrom(fileSource(fh), tmp)),
          // Refused: the cached directory may have been removed behind our back.
          dirGone: (err) => err instanceof FTPError && err.code >= 550 && conn.dirs.has(dir),
          forgetDirs: () => conn.dirs.clear(),
          verify: async (tmp) => {
            const local = await fh.stat();
            if (local.size !== options.size) {
              throw new SourceChanged(
                `Cannot upload "${rel}" to server "${this.server}": the local file changed ` +
                  `during the upload (now ${local.size} bytes, expected ${options.size})`,
              );
            }
            const st = await this.#statPath(conn, tmp);
            if (!st || st.size !== options.size) {
              throw new ClassifiedError(
                `Cannot upload "${rel}" to server "${this.server}": the server stored ${
                  st ? st.size : "no"
                } bytes, expected ${options.size}`,
                "retry",
              );
            }
            return options.size;
          },
          rename: (tmp, target) => this.#rename(conn, tmp, target),
          removeTemp: async (tmp) => {
            if (!conn.client.closed) await conn.client.remove(tmp, true);
          },
        }));
      this.log.debug(`Uploaded "${rel}"`, {
        bytes: size,
        ms: Math.round(performance.now() - started),
      });
      return { size };
    } catch (err) {
      this.fail("upload", "to", rel, err);
    } finally {
      await fh.close();
    }
  }

  async delete(remotePath: string, options: CallOptions): Promise<void> {
    const rel = safeRemotePath(remotePath);
    this.#checkName("delete", "from", rel);
    const full = this.#full(rel);
    try {
      await this.use(options.signal, async (conn) => {
        try {
          await conn.client.send("DELE " + await conn.client.protectWhitespace(full));
        } catch (err) {
          if (!(err instanceof FTPError && err.code === 550)) throw err;
          // 550 means "no such file" or "not allowed": only the first is success.
          if (await this.#statPath(conn, full) !== null) throw err;
        }
        // Also when the file was gone already: the folders it was in may be empty now.
        await this.#pruneParents(conn, rel);
      });
    } catch (err) {
      this.fail("delete", "from", rel, err);
    }
  }

  async removeDir(remotePath: string, options: CallOptions): Promise<void> {
    const rel = safeRemotePath(remotePath);
    this.#checkName("delete", "from", rel);
    const full = this.#full(rel);
    try {
      await this.use(options.signal, async (conn) => {
        try {
          await conn.client.send("RMD " + await conn.client.protectWhitespace(full));
        } catch (err) {
          if (!(err instanceof FTPError && err.code === 550)) throw err;
          // 550 means "no such directory", "not empty" or "not allowed": only the first is success.
          if (await this.#statPath(conn, full) !== null) throw err;
        }
      });
    } catch (err) {
      this.fail("delete", "from", rel, err);
    }
  }

  async move(from: string, to: string, options: CallOptions): Promise<void> {
    const a = safeRemotePath(from);
    const b = safeRemotePath(to);
    this.#checkName("move", "on", a);
    this.#checkName("move", "on", b);
    try {
      await this.use(options.signal, async (conn) => {
        const dst = this.#full(b);
        await this.#ensureDir(conn, path.posix.dirname(dst));
        await this.#rename(conn, this.#full(a), dst);
        await this.#pruneParents(conn, a);
      });
    } catch (err) {
      this.fail("move", `to "${b}" on`, a, err);
    }
  }

  async stat(remotePath: string, options: CallOptions): Promise<RemoteStat | null> {
    const rel = safeRemotePath(remotePath);
    this.#checkName("stat", "on", rel);
    try {
      return await this.use(options.signal, async (conn) => {
        const st = await this.#statPath(conn, this.#full(rel));
        if (!st || st.dir) return null;
        return { size: st.size, ...(st.mtimeMs !== undefined ? { mtimeMs: st.mtimeMs } : {}) };
      });
    } catch (err) {
      this.fail("stat", "on", rel, err);
    }
  }

  async *list(prefix: string, options: CallOptions): AsyncIterable<{ path: string } & RemoteStat> {
    const clean = prefix.replace(/^\/+|\/+$/g, "");
    const base = clean === "" ? this.settings.root : this.#full(safeRemotePath(clean));
    const stack = [base];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      let entries: FileInfo[];
      try {
        entries = await this.use(options.signal, async (conn) => {
          try {
            return await this.transfer(conn, () => conn.client.list(dir));
          } catch (err) {
            if (err instanceof FTPError && err.code === 550 && !isPermission(err)) return [];
            throw err;
          }
        });
      } catch (err) {
        this.fail("list", "on", dir === "" ? "" : this.#rel(dir), err);
      }
      for (const e of entries) {
        const name = e.name.includes("/") ? e.name.slice(e.name.lastIndexOf("/") + 1) : e.name;
        if (name === "." || name === ".." || isTempName(name)) continue;
        const full = underRoot(dir, name);
        if (e.type === FileType.Directory) stack.push(full);
        else if (e.type === FileType.File) {
          yield {
            path: this.#rel(full),
            size: e.size,
            ...(e.modifiedAt ? { mtimeMs: e.modifiedAt.getTime() } : {}),
          };
        }
      }
    }
  }

  url(remotePath: string): string {
    return joinUrl(this.settings.url, safeRemotePath(remotePath));
  }

  async close(): Promise<void> {
    await this.pool.close();
    await this.tls.close();
  }
}

/** Creates the transport from settings `ftp.ts` has validated. */
export function createFtp(settings: FtpOptions, ctx: TransportContext): Transport {
  const s = settingsFrom(settings);
  if (s.password) addSecret(s.password);
  return new Ftp(s, ctx);
}
