/**
 * The `sftp` transport itself, with `npm:ssh2`: loaded by `sftp.ts` on the
 * first `create()`, so that only configurations with an SFTP server pay for
 * ssh2 (start-up time and memory). See `sftp.ts` for what it does.
 *
 * @module
 */
// @ts-types="@types/ssh2"
import ssh2 from "ssh2";
import { Buffer } from "node:buffer";
import * as fs from "node:fs/promises";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { ClassifiedError, classify, type ErrorKind, errorMessage } from "../errors.ts";
import { addSecret } from "../log.ts";
import type { Logger } from "../log.ts";
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
import {
  checkKnownHosts,
  keyType,
  knownHostsName,
  md5Fingerprint,
  normalizeFingerprint,
  sha256Fingerprint,
} from "./sftp.ts";

/** Bytes per SFTP write request. */
const CHUNK = 64 * 1024;
/** Write requests in flight per upload (memory bound: CHUNK × this). */
const IN_FLIGHT = 16;

// SFTP v3 status codes (draft-ietf-secsh-filexfer-02).
const NO_SUCH_FILE = 2;
const PERMISSION_DENIED = 3;
const FAILURE = 4;
const OP_UNSUPPORTED = 8;

/** Host key algorithms ssh2 offers by default, strongest first. */
const HOST_KEY_ALGORITHMS = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
  "ssh-rsa",
] as const;

/** Host key algorithms to offer, those whose keys known_hosts lists for the host first. */
function hostKeyOrder(knownTypes: readonly string[]): string[] {
  const preferred: string[] = [];
  for (const t of knownTypes) {
    if (t === "ssh-rsa") preferred.push("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa");
    else if ((HOST_KEY_ALGORITHMS as readonly string[]).includes(t)) preferred.push(t);
  }
  const rest = HOST_KEY_ALGORITHMS.filter((a) => !preferred.includes(a));
  return [...new Set([...preferred, ...rest])];
}

function expandHome(p: string): string {
  if (p === "~") return os.homedir();
  if (p.startsWith("~/")) return path.join(os.homedir(), p.slice(2));
  return p;
}

// ---------------------------------------------------------------------------
// The transport

interface Conn {
  id: number;
  client: ssh2.Client;
  sftp: ssh2.SFTPWrapper;
  /** Directories known to exist (full remote paths). */
  dirs: Set<string>;
  alive: boolean;
  /** The SSH connection has closed. */
  closed: boolean;
  /** Whether posix-rename@openssh.com is usable (cleared when the server refuses it). */
  posixRename: boolean;
}

/**
 * A connection could not be opened; `reason` is the text after the server
 * name. `kind` is "auth" when only a configuration change can fix it.
 */
class ConnectFailure extends ClassifiedError {
  readonly reason: string;
  /** The server refused one more session (channel open failure, closed before login). */
  tooMany = false;
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

/** An error that means the connection itself is unusable. */
class ConnectionError extends Error {
  readonly code: string;
  constructor(message: string, code = "ECONNRESET", options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectionError";
    this.code = code;
  }
}

function statusCode(err: unknown): number | undefined {
  const c = (err as { code?: unknown })?.code;
  return typeof c === "number" ? c : undefined;
}

/**
 * Adds to an SFTP status error (the server says only "permission denied")
 * the request and remote path that failed, once: the innermost step is the
 * one that names the real cause.
 */
function at<R>(p: Promise<R>, step: (code: number) => string): Promise<R> {
  return p.catch((err) => {
    throw annotate(err, step);
  });
}

/** See {@linkcode at}; returns `err`. */
function annotate(err: unknown, step: (code: number) => string): unknown {
  const code = statusCode(err);
  if (code !== undefined && (err as { step?: string }).step === undefined) {
    Object.assign(err as object, { step: step(code) });
  }
  return err;
}

/** Request-level SFTP errors leave the connection usable; anything else does not. */
function isBroken(err: unknown): boolean {
  if (err instanceof ClassifiedError) return err.cause !== undefined && isBroken(err.cause);
  return statusCode(err) === undefined || err instanceof ConnectionError;
}

const STATUS_TEXT: Record<number, string> = {
  1: "end of file",
  2: "no such file or directory",
  3: "permission denied",
  4: "failure",
  5: "bad message",
  6: "no connection",
  7: "connection lost",
  8: "operation not supported",
};

interface Settings {
  host: string;
  port: number;
  username: string;
  password?: string;
  key?: string;
  passphrase?: string;
  agent?: string;
  root: string;
  url: string;
  knownHosts: string;
  pinned?: string;
  insecure: boolean;
}

class Sftp implements Transport, Stater, Lister, Mover, DirRemover {
  readonly #s: Settings;
  readonly #server: string;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #pool: Pool<Conn>;
  readonly #secrets: string[];
  #nextId = 1;

