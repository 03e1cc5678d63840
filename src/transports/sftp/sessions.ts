/**
 * SFTP sessions for the connection pool, several on one SSH connection, and
 * several users ("lanes") on one session.
 *
 * Each session is its own SSH channel, served by its own server process
 * (OpenSSH forks one per session), so sessions never wait for each other's
 * requests; what they share is the TCP socket and its encryption. The SSH
 * packets of all of a connection's sessions written within one tick leave in
 * one socket write, and each write wakes the server once: with several
 * sessions per connection, a busy machine spends fewer wake-ups (and fewer
 * logins) per file than with one connection per file.
 *
 * An upload of a small file waits a round trip three times (open; write and
 * close; rename), and a server process with one upload at a time idles in
 * each. The pool therefore lends lanes, not sessions: up to `maxSessions`
 * sessions are opened (one per lane while there are fewer), and beyond that
 * a lane joins the session with the fewest, up to `lanesPerSession`. The
 * requests of a session's lanes interleave on its channel (SFTP answers by
 * request id), so its server process works through several files in one
 * wake-up.
 *
 * A server that refuses one more session on a connection (OpenSSH's
 * `MaxSessions`, 10 by default; 1 on some hosting) caps that connection at
 * the sessions it took, and the next session opens on a new connection.
 *
 * @module
 */
import { ConnectFailure, ConnectionError } from "./errors.ts";
import {
  closeLane,
  type Conn,
  type ConnectEnv,
  disconnect,
  endSession,
  type Link,
  openLane,
  openLink,
  openSession,
} from "./connect.ts";

/** Sessions per SSH connection at most (OpenSSH allows 10 by default). */
export const SESSIONS_PER_LINK = 8;

/** A connection being opened or open, with the sessions it carries or will carry. */
interface Entry {
  ready: Promise<Link>;
  link?: Link;
  /** Sessions open, or being opened, on it. */
  users: number;
  /** Most sessions it may carry. */
  cap: number;
  failed: boolean;
}

/** A session being opened or open, with the lanes it carries or will carry. */
interface SessionEntry {
  /** The session's template connection (not lent out: lanes are opened from it). */
  ready: Promise<{ conn: Conn; link: Entry }>;
  conn?: Conn;
  /** Lanes open, or waiting for it to open. */
  users: number;
  /** The connection it is on, once known. */
  link?: Entry;
  failed: boolean;
}

/** Limits of {@linkcode Sessions}. */
export interface SessionLimits {
  /** Sessions per SSH connection at most (default {@linkcode SESSIONS_PER_LINK}). */
  perLink?: number;
  /** Sessions opened before lanes join existing ones (default: no limit). */
  maxSessions?: number;
  /** Lanes per session at most (default 1). */
  lanesPerSession?: number;
}

/**
 * Opens lanes on SFTP sessions, and sessions on shared SSH connections;
 * ends a session with its last lane and a connection with its last session.
 */
export class Sessions {
  readonly #env: ConnectEnv;
  readonly #perLink: number;
  #maxSessions: number;
  readonly #lanes: number;
  readonly #entries = new Set<Entry>();
  readonly #sessions = new Set<SessionEntry>();
  /** Ends handshakes when the transport closes (a caller's abort does not: others may wait). */
  readonly #closing = new AbortController();

  constructor(env: ConnectEnv, limits: SessionLimits = {}) {
    this.#env = env;
    this.#perLink = Math.max(1, limits.perLink ?? SESSIONS_PER_LINK);
    this.#maxSessions = Math.max(1, limits.maxSessions ?? Infinity);
    this.#lanes = Math.max(1, limits.lanesPerSession ?? 1);
  }

