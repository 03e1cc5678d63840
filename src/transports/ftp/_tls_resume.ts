/**
 * FTPS through the system's OpenSSL ({@linkcode SslSocket}) on a basic-ftp
 * client, for servers that require every data connection to resume the
 * control connection's TLS session (vsftpd's default
 * `require_ssl_reuse=YES`, ProFTPD without `NoSessionReuseRequired`,
 * FileZilla Server). basic-ftp only resumes sessions through `node:tls`,
 * which under Deno cannot; here the control connection is upgraded with
 * OpenSSL, and data connections are opened by our own passive-mode step
 * that resumes its session.
 *
 * @module
 */
import { type Client, type FTPContext, FTPError, type FTPResponse } from "basic-ftp";
import * as fs from "node:fs/promises";
import { Socket } from "node:net";
import * as path from "node:path";
import type { Logger } from "../../log.ts";
import { loadOpenSsl, SslContext, type SslContextOptions } from "./_libssl.ts";
import { SslSocket } from "./_ssl_socket.ts";

export { SslContext, SslSocket };

/**
 * An OpenSSL context for one server, or the reason OpenSSL cannot be used
 * (missing library, no FFI permission, unreadable CA file).
 */
export function openSslContext(opts: SslContextOptions): SslContext | string {
  const lib = loadOpenSsl();
  if (typeof lib === "string") return lib;
  try {
    return new SslContext(lib, opts);
  } catch (err) {
    return (err as Error).message;
  }
}

/** Name of the loaded libssl, or undefined when it cannot be loaded. */
export function openSslName(): string | undefined {
  const lib = loadOpenSsl();
  return typeof lib === "string" ? undefined : lib.name;
}

/** Resolves when the handshake is done; rejects with its error. */
function secured(sock: SslSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    if (sock.getCipher() !== undefined) return resolve();
    const onError = (err: Error) => {
      sock.off("secureConnect", onOk);
      reject(err);
    };
    const onOk = () => {
      sock.off("error", onError);
      resolve();
    };
    sock.once("error", onError);
    sock.once("secureConnect", onOk);
    sock.once(
      "close",
      () => onError(new Error("the server closed the connection during the TLS handshake")),
    );
  });
}

/**
 * Explicit FTPS: sends AUTH TLS on the connected plain client and upgrades
 * its control connection with OpenSSL. Resolves once the handshake (and so
 * the certificate check) is done.
 */
export async function upgradeExplicit(
  client: Client,
  context: SslContext,
  host: string,
): Promise<SslSocket> {
  await client.send("AUTH TLS");
  const raw = client.ftp.socket;
  const sock = new SslSocket(raw, { context, host });
  // The setter sees the same local port, keeps the TCP connection and drops
  // every listener on it, ours included: attach them again.
  client.ftp.socket = sock as unknown as Socket;
  sock.attach();
  await secured(sock);
  return sock;
}

/**
 * Implicit FTPS: opens the control connection with TLS from the first byte
 * and reads the server's greeting.
 */
export async function connectImplicit(
  client: Client,
  context: SslContext,
  host: string,
  port: number,
): Promise<SslSocket> {
  client.ftp.reset();
  const raw = new Socket();
  const sock = new SslSocket(raw, { context, host });
  client.ftp.socket = sock as unknown as Socket;
  sock.attach();
  raw.connect({ host, port });
  const greeting = client.ftp.handle(undefined, (res, task) => {
    if (res instanceof Error) task.reject(res);
    else if (res.code >= 200 && res.code < 300) task.resolve(res);
    else task.reject(new FTPError(res));
  });
  await Promise.all([secured(sock), greeting]);
  return sock;
}

/** Port from an EPSV reply: `229 Entering Extended Passive Mode (|||6446|)`. */
function epsvPort(message: string): number | undefined {
  const m = /[|!]{3}(\d+)[|!]/.exec(message);
  return m ? Number(m[1]) : undefined;
}

/** Port from a PASV reply: `227 Entering Passive Mode (127,0,0,1,10,229)`. */
function pasvPort(message: string): number | undefined {
  const m = /\d+,\d+,\d+,\d+,(\d+),(\d+)/.exec(message);
  return m ? (Number(m[1]) & 255) * 256 + (Number(m[2]) & 255) : undefined;
}

/**
 * A `prepareTransfer` step for basic-ftp: EPSV (PASV when the server does
 * not know EPSV), then a TLS data connection to the control connection's
 * address that resumes the control connection's session. The address in a
 * PASV reply is ignored, as with EPSV: the data connection goes where the
 * control connection goes.
 */
