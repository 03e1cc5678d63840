/**
 * Connections to an FTP server and the errors the transport throws.
 *
 * @module
 */
import { Client, type FTPContext, FTPError, type FTPResponse } from "basic-ftp";
import { Buffer } from "node:buffer";
import * as fs from "node:fs/promises";
import type { ConnectionOptions, TLSSocket } from "node:tls";
import { ClassifiedError, errorMessage } from "../../errors.ts";
import type { Logger } from "../../log.ts";
import { Pool } from "../pool.ts";
import { callFailure, callHeader, maskSecrets } from "../_call_errors.ts";
import type { TransportContext } from "../transport.ts";
import { isSessionReuseRefusal, SESSION_REUSE_HELP } from "../ftp.ts";
import {
  connectImplicit,
  EngineChoice,
  passiveResumingTransfer,
  type SslSocket,
  type TlsEngine,
  upgradeExplicit,
} from "./_tls_resume.ts";
import {
  type Conn,
  ConnectFailure,
  dataErrorHandlers,
  describe,
  errorKind,
  hardenContext,
  isTooManyReply,
  type Settings,
} from "./protocol.ts";

/**
 * The connections of one FTP server: opening them (TLS, pinned certificates,
 * session reuse), the pool, transfers and the errors the transport throws.
 */
export class FtpConnection {
  protected readonly settings: Settings;
  protected readonly server: string;
  protected readonly log: Logger;
  readonly #timeoutMs: number;
  protected readonly pool: Pool<Conn>;
  #nextId = 1;
  #ca?: Buffer;
  protected readonly tls: EngineChoice;

  constructor(s: Settings, ctx: TransportContext) {
    this.settings = s;
    this.server = ctx.serverName;
    this.log = ctx.log;
    this.#timeoutMs = ctx.timeoutMs;
    // Deno's TLS, or OpenSSL for servers that require TLS session reuse.
    this.tls = new EngineChoice({
      server: ctx.serverName,
      host: s.host,
      port: s.port,
      ...(s.caPath !== undefined ? { caFile: s.caPath } : {}),
      verify: !(s.insecure || s.fingerprint !== undefined),
      stateDir: ctx.stateDir,
      log: ctx.log,
    });
    this.pool = new Pool<Conn>({
      max: Math.max(1, ctx.maxConnections),
      create: (signal) => this.#connect(signal),
      destroy: (c) => c.client.close(),
      // Connections opened before a switch to OpenSSL cannot transfer: retire them.
      isAlive: (c) => !c.client.closed && c.engine === this.tls.engine,
      idleTimeoutMs: 60_000,
      holdsFailure: (err) => err instanceof ClassifiedError && err.kind === "auth",
      isTooMany: (err) => err instanceof ConnectFailure && isTooManyReply(err.cause),
      onShrink: (size, err) => this.#tooMany(size, ctx.maxConnections, err),
    });
    if (s.tls !== "none" && s.insecure) {
      this.log.warn(
        `TLS certificate verification is DISABLED for server "${this.server}" (insecure_skip_verify): ` +
          "anyone who can intercept the connection can read the password and change the files. " +
          "Set ca or tls_fingerprint instead",
      );
    }
    if (s.tls === "none") {
      this.log.debug(
        `Server "${this.server}" uses plain FTP: the password and files travel unencrypted`,
      );
    }
  }

  #shrinkLogged = false;

  /** Says once per run that the server refused more connections, and what to change. */
  #tooMany(size: number, configured: number, err: unknown): void {
    const reply = err instanceof ConnectFailure ? describe(err.cause) : errorMessage(err);
    const text =
      `Server "${this.server}" (${this.settings.host}:${this.settings.port}) refused more than ` +
      `${size} connection${size === 1 ? "" : "s"} at once ("${reply}"); using ${size} instead ` +
      `of ${configured} for this run. Set maxConnections="${size}" (or lower) on this server ` +
      "to avoid the refused logins";
    if (this.#shrinkLogged) this.log.debug(text);
    else this.log.warn(text);
    this.#shrinkLogged = true;
  }

  // -- errors ---------------------------------------------------------------

