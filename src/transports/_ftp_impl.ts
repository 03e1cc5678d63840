/**
 * The `ftp` transport itself, with `npm:basic-ftp`: loaded by `ftp.ts` on
 * the first `create()`, so that only configurations with an FTP server pay
 * for basic-ftp. See `ftp.ts` for what it does.
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
  type TaskResolver,
} from "basic-ftp";
import { Buffer } from "node:buffer";
import * as fs from "node:fs/promises";
import type { Socket } from "node:net";
import * as path from "node:path";
import { Readable } from "node:stream";
import type { ConnectionOptions, TLSSocket } from "node:tls";
import { ClassifiedError, classify, type ErrorKind, errorMessage } from "../errors.ts";
import { addSecret, type Logger } from "../log.ts";
import { isTrue, type OptionValues } from "../options.ts";
import { Pool } from "./pool.ts";
import { isTempName, joinUrl, safeRemotePath, tempName } from "./paths.ts";
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
} from "./transport.ts";
import { isSessionReuseRefusal, normalizeCertFingerprint, SESSION_REUSE_HELP } from "./ftp.ts";
import {
  connectImplicit,
  EngineChoice,
  passiveResumingTransfer,
  type SslSocket,
  type TlsEngine,
  upgradeExplicit,
} from "./ftp/_tls_resume.ts";

/** Bytes per read of the local file during an upload. */
const CHUNK = 64 * 1024;

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
  /** The TLS the connection was opened with. */
  engine: TlsEngine;
}

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

/**
 * A connection could not be opened; `reason` is the text after the server
 * name. `kind` is "auth" when only a configuration change can fix it.
 */