  /**
   * Opens one lane: on a new session while fewer than `maxSessions` are
   * open or opening (or none has room), else on the one with the fewest lanes.
   */
  async open(signal: AbortSignal): Promise<Conn> {
    for (;;) {
      const { live, emptiest } = this.#survey();
      const entry = live >= this.#maxSessions && emptiest ? emptiest : this.#startSession();
      entry.users++;
      let lane: Conn | undefined;
      try {
        const { conn } = await abortable(entry.ready, signal);
        if (!conn.session.alive || !conn.link.alive) {
          throw new ConnectionError("connection closed");
        }
        lane = openLane(this.#env, conn);
        return lane;
      } catch (err) {
        // The server refused one more session (on every connection it would take):
        // the sessions open carry the lanes, up to their limit.
        if (err instanceof ConnectFailure && err.tooMany && entry !== emptiest) {
          const now = this.#survey();
          if (now.live > 0 && now.emptiest) {
            this.#maxSessions = Math.min(this.#maxSessions, now.live);
            continue;
          }
        }
        throw err;
      } finally {
        if (lane === undefined) this.#leaveSession(entry);
      }
    }
  }

  /** Sessions open or opening, and the live one with the fewest lanes that has room. */
  #survey(): { live: number; emptiest?: SessionEntry } {
    let live = 0;
    let emptiest: SessionEntry | undefined;
    for (const e of this.#sessions) {
      if (e.failed || (e.conn !== undefined && !(e.conn.session.alive && e.conn.link.alive))) {
        continue;
      }
      live++;
      if (e.users < this.#lanes && (!emptiest || e.users < emptiest.users)) emptiest = e;
    }
    return emptiest ? { live, emptiest } : { live };
  }

  /** Ends a lane, its session with its last lane, and the connection with its last session. */
  close(conn: Conn): Promise<void> {
    closeLane(conn);
    for (const e of this.#sessions) {
      if (e.conn?.session === conn.session) {
        this.#leaveSession(e);
        break;
      }
    }
    return Promise.resolve();
  }

  /** Starts opening a session for whoever waits for it (the transport's close ends it). */
  #startSession(): SessionEntry {
    const entry: SessionEntry = { ready: this.#openSession(), users: 0, failed: false };
    this.#sessions.add(entry);
    entry.ready.then(({ conn, link }) => {
      entry.conn = conn;
      entry.link = link;
      // Everyone who waited for it gave up meanwhile.
      if (entry.users === 0) this.#endSession(entry);
    }, () => {
      entry.failed = true;
      this.#sessions.delete(entry);
    });
    // Its waiters see the failure; this copy only keeps it from being unhandled.
    entry.ready.catch(() => {});
    return entry;
  }

  #leaveSession(entry: SessionEntry): void {
    entry.users--;
    if (entry.users <= 0 && entry.conn) this.#endSession(entry);
  }

  #endSession(entry: SessionEntry): void {
    this.#sessions.delete(entry);
    const conn = entry.conn!;
    endSession(conn);
    if (entry.link) this.#leave(entry.link);
  }

  /** Opens one session: on a connection with room, or on a new one. */
  async #openSession(): Promise<{ conn: Conn; link: Entry }> {
    const signal = this.#closing.signal;
    for (;;) {
      const entry = this.#room() ?? this.#dial();
      entry.users++;
      let conn: Conn | undefined;
      try {
        const link = await abortable(entry.ready, signal);
        conn = await openSession(this.#env, link, signal);
        return { conn, link: entry };
      } catch (err) {
        // Refused on a connection that carries (or is opening) others: it is full, try
        // another one. The others still being opened count, as ssh2 confirms a session
        // only after its SFTP handshake, later than it reports a refused one; those of
        // them that are refused too lower the cap further.
        const others = entry.users - 1;
        if (err instanceof ConnectFailure && err.tooMany && others > 0 && entry.link?.alive) {
          entry.cap = Math.min(entry.cap, others);
          continue;
        }
        throw err;
      } finally {
        if (conn === undefined) this.#leave(entry);
      }
    }
  }

  /** Ends every connection. */
  async closeAll(): Promise<void> {
    this.#closing.abort(new Error("the transport is closed"));
    const links = [...this.#entries].map((e) => e.link).filter((l): l is Link => !!l);
    this.#entries.clear();
    this.#sessions.clear();
    await Promise.all(links.map(disconnect));
  }

  /** A live connection (or one being opened) with room for one more session. */
  #room(): Entry | undefined {
    for (const e of this.#entries) {
      if (!e.failed && (e.link === undefined || e.link.alive) && e.users < e.cap) return e;
    }
    return undefined;
  }

  #dial(): Entry {
    const entry: Entry = {
      ready: openLink(this.#env, this.#closing.signal),
      users: 0,
      cap: this.#perLink,
      failed: false,
    };
    this.#entries.add(entry);
    entry.ready.then((link) => {
      entry.link = link;
      // Everyone who waited for it gave up meanwhile.
      if (entry.users === 0) this.#end(entry);
    }, () => {
      entry.failed = true;
      this.#entries.delete(entry);
    });
    return entry;
  }

  #leave(entry: Entry): void {
    entry.users--;
    if (entry.users <= 0 && entry.link) this.#end(entry);
  }

  #end(entry: Entry): void {
    this.#entries.delete(entry);
    if (entry.link) void disconnect(entry.link);
  }
}

/** `p`, or the signal's reason once it aborts first. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
