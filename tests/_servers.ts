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

/** Connection details of a database server (PostgreSQL 15 or MariaDB 10.11) for the shared store. */
export interface DatabaseInfo {
  /** Always `127.0.0.1`. */
  host: string;
  /** TCP port (fixed per state dir, so it stays the same across a restart). */
  port: number;
  /** User with every privilege the tests need (creating databases included). */
  user: string;
  /** Its password. */
  password: string;
  /** The default database, `fileconveyor`. */
  database: string;
  /** `postgres://…` or `mysql://…` URL of the default database, password included. */
  url: string;
  /** Absolute path of the server's self-signed TLS certificate (PEM), to pin as CA. */
  caPath: string;
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
  /** PostgreSQL 15 (port 15432 with the default state dir). */
  postgres: DatabaseInfo;
  /** MariaDB 10.11 (port 13306 with the default state dir). */
  mariadb: DatabaseInfo;
}

/** Name of a test server script in `scripts/dev-servers/`. */
export type ServerName = keyof ServerInfoMap;

const SCRIPTS_DIR = new URL("../scripts/dev-servers/", import.meta.url);

const started = new Map<ServerName, Promise<ServerInfoMap[ServerName]>>();

function scriptPath(name: ServerName): string {
  return decodeURIComponent(new URL(`${name}.sh`, SCRIPTS_DIR).pathname);
}

function baseDir(): string {
  return Deno.env.get("FC_SERVERS_DIR") || "/tmp/fileconveyor-servers";
}

function stateDir(name: ServerName, base = baseDir()): string {
  return join(base, name);
}

async function runScript(name: ServerName, args: string[], base?: string): Promise<void> {
  const path = scriptPath(name);
  const { code, stderr } = await new Deno.Command("bash", {
    args: [path, ...args],
    ...(base ? { env: { FC_SERVERS_DIR: base } } : {}),
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

/** A database server of the shared store. */
export type DatabaseServer = "postgres" | "mariadb";

/**
 * Where a private instance's state lives: `<servers dir>/instances/<instance>`. Its scripts
 * derive their own fixed port from that dir, so it never shares a port with the default one.
 */
function instanceBase(instance: string | undefined): string | undefined {
  if (instance === undefined) return undefined;
  if (!/^[a-z0-9-]{1,40}$/.test(instance)) throw new TypeError(`Invalid instance "${instance}"`);
  return join(baseDir(), "instances", instance);
}

const startedDatabases = new Map<string, Promise<DatabaseInfo>>();

/**
 * Starts a database server for the shared store (or finds it running) and returns its
 * connection details. Without `instance` this is the machine-wide server every test may use
 * (PostgreSQL on 127.0.0.1:15432, MariaDB on 127.0.0.1:13306); with `instance`, a private
 * server of its own (own data dir and port), for a test that stops and restarts the database
 * under its clients without disturbing other tests.
 *
 * @example Start PostgreSQL
 * ```ts ignore
 * import { startDatabase } from "./_servers.ts";
 *
 * const pg = await startDatabase("postgres");
 * console.log(pg.url); // postgres://fc:…@127.0.0.1:15432/fileconveyor
 * ```
 */
export async function startDatabase(
  server: DatabaseServer,
  instance?: string,
): Promise<DatabaseInfo> {
  const id = `${server}/${instance ?? ""}`;
  let promise = startedDatabases.get(id);
  if (!promise) {
    const base = instanceBase(instance);
    promise = (async () => {
      await runScript(server, ["start"], base);
      const path = join(stateDir(server, base), "info.json");
      return JSON.parse(await readFile(path, "utf8")) as DatabaseInfo;
    })();
    startedDatabases.set(id, promise);
    promise.catch(() => startedDatabases.delete(id));
  }
  return await promise;
}

/**
 * Stops a database server (see {@linkcode startDatabase}); its data is kept, so
 * {@linkcode startDatabase} brings it back with the same URL and contents. PostgreSQL
 * disconnects its clients at once (fast shutdown), MariaDB shuts down cleanly.
 */
export async function stopDatabase(server: DatabaseServer, instance?: string): Promise<void> {
  startedDatabases.delete(`${server}/${instance ?? ""}`);
  await runScript(server, ["stop"], instanceBase(instance));
}

/**
 * Stops a database server, waits `downMs`, and starts it again (same port, same data):
 * clients see the database vanish and come back.
 *
 * @example The database away for 20 s
 * ```ts ignore
 * import { restartDatabase } from "./_servers.ts";
 *
 * await restartDatabase("mariadb", { instance: "outage", downMs: 20_000 });
 * ```
 */
export async function restartDatabase(
  server: DatabaseServer,
  options: { instance?: string; downMs?: number } = {},
): Promise<DatabaseInfo> {
  await stopDatabase(server, options.instance);
  if (options.downMs) await new Promise((r) => setTimeout(r, options.downMs));
  return await startDatabase(server, options.instance);
}

/** A database of its own for one test, see {@linkcode freshDatabase}. */
export interface FreshDatabase {
  /** Store URL of the new, empty database (`postgres://…` or `mysql://…`, password included). */
  url: string;
  /** The server's details. */
  info: DatabaseInfo;
  /** Drops the database (its remaining connections are cut on PostgreSQL). */
  drop(): Promise<void>;
}

/**
 * Starts the server if needed and creates a new, empty database with a random name on it,
 * so a test starts from nothing and does not see other tests' rows.
 *
 * @example
 * ```ts ignore
 * import { freshDatabase } from "./_servers.ts";
 *
 * const db = await freshDatabase("postgres");
 * try {
 *   // openSharedStore(db.url, "node-a") …
 * } finally {
 *   await db.drop();
 * }
 * ```
 */
export async function freshDatabase(
  server: DatabaseServer,
  instance?: string,
): Promise<FreshDatabase> {
  const info = await startDatabase(server, instance);
  const name = `fc_t_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const base = instanceBase(instance);
  await runScript(server, ["createdb", name], base);
  const url = new URL(info.url);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    info,
    drop: () => runScript(server, ["dropdb", name], base),
  };
}