class ConnectFailure extends ClassifiedError {
  readonly reason: string;
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

/**
 * A reply that refuses one more session because of a limit (pure-ftpd
 * `421 5 users (the maximum) are already logged in`, vsftpd `421 There are
 * too many connected users`, ProFTPD MaxClients), not because of the login.
 */
function isTooManyReply(err: unknown): boolean {
  return err instanceof FTPError && (err.code === 421 || err.code === 530) &&
    /too many|maximum|max(imum)? (number of )?(clients|users|connections)|already (logged|connected)|limit/i
      .test(err.message);
}

function isPermission(err: unknown): boolean {
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
function fileSource(fh: fs.FileHandle): Readable {
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
const dataErrorHandlers = new WeakMap<FTPContext, (err: Error) => void>();

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
function hardenContext(ftp: FTPContext): void {
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

class Ftp implements Transport, Stater, Lister, Mover, DirRemover {
  readonly #s: Settings;
  readonly #server: string;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #pool: Pool<Conn>;
  #nextId = 1;
  #ca?: Buffer;
  readonly #tls: EngineChoice;

  constructor(s: Settings, ctx: TransportContext) {
    this.#s = s;
    this.#server = ctx.serverName;
    this.#log = ctx.log;
    this.#timeoutMs = ctx.timeoutMs;
    // Deno's TLS, or OpenSSL for servers that require TLS session reuse.
    this.#tls = new EngineChoice({
      server: ctx.serverName,
      host: s.host,
      port: s.port,
      ...(s.caPath !== undefined ? { caFile: s.caPath } : {}),
      verify: !(s.insecure || s.fingerprint !== undefined),
      stateDir: ctx.stateDir,
      log: ctx.log,
    });
    this.#pool = new Pool<Conn>({
      max: Math.max(1, ctx.maxConnections),
      create: (signal) => this.#connect(signal),
      destroy: (c) => c.client.close(),
      // Connections opened before a switch to OpenSSL cannot transfer: retire them.
      isAlive: (c) => !c.client.closed && c.engine === this.#tls.engine,
      idleTimeoutMs: 60_000,
      holdsFailure: (err) => err instanceof ClassifiedError && err.kind === "auth",
      isTooMany: (err) => err instanceof ConnectFailure && isTooManyReply(err.cause),
      onShrink: (size, err) => this.#tooMany(size, ctx.maxConnections, err),
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

  #shrinkLogged = false;

  /** Says once per run that the server refused more connections, and what to change. */
  #tooMany(size: number, configured: number, err: unknown): void {
    const reply = err instanceof ConnectFailure ? this.#describe(err.cause) : errorMessage(err);
    const text = `Server "${this.#server}" (${this.#s.host}:${this.#s.port}) refused more than ` +
      `${size} connection${size === 1 ? "" : "s"} at once ("${reply}"); using ${size} instead ` +
      `of ${configured} for this run. Set maxConnections="${size}" (or lower) on this server ` +
      "to avoid the refused logins";
    if (this.#shrinkLogged) this.#log.debug(text);
    else this.#log.warn(text);
    this.#shrinkLogged = true;
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
        `Cannot ${action} "${rel}" ${prep} server "${this.#server}": ${SESSION_REUSE_HELP}` +
          (this.#tls.unavailable !== undefined
            ? ` (OpenSSL: ${this.#tls.unavailable}) `
            : this.#tls.engine === "openssl"
            ? " (the data connection resumed the session through OpenSSL and was still refused) "
            : " ") +
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
            "auth",
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
        undefined,
        "auth",
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
    if (tlsOpts) await this.#tls.recall();
    const onAbort = () => client.close();
    signal.addEventListener("abort", onAbort, { once: true });
    let stage = "connect";
    // basic-ftp's timeout covers each reply; this one also covers TCP and TLS set-up.
    const timer = setTimeout(() => {
      stage = `${stage} (timed out after ${this.#timeoutMs} ms)`;
      client.close();
    }, this.#timeoutMs * 2);
    try {
      const engine = this.#tls.engine;
      const ssl = engine === "openssl" ? this.#tls.context : undefined;
      let control: SslSocket | undefined;
      if (s.tls === "implicit") {
        if (ssl) control = await connectImplicit(client, ssl, s.host, s.port);
        else await client.connectImplicitTLS(s.host, s.port, tlsOpts);
      } else await client.connect(s.host, s.port);
      if (s.tls === "explicit") {
        stage = "TLS";
        if (ssl) control = await upgradeExplicit(client, ssl, s.host);
        else await client.useTLS(tlsOpts);
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
      if (control && ssl) client.prepareTransfer = passiveResumingTransfer(control, ssl, s.host);
      const conn: Conn = {
        id: this.#nextId++,
        client,
        dirs: new Set(),
        mlst,
        size: features.has("SIZE"),
        engine,
      };
      this.#log.debug(`Connected to ${s.host}:${s.port} as connection #${conn.id}`, {
        ms: Math.round(performance.now() - started),
        tls: s.tls === "none" ? "none" : `${s.tls} (${engine})`,
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
    if (isTooManyReply(err)) {
      return new ConnectFailure(
        this.#server,
        `${this.#s.host}:${this.#s.port} refuses more connections: ${msg}`,
        { cause: err },
      );
    }
    if (err instanceof FTPError && (stage === "login" || err.code === 530)) {
      // A refused login does not get better by trying again: pause the server.
      return new ConnectFailure(
        this.#server,
        `cannot log in as ${where}: ${msg} (check username and password)`,
        { cause: err },
        err.code === 530 ? "auth" : "server",
      );
    }
    if (stage === "login") {
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
        "auth",
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
   * fingerprint before any data flows. Also see {@linkcode hardenContext}.
   */
  #wrapDataConnections(client: Client): void {
    hardenContext(client.ftp);
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
   * Runs a data transfer. When the data connection dies without an FTP reply
   * (a TLS data connection the server hung up on, or a reset), the reason
   * arrives on the control connection just after; read it, so that the
   * server's answer decides: a refusal such as "550 Permission denied" or
   * "TLS session reuse required" is reported instead of "read ECONNRESET"
   * or "Premature close". When no reply comes within a short grace period,
   * the connection's state is unknown and it is closed.
   */
  async #transfer<R>(conn: Conn, fn: () => Promise<R>): Promise<R> {
    const ftp = conn.client.ftp;
    let grace: ReturnType<typeof setTimeout> | undefined;
    dataErrorHandlers.set(ftp, (err) => {
      // The data connection failed before the transfer ended: a refusal the
      // server sent is still on its way, and the transfer fails with it. If
      // none comes, the connection's state is unknown: fail with the error.
      grace ??= setTimeout(() => ftp.closeWithError(err), this.#replyGraceMs);
    });
    try {
      return await fn();
    } catch (err) {
      clearTimeout(grace);
      if (err instanceof FTPError || conn.client.closed) throw err;
      const late = await this.#lateReply(conn);
      if (late instanceof FTPError) throw late;
      throw err;
    } finally {
      clearTimeout(grace);
      dataErrorHandlers.delete(ftp);
    }
  }

  /** How long a failed transfer waits for the server's reply. */
  get #replyGraceMs(): number {
    return Math.min(this.#timeoutMs, 2000);
  }

  #lateReply(conn: Conn): Promise<FTPResponse | Error | undefined> {
    const ftp = conn.client.ftp;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        // Nothing came: the connection's state is unknown, so it must go.
        conn.client.close();
        resolve(undefined);
      }, this.#replyGraceMs);
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

  async #use<R>(signal: AbortSignal, fn: (conn: Conn) => Promise<R>): Promise<R> {
    let engine: TlsEngine | undefined;
    try {
      return await this.#useOnce(signal, (conn) => {
        engine = conn.engine;
        return fn(conn);
      });
    } catch (err) {
      // Once per server: a refusal to transfer without session reuse
      // switches its connections to OpenSSL, and the operation runs again.
      if (engine !== "deno" || !this.#needsResumption(err) || !this.#tls.useOpenSsl()) throw err;
      return await this.#useOnce(signal, fn);
    }
  }

  /** Whether `err` is a server's refusal of a data connection that did not resume the TLS session. */
  #needsResumption(err: unknown): boolean {
    return this.#s.tls !== "none" && err instanceof FTPError &&
      isSessionReuseRefusal(err.code, err.message);
  }

  #useOnce<R>(signal: AbortSignal, fn: (conn: Conn) => Promise<R>): Promise<R> {
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

  /**
   * After fileconveyor deleted or moved away the file at `rel`: removes the
   * directories that this left empty, innermost first, never the root.
   * RMD refuses a directory that holds anything, so a directory with other
   * files is left alone: only directories whose last file fileconveyor itself
   * removed go. Errors stop the walk.
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
        if (err instanceof FTPError) return; // not empty, or not allowed
        throw err;
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
            this.#transfer(conn, () => conn.client.uploadFrom(fileSource(fh), tmp));
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
          return;
        }
        await this.#pruneParents(conn, rel);
      });
    } catch (err) {
      this.#fail("delete", "from", rel, err);
    }
  }

  async removeDir(remotePath: string, options: CallOptions): Promise<void> {
    const rel = safeRemotePath(remotePath);
    this.#checkName("delete", "from", rel);
    const full = this.#full(rel);
    try {
      await this.#use(options.signal, async (conn) => {
        try {
          await conn.client.send("RMD " + await conn.client.protectWhitespace(full));
        } catch (err) {
          if (!(err instanceof FTPError && err.code === 550)) throw err;
          // 550 means "no such directory", "not empty" or "not allowed": only the first is success.
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
        await this.#pruneParents(conn, a);
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

  async close(): Promise<void> {
    await this.#pool.close();
    await this.#tls.close();
  }
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

/** Creates the transport from settings `ftp.ts` has validated. */
export function createFtp(settings: OptionValues, ctx: TransportContext): Transport {
  const s = settingsFrom(settings);
  if (s.password) addSecret(s.password);
  return new Ftp(s, ctx);
}