export function passiveResumingTransfer(
  control: SslSocket,
  context: SslContext,
  host: string,
): (ftp: FTPContext) => Promise<FTPResponse> {
  let useEpsv = true;
  return async (ftp) => {
    let res: FTPResponse | undefined;
    let port: number | undefined;
    if (useEpsv) {
      try {
        res = await ftp.request("EPSV");
        port = epsvPort(res.message);
      } catch (err) {
        if (!(err instanceof FTPError)) throw err;
        useEpsv = false;
      }
    }
    if (!useEpsv) {
      res = await ftp.request("PASV");
      port = pasvPort(res.message);
    }
    if (port === undefined || res === undefined) {
      throw new Error(`Can't parse the server's passive mode reply: ${res?.message ?? ""}`);
    }
    const target = control.remoteAddress;
    if (target === undefined) throw new Error("Control connection closed");
    const raw = new Socket();
    const data = new SslSocket(raw, { context, host, resumeFrom: control });
    // Errors before basic-ftp takes the socket reject below; keep them from being unhandled.
    const swallow = () => {};
    data.on("error", swallow);
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        raw.off("connect", onConnect);
        raw.off("error", onError);
      };
      const onConnect = () => {
        done();
        resolve();
      };
      const onError = (err: Error) => {
        done();
        err.message = "Can't open data connection in passive mode: " + err.message;
        reject(err);
      };
      const timer = setTimeout(() => {
        done();
        data.destroy();
        reject(new Error(`Timeout when trying to open data connection to ${target}:${port}`));
      }, ftp.timeout || 30_000);
      raw.once("connect", onConnect);
      raw.once("error", onError);
      raw.connect({ host: target, port: port! });
    });
    data.off("error", swallow);
    ftp.dataSocket = data as unknown as Socket;
    return res;
  };
}

/** Where a server's connections get their TLS. */
export type TlsEngine = "deno" | "openssl";

/** What {@linkcode EngineChoice} needs to know about a server. */
export interface EngineChoiceOptions {
  /** Server name, for log lines. */
  server: string;
  host: string;
  port: number;
  /** The `ca` setting, if any. */
  caFile?: string;
  /** Verify chain and host name (false with a pinned fingerprint or insecure_skip_verify). */
  verify: boolean;
  /** The server's private state directory, where the choice is remembered across runs. */
  stateDir: string;
  log: Logger;
}

/**
 * Which TLS one server's connections use. Deno's own TLS, until the server
 * refuses a data connection for not resuming the control connection's
 * session; then the system's OpenSSL, for the rest of the run and (through
 * a file in the server's state directory) for later runs.
 */
export class EngineChoice {
  readonly #o: EngineChoiceOptions;
  #engine: TlsEngine = "deno";
  #context?: SslContext;
  #unavailable?: string;
  #recalled?: Promise<void>;
  #remembering?: Promise<void>;

  constructor(o: EngineChoiceOptions) {
    this.#o = o;
  }

  /** The engine new connections use. */
  get engine(): TlsEngine {
    return this.#engine;
  }

  /** The OpenSSL context, once switched. */
  get context(): SslContext | undefined {
    return this.#context;
  }

  /** Why OpenSSL could not be used, once a switch was attempted and failed. */
  get unavailable(): string | undefined {
    return this.#unavailable;
  }

  get #mark(): string {
    return path.join(this.#o.stateDir, "ftps-session-reuse");
  }

  get #key(): string {
    return `${this.#o.host}:${this.#o.port}`;
  }

  /** Reads (once) whether an earlier run switched this server. */
  recall(): Promise<void> {
    this.#recalled ??= fs.readFile(this.#mark, "utf8").then(
      (text) => {
        if (text.trim() === this.#key) this.useOpenSsl(true);
      },
      () => {},
    );
    return this.#recalled;
  }

  /**
   * Switches to OpenSSL (idempotent); false when OpenSSL cannot be used.
   * `remembered`: the switch comes from an earlier run's note, not from a
   * refusal just now.
   */
  useOpenSsl(remembered = false): boolean {
    if (this.#engine === "openssl") return true;
    if (this.#unavailable !== undefined) return false;
    const o = this.#o;
    const ctx = openSslContext({
      ...(o.caFile !== undefined ? { caFile: o.caFile } : {}),
      verify: o.verify,
    });
    const needs = `Server "${o.server}" requires FTPS data connections to resume the control ` +
      "connection's TLS session";
    if (typeof ctx === "string") {
      this.#unavailable = ctx;
      o.log.warn(`${needs}, which needs the system's OpenSSL library, but ${ctx}`);
      return false;
    }
    this.#context = ctx;
    this.#engine = "openssl";
    if (remembered) {
      o.log.debug(`${needs} (found in an earlier run): using the system's OpenSSL`, {
        library: ctx.lib.name,
      });
      return true;
    }
    o.log.info(`${needs}: its connections now use the system's OpenSSL (${ctx.lib.name})`);
    this.#remembering = fs.mkdir(o.stateDir, { recursive: true, mode: 0o700 })
      .then(() => fs.writeFile(this.#mark, this.#key + "\n"))
      .catch((err) =>
        o.log.debug(`Cannot remember that server "${o.server}" requires session reuse`, {
          error: (err as Error).message,
        })
      );
    return true;
  }

  /** Waits for the note to be written and releases the OpenSSL context. */
  async close(): Promise<void> {
    await this.#remembering;
    this.#context?.free();
  }
}
