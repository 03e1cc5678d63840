/**
 * `ftp`: plain FTP, explicit FTPS (AUTH TLS) and implicit FTPS, with
 * `npm:basic-ftp` (passive mode only).
 *
 * - Certificates are verified by default: against the system roots, the
 *   `ca` file, or a pinned `tls_fingerprint` (checked before the password is
 *   sent and again on every data connection).
 * - Uploads go to a temp name in the target directory, the stored size is
 *   checked (MLST where the server has it, SIZE otherwise), then RNFR/RNTO
 *   renames it over the target (removing the target first only when the
 *   server refuses to rename over an existing file).
 * - Up to `maxConnections` control connections per server are pooled; every
 *   command and data transfer has a timeout.
 * - Deno's TLS cannot resume a TLS session, and servers that require the
 *   data connection to resume the control connection's session refuse every
 *   transfer. That reply is recognised and reported with the server setting
 *   to change.
 *
 * @module
 */
import {
  Client,
  type FileInfo,
  FileType,
  type FTPContext,
  FTPError,
  type FTPResponse,
} from "basic-ftp";
import { Buffer } from "node:buffer";
import { createReadStream } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import type { ConnectionOptions, TLSSocket } from "node:tls";
import { ClassifiedError, classify, type ErrorKind, errorMessage } from "../errors.ts";
import { addSecret, type Logger } from "../log.ts";
import { isTrue, type OptionSpec, type OptionValues } from "../options.ts";
import { Pool } from "../transport/pool.ts";
import { isTempName, joinUrl, safeRemotePath, tempName } from "../transport/paths.ts";
import {
  type CallOptions,
  type Lister,
  type Mover,
  type PutOptions,
  type PutResult,
  registerTransport,
  type RemoteStat,
  type Stater,
  type Transport,
  type TransportContext,
} from "../transport/transport.ts";

type TlsMode = "none" | "explicit" | "implicit";

interface Settings {
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

interface Conn {
  id: number;
  client: Client;
  /** Directories known to exist (full remote paths). */
  dirs: Set<string>;
  /** The server answers MLST (exact sizes and mtimes for one path). */
  mlst: boolean;
  /** The server answers SIZE. */
  size: boolean;
}

/**
 * Normalizes a SHA-256 certificate fingerprint (hex, with or without
 * colons, any case, optional `SHA256:` prefix) to colon-separated
 * uppercase hex as `openssl x509 -fingerprint -sha256` prints it.
 */
export function normalizeCertFingerprint(text: string): string | undefined {
  const hex = text.trim().replace(/^sha-?256[:=]?/i, "").replace(/[:\s]/g, "").toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) return undefined;
  return hex.match(/../g)!.join(":");
}

/**
 * Whether an FTP reply to a data transfer means the server insists on TLS
 * session reuse for data connections (vsftpd: 522, FileZilla Server and
 * ProFTPD: 425; ProFTPD's text is a bare "Operation not permitted").
 */
export function isSessionReuseRefusal(code: number, message: string): boolean {
  if (code === 522) return true;
  if (code !== 425 && code !== 450) return false;
  return /reuse|resum|operation not permitted|session/i.test(message);
}

/** Text for users whose server insists on TLS session reuse. */
export const SESSION_REUSE_HELP: string =
  "the FTPS server refused the TLS data connection, most likely because it requires data " +
  "connections to resume the control connection's TLS session, which Deno's TLS cannot do. " +
  "Allow data connections without session reuse on the server: ProFTPD " +
  '"TLSOptions NoSessionReuseRequired" (mod_tls), vsftpd "require_ssl_reuse=NO", AWS Transfer ' +
  'Family "TlsSessionResumptionMode ENABLED" (not ENFORCED), z/OS "SECURE_SESSION_REUSE ALLOWED" ' +
  "(FileZilla Server 1.x cannot turn the check off); or use the sftp transport";

