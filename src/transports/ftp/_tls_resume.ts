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
import { Socket } from "node:net";
import { SslContext, type SslContextOptions, SslSocket } from "./_openssl.ts";
import { loadOpenSsl } from "./_openssl.ts";

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
