/**
 * Opening and closing one SSH connection with its SFTP session: settings
 * and authentication; the host key check is `host_keys.ts`'s.
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
import { ClassifiedError, errorMessage } from "../../errors.ts";
import type { Logger } from "../../log.ts";
import { coalesceChannelData, coalesceWrites } from "../_sftp_wire.ts";
import { normalizeRoot } from "../paths.ts";
import { normalizeFingerprint, type SftpOptions } from "../sftp.ts";
import { Deadlines } from "./deadlines.ts";
import { hostKeyCheck } from "./host_keys.ts";
import { ConnectFailure, ConnectionError } from "./errors.ts";

function expandHome(p: string): string {
  if (p === "~") return os.homedir();
  if (p.startsWith("~/")) return path.join(os.homedir(), p.slice(2));
  return p;
}

/** One SSH connection (TCP socket, keys, encryption), which carries SFTP sessions. */
export interface Link {
  id: number;
  client: ssh2.Client;
  alive: boolean;
  /** The SSH connection has closed. */
  closed: boolean;
  /** The user and server, for messages. */
  where: string;
  /** The users of its open SFTP sessions (marked dead when the link ends). */
  sessions: Set<Conn>;
  /** The answer deadlines of its requests (one timer for all). */
  deadlines: Deadlines;
}

/** One SFTP session: an SSH channel with its own server process, on a {@linkcode Link}. */
export interface Session {
  sftp: ssh2.SFTPWrapper;
  alive: boolean;
  /** Its users ({@linkcode Conn}s); the session ends with the last one. */
  lanes: Set<Conn>;
  /** Whether posix-rename@openssh.com is usable (cleared when the server refuses it). */
  posixRename: boolean;
  /** The end of the last queued turn for a large upload (see `upload.ts`). */
  largeTurn?: Promise<void>;
}

/**
 * One user of an SFTP session, the unit the connection pool lends: the
 * requests of several users of a session interleave on its channel (SFTP
 * matches answers to requests by id), so one server process works on
 * several files at once, without waiting a round trip between them.
 */
export interface Conn {
  id: number;
  link: Link;
  /** The link's SSH client (a request timeout destroys it). */
  client: ssh2.Client;
  sftp: ssh2.SFTPWrapper;
  session: Session;
  alive: boolean;
}

