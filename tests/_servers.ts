/**
 * Real test servers for the transport tests, started by `scripts/dev-servers/<name>.sh`.
 *
 * The scripts install what they need (Debian packages), bind only to 127.0.0.1 and keep
 * their state in `${FC_SERVERS_DIR:-/tmp/fileconveyor-servers}/<name>`. A running server
 * is shared by every process that asks for it: `startServer` of a healthy server only
 * returns its info.
 *
 * @module
 */

import { readFile } from "node:fs/promises";
import { join } from "node:path";

/** Connection details of the SFTP server (OpenSSH sshd). */
export interface SftpInfo {
  /** Always `127.0.0.1`. */
  host: string;
  /** TCP port of sshd. */
  port: number;
  /** System user that may log in by password or with either key. */
  username: string;
  /** The user's password. */
  password: string;
  /** Absolute path of the user's home directory, where SFTP sessions start. */
  root: string;
  /** Absolute path of an ed25519 private key (OpenSSH format, no passphrase). */
  keyPath: string;
  /** Absolute path of an RSA private key (PEM format, no passphrase). */
  rsaKeyPath: string;
  /** Fingerprint of the server's ed25519 host key, `SHA256:<base64>` like ssh-keygen -l. */
  hostKeyFingerprint: string;
  /** Absolute path of a known_hosts file with the line for `[127.0.0.1]:port`. */
  knownHostsPath: string;
}

/** Connection details of the FTP/FTPS server (ProFTPD with mod_tls). */
export interface FtpInfo {
  /** Always `127.0.0.1`. */
  host: string;
  /** Plain FTP and explicit FTPS (AUTH TLS), TLS session reuse not required. */
  port: number;
  /** Explicit FTPS only, TLS session reuse on data connections required (ProFTPD's default). */
  reusePort: number;
  /** Implicit FTPS (TLS from the first byte), or null when not available. */
  implicitPort: number | null;
  /** Virtual user name. */
  username: string;
  /** Its password. */
  password: string;
  /** Absolute local path of the FTP root (the user's home; `/` over FTP). */
  root: string;
  /** Absolute path of the server's self-signed certificate (PEM), to pin as CA. */
  caPath: string;
  /** SHA-256 of the certificate's DER, colon-separated uppercase hex. */
  certFingerprint: string;
}

/** Connection details of the explicit FTPS server (vsftpd, `require_ssl_reuse=YES`). */
export interface VsftpdInfo {
  /** Always `127.0.0.1`. */
  host: string;
  /** Explicit FTPS (AUTH TLS required), TLS session reuse on data connections required. */
  port: number;
  /** System user name. */
  username: string;
  /** Its password. */
  password: string;
  /** Absolute local path of the FTP root (the user's home, chrooted: `/` over FTP). */
  root: string;
  /** Absolute path of the server's self-signed certificate (PEM), to pin as CA. */
  caPath: string;
  /** SHA-256 of the certificate's DER, colon-separated uppercase hex. */
  certFingerprint: string;
}

/** Connection details of the OpenStack Swift server with its S3 API (Swift 2.30). */
export interface SwiftInfo {
  /** Swift v1 auth URL (tempauth), `http://127.0.0.1:PORT/auth/v1.0`. */
  authUrl: string;
  /** `account:user` for `X-Auth-User`. */
  user: string;
  /** The key for `X-Auth-Key`. */
  key: string;
  /** Storage URL of the account, as the auth response also returns it. */
  storageUrl: string;
  /** S3 endpoint (path-style addressing). */
  s3Endpoint: string;
  /** S3 access key id (same as `user`). */
  accessKeyId: string;
  /** S3 secret access key (same as `key`). */
  secretAccessKey: string;
  /** S3 region, `us-east-1`. */
  region: string;
}

/** Connection details of the FTP server with a connection limit (pure-ftpd `-c`). */
export interface PureFtpInfo {
  /** Always `127.0.0.1`. */
  host: string;
  /** TCP port (plain FTP). */
  port: number;
  /** Virtual user name. */
  username: string;
  /** Its password. */
  password: string;
  /** Absolute local path of the FTP root. */
  root: string;
  /** Sessions the server allows at once; one more gets `421 … (the maximum) …`. */
  maxClients: number;
}

/** Server name to the type of its info. */
export interface ServerInfoMap {
  /** OpenSSH. */
  sftp: SftpInfo;
  /** ProFTPD. */
  ftp: FtpInfo;
  /** vsftpd. */
  vsftpd: VsftpdInfo;
  /** Swift with s3api. */
  swift: SwiftInfo;
  /** pure-ftpd with a small connection limit. */
  pureftpd: PureFtpInfo;
}

/** Name of a test server script in `scripts/dev-servers/`. */
export type ServerName = keyof ServerInfoMap;

const SCRIPTS_DIR = new URL("../scripts/dev-servers/", import.meta.url);

const started = new Map<ServerName, Promise<ServerInfoMap[ServerName]>>();

function scriptPath(name: ServerName): string {
  return decodeURIComponent(new URL(`${name}.sh`, SCRIPTS_DIR).pathname);
}

function stateDir(name: ServerName): string {
  const base = Deno.env.get("FC_SERVERS_DIR") || "/tmp/fileconveyor-servers";
  return join(base, name);
}

async function runScript(name: ServerName, args: string[]): Promise<void> {
  const path = scriptPath(name);
  const { code, stderr } = await new Deno.Command("bash", {
    args: [path, ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    const detail = new TextDecoder().decode(stderr).trim();
    throw new Error(
      `Cannot ${
        args.join(" ")
      } test server "${name}" (bash ${path} exited with ${code}):\n${detail}`,
    );
  }
}

async function start<N extends ServerName>(name: N): Promise<ServerInfoMap[N]> {
  await runScript(name, ["start"]);
  const path = join(stateDir(name), "info.json");
  return JSON.parse(await readFile(path, "utf8")) as ServerInfoMap[N];
}

/**
 * Starts the named test server (or finds it running) and returns its connection details.
 *
 * Runs `bash scripts/dev-servers/<name>.sh start`, which installs missing packages, starts
 * the server on 127.0.0.1 and waits until it really answers. Throws with the script's
 * stderr when that fails: tests that need a server fail rather than skip. The result is
 * cached for the life of the process, so calling it again is free.
 *
 * Needs `--allow-run=bash`, `--allow-read` and `--allow-env`.
 *
 * @example Start the SFTP server
 * ```ts ignore
 * import { startServer } from "./_servers.ts";
 *
 * const sftp = await startServer("sftp");
 * console.log(sftp.host, sftp.port, sftp.username);
 * ```
 */
export async function startServer<N extends ServerName>(name: N): Promise<ServerInfoMap[N]> {
  let promise = started.get(name);
  if (!promise) {
    promise = start(name);
    started.set(name, promise);
    // A failed start is not cached: the next call tries again.
    promise.catch(() => started.delete(name));
  }
  return await (promise as Promise<ServerInfoMap[N]>);
}

/**
 * Stops the named test server (`bash scripts/dev-servers/<name>.sh stop`).
 *
 * The servers are shared by every process on the machine, so a test should normally
 * leave them running; this is for suites that test a server going away.
 *
 * @example Stop the FTP server
 * ```ts ignore
 * import { stopServer } from "./_servers.ts";
 *
 * await stopServer("ftp");
 * ```
 */
export async function stopServer(name: ServerName): Promise<void> {
  started.delete(name);
  await runScript(name, ["stop"]);
}