  constructor(s: Settings, ctx: TransportContext) {
    this.#s = s;
    this.#server = ctx.serverName;
    this.#log = ctx.log;
    this.#timeoutMs = ctx.timeoutMs;
    this.#secrets = [s.password, s.passphrase].filter((x): x is string => !!x);
    this.#pool = new Pool<Conn>({
      max: Math.max(1, ctx.maxConnections),
      create: (signal) => this.#connect(signal),
      destroy: (c) => this.#disconnect(c),
      isAlive: (c) => c.alive,
      idleTimeoutMs: 60_000,
      holdsFailure: (err) => err instanceof ClassifiedError && err.kind === "auth",
      isTooMany: (err) => err instanceof ConnectFailure && err.tooMany,
      onShrink: (size, err) => this.#tooMany(size, ctx.maxConnections, err),
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
    let out = text;
    for (const s of this.#secrets) if (s.length > 0) out = out.split(s).join("***");
    return out;
  }

  #describe(err: unknown): string {
    const code = statusCode(err);
    if (code !== undefined) {
      const text = STATUS_TEXT[code] ?? `status ${code}`;
      const msg = errorMessage(err);
      const detail = [(err as { step?: string }).step];
      if (msg && msg.toLowerCase() !== text) detail.push(msg);
      const d = detail.filter((x) => x).join("; ");
      return d ? `${text} (${d})` : text;
    }
    return errorMessage(err);
  }