export interface Settings {
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

/** What opening a connection needs from the transport. */
export interface ConnectEnv {
  s: Settings;
  /** The server's name in the configuration. */
  server: string;
  log: Logger;
  timeoutMs: number;
  /** Hides the configured secrets in a text. */
  scrub(text: string): string;
  /** The next connection number. */
  nextId(): number;
}

/**
 * Opens one SSH connection: login with host key verification. SFTP sessions
 * are opened on it with {@linkcode openSession}.
 */
export async function openLink(env: ConnectEnv, signal: AbortSignal): Promise<Link> {
  const s = env.s;
  const where = `${s.username}@${s.host}:${s.port}`;
  const started = performance.now();
  const cfg: ssh2.ConnectConfig = {
    username: s.username,
    readyTimeout: env.timeoutMs,
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
        env.server,
        `cannot read private key "${s.key}": ${errorMessage(err)}`,
        { cause: err },
        "auth",
      );
    }
    const parsed = ssh2.utils.parseKey(data, s.passphrase);
    if (parsed instanceof Error) {
      throw new ConnectFailure(
        env.server,
        env.scrub(
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
      env.server,
      "no authentication method (set password or key, or run an ssh-agent with SSH_AUTH_SOCK set)",
      undefined,
      "auth",
    );
  }

  // Host key verification: decided in the verifier, explained on refusal.
  const hostKeys = await hostKeyCheck(env);
  cfg.algorithms = { serverHostKey: hostKeys.algorithms as ssh2.ServerHostKeyAlgorithm[] };
  cfg.hostVerifier = hostKeys.verify;

  const sock = new net.Socket();
  sock.setNoDelay(true); // without it every SFTP round trip waits ~40 ms (Nagle + delayed ACK)
  const client = new ssh2.Client();
  const fail = (err: unknown): ClassifiedError => {
    if (err instanceof ClassifiedError) return err;
    const level = (err as { level?: string }).level;
    const refusal = hostKeys.refusal();
    if (refusal !== undefined) {
      return new ConnectFailure(
        env.server,
        `${s.host}:${s.port}: ${refusal}`,
        { cause: err },
        "auth",
      );
    }
    if (level === "client-authentication") {
      return new ConnectFailure(
        env.server,
        `cannot log in as ${where}: authentication failed (tried ${methods.join(", ")})`,
        { cause: err },
        "auth",
      );
    }
    if (level === "client-timeout" || (err as { code?: string }).code === "ETIMEDOUT") {
      return new ConnectFailure(
        env.server,
        `cannot connect to ${where}: timed out after ${env.timeoutMs} ms`,
        { cause: err },
      );
    }
    return new ConnectFailure(
      env.server,
      env.scrub(`cannot connect to ${where}: ${errorMessage(err)}`),
      { cause: err },
    );
  };

  const link = await new Promise<Link>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(
      () => done(new ConnectionError("timed out", "ETIMEDOUT")),
      env.timeoutMs,
    );
    const onAbort = () => done(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    function done(err?: unknown, value?: Link) {
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
      const link: Link = {
        id: env.nextId(),
        client,
        alive: true,
        closed: false,
        where,
        sessions: new Set(),
        deadlines: new Deadlines(env.timeoutMs, () => {
          link.alive = false;
          for (const c of link.sessions) c.alive = false;
          client.destroy();
        }),
      };
      done(undefined, link);
    });
    sock.once("error", (err) => done(err));
    sock.connect({ host: s.host, port: s.port }, () => {
      sock.removeAllListeners("error");
      // A burst of requests still leaves in one write (installed once connected: the
      // runtime's connect replaces the socket's write method).
      coalesceWrites(sock);
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

  client.removeAllListeners("error");
  client.removeAllListeners("close");
  const markDead = () => {
    link.alive = false;
    for (const c of link.sessions) c.alive = false;
    link.deadlines.stop(new ConnectionError("connection closed"));
  };
  client.on("error", (err) => {
    markDead();
    env.log.debug(`Connection #${link.id} failed: ${env.scrub(errorMessage(err))}`);
  });
  client.on("close", () => {
    markDead();
    link.closed = true;
  });
  env.log.debug(`Connected to ${where} as connection #${link.id}`, {
    ms: Math.round(performance.now() - started),
  });
  return link;
}

/**
 * Opens an SFTP session on `link`; its users are opened with
 * {@linkcode openLane} (the connection returned is not one). A refusal (servers refuse one more
 * session this way: MaxSessions, per-user limits) is a
 * {@linkcode ConnectFailure} with `tooMany` set; the link stays usable.
 */
export function openSession(env: ConnectEnv, link: Link, signal: AbortSignal): Promise<Conn> {
  return new Promise<Conn>((resolve, reject) => {
    if (!link.alive) {
      reject(new ConnectionError("connection closed"));
      return;
    }
    let settled = false;
    const timer = setTimeout(
      () => finish(new ConnectionError("no SFTP session within the timeout", "ETIMEDOUT")),
      env.timeoutMs,
    );
    const onAbort = () => finish(signal.reason);
    const onClose = () => finish(new ConnectionError("connection closed before the SFTP session"));
    signal.addEventListener("abort", onAbort, { once: true });
    link.client.once("close", onClose);
    function finish(err?: unknown, conn?: Conn) {
      if (settled) {
        // Opened after the caller gave up: not used by anyone.
        conn?.sftp.end();
        return;
      }
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      link.client.removeListener("close", onClose);
      if (err !== undefined) reject(err);
      else resolve(conn!);
    }
    try {
      link.client.sftp((err, sftp) => {
        if (err) {
          if (settled || !link.alive) return finish(err);
          const f = new ConnectFailure(
            env.server,
            env.scrub(`${link.where} refused one more session: ${errorMessage(err)}`),
            { cause: err },
          );
          f.tooMany = true;
          return finish(f);
        }
        if (!coalesceChannelData(sftp)) {
          env.log.debug("SFTP requests go out one SSH packet each (unknown ssh2 internals)");
        }
        const session: Session = { sftp, alive: true, lanes: new Set(), posixRename: true };
        const conn: Conn = {
          id: env.nextId(),
          link,
          client: link.client,
          sftp,
          session,
          alive: true,
        };
        sftp.on("close", () => {
          session.alive = false;
          for (const c of session.lanes) {
            c.alive = false;
            link.sessions.delete(c);
          }
        });
        finish(undefined, conn);
      });
    } catch (err) {
      finish(err);
    }
  });
}

/**
 * A new user of the session that `c` (returned by {@linkcode openSession})
 * belongs to; it is marked dead with the session or the link.
 */
export function openLane(env: ConnectEnv, c: Conn): Conn {
  const lane: Conn = { ...c, id: env.nextId(), alive: true };
  c.session.lanes.add(lane);
  c.link.sessions.add(lane);
  return lane;
}

/** Ends one user of a session (the session stays open: see {@linkcode endSession}). */
export function closeLane(c: Conn): void {
  c.alive = false;
  c.link.sessions.delete(c);
  c.session.lanes.delete(c);
}

/** Ends an SFTP session and its users (its link stays open). */
export function endSession(c: Conn): void {
  c.session.alive = false;
  for (const lane of c.session.lanes) closeLane(lane);
  if (c.link.alive) {
    try {
      c.sftp.end();
    } catch {
      // The link broke meanwhile.
    }
  }
}

/** Says goodbye politely, but waits at most 500 ms for the server. */
export function disconnect(link: Link): Promise<void> {
  link.alive = false;
  if (link.closed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      link.client.destroy();
      resolve();
    }, 500);
    link.client.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    link.client.end();
  });
}

/** What a connection needs, from the settings `sftp.ts` has validated. */
export function settingsFrom(v: SftpOptions): Settings {
  const password = v.password;
  const key = v.key !== undefined && v.key.trim() !== "" ? v.key.trim() : undefined;
  const agentSetting = v.agent ?? (password === undefined && key === undefined);
  const sock = Deno.env.get("SSH_AUTH_SOCK");
  const root = normalizeRoot(v.path);
  const pinned = v.host_key_fingerprint !== undefined && v.host_key_fingerprint.trim() !== ""
    ? normalizeFingerprint(v.host_key_fingerprint)
    : undefined;
  return {
    host: v.host.trim(),
    port: v.port,
    username: v.username,
    ...(password !== undefined ? { password } : {}),
    ...(key !== undefined ? { key } : {}),
    ...(v.passphrase !== undefined ? { passphrase: v.passphrase } : {}),
    ...(agentSetting && sock ? { agent: sock } : {}),
    root,
    url: v.url.trim(),
    knownHosts: expandHome(v.known_hosts.trim()),
    ...(pinned !== undefined ? { pinned } : {}),
    insecure: v.insecure_skip_host_key_check,
  };
}