  #scrub(text: string): string {
    return maskSecrets(text, [this.settings.password]);
  }

  protected fail(action: string, prep: string, rel: string, err: unknown): never {
    const call = { action, prep, rel, server: this.server };
    if (
      err instanceof FTPError && this.settings.tls !== "none" &&
      isSessionReuseRefusal(err.code, err.message)
    ) {
      throw new ClassifiedError(
        `${callHeader(call)}: ${SESSION_REUSE_HELP}` +
          (this.tls.unavailable !== undefined
            ? ` (OpenSSL: ${this.tls.unavailable}) `
            : this.tls.engine === "openssl"
            ? " (the data connection resumed the session through OpenSSL and was still refused) "
            : " ") +
          `(server replied: ${describe(err)})`,
        "server",
        { cause: err },
      );
    }
    throw callFailure(err, call, {
      describe,
      kind: errorKind,
      scrub: (text) => this.#scrub(text),
    });
  }

  // -- connections ----------------------------------------------------------

  async #tlsOptions(): Promise<ConnectionOptions> {
    const s = this.settings;
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
            this.server,
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
    const pinned = this.settings.fingerprint;
    if (pinned === undefined) return;
    const actual = socket.getPeerCertificate()?.fingerprint256;
    if (actual?.toUpperCase() !== pinned) {
      socket.destroy();
      throw new ConnectFailure(
        this.server,
        `the ${what} TLS certificate of ${this.settings.host}:${this.settings.port} (SHA-256 ${
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
      if (this.settings.tls === "implicit") {
        await client.connectImplicitTLS(this.settings.host, this.settings.port, opts);
      } else {
        await client.connect(this.settings.host, this.settings.port);
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
    const s = this.settings;
    const where = `${s.username}@${s.host}:${s.port}`;
    const started = performance.now();
    const client = new Client(this.#timeoutMs);
    if (this.log.debugEnabled) {
      client.ftp.verbose = true;
      // basic-ftp masks PASS itself; the logger masks registered secrets too.
      client.ftp.log = (m: string) => this.log.debug(m);
    }
    const tlsOpts = s.tls === "none" ? undefined : await this.#tlsOptions();
    if (tlsOpts) await this.tls.recall();
    const onAbort = () => client.close();
    signal.addEventListener("abort", onAbort, { once: true });
    let stage = "connect";
    // basic-ftp's timeout covers each reply; this one also covers TCP and TLS set-up.
    const timer = setTimeout(() => {
      stage = `${stage} (timed out after ${this.#timeoutMs} ms)`;
      client.close();
    }, this.#timeoutMs * 2);
    try {
      const engine = this.tls.engine;
      const ssl = engine === "openssl" ? this.tls.context : undefined;
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
      this.log.debug(`Connected to ${s.host}:${s.port} as connection #${conn.id}`, {
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
    const msg = this.#scrub(describe(err));
    if (isTooManyReply(err)) {
      return new ConnectFailure(
        this.server,
        `${this.settings.host}:${this.settings.port} refuses more connections: ${msg}`,
        { cause: err },
      );
    }
    if (err instanceof FTPError && (stage === "login" || err.code === 530)) {
      // A refused login does not get better by trying again: pause the server.
      return new ConnectFailure(
        this.server,
        `cannot log in as ${where}: ${msg} (check username and password)`,
        { cause: err },
        err.code === 530 ? "auth" : "server",
      );
    }
    if (stage === "login") {
      return new ConnectFailure(this.server, `cannot log in as ${where}: ${msg}`, { cause: err });
    }
    const certProblem = tlsOpts &&
      /certificate|self[- ]signed|issuer|CERT_|verif|UnknownIssuer|NotValidForName|expired/i.test(
        `${msg} ${(err as { code?: string })?.code ?? ""}`,
      );
    if (certProblem) {
      const seen = await this.#peekCertificate(tlsOpts);
      const fp = seen?.match(/SHA-256 (\S+)/)?.[1];
      return new ConnectFailure(
        this.server,
        `the TLS certificate of ${this.settings.host}:${this.settings.port} is not trusted (${msg}` +
          `${seen ? `; certificate ${seen}` : ""}). If this is the right server, set ca to its ` +
          "certificate (or its CA) in PEM format" +
          (fp ? `, or set tls_fingerprint to "${fp}"` : ", or pin it with tls_fingerprint"),
        { cause: err },
        "auth",
      );
    }
    if (err instanceof FTPError && stage === "TLS") {
      return new ConnectFailure(
        this.server,
        `${this.settings.host}:${this.settings.port} does not offer explicit FTPS (AUTH TLS): ${msg}`,
        { cause: err },
      );
    }
    return new ConnectFailure(
      this.server,
      `cannot connect to ${this.settings.host}:${this.settings.port} (${stage}): ${msg}`,
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
        if (this.settings.fingerprint !== undefined && "encrypted" in data) {
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
  protected async transfer<R>(conn: Conn, fn: () => Promise<R>): Promise<R> {
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

  protected async use<R>(signal: AbortSignal, fn: (conn: Conn) => Promise<R>): Promise<R> {
    let engine: TlsEngine | undefined;
    try {
      return await this.#useOnce(signal, (conn) => {
        engine = conn.engine;
        return fn(conn);
      });
    } catch (err) {
      // Once per server: a refusal to transfer without session reuse
      // switches its connections to OpenSSL, and the operation runs again.
      if (engine !== "deno" || !this.#needsResumption(err) || !this.tls.useOpenSsl()) throw err;
      return await this.#useOnce(signal, fn);
    }
  }

  /** Whether `err` is a server's refusal of a data connection that did not resume the TLS session. */
  #needsResumption(err: unknown): boolean {
    return this.settings.tls !== "none" && err instanceof FTPError &&
      isSessionReuseRefusal(err.code, err.message);
  }

  #useOnce<R>(signal: AbortSignal, fn: (conn: Conn) => Promise<R>): Promise<R> {
    return this.pool.use(async (conn) => {
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
}