  #kind(err: unknown): ErrorKind {
    if (err instanceof ClassifiedError) return err.kind;
    // Cancelled by the caller (shutdown): nothing is wrong with the file or the server.
    if ((err as Error)?.name === "AbortError") return "retry";
    const code = statusCode(err);
    if (code === PERMISSION_DENIED) return "fatal";
    if (code !== undefined) return code === 6 || code === 7 ? "server" : "retry";
    // Local file errors (ENOENT, EACCES, …) carry a string code; ssh2's own
    // errors (closed channel, no response) mean the connection is gone.
    if (typeof (err as { code?: unknown })?.code === "string") return classify(err);
    return err instanceof Error && !(err instanceof ConnectionError) &&
        !(err as { level?: string }).level &&
        !/no response|not connected|channel|closed|timed out|socket/i.test(err.message)
      ? "retry"
      : "server";
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
    throw new ClassifiedError(
      this.#scrub(
        `Cannot ${action} "${rel}" ${prep} server "${this.#server}": ${this.#describe(err)}`,
      ),
      this.#kind(err),
      { cause: err },
    );
  }

  // -- connections ----------------------------------------------------------

  async #connect(signal: AbortSignal): Promise<Conn> {
    const s = this.#s;
    const where = `${s.username}@${s.host}:${s.port}`;
    const started = performance.now();
    const cfg: ssh2.ConnectConfig = {
      username: s.username,
      readyTimeout: this.#timeoutMs,
      keepaliveInterval: 15_000,
      keepaliveCountMax: 3,
    };
    const methods: string[] = [];
    if (s.password !== undefined) {
      cfg.password = s.password;
      cfg.tryKeyboard = true;
      methods.push("password");
    }
    if (s.key !== undefined) {
      let data: Buffer;
      try {
        // A Uint8Array key is silently ignored by ssh2 under Deno: pass a Buffer.
        data = Buffer.from(await fs.readFile(expandHome(s.key)));
      } catch (err) {
        throw new ConnectFailure(
          this.#server,
          `cannot read private key "${s.key}": ${errorMessage(err)}`,
          { cause: err },
          "auth",
        );
      }
      const parsed = ssh2.utils.parseKey(data, s.passphrase);
      if (parsed instanceof Error) {
        throw new ConnectFailure(
          this.#server,
          this.#scrub(
            `cannot use private key "${s.key}": ${parsed.message}` +
              (/passphrase/i.test(parsed.message) ? " (set passphrase)" : ""),
          ),
          undefined,
          "auth",
        );
      }
      cfg.privateKey = data;
      if (s.passphrase !== undefined) cfg.passphrase = s.passphrase;
      methods.push("publickey");
    }
    if (s.agent !== undefined) {
      cfg.agent = s.agent;
      methods.push("agent");
    }
    if (methods.length === 0) {
      throw new ConnectFailure(
        this.#server,
        "no authentication method (set password or key, or run an ssh-agent with SSH_AUTH_SOCK set)",
        undefined,
        "auth",
      );
    }

    // Host key verification: decided in the verifier, explained on refusal.
    let knownText = "";
    let knownTypes: string[] = [];
    if (!s.insecure && s.pinned === undefined) {
      try {
        knownText = await fs.readFile(s.knownHosts, "utf8");
      } catch (err) {
        if ((err as { code?: string }).code !== "ENOENT") {
          throw new ConnectFailure(
            this.#server,
            `cannot read known_hosts "${s.knownHosts}": ${errorMessage(err)}`,
            { cause: err },
            "auth",
          );
        }
      }
      knownTypes = checkKnownHosts(knownText, s.host, s.port, new Uint8Array()).knownTypes;
    }
    cfg.algorithms = { serverHostKey: hostKeyOrder(knownTypes) as ssh2.ServerHostKeyAlgorithm[] };
    let refusal: string | undefined;
    cfg.hostVerifier = (key: Buffer): boolean => {
      const fp = sha256Fingerprint(key);
      const type = keyType(key);
      if (s.insecure) {
        this.#log.warn(`Accepting host key ${type} ${fp} of ${s.host}:${s.port} UNCHECKED`);
        return true;
      }
      const trustHint = `If this is the right server, set host_key_fingerprint to "${fp}" ` +
        `or add its key to known_hosts "${s.knownHosts}" ` +
        `(e.g. ssh-keyscan -p ${s.port} -t ${type} ${s.host} >> ${s.knownHosts}, ` +
        `after comparing the fingerprint with ssh-keygen -lf on the server)`;
      if (s.pinned !== undefined) {
        const actual = s.pinned.startsWith("MD5:") ? md5Fingerprint(key) : fp;
        if (actual === s.pinned) return true;
        refusal = `its host key ${type} ${fp} does not match host_key_fingerprint "${s.pinned}"` +
          ` (the key changed, or someone is intercepting the connection). ${trustHint}`;
        return false;
      }
      const verdict = checkKnownHosts(knownText, s.host, s.port, key);
      switch (verdict.status) {
        case "match":
          return true;
        case "revoked":
          refusal =
            `its host key ${type} ${fp} is marked @revoked in known_hosts "${s.knownHosts}"` +
            ` line ${verdict.line}`;
          return false;
        case "mismatch":
          refusal = `its host key ${type} ${fp} does NOT match the key in known_hosts ` +
            `"${s.knownHosts}" line ${verdict.line}: the server's key changed, or someone is ` +
            `intercepting the connection. If the change is expected, remove that line ` +
            `(ssh-keygen -R "${knownHostsName(s.host, s.port)}" -f ${s.knownHosts}) and trust ` +
            `the new key: set host_key_fingerprint to "${fp}" or add it to known_hosts`;
          return false;
        default:
          refusal =
            `its host key ${type} ${fp} is unknown (not in known_hosts "${s.knownHosts}"). ${trustHint}`;
          return false;
      }
    };

    const sock = new net.Socket();
    sock.setNoDelay(true); // without it every SFTP round trip waits ~40 ms (Nagle + delayed ACK)
    const client = new ssh2.Client();
    let stage: "connect" | "sftp" = "connect";
    const fail = (err: unknown): ClassifiedError => {
      if (err instanceof ClassifiedError) return err;
      const level = (err as { level?: string }).level;
      if (refusal !== undefined) {
        return new ConnectFailure(
          this.#server,
          `${s.host}:${s.port}: ${refusal}`,
          { cause: err },
          "auth",
        );
      }
      if (level === "client-authentication") {
        return new ConnectFailure(
          this.#server,
          `cannot log in as ${where}: authentication failed (tried ${methods.join(", ")})`,
          { cause: err },
          "auth",
        );
      }
      if (stage === "sftp") {
        // Logged in but no SFTP channel: the way servers refuse one more
        // session (MaxSessions, per-user login limits). With other
        // connections open, the pool keeps their number as its size.
        const f = new ConnectFailure(
          this.#server,
          this.#scrub(`${where} refused one more session: ${errorMessage(err)}`),
          { cause: err },
        );
        f.tooMany = true;
        return f;
      }
      if (level === "client-timeout" || (err as { code?: string }).code === "ETIMEDOUT") {
        return new ConnectFailure(
          this.#server,
          `cannot connect to ${where}: timed out after ${this.#timeoutMs} ms`,
          { cause: err },
        );
      }
      return new ConnectFailure(
        this.#server,
        this.#scrub(`cannot connect to ${where}: ${errorMessage(err)}`),
        { cause: err },
      );
    };

    const conn = await new Promise<Conn>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(
        () => done(new ConnectionError("timed out", "ETIMEDOUT")),
        this.#timeoutMs,
      );
      const onAbort = () => done(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      function done(err?: unknown, value?: Conn) {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        if (err !== undefined) {
          client.destroy();
          sock.destroy();
          reject(err);
        } else resolve(value!);
      }
      client.on("keyboard-interactive", (_name, _instr, _lang, prompts, finish) => {
        finish(prompts.map(() => s.password ?? ""));
      });
      client.on("error", (err) => done(err));
      client.on("close", () => done(new ConnectionError("connection closed during login")));
      client.on("ready", () => {
        stage = "sftp";
        client.sftp((err, sftp) => {
          if (err) return done(err);
          const c: Conn = {
            id: this.#nextId++,
            client,
            sftp,
            dirs: new Set(),
            alive: true,
            closed: false,
            posixRename: true,
          };
          done(undefined, c);
        });
      });
      sock.once("error", (err) => done(err));
      sock.connect({ host: s.host, port: s.port }, () => {
        sock.removeAllListeners("error");
        try {
          client.connect({ ...cfg, sock });
        } catch (err) {
          done(err);
        }
      });
    }).catch((err) => {
      if (signal.aborted && err === signal.reason) throw err;
      throw fail(err);
    });

    const markDead = () => {
      conn.alive = false;
    };
    client.removeAllListeners("error");
    client.removeAllListeners("close");
    client.on("error", (err) => {
      markDead();
      this.#log.debug(`Connection #${conn.id} failed: ${this.#scrub(errorMessage(err))}`);
    });
    client.on("close", () => {
      markDead();
      conn.closed = true;
    });
    conn.sftp.on("close", markDead);
    this.#log.debug(`Connected to ${where} as connection #${conn.id}`, {
      ms: Math.round(performance.now() - started),
    });
    return conn;
  }

  /** Says goodbye politely, but waits at most 500 ms for the server. */
  #disconnect(c: Conn): Promise<void> {
    c.alive = false;
    if (c.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        c.client.destroy();
        resolve();
      }, 500);
      c.client.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
      c.client.end();
    });
  }

  /** One SFTP request with a timeout; a timeout kills the connection. */
  #req<R>(
    conn: Conn,
    fn: (cb: (err: Error | undefined | null, res?: R) => void) => void,
  ): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      if (!conn.alive) {
        reject(new ConnectionError("connection closed"));
        return;
      }
      const timer = setTimeout(() => {
        conn.alive = false;
        conn.client.destroy();
        reject(new ConnectionError(`no answer within ${this.#timeoutMs} ms`, "ETIMEDOUT"));
      }, this.#timeoutMs);
      try {
        fn((err, res) => {
          clearTimeout(timer);
          if (err) reject(err);
          else resolve(res as R);
        });
      } catch (err) {
        clearTimeout(timer);
        reject(err);
      }
    });
  }

  #use<R>(signal: AbortSignal, fn: (conn: Conn) => Promise<R>, retryStale = true): Promise<R> {
    return this.#pool.use(fn, { signal, isBroken, retryStale });
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

  async #ensureDir(conn: Conn, dir: string): Promise<void> {
    if (dir === "" || dir === "." || dir === "/" || conn.dirs.has(dir)) return;
    try {
      const st = await this.#req<ssh2.Stats>(conn, (cb) => conn.sftp.stat(dir, cb));
      if (!st.isDirectory()) {
        throw Object.assign(new Error(`"${dir}" exists and is not a directory`), { code: FAILURE });
      }
      conn.dirs.add(dir);
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
    conn.dirs.add(dir);
  }

  /**
   * After fileconveyor deleted or moved away the file at `rel`: removes the
   * directories that this left empty, innermost first, never the root.
   * RMDIR refuses a directory that holds anything, so a directory with other
   * files (or one a user emptied otherwise) is left alone: only directories
   * whose last file fileconveyor itself removed go. Errors stop the walk.
   */
  async #pruneParents(conn: Conn, rel: string): Promise<void> {
    for (
      let d = path.posix.dirname(rel);
      d !== "." && d !== "/" && d !== "";
      d = path.posix.dirname(d)
    ) {
      try {
        await this.#req(conn, (cb) => conn.sftp.rmdir(this.#full(d), cb));
      } catch {
        return;
      }
      // Other connections still cache it; their uploads re-create it on "no such file".
      conn.dirs.clear();
    }
  }

  /** Renames `from` over `to` atomically where the server can. */
  async #rename(conn: Conn, from: string, to: string): Promise<void> {
    if (conn.posixRename) {
      try {
        await this.#req(conn, (cb) => conn.sftp.ext_openssh_rename(from, to, cb));
        return;
      } catch (err) {
        const unsupported = statusCode(err) === OP_UNSUPPORTED ||
          /does not support/i.test(errorMessage(err));
        if (!unsupported) throw err;
        conn.posixRename = false;
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

  /** Streams a local file into a remote one; returns the bytes sent. */
  async #upload(
    conn: Conn,
    fh: fs.FileHandle,
    remote: string,
    signal: AbortSignal,
  ): Promise<number> {
    {
      const handle = await at(
        this.#req<Buffer>(conn, (cb) => conn.sftp.open(remote, "w", cb)),
        (code) =>
          code === PERMISSION_DENIED
            ? `cannot create "${remote}": "${path.posix.dirname(remote)}" is not writable`
            : `cannot create "${remote}"`,
      );
      let closed = false;
      try {
        let pos = 0;
        let eof = false;
        let failure: unknown;
        const inflight = new Set<Promise<void>>();
        while (!eof || inflight.size > 0) {
          while (!eof && failure === undefined && inflight.size < IN_FLIGHT) {
            if (signal.aborted) {
              failure = signal.reason;
              break;
            }
            const buf = Buffer.allocUnsafe(CHUNK);
            const { bytesRead } = await fh.read(buf, 0, CHUNK, pos);
            if (bytesRead === 0) {
              eof = true;
              break;
            }
            const at = pos;
            pos += bytesRead;
            const p: Promise<void> = this.#req<void>(
              conn,
              (cb) => conn.sftp.write(handle, buf, 0, bytesRead, at, cb),
            ).then(
              () => {
                inflight.delete(p);
              },
              (err) => {
                failure ??= err;
                inflight.delete(p);
              },
            );
            inflight.add(p);
          }
          if (inflight.size > 0) await Promise.race(inflight);
          if (failure !== undefined && inflight.size === 0) throw failure;
        }
        await this.#req(conn, (cb) => conn.sftp.close(handle, cb));
        closed = true;
        return pos;
      } finally {
        if (!closed && conn.alive) conn.sftp.close(handle, () => {});
      }
    }
  }

  // -- Transport --------------------------------------------------------------

  async put(localPath: string, remotePath: string, options: PutOptions): Promise<PutResult> {
    const rel = safeRemotePath(remotePath);
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
          let sent: number;
          try {
            sent = await this.#upload(conn, fh, tmp, options.signal);
          } catch (err) {
            if (statusCode(err) !== NO_SUCH_FILE) throw err;
            // The directory was removed behind our back (or emptied and pruned by a delete
            // on another connection since it was checked): create it again, once.
            conn.dirs.clear();
            await this.#ensureDir(conn, dir);
            sent = await this.#upload(conn, fh, tmp, options.signal);
          }
          if (sent !== options.size) {
            throw new ClassifiedError(
              `Cannot upload "${rel}" to server "${this.#server}": the local file changed during ` +
                `the upload (read ${sent} bytes, expected ${options.size})`,
              "retry",
            );
          }
          const st = await this.#req<ssh2.Stats>(conn, (cb) => conn.sftp.stat(tmp, cb));
          if (st.size !== sent) {
            throw new ClassifiedError(
              `Cannot upload "${rel}" to server "${this.#server}": the server stored ${st.size} ` +
                `bytes, expected ${sent}`,
              "retry",
            );
          }
          options.signal.throwIfAborted();
          await at(this.#rename(conn, tmp, full), () => `cannot rename "${tmp}" to "${full}"`);
          return sent;
        } catch (err) {
          if (conn.alive) await this.#req(conn, (cb) => conn.sftp.unlink(tmp, cb)).catch(() => {});
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
    try {
      await this.#use(options.signal, async (conn) => {
        const full = this.#full(rel);
        try {
          await this.#req(conn, (cb) => conn.sftp.unlink(full, cb));
          await this.#pruneParents(conn, rel);
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

  close(): Promise<void> {
    return this.#pool.close();
  }
}

function settingsFrom(v: OptionValues): Settings {
  const password = v.password;
  const key = v.key !== undefined && v.key.trim() !== "" ? v.key.trim() : undefined;
  const agentSetting = v.agent === undefined
    ? password === undefined && key === undefined
    : isTrue(v.agent);
  const sock = Deno.env.get("SSH_AUTH_SOCK");
  let root = (v.path ?? "").trim().replace(/\/+$/, "");
  if (root === "" && (v.path ?? "").trim().startsWith("/")) root = "/";
  if (root !== "" && root !== "/") {
    const abs = root.startsWith("/");
    const parts = root.split("/").filter((p) => p !== "" && p !== ".");
    root = (abs ? "/" : "") + parts.join("/");
  }
  const pinned = v.host_key_fingerprint !== undefined && v.host_key_fingerprint.trim() !== ""
    ? normalizeFingerprint(v.host_key_fingerprint)
    : undefined;
  return {
    host: v.host!.trim(),
    port: Number(v.port ?? "22"),
    username: v.username!,
    ...(password !== undefined ? { password } : {}),
    ...(key !== undefined ? { key } : {}),
    ...(v.passphrase !== undefined ? { passphrase: v.passphrase } : {}),
    ...(agentSetting && sock ? { agent: sock } : {}),
    root,
    url: v.url!.trim(),
    knownHosts: expandHome((v.known_hosts ?? "~/.ssh/known_hosts").trim()),
    ...(pinned !== undefined ? { pinned } : {}),
    insecure: isTrue(v.insecure_skip_host_key_check),
  };
}

/** Creates the transport from settings `sftp.ts` has validated. */
export function createSftp(settings: OptionValues, ctx: TransportContext): Transport {
  const s = settingsFrom(settings);
  if (s.password) addSecret(s.password);
  if (s.passphrase) addSecret(s.passphrase);
  return new Sftp(s, ctx);
}