/** Parses the facts of one MLST/MLSD line (`type=file;size=5;modify=…; name`). */
function parseFacts(line: string): Map<string, string> {
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
function parseMlsxTime(text: string | undefined): number | undefined {
  const m = text && /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d+))?$/.exec(text);
  if (!m) return undefined;
  const ms = m[7] ? Number(m[7].padEnd(3, "0").slice(0, 3)) : 0;
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, ms);
}

/** A connection could not be opened; `reason` is the text after the server name. */
class ConnectFailure extends ClassifiedError {
  readonly reason: string;
  constructor(server: string, reason: string, options?: ErrorOptions) {
    super(`Cannot connect to server "${server}": ${reason}`, "server", options);
    this.reason = reason;
  }
}

function isPermission(err: unknown): boolean {
  return err instanceof FTPError && (err.code === 550 || err.code === 553) &&
    /permission|denied|not permitted|access/i.test(err.message);
}

class Ftp implements Transport, Stater, Lister, Mover {
  readonly #s: Settings;
  readonly #server: string;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #pool: Pool<Conn>;
  #nextId = 1;
  #ca?: Buffer;

  constructor(s: Settings, ctx: TransportContext) {
    this.#s = s;
    this.#server = ctx.serverName;
    this.#log = ctx.log;
    this.#timeoutMs = ctx.timeoutMs;
    this.#pool = new Pool<Conn>({
      max: Math.max(1, ctx.maxConnections),
      create: (signal) => this.#connect(signal),
      destroy: (c) => c.client.close(),
      isAlive: (c) => !c.client.closed,
      idleTimeoutMs: 60_000,
    });
    if (s.tls !== "none" && s.insecure) {
      this.#log.warn(
        `TLS certificate verification is DISABLED for server "${this.#server}" (insecure_skip_verify): ` +
          "anyone who can intercept the connection can read the password and change the files. " +
          "Set ca or tls_fingerprint instead",
      );
    }
    if (s.tls === "none") {
      this.#log.debug(
        `Server "${this.#server}" uses plain FTP: the password and files travel unencrypted`,
      );
    }
  }

  // -- errors ---------------------------------------------------------------

  #scrub(text: string): string {
    return this.#s.password.length > 0 ? text.split(this.#s.password).join("***") : text;
  }

  #kind(err: unknown): ErrorKind {
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

  #describe(err: unknown): string {
    if (err instanceof FTPError) return err.message.replace(/\s+/g, " ").trim();
    return errorMessage(err);
  }

  #fail(action: string, prep: string, rel: string, err: unknown): never {
    if (err instanceof ConnectFailure) {
      throw new ClassifiedError(
        `Cannot ${action} "${rel}" ${prep} server "${this.#server}": ${err.reason}`,
        err.kind,
        { cause: err },
      );
    }
    if (err instanceof ClassifiedError && err.message.includes(`server "${this.#server}"`)) {
      throw err;
    }
    if (
      err instanceof FTPError && this.#s.tls !== "none" &&
      isSessionReuseRefusal(err.code, err.message)
    ) {
      throw new ClassifiedError(
        `Cannot ${action} "${rel}" ${prep} server "${this.#server}": ${SESSION_REUSE_HELP} ` +
          `(server replied: ${this.#describe(err)})`,
        "server",
        { cause: err },
      );
    }
    throw new ClassifiedError(
      this.#scrub(
        `Cannot ${action} "${rel}" ${prep} server "${this.#server}": ${this.#describe(err)}`,
      ),
      this.#kind(err),
      { cause: err },
    );
  }

  // -- connections ----------------------------------------------------------

  async #tlsOptions(): Promise<ConnectionOptions> {
    const s = this.#s;
    const opts: ConnectionOptions = {
      host: s.host,
      minVersion: "TLSv1.2",
      rejectUnauthorized: !(s.insecure || s.fingerprint !== undefined),
    };
    if (!/^[\d.]+$|:/.test(s.host)) opts.servername = s.host;
    if (s.caPath !== undefined) {
      if (!this.#ca) {
        try {
          this.#ca = Buffer.from(await fs.readFile(s.caPath));
        } catch (err) {
          throw new ConnectFailure(
            this.#server,
            `cannot read ca "${s.caPath}": ${errorMessage(err)}`,
            { cause: err },
          );
        }
      }
      opts.ca = [this.#ca];
    }
    return opts;
  }

  /** Throws unless the socket's certificate matches the pinned fingerprint. */
  #checkPin(socket: TLSSocket, what: string): void {
    const pinned = this.#s.fingerprint;
    if (pinned === undefined) return;
    const actual = socket.getPeerCertificate()?.fingerprint256;
    if (actual?.toUpperCase() !== pinned) {
      socket.destroy();
      throw new ConnectFailure(
        this.#server,
        `the ${what} TLS certificate of ${this.#s.host}:${this.#s.port} (SHA-256 ${
          actual ?? "none"
        }) does ` +
          `not match tls_fingerprint "${pinned}": the certificate changed, or someone is ` +
          "intercepting the connection",
      );
    }
  }

  /** Connects without credentials to show the certificate of a refused server. */
  async #peekCertificate(tlsOpts: ConnectionOptions): Promise<string | undefined> {
    const client = new Client(Math.min(this.#timeoutMs, 10_000));
    try {
      const opts = { ...tlsOpts, rejectUnauthorized: false };
      if (this.#s.tls === "implicit") {
        await client.connectImplicitTLS(this.#s.host, this.#s.port, opts);
      } else {
        await client.connect(this.#s.host, this.#s.port);
        await client.useTLS(opts);
      }
      const cert = (client.ftp.socket as TLSSocket).getPeerCertificate();
      const subject = cert?.subject?.CN ? `CN=${cert.subject.CN}` : "no CN";
      return cert?.fingerprint256 ? `${subject}, SHA-256 ${cert.fingerprint256}` : undefined;
    } catch {
      return undefined;
    } finally {
      client.close();
    }
  }

  async #connect(signal: AbortSignal): Promise<Conn> {
    const s = this.#s;
    const where = `${s.username}@${s.host}:${s.port}`;
    const started = performance.now();
    const client = new Client(this.#timeoutMs);
    if (this.#log.debugEnabled) {
      client.ftp.verbose = true;
      // basic-ftp masks PASS itself; the logger masks registered secrets too.
      client.ftp.log = (m: string) => this.#log.debug(m);
    }
    const tlsOpts = s.tls === "none" ? undefined : await this.#tlsOptions();
    const onAbort = () => client.close();
    signal.addEventListener("abort", onAbort, { once: true });
    let stage = "connect";
    // basic-ftp's timeout covers each reply; this one also covers TCP and TLS set-up.
    const timer = setTimeout(() => {
      stage = `${stage} (timed out after ${this.#timeoutMs} ms)`;
      client.close();
    }, this.#timeoutMs * 2);
    try {
      if (s.tls === "implicit") await client.connectImplicitTLS(s.host, s.port, tlsOpts);
      else await client.connect(s.host, s.port);
      if (s.tls === "explicit") {
        stage = "TLS";
        await client.useTLS(tlsOpts);
      }
      // Commands are small request/response exchanges: do not let Nagle hold them back.
      client.ftp.socket.setNoDelay(true);
      if (tlsOpts) this.#checkPin(client.ftp.socket as TLSSocket, "server's");
      this.#wrapDataConnections(client);
      stage = "login";
      await client.sendIgnoringError("OPTS UTF8 ON");
      await client.login(s.username, s.password);
      stage = "setup";
      const features = await client.features();
      const mlst = features.has("MLST");
      client.availableListCommands = mlst ? ["MLSD", "LIST -a", "LIST"] : ["LIST -a", "LIST"];
      await client.send("TYPE I");
      await client.sendIgnoringError("STRU F");
      if (mlst) await client.sendIgnoringError("OPTS MLST type;size;modify;");
      if (client.ftp.hasTLS) {
        await client.sendIgnoringError("PBSZ 0");
        await client.send("PROT P");
      }
      const conn: Conn = {
        id: this.#nextId++,
        client,
        dirs: new Set(),
        mlst,
        size: features.has("SIZE"),
      };
      this.#log.debug(`Connected to ${s.host}:${s.port} as connection #${conn.id}`, {
        ms: Math.round(performance.now() - started),
        tls: s.tls,
        mlst,
      });
      return conn;
    } catch (err) {
      client.close();
      if (signal.aborted) throw signal.reason;
      if (err instanceof ClassifiedError) throw err;
      throw await this.#connectError(err, stage, where, tlsOpts);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    }
  }

  async #connectError(
    err: unknown,
    stage: string,
    where: string,
    tlsOpts: ConnectionOptions | undefined,
  ): Promise<ClassifiedError> {
    const msg = this.#scrub(this.#describe(err));
    if (stage === "login" || (err instanceof FTPError && err.code === 530)) {
      return new ConnectFailure(this.#server, `cannot log in as ${where}: ${msg}`, { cause: err });
    }
    const certProblem = tlsOpts &&
      /certificate|self[- ]signed|issuer|CERT_|verif|UnknownIssuer|NotValidForName|expired/i.test(
        `${msg} ${(err as { code?: string })?.code ?? ""}`,
      );
    if (certProblem) {
      const seen = await this.#peekCertificate(tlsOpts);
      const fp = seen?.match(/SHA-256 (\S+)/)?.[1];
      return new ConnectFailure(
        this.#server,
        `the TLS certificate of ${this.#s.host}:${this.#s.port} is not trusted (${msg}` +
          `${seen ? `; certificate ${seen}` : ""}). If this is the right server, set ca to its ` +
          "certificate (or its CA) in PEM format" +
          (fp ? `, or set tls_fingerprint to "${fp}"` : ", or pin it with tls_fingerprint"),
        { cause: err },
      );
    }
    if (err instanceof FTPError && stage === "TLS") {
      return new ConnectFailure(
        this.#server,
        `${this.#s.host}:${this.#s.port} does not offer explicit FTPS (AUTH TLS): ${msg}`,
        { cause: err },
      );
    }
    return new ConnectFailure(
      this.#server,
      `cannot connect to ${this.#s.host}:${this.#s.port} (${stage}): ${msg}`,
      { cause: err },
    );
  }

  /**
   * basic-ftp swaps `prepareTransfer` for the strategy that worked; keep a
   * wrapper in front of whatever it installs, so that every data connection
   * gets TCP_NODELAY and, with a pinned certificate, is checked against the
   * fingerprint before any data flows.
   */
  #wrapDataConnections(client: Client): void {
    let inner = client.prepareTransfer;
    const wrapper = async (ftp: FTPContext): Promise<FTPResponse> => {
      const res = await inner(ftp);
      const data = ftp.dataSocket;
      if (data) {
        data.setNoDelay(true);
        if (this.#s.fingerprint !== undefined && "encrypted" in data) {
          data.once("secureConnect", () => {
            try {
              this.#checkPin(data as TLSSocket, "data connection's");
            } catch (err) {
              ftp.closeWithError(err as Error);
            }
          });
        }
      }
      return res;
    };
    Object.defineProperty(client, "prepareTransfer", {
      configurable: true,
      get: () => wrapper,
      set: (v) => {
        inner = v;
      },
    });
  }

  /**
   * Runs a data transfer. When a TLS data connection dies without an FTP
   * reply (the server hung up on it), the reason arrives on the control
   * connection just after; read it, so that a refusal such as "TLS session
   * reuse required" is reported instead of "Premature close".
   */
  async #transfer<R>(conn: Conn, fn: () => Promise<R>): Promise<R> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof FTPError || !conn.client.ftp.hasTLS || conn.client.closed) throw err;
      const late = await this.#lateReply(conn);
      if (late instanceof FTPError) throw late;
      throw err;
    }
  }

  #lateReply(conn: Conn): Promise<FTPResponse | Error | undefined> {
    const ftp = conn.client.ftp;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        // Nothing came: the connection's state is unknown, so it must go.
        conn.client.close();
        resolve(undefined);
      }, Math.min(this.#timeoutMs, 2000));
      ftp.handle(undefined, (res, task) => {
        clearTimeout(timer);
        task.resolve(res);
        resolve(res);
      }).catch((err) => {
        clearTimeout(timer);
        resolve(err);
      });
    });
  }

  #use<R>(signal: AbortSignal, fn: (conn: Conn) => Promise<R>): Promise<R> {
    return this.#pool.use(async (conn) => {
      // basic-ftp cannot cancel a command: closing the connection is the only way.
      const onAbort = () => conn.client.close();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        return await fn(conn);
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        throw err;
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
    }, {
      signal,
      // Replies (FTPError) leave the connection usable, except 421 (closing).
      isBroken: (err) =>
        !(err instanceof FTPError || err instanceof ClassifiedError) ||
        (err instanceof FTPError && err.code === 421),
      retryStale: true,
    });
  }

  // -- paths ----------------------------------------------------------------

  #full(rel: string): string {
    const r = this.#s.root;
    if (r === "") return rel;
    if (r === "/") return "/" + rel;
    return r + "/" + rel;
  }

  #rel(full: string): string {
    const r = this.#s.root;
    if (r === "") return full;
    if (r === "/") return full.slice(1);
    return full.slice(r.length + 1);
  }

  #checkName(action: string, prep: string, rel: string): void {
    if (/[\r\n]/.test(rel)) {
      throw new ClassifiedError(
        `Cannot ${action} "${rel}" ${prep} server "${this.#server}": FTP cannot transfer names containing line breaks`,
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
      fh = await fs.open(localPath, "r");
    } catch (err) {
      throw new ClassifiedError(
        `Cannot upload "${rel}" to server "${this.#server}": cannot read local file "${localPath}": ${
          errorMessage(err)
        }`,
        classify(err),
        { cause: err },
      );
    }
    try {
      const size = await this.#use(options.signal, async (conn) => {
        const tmp = tempName(full);
        try {
          await this.#ensureDir(conn, dir);
          const upload = () =>
            this.#transfer(
              conn,
              () =>
                conn.client.uploadFrom(
                  createReadStream("", { fd: fh.fd, start: 0, autoClose: false }),
                  tmp,
                ),
            );
          try {
            await upload();
          } catch (err) {
            if (!(err instanceof FTPError && err.code >= 550) || !conn.dirs.has(dir)) throw err;
            // The cached directory may have been removed behind our back.
            conn.dirs.clear();
            await this.#ensureDir(conn, dir);
            await upload();
          }
          const local = await fh.stat();
          if (local.size !== options.size) {
            throw new ClassifiedError(
              `Cannot upload "${rel}" to server "${this.#server}": the local file changed during ` +
                `the upload (now ${local.size} bytes, expected ${options.size})`,
              "retry",
            );
          }
          const st = await this.#statPath(conn, tmp);
          if (!st || st.size !== options.size) {
            throw new ClassifiedError(
              `Cannot upload "${rel}" to server "${this.#server}": the server stored ${
                st ? st.size : "no"
              } bytes, expected ${options.size}`,
              "retry",
            );
          }
          options.signal.throwIfAborted();
          await this.#rename(conn, tmp, full);
          return options.size;
        } catch (err) {
          if (!conn.client.closed) await conn.client.remove(tmp, true).catch(() => {});
          throw err;
        }
      });
      this.#log.debug(`Uploaded "${rel}"`, {
        bytes: size,
        ms: Math.round(performance.now() - started),
      });
      return { size };
    } catch (err) {
      this.#fail("upload", "to", rel, err);
    } finally {
      await fh.close();
    }
  }

  async delete(remotePath: string, options: CallOptions): Promise<void> {
    const rel = safeRemotePath(remotePath);
    this.#checkName("delete", "from", rel);
    const full = this.#full(rel);
    try {
      await this.#use(options.signal, async (conn) => {
        try {
          await conn.client.send("DELE " + await conn.client.protectWhitespace(full));
        } catch (err) {
          if (!(err instanceof FTPError && err.code === 550)) throw err;
          // 550 means "no such file" or "not allowed": only the first is success.
          if (await this.#statPath(conn, full) !== null) throw err;
        }
      });
    } catch (err) {
      this.#fail("delete", "from", rel, err);
    }
  }

  async move(from: string, to: string, options: CallOptions): Promise<void> {
    const a = safeRemotePath(from);
    const b = safeRemotePath(to);
    this.#checkName("move", "on", a);
    this.#checkName("move", "on", b);
    try {
      await this.#use(options.signal, async (conn) => {
        const dst = this.#full(b);
        await this.#ensureDir(conn, path.posix.dirname(dst));
        await this.#rename(conn, this.#full(a), dst);
      });
    } catch (err) {
      this.#fail("move", `to "${b}" on`, a, err);
    }
  }

  async stat(remotePath: string, options: CallOptions): Promise<RemoteStat | null> {
    const rel = safeRemotePath(remotePath);
    this.#checkName("stat", "on", rel);
    try {
      return await this.#use(options.signal, async (conn) => {
        const st = await this.#statPath(conn, this.#full(rel));
        if (!st || st.dir) return null;
        return { size: st.size, ...(st.mtimeMs !== undefined ? { mtimeMs: st.mtimeMs } : {}) };
      });
    } catch (err) {
      this.#fail("stat", "on", rel, err);
    }
  }

  async *list(prefix: string, options: CallOptions): AsyncIterable<{ path: string } & RemoteStat> {
    const clean = prefix.replace(/^\/+|\/+$/g, "");
    const base = clean === "" ? this.#s.root : this.#full(safeRemotePath(clean));
    const stack = [base];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      let entries: FileInfo[];
      try {
        entries = await this.#use(options.signal, async (conn) => {
          try {
            return await this.#transfer(conn, () => conn.client.list(dir));
          } catch (err) {
            if (err instanceof FTPError && err.code === 550 && !isPermission(err)) return [];
            throw err;
          }
        });
      } catch (err) {
        this.#fail("list", "on", dir === "" ? "" : this.#rel(dir), err);
      }
      for (const e of entries) {
        const name = e.name.includes("/") ? e.name.slice(e.name.lastIndexOf("/") + 1) : e.name;
        if (name === "." || name === ".." || isTempName(name)) continue;
        const full = dir === "" ? name : dir === "/" ? "/" + name : `${dir}/${name}`;
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
    return joinUrl(this.#s.url, safeRemotePath(remotePath));
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

// ---------------------------------------------------------------------------
// Registration

const OPTIONS: readonly OptionSpec[] = [
  { name: "host", required: true, help: "Server host name or IP address" },
  {
    name: "port",
    type: "integer",
    min: 1,
    max: 65535,
    help: "Control port (default 21, or 990 with tls implicit)",
  },
  { name: "username", required: true, help: "Login name" },
  { name: "password", required: true, secret: true, help: "Password" },
  {
    name: "path",
    default: "",
    help:
      "Remote root directory: relative to the login directory, or absolute (created if missing)",
  },
  { name: "url", type: "url", required: true, help: "Public base URL of the remote root" },
  {
    name: "tls",
    type: "enum",
    values: ["none", "explicit", "implicit"],
    default: "none",
    help:
      "none: plain FTP; explicit: FTPS with AUTH TLS (FTPES); implicit: FTPS with TLS from the first byte",
  },
  {
    name: "ca",
    type: "path",
    help: "PEM file with the CA or self-signed certificate to trust instead of the system roots",
  },
  {
    name: "tls_fingerprint",
    help:
      "Pinned SHA-256 fingerprint of the server certificate (hex, colons optional); trusted instead of CA checks",
  },
  {
    name: "insecure_skip_verify",
    type: "boolean",
    default: "false",
    help: "Accept any TLS certificate (DANGEROUS: allows man-in-the-middle attacks; logged loudly)",
  },
  {
    name: "passive",
    type: "boolean",
    default: "true",
    help: "Passive mode data connections; the only mode supported (active mode is refused)",
  },
];

function validate(v: OptionValues): string[] {
  const problems: string[] = [];
  const tls = (v.tls ?? "none").trim().toLowerCase();
  if (v.passive !== undefined && !isTrue(v.passive)) {
    problems.push(`Setting "passive" cannot be false: only passive mode is supported`);
  }
  const fp = v.tls_fingerprint;
  if (fp !== undefined && fp.trim() !== "" && normalizeCertFingerprint(fp) === undefined) {
    problems.push(
      `Setting "tls_fingerprint" must be a SHA-256 fingerprint (64 hex digits, colons optional), not "${fp}"`,
    );
  }
  if (tls === "none") {
    for (const name of ["ca", "tls_fingerprint"] as const) {
      if (v[name] !== undefined && v[name]!.trim() !== "") {
        problems.push(`Setting "${name}" needs tls "explicit" or "implicit"`);
      }
    }
  }
  if (isTrue(v.insecure_skip_verify) && fp !== undefined && fp.trim() !== "") {
    problems.push(
      `Settings "insecure_skip_verify" and "tls_fingerprint" contradict each other: remove one`,
    );
  }
  for (const name of ["username", "password", "path"] as const) {
    if (v[name] !== undefined && /[\r\n]/.test(v[name]!)) {
      problems.push(`Setting "${name}" must not contain line breaks`);
    }
  }
  return problems;
}

function settingsFrom(v: OptionValues): Settings {
  const tls = (v.tls ?? "none").trim().toLowerCase() as TlsMode;
  let root = (v.path ?? "").trim();
  const abs = root.startsWith("/");
  const parts = root.split("/").filter((p) => p !== "" && p !== ".");
  root = abs ? "/" + parts.join("/") : parts.join("/");
  const fp = v.tls_fingerprint !== undefined && v.tls_fingerprint.trim() !== ""
    ? normalizeCertFingerprint(v.tls_fingerprint)
    : undefined;
  const ca = v.ca !== undefined && v.ca.trim() !== "" ? v.ca.trim() : undefined;
  return {
    host: v.host!.trim(),
    port: v.port !== undefined && v.port.trim() !== ""
      ? Number(v.port)
      : tls === "implicit"
      ? 990
      : 21,
    username: v.username!,
    password: v.password ?? "",
    root,
    url: v.url!.trim(),
    tls,
    ...(ca !== undefined ? { caPath: ca } : {}),
    ...(fp !== undefined ? { fingerprint: fp } : {}),
    insecure: isTrue(v.insecure_skip_verify),
  };
}

registerTransport({
  name: "ftp",
  summary:
    "FTP and FTPS (explicit or implicit TLS, verified certificates), passive mode, pooled connections",
  options: OPTIONS,
  validate,
  create(settings, ctx) {
    const problems = validate(settings);
    if (problems.length > 0) {
      return Promise.reject(
        new ClassifiedError(
          `Invalid settings for server "${ctx.serverName}": ${problems.join("; ")}`,
          "fatal",
        ),
      );
    }
    const s = settingsFrom(settings);
    if (s.password) addSecret(s.password);
    return Promise.resolve(new Ftp(s, ctx));
  },
});
